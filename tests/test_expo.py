"""The exponential and logarithms the code generator prints for exp, log and log1p
(refloss/_derive/expo.py, issue 16): argument reduction, a polynomial and the exponent bits, no libm
call, so that the kernels' loops vectorise.  Checked here as printed (Numba-compiled, and as plain
Python, which is how the CUDA simulator runs them): float64 against the long-double libm
(x87, 64-bit significand) over the whole range, float32 against float64 libm on every 64th float32
(all of them with REFLOSS_EXHAUSTIVE=1), and C's special values (NaN, infinities, zeros of both
signs, the overflow and underflow thresholds, subnormals)."""
from __future__ import annotations

import math
import os
import re

import numba
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from refloss._derive import expo
from refloss._derive.codegen import KernelPrinter

# ULP, measured (float64 / float32): exp 0.90 / 0.84, log 0.83 / 0.73, log1p 0.82 / 0.82, expm1 1.19 / 1.10 (its
# polynomial's rounding, times r^2, doubled where k = 1); libm's float64 exp, log, log1p: 0.51, 0.52, 0.81
BAR = {"exp": 1.0, "log": 1.0, "log1p": 1.0, "expm1": 1.25}
FUNCTIONS = {"exp": (sp.exp, np.exp), "expm1": (expm1, np.expm1), "log": (sp.log, np.log), "log1p": (log1p, np.log1p)}
NAMES = {"math": math, "_f32": np.float32, "_f64": np.float64, "_i32": np.int32, "_i64": np.int64}
LONG = np.finfo(np.longdouble).nmant >= 63  # x87 long double: a reference 11 bits beyond float64


def _printed(name, precision):
    """The printed function as plain Python, and a Numba loop over arrays."""
    return _compile(FUNCTIONS[name][0], precision)


def _compile(function, precision, deferred_libm=False):
    """``function`` (a SymPy function of one argument) as the kernels print it, as plain Python and as a
    Numba loop over arrays (also tests/test_trig.py's; ``deferred_libm``: KernelPrinter.deferred_libm)."""
    x = sp.Symbol("x", real=True)
    printer = KernelPrinter(precision, width=100)
    printer.deferred_libm = deferred_libm
    code = printer.doprint(function(x))
    statements = printer.take_statements()
    body = "".join(f"    {s}\n" for s in statements)
    ns = dict(NAMES)
    exec(f"def f(x):\n{body}    return {code}\n", ns)
    # the loop with the statements in its body, as the generated CPU drivers write it (a call to a function
    # this long is not inlined by LLVM, and a call keeps the loop scalar)
    loop = "".join(f"        {s}\n" for s in statements)
    exec(f"def many(xs, out):\n    for i in range(xs.size):\n        x = xs[i]\n{loop}        out[i] = {code}\n", ns)
    return ns["f"], numba.njit(error_model="numpy")(ns["many"])


def _ulp(got, want, dtype):
    """|got - want| in units of the last place of want rounded to dtype (the smallest subnormal's below)."""
    w = np.asarray(want, np.longdouble)
    unit = np.spacing(np.abs(w.astype(dtype))).astype(np.longdouble)
    unit = np.where(unit == 0, np.finfo(dtype).smallest_subnormal, unit)
    return (np.abs(np.asarray(got, np.longdouble) - w) / unit).astype(float)


def _domain(name, n, rng):
    """float64 points over the function's whole range and where its reductions switch."""
    if name == "exp":
        parts = [rng.uniform(-745.2, 709.78, n), rng.uniform(-1, 1, n), rng.uniform(-0.36, 0.36, n) + np.log(2) / 2]
    elif name == "expm1":  # k = 0, the |k| <= 56 form and beyond, tiny x
        parts = [rng.uniform(-745.2, 709.78, n), rng.uniform(-40, 40, n), rng.uniform(-0.36, 0.36, n) + np.log(2) / 2,
                 rng.uniform(-0.36, 0.36, n) - np.log(2) / 2, rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-320, 0, n)]
    elif name == "log":
        parts = [10.0 ** rng.uniform(-323, 308, n), 1 + rng.uniform(-0.3, 0.5, n), np.sqrt(2) * (1 + rng.uniform(-1e-6, 1e-6, n))]
    else:
        parts = [10.0 ** rng.uniform(-320, 308, n), -(10.0 ** rng.uniform(-320, -1e-9, n)), rng.uniform(-0.3, 0.42, n),
                 np.sqrt(2) - 1 + rng.uniform(-1e-6, 1e-6, n), np.sqrt(0.5) - 1 + rng.uniform(-1e-6, 1e-6, n)]
    return np.concatenate(parts)


@pytest.mark.parametrize("name", ["exp", "log"])
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_polynomial_error_is_below_its_bound(name, precision):
    _, worst = expo.polynomial(name, precision)
    assert worst <= expo.BOUND[precision]


def test_ln2_split_is_exact_for_every_k():
    for precision, (kmax, bits) in {"f64": (1078, 53), "f32": (151, 24)}.items():
        hi, _ = expo.split_ln2(precision)
        mant = int(hi * 2 ** (expo.LN2_HI_BITS[precision] + 1))
        assert mant * 2 ** -(expo.LN2_HI_BITS[precision] + 1) == hi
        assert (mant * kmax).bit_length() <= bits, precision


@pytest.mark.skipif(not LONG, reason="needs an x87 long double as the float64 reference")
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float64_against_long_double(name):
    _, many = _printed(name, "f64")
    x = _domain(name, 200_000, np.random.default_rng(16))
    out = np.empty_like(x)
    many(x, out)
    err = _ulp(out, FUNCTIONS[name][1](x.astype(np.longdouble)), np.float64)
    assert err.max() <= BAR[name], (name, err.max(), x[err.argmax()])


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float32_against_float64_libm(name):
    """Every 64th float32 pattern of either sign (every one with REFLOSS_EXHAUSTIVE=1), against libm's float64
    result (correctly rounded to float32 but within a hair of a tie: far tighter than the bar)."""
    _, many = _printed(name, "f32")
    step = 1 if os.environ.get("REFLOSS_EXHAUSTIVE") == "1" else 64
    worst = 0.0
    for start in range(0, 1 << 32, 1 << 28):
        bits = np.arange(start, start + (1 << 28), step, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        x = x[np.isfinite(x)]
        out = np.empty_like(x)
        many(x, out)
        with np.errstate(all="ignore"):
            want = FUNCTIONS[name][1](x.astype(np.float64))
        finite = np.isfinite(want) & (np.abs(want) <= np.finfo(np.float32).max)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(want), err_msg=name)
        err = _ulp(out[finite], want[finite], np.float32)
        if err.size:
            worst = max(worst, err.max())
        big = ~finite & ~np.isnan(want)  # beyond float32's range: the same infinity
        np.testing.assert_array_equal(out[big], want[big].astype(np.float32), err_msg=name)
    assert worst <= BAR[name], (name, worst)


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, -2.0, 2.0, 0.5, 5e-324, 1e-310, 2.2250738585072014e-308,
           709.78, 709.79, -745.1, -745.2, -708.4, -1e-20, 1e-20, 88.72, 88.73, -103.9, -104.0, -87.4, 1.4e-45,
           1.2e-38, 3.4e38, 1.7e308]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values_as_libm_and_plain_python_as_numba(name, dtype):
    python, many = _printed(name, "f64" if dtype is np.float64 else "f32")
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL, dtype)
        want = FUNCTIONS[name][1](x.astype(np.float64)).astype(dtype)
        out = np.empty_like(x)
        many(x, out)
        plain = np.array([python(v) for v in x], dtype)
    np.testing.assert_array_equal(plain, out)  # the CUDA simulator runs the kernels as Python
    for a, got, ref in zip(x, out, want):
        if np.isnan(ref) or np.isinf(ref) or ref == 0:
            assert np.array_equal(got, ref, equal_nan=True), (name, a, got, ref)
            assert np.isnan(ref) or math.copysign(1, got) == math.copysign(1, ref), (name, a, got, ref)
        else:
            assert _ulp(got, ref, dtype) <= 1, (name, a, got, ref)


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_the_loop_has_no_libm_call_and_is_vectorised(precision):
    """The point of the forms: no call in the loop, so LLVM vectorises it (packed arithmetic on whole
    registers, 'ps' or 'pd')."""
    dtype = np.float64 if precision == "f64" else np.float32
    for name in FUNCTIONS:
        _, many = _printed(name, precision)
        x = np.ones(8, dtype)
        many(x, np.empty_like(x))
        asm = many.inspect_asm(many.signatures[0]).splitlines()
        calls = [ln for ln in asm if ln.split()[:1] == ["call"] or "callq" in ln]
        assert not [c for c in calls if re.search(r"exp|log", c)], (name, calls)
        packed = "pd" if precision == "f64" else "ps"
        assert any(re.search(rf"\bv?mul{packed}\b", ln) for ln in asm), (name, precision)
