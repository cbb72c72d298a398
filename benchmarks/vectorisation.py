"""Does LLVM vectorise refloss's generated CPU kernels? (issue 16)

    python benchmarks/vectorisation.py [--loss NAME ...] [--asm-dir DIR]

For each loss (and yolo_decode, the box decoding), compiles its value-and-gradient driver (float64 and float32) afresh and reports the
vector widths of the loops LLVM's loop vectoriser reports as vectorised ("vectorized loop
(vectorization width: 4, ...)": the kernel's loop over a block and the loop that counts bad
inputs, for a loss over fixed-width elements), and counts the floating-point arithmetic
instructions of the kernel loop's machine code (the block function a driver calls): packed
(``vaddpd``, ``vmulps``, ...: several elements an instruction) against scalar (``vaddsd``, ...:
one). Calls to ``exp``, ``log``, ``atan`` and the like stay scalar and keep a loop from vectorising
(Numba vectorises them only with Intel's SVML). ``--asm-dir`` writes each assembly listing.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

# compiled afresh into an empty cache: Numba cannot show the machine code of a kernel loaded from its cache
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="refloss-vectorisation-")

import llvmlite.binding as llvm  # noqa: E402
import numpy as np  # noqa: E402

import refloss as rl  # noqa: E402
from refloss import _yolo  # noqa: E402
from refloss._reference import REFERENCES  # noqa: E402

llvm.set_option("", "-pass-remarks=loop-vectorize")  # "vectorized loop (vectorization width: 4, ...)"

ARITH = r"v?(add|sub|mul|div|fmadd\w*|fmsub\w*|fnmadd\w*|fnmsub\w*|sqrt|max|min)"
PACKED = re.compile(rf"^\s*{ARITH}p[sd]\b", re.M)
SCALAR = re.compile(rf"^\s*{ARITH}s[sd]\b", re.M)
WIDE = re.compile(r"\b[yz]mm\d+\b")
VECTORISED = re.compile(r"vectorized loop \(vectorization width: (\d+)")


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


class _Stderr:
    """The C-level standard error (where LLVM writes its remarks) into a string, for a while."""

    def __enter__(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile(mode="w+")
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read()
        self.file.close()


def count(loss: str, precision: str):
    """(packed, scalar, ymm/zmm operands, vector widths of the loops LLVM vectorised, assembly) of
    the loss's value-and-gradient kernel loop (the block function its driver calls, or for a loss
    over rows its loop on the calling thread)."""
    fn = getattr(rl, loss)
    dtype = np.float64 if precision == "f64" else np.float32
    with _Stderr() as err:
        if loss == "yolo_decode":  # (box coding, not a loss: t, anchors, grid; both size forms in one kernel)
            fn.value_and_grad(np.zeros((2, 4), dtype), np.ones(2, dtype), np.zeros(2, dtype), variant="scaled")
        else:
            fn.value_and_grad(*_example(loss, dtype), dtype=dtype, **REFERENCES[loss].param_sets[0])
    widths = [int(w) for w in VECTORISED.findall(err.text)]
    module = _yolo._module("cpu") if loss == "yolo_decode" else fn._module("cpu")
    driver = getattr(module, f"_value_and_grad_block_{precision}", None) or getattr(module, f"_value_and_grad_rows_{precision}")
    asm = "\n".join(driver.inspect_asm(sig) for sig in driver.signatures)
    return len(PACKED.findall(asm)), len(SCALAR.findall(asm)), len(WIDE.findall(asm)), widths, asm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", nargs="*", default=None, help="loss names, space- or comma-separated (default: every loss)")
    ap.add_argument("--asm-dir", type=Path)
    args = ap.parse_args(argv)
    losses = [n for text in args.loss or () for n in text.split(",") if n]
    known = (*rl.ALL_LOSSES, "yolo_decode")
    unknown = [n for n in losses if n not in known]
    if unknown:
        ap.error(f"unknown loss(es) {unknown}; these are: {', '.join(known)}")
    losses = losses or [n for n in rl.ALL_LOSSES if getattr(rl, n).info.family != "yolo"] + ["yolo_decode"]
    print("| loss | vector widths f64 | f32 | f64 packed / scalar arithmetic | f32 packed / scalar |")
    print("|---|---|---|---|---|")
    for loss in losses:
        row = []
        for precision in ("f64", "f32"):
            packed, scalar, _, widths, asm = count(loss, precision)
            row.append((", ".join(map(str, widths)) or "none", packed, scalar))
            if args.asm_dir:
                args.asm_dir.mkdir(parents=True, exist_ok=True)
                (args.asm_dir / f"{loss}_{precision}.s").write_text(asm)
        (v64, p64, s64), (v32, p32, s32) = row
        print(f"| {loss} | {v64} | {v32} | {p64} / {s64} | {p32} / {s32} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
