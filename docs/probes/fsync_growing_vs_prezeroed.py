"""write + fdatasync of 312 KB batches: to a growing file, a posix_fallocate'd one, and one
written with zeros and synced first. Used in docs/PERFORMANCE.md (append_fsync, peers)."""
import os, time, statistics
N=200; data=b'y'*312000
def run(mode):
    path='/tmp/prealloc_%s'%mode
    fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    total=N*len(data)
    if mode=='fallocate':
        os.posix_fallocate(fd, 0, total); os.fsync(fd)
    if mode=='zeroed':
        os.write(fd, b'\0'*total); os.fsync(fd); os.lseek(fd,0,0)
    ts=[]
    for i in range(N):
        t=time.perf_counter(); os.pwrite(fd, data, i*len(data)); os.fdatasync(fd); ts.append(time.perf_counter()-t)
    os.close(fd); os.unlink(path)
    ts.sort(); return ts[N//2]*1e6, ts[N//10]*1e6, ts[9*N//10]*1e6
for rnd in range(2):
    for m in ['grow','fallocate','zeroed']:
        print(m, "median %.0f us p10 %.0f p90 %.0f" % run(m))
