"""Threads that each write 16 KB to one file and fdatasync it, in a loop: how many of those
durable writes the disk completes per second with 1, 2, 4 and 8 syncs in flight at once, and
each sync's median time. A device whose flushes are slow round trips that overlap (a virtual
disk) completes more with more in flight; one that serialises them does not. The store's group
commit runs one sync at a time (docs/PERFORMANCE.md, "Machine").
Run: python3 docs/probes/overlapping_fdatasyncs.py [DIR] [SECONDS]"""
import os, statistics, sys, threading, time

d = sys.argv[1] if len(sys.argv) > 1 else '/tmp'
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
data = os.urandom(16384)

def run(in_flight):
    path = os.path.join(d, 'overlapping_fdatasyncs')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    stop = time.perf_counter() + seconds
    times = [[] for _ in range(in_flight)]
    def loop(mine):
        while time.perf_counter() < stop:
            os.write(fd, data)
            t = time.perf_counter(); os.fdatasync(fd); mine.append(time.perf_counter() - t)
    threads = [threading.Thread(target=loop, args=(mine,)) for mine in times]
    for t in threads: t.start()
    for t in threads: t.join()
    os.close(fd); os.unlink(path)
    every = [t for mine in times for t in mine]
    return len(every) / seconds, statistics.median(every) * 1e3

for _ in range(2):
    for in_flight in (1, 2, 4, 8):
        rate, median = run(in_flight)
        print('%d in flight: %5.0f durable writes/s, each sync median %.2f ms' % (in_flight, rate, median))
