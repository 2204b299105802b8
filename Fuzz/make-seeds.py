#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into Fuzz/Corpus/<target>/ (pure Python, no packages).

A few valid files per parser (several dtypes, colour types, compressions) and a few broken ones
(truncated, wrong magic, lying headers). Run from anywhere; it overwrites the seeds it writes.
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# --- safetensors ---------------------------------------------------------------------------------

def safetensors_header(tensors, metadata=None):
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        offset += len(payload)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return text, b"".join(t[3] for t in tensors)


def safetensors(tensors, metadata=None):
    text, data = safetensors_header(tensors, metadata)
    return struct.pack("<Q", len(text)) + text + data


f32 = ("w", "F32", [2, 3], struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, -7))
f16 = ("h", "F16", [4], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0xFE00))
bf16 = ("b", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC000))
i64 = ("n", "I64", [], struct.pack("<q", 42))
f64 = ("d", "F64", [1, 1], struct.pack("<d", 2.5))
u8 = ("u", "U8", [3], b"\x01\x02\x03")
empty = ("e", "F32", [0, 5], b"")
valid = [
    ("valid-f32", [f32], None),
    ("valid-mixed", [f32, f16, bf16, i64, f64], {"format": "pt", "note": "caf\u00e9 \\u"}),
    ("valid-unsupported-u8", [u8, empty], {}),
    ("valid-empty", [], None),
]
for name, tensors, metadata in valid:
    put("safetensors", name, safetensors(tensors, metadata))
    put("safetensors-header", name + ".json", safetensors_header(tensors, metadata)[0])
whole = safetensors([f32, f16])
put("safetensors", "broken-truncated", whole[:-5])
put("safetensors", "broken-length-1tb", struct.pack("<Q", 1 << 40) + whole[8:])
put("safetensors", "broken-short", b"\x10\x00\x00")
overlap = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}'
put("safetensors", "broken-overlap", struct.pack("<Q", len(overlap)) + overlap + b"\0" * 6)
huge = b'{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}'
put("safetensors", "broken-shape-overflow", struct.pack("<Q", len(huge)) + huge + b"\0" * 8)
for name, text in [
    ("broken-nesting.json", b"[" * 80 + b"]" * 80),
    ("broken-escapes.json", b'{"\\ud83d\\ude00":{"dtype":"F32","shape":[1.5],"data_offsets":[0,1e2]},"__metadata__":{"k":1}}'),
    ("broken-surrogate.json", b'{"\\ud800x":1}'),
    ("broken-numbers.json", b'{"a":{"dtype":"F16","shape":[-0,01],"data_offsets":[-1,99999999999999999999]}}'),
]:
    put("safetensors-header", name, text)


# --- IDX -----------------------------------------------------------------------------------------

def idx(dims, payload):
    return struct.pack(">I", 0x800 | len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload

images = idx([2, 3, 3], bytes(range(18)))
labels = idx([4], b"\x00\x01\x09\x03")
put("idx", "valid-images", images)
put("idx", "valid-labels", labels)
put("idx", "valid-images.gz", gzip.compress(images, mtime=0))
put("idx", "valid-labels-2-members.gz", gzip.compress(labels[:6], mtime=0) + gzip.compress(labels[6:], mtime=0))
put("idx", "valid-rank2", idx([2, 2], b"abcd"))
put("idx", "broken-truncated", images[:-4])
put("idx", "broken-claims-4gb", idx([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b"x"))
put("idx", "broken-claims-1gb.gz", gzip.compress(idx([1 << 10, 1 << 10, 1 << 10], b"\0" * 64), mtime=0))
put("idx", "broken-trailing", labels + b"\xff")
put("idx", "broken-magic", struct.pack(">I", 0x0D03) + images[4:])
put("idx", "broken-gzip.gz", gzip.compress(images, mtime=0)[:-9])


# --- PNG -----------------------------------------------------------------------------------------

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width, height, depth, colour, rows, interlace=0, extra=b""):
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))

grey = png(4, 3, 8, 0, [bytes([f]) + bytes([10 * f + x for x in range(4)]) for f in range(3)])
put("png", "valid-grey8", grey)
put("png", "valid-rgb16-paeth", png(2, 2, 16, 2, [b"\x04" + bytes(range(12)), b"\x03" + bytes(range(12, 24))]))
put("png", "valid-rgba8", png(2, 1, 8, 6, [b"\x01" + bytes([1, 2, 3, 255, 4, 5, 6, 128])]))
put("png", "valid-grey-alpha8", png(1, 2, 8, 4, [b"\x00\x10\xff", b"\x02\x20\x00"]))
palette = chunk(b"PLTE", bytes([0, 0, 0, 255, 255, 255, 128, 64, 32])) + chunk(b"tRNS", b"\x00\xff")
put("png", "valid-palette2", png(5, 2, 2, 3, [b"\x00\x1b\x80", b"\x00\xe4\x40"], extra=palette))
put("png", "valid-grey1", png(9, 1, 1, 0, [b"\x00\xaa\x80"]))
# A 3 x 3 grey image interlaced with Adam7: each non-empty pass, row by row, filter 0.
adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
rows = []
for x0, y0, dx, dy in adam7:
    w = max(0, (3 - x0 + dx - 1) // dx)
    h = max(0, (3 - y0 + dy - 1) // dy)
    if w and h:
        rows += [b"\x00" + bytes([50 * (x0 + y0) % 256] * w) for _ in range(h)]
put("png", "valid-interlaced", png(3, 3, 8, 0, rows, interlace=1))
put("png", "broken-truncated", grey[:-20])
bad_crc = bytearray(grey)
bad_crc[30] ^= 0xFF
put("png", "broken-crc", bytes(bad_crc))
put("png", "broken-huge-header", png(0x7FFFFFFF, 0x7FFFFFFF, 16, 6, [b"\x00"]))
put("png", "broken-claims-256mpx", png(1 << 14, 1 << 14, 8, 0, [b"\x00" * 64]))
put("png", "broken-filter", png(1, 1, 8, 0, [b"\x07\x00"]))
put("png", "broken-palette-missing", png(1, 1, 8, 3, [b"\x00\x05"]))


# --- NPY -----------------------------------------------------------------------------------------

def npy(descr, shape, payload, version=1, fortran=False):
    shape_text = "(%d,)" % shape[0] if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    prefix = 10 if version == 1 else 12
    header += " " * ((64 - (prefix + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin-1") + payload

put("npy", "valid-f4-images", npy("<f4", [2, 2, 2], struct.pack("<8f", *range(8))))
put("npy", "valid-u1-nchw", npy("|u1", [1, 1, 2, 3], bytes(range(6))))
put("npy", "valid-f8-nhwc-v2", npy("<f8", [1, 2, 1, 1], struct.pack("<2d", 0.5, -1), version=2))
put("npy", "valid-i8-v3", npy("<i8", [3], struct.pack("<3q", 1, -2, 3), version=3))
put("npy", "valid-scalar", npy("<f4", [], struct.pack("<f", 1)))
put("npy", "valid-empty", npy("<f4", [0, 28, 28], b""))
put("npy", "broken-truncated", npy("<f4", [2, 2, 2], struct.pack("<7f", *range(7))))
put("npy", "broken-fortran", npy("<f4", [1, 1, 1], b"\0" * 4, fortran=True))
put("npy", "broken-claims-huge", npy("<f8", [1 << 40, 1 << 20], b"\0" * 8))
put("npy", "broken-header", b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (1L,), ")
