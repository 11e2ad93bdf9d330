#!/usr/bin/env python3
"""Prints the module dependency cycles of one crate (an equivalent of
`cargo modules dependencies --acyclic`, without installing cargo-modules).

Usage: python3 scripts/module_cycles.py crates/kimberlite/src [-v]

Module A uses module B when A's file, with comments and #[cfg(test)] items stripped, names
crate::B (the deepest module of a path), super::B, an item lib.rs re-exports from B, or (for a
parent) `B::` of one of its child modules. Test modules (`*tests`, `testing`) are left out:
they may use anything. `-v` prints every module's uses. Exits 1 when there is a cycle.
"""
import os, re, sys
src = sys.argv[1]
def modname(path):
    rel = os.path.relpath(path, src)[:-3]
    if rel in ('lib', 'main'): return 'crate'
    if rel.endswith('/mod'): rel = rel[:-4]
    return rel.replace('/', '::')
def strip(text):
    # drop #[cfg(test)] items (a mod block or a `mod x;` line) - crude brace matching
    out = []; i = 0
    while True:
        j = text.find('#[cfg(test)]', i)
        if j < 0: out.append(text[i:]); break
        out.append(text[i:j])
        k = j + len('#[cfg(test)]')
        # skip attributes/whitespace
        m = re.compile(r'\s*(#\[[^\]]*\]\s*)*').match(text, k); k = m.end()
        semi = text.find(';', k); brace = text.find('{', k)
        if brace < 0 or (semi >= 0 and semi < brace): i = semi + 1; continue
        depth = 0; p = brace
        while p < len(text):
            if text[p] == '{': depth += 1
            elif text[p] == '}':
                depth -= 1
                if depth == 0: break
            p += 1
        i = p + 1
    text = ''.join(out)
    return re.sub(r'//[^\n]*', '', text)
files = []
for root, _, names in os.walk(src):
    for n in names:
        if n.endswith('.rs'): files.append(os.path.join(root, n))
mods = {modname(f): f for f in files}
lib = strip(open(os.path.join(src, 'lib.rs') if os.path.exists(os.path.join(src,'lib.rs')) else os.path.join(src,'main.rs')).read())
reexp = {}
for m in re.finditer(r'pub use (\w+)::(\{[^}]*\}|\w+)', lib):
    mod = m.group(1)
    for item in re.findall(r'\w+', m.group(2)):
        reexp[item] = mod
graph = {}
for name, f in mods.items():
    if name == 'crate' or name.endswith('tests') or name == 'testing': continue
    text = strip(open(f).read())
    deps = set()
    for m in re.finditer(r'\bcrate::((?:\w+::)*\w+)', text):
        parts = m.group(1).split('::')
        best = None
        for k in range(len(parts), 0, -1):
            cand = '::'.join(parts[:k])
            if cand in mods: best = cand; break
        if best: deps.add(best)
        elif parts[0] in reexp: deps.add(reexp[parts[0]])
    parent = name.rsplit('::', 1)[0] if '::' in name else 'crate'
    for m in re.finditer(r'\bsuper::\{', text):
        if parent != 'crate': deps.add(parent)
    prefix = '' if name == 'crate' else name + '::'
    for child in mods:
        if child.startswith(prefix) and '::' not in child[len(prefix):] and child != name:
            short = child[len(prefix):]
            if re.search(r'(?<![:\w])' + short + r'::', text): deps.add(child)
    for m in re.finditer(r'\bsuper::(\w+)', text):
        t = m.group(1)
        full = t if parent == 'crate' else parent + '::' + t
        if full in mods: deps.add(full)
        elif parent != 'crate': deps.add(parent)
    # a use block `use crate::{a::X, b::Y}`
    for m in re.finditer(r'\bcrate::\{([^}]*)\}', text):
        for t in re.findall(r'(?:^|[,{\s])(\w+)::', m.group(1)):
            if t in mods: deps.add(t)
    deps.discard(name)
    graph[name] = deps
# Tarjan
index = {}; low = {}; stack = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
    for w in graph.get(v, ()):
        if w not in graph: continue
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(graph):
    if v not in index: visit(v)
if '-v' in sys.argv:
    for v in sorted(graph): print(v, '->', ', '.join(sorted(graph[v])))
print('cycles:', sccs if sccs else 'none')
sys.exit(1 if sccs else 0)
