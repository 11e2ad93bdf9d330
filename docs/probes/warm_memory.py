"""Writes one byte in every page of most of the free memory, twice, and times each pass.
On a fresh KVM guest whose host backs guest memory lazily, the first write to a page costs a
host fault: the first pass is many times slower than the second. Until every page has been
written once, a bench that writes a lot to the page cache pays that cost in its own CPU
(kernel `copy_folio_from_iter_atomic`, `clear_page_erms`), more on the side that writes more.
Run it once after boot, before benches. Used in docs/PERFORMANCE.md ("Running the benches").
Usage: python3 docs/probes/warm_memory.py [GiB] (default: 60% of MemAvailable)."""
import sys, time

PAGE = 4096


def available_gib():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1 << 20)
    return 1.0


gib = float(sys.argv[1]) if len(sys.argv) > 1 else 0.6 * available_gib()
size = int(gib * (1 << 30)) // PAGE * PAGE
memory = bytearray(size)
for attempt in ("first", "second"):
    started = time.perf_counter()
    for at in range(0, size, PAGE):
        memory[at] = 1
    took = time.perf_counter() - started
    print(f"{attempt} write of {gib:.1f} GiB: {took:.1f} s ({took / gib:.2f} s per GiB)")
