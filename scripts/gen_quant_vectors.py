#!/usr/bin/env python3
"""Writes the quantization test vectors in tests/data/quants/ from gguf-py's reference
implementation (`gguf.quants`, PyPI package `gguf`, plus numpy).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install gguf numpy
    /tmp/venv/bin/python scripts/gen_quant_vectors.py

Two kinds of file, both little-endian:
  deq_<TYPE>.bin  random blocks and gguf.quants.dequantize() of them
  q_<TYPE>.bin    random float32 input and gguf.quants.quantize() of it
Layout: magic b"TQV1" | u32 kind (0 = dequantize, 1 = quantize) | u32 ggml type |
        u32 n_elements | u32 n_bytes | then for kind 0: n_bytes block bytes, n_elements f32;
        for kind 1: n_elements f32 input, n_bytes quantized bytes.
The generator is seeded, so re-running it reproduces the same files.
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "quants")

# Byte offsets of the fp16 scale fields inside each block: random bytes there could be
# NaN/Inf or huge, so they are overwritten with finite values of sane magnitude.
FP16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def write(path, kind, qtype, n, payload_a, payload_b, n_bytes):
    with open(path, "wb") as f:
        f.write(b"TQV1" + struct.pack("<4I", kind, int(qtype), n, n_bytes))
        f.write(payload_a.tobytes())
        f.write(payload_b.tobytes())


def random_blocks(rng, qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in FP16_FIELDS[qtype]:
        mag = np.exp(rng.uniform(np.log(1e-4), np.log(4.0), size=n_blocks))
        sign = rng.choice([-1.0, 1.0], size=n_blocks)
        blocks[:, off:off + 2] = (sign * mag).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks


def gen_dequant(rng):
    for qtype in FP16_FIELDS:
        block_size, _ = GGML_QUANT_SIZES[qtype]
        n_blocks = 8 if block_size == 256 else 32
        blocks = random_blocks(rng, qtype, n_blocks)
        y = quants.dequantize(blocks.reshape(-1), qtype).astype(np.float32).reshape(-1)
        assert np.all(np.isfinite(y))
        write(os.path.join(OUT, f"deq_{qtype.name}.bin"), 0, qtype, y.size, blocks, y, blocks.size)

    # F16: every finite bit pattern class (zeros, subnormals, normals), no Inf/NaN.
    h = rng.integers(0, 1 << 16, size=2048, dtype=np.uint16)
    h = np.where((h & 0x7C00) == 0x7C00, h & 0x83FF, h).astype(np.uint16)  # Inf/NaN -> subnormal
    y = quants.dequantize(h.view(np.uint8), T.F16).astype(np.float32).reshape(-1)
    write(os.path.join(OUT, "deq_F16.bin"), 0, T.F16, y.size, h, y, h.nbytes)

    b = rng.integers(0, 1 << 16, size=2048, dtype=np.uint16)
    b = np.where((b & 0x7F80) == 0x7F80, b & 0x807F, b).astype(np.uint16)
    y = quants.dequantize(b.view(np.uint8), T.BF16).astype(np.float32).reshape(-1)
    write(os.path.join(OUT, "deq_BF16.bin"), 0, T.BF16, y.size, b, y, b.nbytes)


def quant_input(rng, n):
    """n float32 values in 32-element blocks of varied scale, plus awkward blocks."""
    x = rng.standard_normal(n).astype(np.float32)
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(30.0), size=n // 32)).astype(np.float32)
    x = (x.reshape(-1, 32) * scales[:, None]).reshape(-1)
    b = x.reshape(-1, 32)
    b[0] = 0.0                                 # all zero: d = 0
    b[1] = 0.0; b[1, 7] = -2.5                 # single value
    b[2] = 1.25                                # constant block (Q4_1/Q5_1: d = 0)
    b[3, 5] = 3.0; b[3, 9] = -3.0              # tie for the largest magnitude: first wins
    b[3, np.abs(b[3]) > 3.0] = 0.5
    b[4] = np.arange(32, dtype=np.float32) - 16.0  # exact grid values
    b[5] = rng.uniform(-1e-6, 1e-6, size=32)   # tiny: fp16 subnormal scales
    b[6] = rng.uniform(5e3, 6e4, size=32) * rng.choice([-1, 1], size=32)  # large
    return b.reshape(-1).astype(np.float32)


def gen_quant(rng):
    n = 1024
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        x = quant_input(rng, n)
        q = quants.quantize(x.reshape(1, -1), qtype).reshape(-1)
        write(os.path.join(OUT, f"q_{qtype.name}.bin"), 1, qtype, n, x, q, q.size)

    # F16 / BF16: normal range, subnormals, values past the fp16 range, and exact ties.
    x = quant_input(rng, n)
    ties = np.array([1 + 2**-11, 1 + 3 * 2**-11, -(2 + 2**-10), 2**-25, 3 * 2**-25, 65520.0,
                     65519.0, 2**-24 * 1.5, -(2**-24 * 2.5), 0.0, -0.0, 1e9, -1e-30],
                    dtype=np.float32)
    x[-ties.size:] = ties
    with np.errstate(over="ignore"):
        q = quants.quantize(x, T.F16).view(np.uint8).reshape(-1)
    write(os.path.join(OUT, "q_F16.bin"), 1, T.F16, n, x, q, q.size)

    x = quant_input(rng, n)
    bf_ties = np.array([1 + 2**-8, 1 + 3 * 2**-8, np.nan, np.inf, -np.inf], dtype=np.float32)
    x[-bf_ties.size:] = bf_ties
    q = quants.quantize(x.reshape(1, -1), T.BF16).view(np.uint8).reshape(-1)
    write(os.path.join(OUT, "q_BF16.bin"), 1, T.BF16, n, x, q, q.size)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    gen_dequant(rng)
    gen_quant(rng)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes to {os.path.normpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
