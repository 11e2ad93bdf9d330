"""A server's synced batch writes two files (the stream's segment, 260 KB, and the access
log's, one record): the time of their two fdatasyncs in turn, in either order, at once (the
second on a waiting helper thread), after starting the small one's writeback, and of the
large file's alone. Used in docs/PERFORMANCE.md (server_batch).
Run: python3 docs/probes/two_fdatasyncs.py [DIR] [ROUNDS]"""
import ctypes, os, queue, statistics, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)
SYNC_FILE_RANGE_WRITE = 2
d = sys.argv[1] if len(sys.argv) > 1 else '/tmp'
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
paths = [os.path.join(d, 'two_fdatasyncs_%s' % n) for n in 'ab']
a, b = (os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) for p in paths)
big, small = os.urandom(260_000), os.urandom(200)
at = [0, 0]
def write():
    os.pwrite(a, big, at[0]); at[0] += len(big)
    os.pwrite(b, small, at[1]); at[1] += len(small)
jobs, done = queue.Queue(), queue.Queue()
def helper():
    while (fd := jobs.get()) is not None:
        os.fdatasync(fd); done.put(1)
thread = threading.Thread(target=helper); thread.start()
def in_turn(): os.fdatasync(a); os.fdatasync(b)
def small_first(): os.fdatasync(b); os.fdatasync(a)
def at_once(): jobs.put(b); os.fdatasync(a); done.get()
def writeback_first():
    libc.sync_file_range(b, ctypes.c_int64(0), ctypes.c_int64(0), SYNC_FILE_RANGE_WRITE)
    os.fdatasync(a); os.fdatasync(b)
def large_alone(): os.fdatasync(a)
ways = [in_turn, small_first, at_once, writeback_first, large_alone]
times = {way.__name__: [] for way in ways}
for _ in range(rounds):
    for way in ways:
        write(); t = time.perf_counter(); way(); times[way.__name__].append(time.perf_counter() - t)
jobs.put(None); thread.join()
for name, ts in times.items():
    ts.sort()
    print('%-16s median %.0f us p25 %.0f p75 %.0f' % (
        name, statistics.median(ts) * 1e6, ts[len(ts) // 4] * 1e6, ts[3 * len(ts) // 4] * 1e6))
for p in paths:
    os.unlink(p)
