# Independent model of record format 3 (docs/FORMAT.md): chain hash and frame bytes of the
# four test vectors, from hashlib and a bitwise CRC32C, to check the Rust code against.
# Run: python3 docs/probes/format_vectors.py
import hashlib, struct
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
DOMAIN = b"kimberlite.chain.v3\0".ljust(64, b"\0")
def chain(offset, prev, kind, payload):
    h = DOMAIN + struct.pack('<Q', offset) + bytes([kind]) + struct.pack('<Q', len(payload)) + payload + (b'\1' + prev if prev else b'\0' * 33)
    return hashlib.sha256(h).digest()
def frame(offset, prev, kind, payload):
    n = 56 + len(payload)
    f = struct.pack('<I', n) + bytes([3, kind, 0, 1 if prev else 0]) + struct.pack('<Q', offset) + struct.pack('<I', len(payload)) + payload + (prev or b'\0' * 32)
    return f + struct.pack('<I', crc32c(f))
assert crc32c(b"123456789") == 0xE3069283
ev = b'{"event":"record_viewed","patient":"P-00017","clinician":"C-042"}'
recs = [(0, 0, b''), (1, 0, b'hello'), (2, 0, ev), (3, 1, b'')]
prev = None
for off, kind, p in recs:
    h = chain(off, prev, kind, p)
    f = frame(off, prev, kind, p)
    print("offset", off, "prev", prev.hex() if prev else "none")
    print("chain_hash =", h.hex())
    print("frame_hex  = %s %s %s" % (f[:4].hex(), ' '.join(f[i:i+1].hex() for i in range(4,8)), f[8:16].hex()))
    print("frame_hex  = %s" % f[16:20].hex() + (" " + p.hex() if p and len(p) < 10 else ""))
    if len(p) >= 10: print("frame_hex  = %s" % p.hex())
    print("frame_hex  = %s" % f[20+len(p):52+len(p)].hex())
    print("frame_hex  = %s" % f[52+len(p):].hex())
    if kind == 0: prev = h
