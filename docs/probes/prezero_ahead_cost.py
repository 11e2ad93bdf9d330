"""Can pre-zeroed segments make an immutable log's synced appends cheaper? write + fdatasync
of 312 KB batches (1,000 x 256 B events as frames) to
  grow:         a growing file (what Kimberlite and the append_fsync baseline do);
  zeroed-free:  a file zero-filled and synced beforehand, untimed (what a log that recycles its
                files, like okaywal, gets at steady state);
  zeroed-ahead: a file zero-filled WINDOW bytes ahead of the writes and synced, timed (what an
                immutable log would pay: it never recycles, so every byte is zero-filled once);
  sfr:          a growing file, the batch written in 64 KiB chunks, each followed by
                sync_file_range(SYNC_FILE_RANGE_WRITE), then fdatasync.
Prints per-batch medians (and p10/p90) in microseconds. Used in docs/PERFORMANCE.md."""
import ctypes, os, time

N = 300
DATA = b"y" * 312000
WINDOW = 1 << 20
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2


def run(mode):
    path = "/tmp/prezero_probe_%s" % mode
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    if mode == "zeroed-free":
        os.write(fd, b"\0" * (N * len(DATA)))
        os.fsync(fd)
    zeroed = 0
    times = []
    for i in range(N):
        start = time.perf_counter()
        position = i * len(DATA)
        if mode == "zeroed-ahead":
            while zeroed < position + len(DATA):
                os.pwrite(fd, b"\0" * WINDOW, zeroed)
                zeroed += WINDOW
                os.fdatasync(fd)
        if mode == "sfr":
            for at in range(0, len(DATA), 65536):
                chunk = DATA[at:at + 65536]
                os.pwrite(fd, chunk, position + at)
                libc.sync_file_range(fd, position + at, len(chunk), SYNC_FILE_RANGE_WRITE)
        else:
            os.pwrite(fd, DATA, position)
        os.fdatasync(fd)
        times.append(time.perf_counter() - start)
    os.close(fd)
    os.unlink(path)
    times.sort()
    return times[N // 2] * 1e6, times[N // 10] * 1e6, times[9 * N // 10] * 1e6, sum(times) / N * 1e6


for round_ in range(2):
    for mode in ["grow", "zeroed-free", "zeroed-ahead", "sfr"]:
        print("round %d %-12s median %4.0f us  p10 %4.0f  p90 %4.0f  mean %4.0f" % ((round_, mode) + run(mode)))
