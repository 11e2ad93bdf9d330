"""SHA-256 (hashlib, SHA-NI) and an integer loop: one process alone, then two at once.
Tells whether the machine's two vCPUs hash in parallel. Used in docs/PERFORMANCE.md."""
import hashlib, time, sys, multiprocessing as mp
def sha(_):
    d=b'x'*(1<<20); t=time.perf_counter()
    for _ in range(200): hashlib.sha256(d).digest()
    return time.perf_counter()-t
def loop(_):
    t=time.perf_counter(); x=0
    for i in range(3_000_000): x+=i*i
    return time.perf_counter()-t
for f in (sha, loop):
    one = f(0)
    with mp.Pool(2) as p: two = max(p.map(f, [0,1]))
    print(f.__name__, f"alone {one:.3f}s, two at once {two:.3f}s each -> speedup {2*one/two:.2f}x")
