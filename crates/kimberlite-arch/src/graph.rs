//! Module tree to dependency graph (one node per module file) and its cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use crate::parse::{ModPath, Module, PathRef};

/// Where a dependency was seen: the first path naming the target in the source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The source file, relative to the crate directory.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The path as resolved against `crate` (`crate::a::b::Item`), or as written when bare.
    pub path: String,
}

/// Dependencies between file modules: `graph[a][b]` is why `a` depends on `b`.
pub type Graph = BTreeMap<ModPath, BTreeMap<ModPath, Evidence>>;

/// Re-exports followed through at most this many `use` hops (guards against `use` loops).
const USE_HOPS_MAX: usize = 16;

/// Builds the dependency graph of the file modules in `modules`.
pub fn dependency_graph(modules: &BTreeMap<ModPath, Module>) -> Graph {
    let mut graph = Graph::new();
    for (path, module) in modules {
        let from = &module.file_module;
        graph.entry(from.clone()).or_default();
        for (r, line) in &module.refs {
            let Some((target, _)) = resolve(modules, path, r, 0) else {
                continue;
            };
            let Some(to) = modules.get(&target).map(|m| &m.file_module) else {
                continue;
            };
            if to != from {
                let evidence = Evidence {
                    file: module.file.clone(),
                    line: *line,
                    path: show(r),
                };
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to.clone())
                    .or_insert(evidence);
            }
        }
    }
    graph
}

fn show(r: &PathRef) -> String {
    if r.anchored {
        std::iter::once("crate")
            .chain(r.segments.iter().map(String::as_str))
            .collect::<Vec<_>>()
    } else {
        r.segments.iter().map(String::as_str).collect()
    }
    .join("::")
}

/// The module `r` (written in module `at`) reaches, and whether every segment named a module
/// (`false`: the path continues into an item of that module). `None` when the path does not
/// name this crate.
fn resolve(
    modules: &BTreeMap<ModPath, Module>,
    at: &ModPath,
    r: &PathRef,
    hops: usize,
) -> Option<(ModPath, bool)> {
    if r.anchored {
        return Some(walk(modules, Vec::new(), &r.segments, hops));
    }
    let first = r.segments.first()?;
    let module = modules.get(at)?;
    if module.children.contains(first) || module.uses.contains_key(first) {
        Some(walk(modules, at.clone(), &r.segments, hops))
    } else {
        None
    }
}

fn walk(
    modules: &BTreeMap<ModPath, Module>,
    mut pos: ModPath,
    segments: &[String],
    hops: usize,
) -> (ModPath, bool) {
    for (i, seg) in segments.iter().enumerate() {
        let Some(module) = modules.get(&pos) else {
            return (pos, false);
        };
        let mut child = pos.clone();
        child.push(seg.clone());
        if modules.contains_key(&child) {
            pos = child;
            continue;
        }
        if module.children.contains(seg) || module.items.contains(seg) || hops >= USE_HOPS_MAX {
            return (pos, false);
        }
        if let Some(u) = module.uses.get(seg) {
            match resolve(modules, &pos, u, hops + 1) {
                Some((target, true)) => {
                    pos = target;
                    continue;
                }
                Some((target, false)) => return (target, false),
                None => return (pos, false),
            }
        }
        let rest = segments.get(i..).unwrap_or_default();
        for glob in &module.globs {
            let Some((source, true)) = resolve(modules, &pos, glob, hops + 1) else {
                continue;
            };
            let holds = modules.get(&source).is_some_and(|g| {
                g.children.contains(seg) || g.items.contains(seg) || g.uses.contains_key(seg)
            });
            if holds {
                return walk(modules, source, rest, hops + 1);
            }
        }
        return (pos, false);
    }
    (pos, true)
}

/// One import cycle: `modules[0] -> modules[1] -> .. -> modules[0]`, with why each step holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The modules in order, the first repeated at the end.
    pub modules: Vec<ModPath>,
    /// `evidence[i]` is why `modules[i]` depends on `modules[i + 1]`.
    pub evidence: Vec<Evidence>,
}

/// Every cycle needed to show each dependency that lies on a cycle: for each such edge
/// `a -> b`, the cycle closed by the shortest path from `b` back to `a`. Deduplicated,
/// each rotated to start at its smallest module.
pub fn cycles(graph: &Graph) -> Vec<Cycle> {
    let mut found = BTreeSet::new();
    for component in strongly_connected(graph) {
        if component.len() < 2 {
            continue;
        }
        for a in &component {
            for b in graph.get(a).into_iter().flat_map(BTreeMap::keys) {
                if let Some(back) = shortest_path(graph, &component, b, a) {
                    let mut ring: Vec<ModPath> = std::iter::once(a.clone()).chain(back).collect();
                    ring.pop();
                    let start = ring
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, m)| *m)
                        .map_or(0, |p| p.0);
                    ring.rotate_left(start);
                    found.insert(ring);
                }
            }
        }
    }
    found
        .into_iter()
        .map(|mut ring| {
            ring.push(ring.first().cloned().unwrap_or_default());
            let evidence = ring
                .windows(2)
                .filter_map(|w| graph.get(w.first()?)?.get(w.get(1)?).cloned())
                .collect();
            Cycle {
                modules: ring,
                evidence,
            }
        })
        .collect()
}

/// Breadth-first path `from ..= to` inside `within`.
fn shortest_path(
    graph: &Graph,
    within: &BTreeSet<ModPath>,
    from: &ModPath,
    to: &ModPath,
) -> Option<Vec<ModPath>> {
    let mut previous: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![node.clone()];
            let mut at = node;
            while let Some(p) = previous.get(at) {
                path.push((*p).clone());
                at = p;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if within.contains(next) && seen.insert(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Strongly connected components (Tarjan).
fn strongly_connected(graph: &Graph) -> Vec<BTreeSet<ModPath>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        stack: Vec<&'g ModPath>,
        on_stack: BTreeSet<&'g ModPath>,
        out: Vec<BTreeSet<ModPath>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(BTreeMap::keys) {
            let low_v = s.low.get(v).copied().unwrap_or(n);
            if !s.index.contains_key(w) {
                visit(s, w);
                let low_w = s.low.get(w).copied().unwrap_or(n);
                s.low.insert(v, low_v.min(low_w));
            } else if s.on_stack.contains(w) {
                let index_w = s.index.get(w).copied().unwrap_or(n);
                s.low.insert(v, low_v.min(index_w));
            }
        }
        if s.low.get(v) == s.index.get(v) {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
