#!/usr/bin/env python3
"""Import cycles between the modules of a Rust crate, from its sources (no build needed).

Usage: scripts/module_cycles.py crates/<crate>/src [-v]

An edge A -> B is a `use` (or an inline `crate::`/`super::` path) in A's non-test code that
names module B or an item of it; `pub use child::X` in a parent counts as parent -> child, so
a child that uses an item defined in its parent's file closes a cycle. `#[cfg(test)]` modules
and `*_tests.rs` files are left out. Prints every cycle (a strongly connected component) and
exits 1 if there is one. `-v` prints every edge.

A stand-in for `cargo modules dependencies --acyclic` (cargo-modules), which resolves the
same `use` edges through rust-analyzer.
"""
import os, re, sys
root = sys.argv[1]
mods = {}  # module path tuple -> file
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs') or f.endswith('_tests.rs'): continue
        p = os.path.relpath(os.path.join(dp, f), root)[:-3].split(os.sep)
        if p[-1] in ('mod', 'lib', 'main'): p = p[:-1]
        mods[tuple(p)] = os.path.join(dp, f)
def strip_tests(src):
    out, i = [], 0
    lines = src.split('\n'); skip = False; depth = 0; pending = False
    for ln in lines:
        if skip:
            depth += ln.count('{') - ln.count('}')
            if depth <= 0: skip = False
            continue
        if pending:
            pending = False
            if re.match(r'\s*(pub(\(crate\))? )?mod \w+\s*\{', ln):
                skip = True; depth = ln.count('{') - ln.count('}'); continue
            if re.match(r'\s*mod \w+;', ln): continue
        if re.match(r'\s*#\[cfg\(test\)\]', ln): pending = True; continue
        if ln.strip().startswith('//'): continue
        out.append(ln)
    return '\n'.join(out)
def resolve(cur, path):
    # path like ['crate','disk','stream','X'] or ['super','walk','Y']
    if path[0] == 'crate': base = (); rest = path[1:]
    elif path[0] == 'super':
        base = cur
        while path and path[0] == 'super':
            base = base[:-1]; path = path[1:]
        rest = path
    elif path[0] == 'self': base = cur; rest = path[1:]
    else: return None
    m = base
    for seg in rest:
        if m + (seg,) in mods: m = m + (seg,)
        else: break
    return m
edges = {}
for m, f in mods.items():
    src = strip_tests(open(f).read())
    uses = set()
    for stmt in re.findall(r'\buse\s+([^;]+);', src):
        stmt = re.sub(r'\s+', '', stmt)
        # expand one level of braces
        mm = re.match(r'^((?:\w+::)*)\{(.*)\}$', stmt)
        items = [mm.group(1) + x for x in re.split(r',(?![^{]*\})', mm.group(2))] if mm else [stmt]
        for it in items:
            it = it.split('{')[0]
            uses.add(tuple(x for x in it.split('::') if x))
    for p in re.findall(r'\b((?:crate|super)(?:::\w+)+)', src):
        uses.add(tuple(p.split('::')))
    for u in uses:
        if not u: continue
        if u[0] not in ('crate', 'super', 'self'):
            if m + (u[0],) in mods: u = ('self',) + u
            else: continue
        t = resolve(m, list(u))
        if t is None or t == m: continue
        # ignore a module using its own descendant via self:: ? keep all
        edges.setdefault(m, set()).add(t)
# Tarjan SCC
idx = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in mods:
    if v not in idx: sc(v)
name = lambda m: '::'.join(m) or 'crate'
if '-v' in sys.argv:
    for m in sorted(edges): print(name(m), '->', ', '.join(sorted(name(t) for t in edges[m])))
for comp in sccs:
    print('CYCLE:', ', '.join(sorted(name(m) for m in comp)))
    for m in comp:
        print('   ', name(m), '->', ', '.join(sorted(name(t) for t in edges.get(m, ()) if t in comp)))
print(len(sccs), 'cycle(s)')
sys.exit(1 if sccs else 0)
