"""Does LLVM vectorise refloss's generated CPU kernels? (issue 16)

    python benchmarks/vectorisation.py [--loss NAME ...] [--asm-dir DIR]

For each loss's fused drivers (``value_and_grad_f64`` and ``_f32``, the serial loop Numba
compiles into the same function as the parallel one), counts the floating-point arithmetic
instructions of the machine code Numba emits: packed (``vaddpd``, ``vmulps``, ... on xmm/ymm/zmm
registers: several elements an instruction) against scalar (``vaddsd``, ``vmulss``, ...: one).
A loop that vectorised shows mostly packed instructions; refloss's kernels, with branches on
every tie and scalar ``atan``, show mostly scalar ones (the reason float32 is not faster than
float64, docs/performance.md). ``--asm-dir`` writes each assembly listing for reading.
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

# compiled afresh into an empty cache: Numba cannot show the machine code of a kernel loaded from its cache
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="refloss-vectorisation-")

import numpy as np  # noqa: E402

import refloss as rl  # noqa: E402
from refloss._reference import REFERENCES  # noqa: E402

ARITH = r"v?(add|sub|mul|div|fmadd\w*|fmsub\w*|fnmadd\w*|fnmsub\w*|sqrt|max|min)"
PACKED = re.compile(rf"^\s*{ARITH}p[sd]\b", re.M)
SCALAR = re.compile(rf"^\s*{ARITH}s[sd]\b", re.M)
WIDE = re.compile(r"\b[yz]mm\d+\b")


def _example(loss: str, dtype):
    """Small valid inputs of the loss's family (enough to compile its drivers)."""
    info = getattr(rl, loss).info
    if info.family == "elementwise" or info.family == "classification":
        return np.array([0.3, -1.2], dtype), np.array([0.0, 1.0], dtype)
    if info.family in ("softmax", "distribution"):
        return np.zeros((2, 4), dtype), (np.full((2, 4), 0.25, dtype) if info.family == "softmax"
                                         else np.array([0.5, 1.5], dtype))
    if info.family == "rotated":
        b = np.array([[0.0, 0.0, 2.0, 1.0, 0.3]], dtype)
        return b, b + dtype(0.1)
    b = np.array([[0.0, 0.0, 2.0, 1.0]], dtype)
    return b, b + dtype(0.1)


def count(loss: str, precision: str):
    fn = getattr(rl, loss)
    dtype = np.float64 if precision == "f64" else np.float32
    fn.value_and_grad(*_example(loss, dtype), dtype=dtype, **REFERENCES[loss].param_sets[0])
    driver = getattr(fn._module("cpu"), f"value_and_grad_{precision}")
    asm = "\n".join(driver.inspect_asm(sig) for sig in driver.signatures)
    return len(PACKED.findall(asm)), len(SCALAR.findall(asm)), len(WIDE.findall(asm)), asm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", nargs="*", default=None)
    ap.add_argument("--asm-dir", type=Path)
    args = ap.parse_args(argv)
    losses = args.loss or [n for n in rl.ALL_LOSSES if getattr(rl, n).info.family != "yolo"]
    print("| loss | f64 packed / scalar arithmetic | f32 packed / scalar | ymm/zmm operands f64, f32 |")
    print("|---|---|---|---|")
    for loss in losses:
        row = []
        for precision in ("f64", "f32"):
            packed, scalar, wide, asm = count(loss, precision)
            row.append((packed, scalar, wide))
            if args.asm_dir:
                args.asm_dir.mkdir(parents=True, exist_ok=True)
                (args.asm_dir / f"{loss}_{precision}.s").write_text(asm)
        (p64, s64, w64), (p32, s32, w32) = row
        print(f"| {loss} | {p64} / {s64} | {p32} / {s32} | {w64}, {w32} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
