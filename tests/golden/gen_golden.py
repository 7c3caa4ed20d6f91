#!/usr/bin/env python3
"""Writes qc's golden conversion vectors: float32 -> low-precision float, as ml_dtypes (and numpy
for float16) convert them, round to nearest even.

Run from anywhere:  python3 tests/golden/gen_golden.py
Needs: numpy, ml_dtypes (the versions used are written into every file's header).

One file per format, named after qc's format name. Each data line is
    <float32 input bits, 8 hex digits> <output encoding, 2 or 4 hex digits>
Lines starting with '#' are comments. 16-bit formats are gzip-compressed (`.txt.gz`, written
with mtime 0 so that regenerating gives identical bytes); the others are plain text.

Inputs, per format: every encoding's value, every midpoint between neighbouring values
(and the midpoint just above the largest value, where overflow starts), the float32 values
1 and 2 ulps either side of each of those, seeded random float32s (uniform bit patterns and
log-uniform magnitudes around the format's range), and the special inputs: signed zeros,
infinities, NaNs, float32 subnormals, the smallest normal and float32's largest value.
"""

import gzip
import os
import platform
import sys

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240611
RANDOM_BITS = 2000  # uniform float32 bit patterns per format
RANDOM_RANGE = 2000  # log-uniform magnitudes in and around the format's range

# qc name -> (dtype, number of encoding bits, where the dtype comes from)
FORMATS = [
    ("bf16", ml_dtypes.bfloat16, 16, "ml_dtypes.bfloat16"),
    ("fp16", np.float16, 16, "numpy.float16"),
    ("e4m3", ml_dtypes.float8_e4m3fn, 8, "ml_dtypes.float8_e4m3fn"),
    ("e5m2", ml_dtypes.float8_e5m2, 8, "ml_dtypes.float8_e5m2"),
    ("e4m3_ieee", ml_dtypes.float8_e4m3, 8, "ml_dtypes.float8_e4m3"),
    ("e3m4", ml_dtypes.float8_e3m4, 8, "ml_dtypes.float8_e3m4"),
    ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz, 8, "ml_dtypes.float8_e4m3fnuz"),
    ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz, 8, "ml_dtypes.float8_e5m2fnuz"),
    ("e4m3b11fnuz", ml_dtypes.float8_e4m3b11fnuz, 8, "ml_dtypes.float8_e4m3b11fnuz"),
    ("e8m0", ml_dtypes.float8_e8m0fnu, 8, "ml_dtypes.float8_e8m0fnu"),
    ("fp6_e2m3", ml_dtypes.float6_e2m3fn, 6, "ml_dtypes.float6_e2m3fn"),
    ("fp6_e3m2", ml_dtypes.float6_e3m2fn, 6, "ml_dtypes.float6_e3m2fn"),
    ("fp4_e2m1", ml_dtypes.float4_e2m1fn, 4, "ml_dtypes.float4_e2m1fn"),
]

F32_SPECIALS = [
    0x00000000, 0x80000000,  # +0, -0
    0x7F800000, 0xFF800000,  # +inf, -inf
    0x7FC00000, 0xFFC00000, 0x7FC00001, 0x7FFFFFFF, 0xFFFFFFFF,  # quiet NaNs, both signs, payloads
    0x7F800001, 0xFF800001,  # signalling NaNs
    0x00000001, 0x00000002, 0x00400000, 0x007FFFFF,  # float32 subnormals
    0x80000001, 0x80400000, 0x807FFFFF,
    0x00800000, 0x80800000,  # smallest normal
    0x7F7FFFFF, 0xFF7FFFFF,  # float32 max
]


def f32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def ordered(bits):
    """float32 bits -> integers in the order of the values (-0 just below +0)."""
    bits = bits.astype(np.int64)
    return np.where(bits & 0x80000000, -(bits & 0x7FFFFFFF) - 1, bits)


def from_ordered(keys):
    keys = keys.astype(np.int64)
    return np.where(keys < 0, (-(keys + 1)) | 0x80000000, keys).astype(np.uint32)


def with_neighbours(bits):
    """The float32s 0, ±1 and ±2 ulps away, without stepping past ±inf into NaN."""
    keys = ordered(bits)
    out = [from_ordered(keys + d) for d in (-2, -1, 0, 1, 2)]
    out = np.concatenate(out)
    return out[(out & 0x7FFFFFFF) <= 0x7F800000]


def format_values(dtype, nbits):
    store = np.uint16 if nbits == 16 else np.uint8
    patterns = np.arange(1 << nbits, dtype=np.uint32).astype(store)
    with np.errstate(all="ignore"):
        values = patterns.view(dtype).astype(np.float64)
    return values[np.isfinite(values)]


def inputs_for(dtype, nbits, rng):
    values = np.unique(format_values(dtype, nbits))  # sorted; -0 and +0 merge
    mids = (values[:-1] + values[1:]) / 2
    top = values[-1]
    below_top = values[-2]
    # The value one spacing above the largest, and the midpoint to it: where overflow starts.
    # For the top binade of every format here the spacing is max - (the value below it).
    beyond = np.array([top + (top - below_top), top + (top - below_top) / 2])
    beyond = np.concatenate([beyond, -beyond]) if values[0] < 0 else beyond
    centres = np.concatenate([values, mids, beyond])
    with np.errstate(over="ignore"):
        centres32 = centres.astype(np.float32)
    # Every centre is a float32 except a `beyond` point past float32's range (bf16, e8m0).
    exact = centres32.astype(np.float64) == centres
    assert np.all(exact | np.isinf(centres32)), "a centre is not a float32"
    centres32 = centres32[exact]
    parts = [with_neighbours(f32_bits(centres32))]

    random_bits = rng.integers(0, 1 << 32, size=RANDOM_BITS, dtype=np.uint64).astype(np.uint32)
    parts.append(random_bits[(random_bits & 0x7F800000) != 0x7F800000])
    positive = values[values > 0]
    lo, hi = np.log2(positive[0]) - 4, np.log2(positive[-1]) + 2
    magnitudes = np.exp2(rng.uniform(lo, hi, size=RANDOM_RANGE))
    signs = rng.choice([-1.0, 1.0], size=RANDOM_RANGE)
    with np.errstate(over="ignore"):  # the range of bf16 reaches past float32 max
        parts.append(f32_bits((signs * magnitudes).astype(np.float32)))
    parts.append(np.array(F32_SPECIALS, dtype=np.uint32))
    return np.unique(np.concatenate(parts).astype(np.uint32))


def main():
    rng = np.random.default_rng(SEED)
    versions = (
        f"ml_dtypes {ml_dtypes.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )
    for name, dtype, nbits, source in FORMATS:
        inputs = inputs_for(dtype, nbits, rng)
        store = np.uint16 if nbits == 16 else np.uint8
        with np.errstate(all="ignore"):
            outputs = inputs.view(np.float32).astype(dtype).view(store)
        digits = 4 if nbits == 16 else 2
        header = [
            f"# qc golden vectors for `{name}`: float32 -> {source}, round to nearest even",
            f"# generated by tests/golden/gen_golden.py (seed {SEED}) with {versions}",
            f"# {len(inputs)} lines: <float32 input bits> <output encoding>, hex",
        ]
        body = [f"{i:08x} {o:0{digits}x}" for i, o in zip(inputs.tolist(), outputs.tolist())]
        text = ("\n".join(header + body) + "\n").encode()
        if nbits == 16:
            path = os.path.join(HERE, f"{name}.txt.gz")
            with open(path, "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                    gz.write(text)
        else:
            path = os.path.join(HERE, f"{name}.txt")
            with open(path, "wb") as f:
                f.write(text)
        print(f"{name:12} {len(inputs):7} vectors -> {os.path.relpath(path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
