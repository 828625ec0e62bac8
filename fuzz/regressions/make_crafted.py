#!/usr/bin/env python3
"""Writes the crafted bounds and image regression inputs of this folder,
byte for byte, from what each one is meant to exercise (see README.md).

  python3 fuzz/regressions/make_crafted.py          # (re)write them
  python3 fuzz/regressions/make_crafted.py --check  # fail if a committed file differs
"""
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def safetensors(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + payload


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def files() -> dict:
    return {
        # Header length 2^62 over a 2-byte header.
        "bounds/header-length-lie.safetensors": struct.pack("<Q", 1 << 62) + b"{}",
        # One f32 whose data offsets [0, 4] run past a 2-byte payload.
        "bounds/offsets-past-end.safetensors": safetensors(
            b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  ', b"\0\0"
        ),
        # A shape whose element count (2^62 · 2^62) overflows 64 bits.
        "bounds/shape-overflow.safetensors": safetensors(
            b'{"x": {"dtype": "F32", "shape": [4611686018427387904, 4611686018427387904], '
            b'"data_offsets": [0, 4]}}',
            b"\0\0\0\0",
        ),
        # A JFIF header cut off inside its quantization table.
        "image/jpeg-truncated.jpg": bytes.fromhex(
            "ffd8ffe000104a46494600010100000100010000ffdb004300"
        ),
        # A valid PNG that declares 100,000 × 100,000 RGB8 pixels (30 GB
        # decoded) over 64 zero bytes of image data.
        "image/png-100000x100000-header.png": b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(bytes(64)))
        + png_chunk(b"IEND", b""),
    }


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    bad = 0
    for name, data in files().items():
        path = HERE / name
        if check:
            if path.read_bytes() != data:
                print(f"make_crafted: {name} differs from what this script writes", file=sys.stderr)
                bad += 1
        else:
            path.write_bytes(data)
    if check and not bad:
        print(f"make_crafted: {len(files())} crafted inputs match")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
