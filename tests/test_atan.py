"""The arctangent the code generator prints for atan2 (refloss/_derive/atan.py, issue 16): argument
reduction and a polynomial, no libm call, so that CIoU's and alpha-IoU's loops vectorise.  Checked here
as printed: against the 50-digit oracle (float64, random pairs over 20 decades), against libm's
float64 atan2 on float32 ratios (every 16th float32 in [0, 1]; all of them with REFLOSS_EXHAUSTIVE=1),
and at the signed zeros, where it must be C's atan2."""
from __future__ import annotations

import math
import os

import numba
import numpy as np
import pytest
import sympy as sp
from mpmath import mp

from refloss._derive import atan
from refloss._derive.codegen import KernelPrinter
from refloss._derive.functions import AtanRatio
from refloss.oracle.rounding import ulp_error

BAR = 2.5  # ULP: what the reduction's roundings allow (refloss/_derive/atan.py); libm's atan2 is within 1


def _compiled(precision):
    """The printed atan2(w, h) as a Numba function, and its loop over arrays."""
    w, h = sp.symbols("w h", real=True)
    printer = KernelPrinter(precision, width=100)
    code = printer.doprint(AtanRatio(w, h, 0))
    body = "".join(f"    {s}\n" for s in printer.take_statements())
    ns = {"math": math, "_f32": np.float32}
    exec(f"def atan2(w, h):\n{body}    return {code}\n", ns)
    scalar = numba.njit(ns["atan2"])

    @numba.njit
    def many(ws, hs, out):
        for i in range(ws.size):
            out[i] = scalar(ws[i], hs[i])

    return scalar, many


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_polynomial_error_is_below_its_bound(precision):
    _, worst = atan.polynomial(precision)
    assert worst <= atan.BOUND[precision]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_signed_zeros_and_axes_as_libm(dtype):
    scalar, _ = _compiled("f64" if dtype is np.float64 else "f32")
    """On the axes (w or h a zero of either sign) the result is 0, pi/2 or pi with the signs of C's atan2,
    correctly rounded; elsewhere within the bar (and exact at |w| = |h|: pi/4 and 3 pi/4)."""
    for w in (0.0, -0.0, 1.0, -1.0, 3.5, -2.0**-20):
        for h in (0.0, -0.0, 1.0, -1.0, 2.0**30, -7.25):
            got = scalar(dtype(w), dtype(h))
            want = math.atan2(w, h)
            if w == 0 or h == 0 or abs(w) == abs(h):
                assert got == dtype(want) and math.copysign(1, got) == math.copysign(1, want), (w, h, got, want)
            else:
                assert ulp_error(got, want, dtype) <= BAR, (w, h, got, want)


def test_float64_against_the_oracle():
    _, many = _compiled("f64")
    rng = np.random.default_rng(16)
    n = 20000
    w = rng.standard_normal(n) * 10.0 ** rng.uniform(-10, 10, n)
    h = rng.standard_normal(n) * 10.0 ** rng.uniform(-10, 10, n)
    # equal magnitudes, the reduction's boundary q = 1/2 and q near 0 and 1
    w[:6], h[:6] = [1.0, 0.5, 0.5000000000000001, 1e-300, 3.0, 1.0], [1.0, 1.0, 1.0, 1.0, 2.9999999999999996, -1.0]
    out = np.empty(n)
    many(w, h, out)
    worst = 0.0
    with mp.workdps(50):
        for a, b, got in zip(w, h, out):
            worst = max(worst, ulp_error(got, mp.atan2(mp.mpf(a), mp.mpf(b)), np.float64))
    assert worst <= BAR, worst


@pytest.mark.parametrize("orient", ["q/1", "1/q", "-q/-1"])
def test_float32_ratios(orient):
    """Every 16th float32 q in [0, 1] (every one with REFLOSS_EXHAUSTIVE=1), as atan2(q, 1), atan2(1, q) and
    atan2(-q, -1), against libm's float64 atan2 (within 1 float64 ULP: 2^-29 of a float32 ULP)."""
    _, many = _compiled("f32")
    step = 1 if os.environ.get("REFLOSS_EXHAUSTIVE") else 16
    top = int(np.float32(1.0).view(np.uint32))
    worst = 0.0
    for lo in range(0, top + 1, 2**26):
        q = np.arange(lo, min(lo + 2**26, top + 1), step, dtype=np.uint32).view(np.float32)
        one = np.ones_like(q)
        w, h = {"q/1": (q, one), "1/q": (one, q), "-q/-1": (-q, -one)}[orient]
        out = np.empty_like(q)
        many(w, h, out)
        exact = np.arctan2(w.astype(np.float64), h.astype(np.float64))
        spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
        err = np.abs(out.astype(np.float64) - exact) / np.where(exact == 0, np.float64(2.0**-149), spacing)
        worst = max(worst, float(err.max()))
    assert worst <= BAR, worst


def test_no_generated_kernel_calls_libm_atan():
    """Every atan2 of the generated kernels is the printed one: libm's call would keep the loop's elements
    scalar (CIoU's float32 value and gradients at 10^6 pairs took 42 ms with it, 18 ms without)."""
    from pathlib import Path

    generated = Path(__file__).resolve().parent.parent / "refloss" / "_generated"
    calls = [f"{path.name}:{k}" for path in sorted(generated.glob("*.py"))
             for k, line in enumerate(path.read_text().splitlines(), 1) if "math.atan" in line]
    assert not calls, calls[:5]
