"""The pow the code generator prints for x**y with a non-integer or symbolic exponent (KernelPrinter._pow,
refloss/_derive/expo.py, issue 16): exp(y log x) with log x as a double-word pair and y log x as a pair, no libm
call, so that the loops of alpha-IoU, SIoU, Shape-IoU, Wise-IoU and Focal-EIoU vectorise.  Checked here as printed
(Numba-compiled, and as plain Python, which is how the CUDA simulator runs them): float64 against the long-double
pow (x87, 64-bit significand), float32 against float64's pow (within 2^-29 of the exact result), including
results that are subnormal, overflow or underflow, and the special values against ``math.pow``'s (bit for bit,
the sign of zero included)."""
from __future__ import annotations

import math
import re

import numba
import numpy as np
import pytest
import sympy as sp

from refloss._derive import expo
from refloss._derive.codegen import KernelPrinter
from test_expo import LONG, NAMES, _ulp  # noqa: E402  (the exp/log tests' helpers)

# ULP against the exact result, by the range of |y|: the log's third term leaves about |y| 2^-58 relative (float32
# |y| 2^-29) on top of exp's 0.9, so the error grows with |y| (10.4 ULP at y ~ 155, float64): the losses' exponents
# (alpha, theta, gamma...) are small numbers.  Measured on 10^6 random points each (x = e^u, u uniform in [-30, 30], float32
# [-8, 8]): float64 0.904 (|y| <= 4), 1.200 (y in [0.1, 10]), 1.703 (|y| <= 20); float32 0.856, 1.086, 1.642
# (NumPy's float32 power: 1.003, 0.987, 0.991; float64 libm 0.69..0.71)
BAR = {4.0: 1.0, 10.0: 1.3, 20.0: 1.8}
# the references overflow where the results do (inf, compared as such)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


def _compile(precision, deferred=False):
    """x**y as the kernels print it: plain Python f(x, y), and a Numba loop over arrays (the statements in its
    body, as the generated CPU drivers write it)."""
    x, y = sp.symbols("x y", real=True)
    printer = KernelPrinter(precision, width=100)
    printer.deferred_libm = deferred
    code = printer.doprint(sp.Pow(x, y, evaluate=False))
    statements = printer.take_statements()
    ns = dict(NAMES)
    exec("def f(x, y):\n" + "".join(f"    {s}\n" for s in statements) + f"    return {code}\n", ns)
    loop = "".join(f"        {s}\n" for s in statements)
    exec(f"def many(xs, ys, out):\n    for i in range(xs.size):\n        x = xs[i]\n        y = ys[i]\n{loop}"
         f"        out[i] = {code}\n", ns)
    return ns["f"], numba.njit(error_model="numpy")(ns["many"]), printer, statements, code


def _math_pow(x, y):
    """C's pow, as math.pow computes it, with its domain and range errors as C's results."""
    try:
        return math.pow(x, y)
    except ValueError:  # 0 to a negative power: inf (of x's sign for an odd integer y); x < 0, y not an integer
        return math.copysign(math.inf, x) if x == 0 and y == int(y) and int(y) % 2 else (math.inf if x == 0 else math.nan)
    except OverflowError:
        return math.inf if x > 0 or y == int(y) and int(y) % 2 == 0 else -math.inf


@pytest.mark.skipif(not LONG, reason="needs the x87 long double as the float64 reference")
@pytest.mark.parametrize("ymax", sorted(BAR))
def test_float64_within_bar_of_the_exact_result(ymax):
    rng = np.random.default_rng(int(ymax))
    xs = np.exp(rng.uniform(-30, 30, 200_000))
    ys = rng.uniform(-ymax, ymax, xs.size)
    # and results near the ends of the range: subnormal ones, and up to the overflow threshold
    xs = np.concatenate([xs, np.exp(rng.uniform(-745, -600, 20_000) / 3), np.exp(rng.uniform(600, 720, 20_000) / 2.5)])
    ys = np.concatenate([ys, np.full(20_000, 3.0), np.full(20_000, 2.5)])
    _, many, *_ = _compile("f64")
    got = np.empty_like(xs)
    many(xs, ys, got)
    want = np.power(xs.astype(np.longdouble), ys.astype(np.longdouble))
    finite = np.isfinite(want.astype(np.float64))
    assert np.all(got[~finite] == np.inf)
    err = _ulp(got[finite], want[finite], np.float64)
    assert err.max() <= BAR[ymax], (err.max(), xs[finite][err.argmax()], ys[finite][err.argmax()])


@pytest.mark.parametrize("ymax", sorted(BAR))
def test_float32_within_bar_of_the_exact_result(ymax):
    rng = np.random.default_rng(int(ymax) + 1)
    xs = np.exp(rng.uniform(-8, 8, 200_000)).astype(np.float32)
    xs = np.concatenate([xs, rng.uniform(1e-6, 1, 20_000).astype(np.float32), np.float32(2.0) ** -np.arange(1, 149,
                                                                                                         dtype=np.float32)])
    ys = rng.uniform(-ymax, ymax, xs.size).astype(np.float32)
    _, many, *_ = _compile("f32")
    got = np.empty_like(xs)
    many(xs, ys, got)
    want = np.power(xs.astype(np.float64), ys.astype(np.float64))  # within 2^-29 of an ulp of float32's result
    finite = np.isfinite(want.astype(np.float32))
    assert np.all(got[~finite] == np.inf)
    err = _ulp(got[finite], want[finite], np.float32)
    assert err.max() <= BAR[ymax] + 2.0**-20, (err.max(), xs[finite][err.argmax()], ys[finite][err.argmax()])


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_special_values_are_math_pows(precision):
    dt = np.float64 if precision == "f64" else np.float32
    tiny = np.finfo(dt).smallest_subnormal
    values = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.0, tiny, np.inf, -np.inf, np.nan]
    exps = [0.0, -0.0, 1.0, 2.0, 3.0, -3.0, 0.5, -0.5, 2.5, 1e6, -1e6, np.inf, -np.inf, np.nan,
            float(expo.POW_Y_LIMIT[precision]) * 2]
    xs = np.array([a for a in values for _ in exps], dt)
    ys = np.array([b for _ in values for b in exps], dt)
    f, many, *_ = _compile(precision)
    got = np.empty_like(xs)
    many(xs, ys, got)
    want = np.array([_math_pow(float(a), float(b)) for a, b in zip(xs, ys)]).astype(dt)
    # bit for bit where x or y is special (0, 1, inf, NaN, x < 0, |y| beyond the limit); within the bar elsewhere
    special = ~((xs > 0) & np.isfinite(xs) & (xs != 1)) | ~(np.abs(ys) < expo.POW_Y_LIMIT[precision]) | (ys == 0)
    assert np.array_equal(got[special], want[special], equal_nan=True), [
        (a, b, g, w) for a, b, g, w in zip(xs[special], ys[special], got[special], want[special])
        if not (g == w or g != g and w != w)]
    number = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[number]), np.signbit(want[number]))
    ordinary = ~special & (want != 0) & np.isfinite(want)
    assert _ulp(got[ordinary], want[ordinary], dt).max() <= 1.0
    # as plain Python (the CUDA simulator) too, where NumPy scalars would warn: no exception
    def raises(a, b):
        try:
            math.pow(a, b)
        except (ValueError, OverflowError):
            return True
        return False

    keep = np.array([not raises(float(a), float(b)) for a, b in zip(xs, ys)])
    with np.errstate(all="ignore"):  # (libm's fallback raises in Python where C's sets errno: as before)
        py = np.array([f(dt(a), dt(b)) for a, b in zip(xs[keep], ys[keep])], dt)
    assert np.array_equal(py, got[keep], equal_nan=True)


@pytest.mark.parametrize("deferred", [False, True])
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_beyond_exps_range_the_power_is_0_or_inf(precision, deferred):
    """|y log x| beyond exp's range (the argument clamped): the result is 0 or inf, as libm's.  The low part of
    y log x, as large as y times log's error, was added to the clamped argument: pow(1.6065, 1e10) read -inf in
    float32, pow(1.6065, -1e30) 9.3e-171 in float64, and sigmoid focal loss at gamma 1e10 a negative loss."""
    dt = np.float64 if precision == "f64" else np.float32
    limit = float(expo.POW_Y_LIMIT[precision])
    xs = np.array([1.0001, 1.3, 1.6065, 1.999, 0.5, 0.9999, 1e-30, 3.0e10], dt)
    ys = np.array([s * 10.0**k for k in (8, 10, 14, 17, 30, 100) for s in (1, -1) if 10.0**k < limit], dt)
    xs, ys = np.repeat(xs, ys.size), np.tile(ys, xs.size)
    _, many, *_ = _compile(precision, deferred)
    got = np.empty_like(xs)
    with np.errstate(all="ignore"):
        many(xs, ys, got)
    want = np.array([_math_pow(float(a), float(b)) for a, b in zip(xs, ys)]).astype(dt)
    far = np.abs(np.log(xs.astype(np.float64)) * ys.astype(np.float64)) > 800
    assert far.sum() > 20 and np.array_equal(got[far], want[far]), [
        (a, b, g, w) for a, b, g, w in zip(xs[far], ys[far], got[far], want[far]) if g != w]


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_plain_python_equals_the_compiled_loop(precision):
    dt = np.float64 if precision == "f64" else np.float32
    rng = np.random.default_rng(5)
    xs = np.exp(rng.uniform(-5, 5, 300)).astype(dt)
    ys = rng.uniform(-6, 6, 300).astype(dt)
    f, many, *_ = _compile(precision)
    got = np.empty_like(xs)
    many(xs, ys, got)
    assert np.array_equal(np.array([f(a, b) for a, b in zip(xs, ys)], dt), got)


def test_deferred_form_has_no_libm_call_and_records_its_guard():
    *_, printer, statements, code = _compile("f64", deferred=True)
    text = "\n".join(statements) + code
    assert "math.pow" not in text
    guards = printer.libm_guards()
    assert len(guards) == 1 and f"{guards[0]} = (x >= 0.0) & (x < math.inf)" in text


@pytest.mark.parametrize("loss", ["alpha_iou_loss", "siou_loss"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_kernels_with_deferred_pows_do_not_depend_on_their_neighbours(loss, dtype):
    """Pairs whose pow falls back to libm (a NaN coordinate: its base is NaN) among ordinary ones in the same
    block: the CPU block loop leaves those elements to the scalar kernel, so each element's result is the one it
    has alone (bit for bit), whatever its neighbours."""
    import refloss as rl

    rng = np.random.default_rng(4)
    n = 64
    lo = rng.uniform(-2, 2, (n, 2))
    p = np.column_stack([lo, lo + rng.uniform(0.5, 3, (n, 2))]).astype(dtype)
    lo = lo + rng.uniform(-1, 1, (n, 2))
    t = np.column_stack([lo, lo + rng.uniform(0.5, 3, (n, 2))]).astype(dtype)
    p[::7, 2] = np.nan
    fn = getattr(rl, loss)
    v, (gp, gt) = fn.value_and_grad(p, t, reduction="none", validate=False)
    assert np.isnan(v[::7]).all() and np.isfinite(v[1::7]).all()
    for i in range(n):
        vi, (gpi, gti) = fn.value_and_grad(p[i:i + 1], t[i:i + 1], reduction="none", validate=False)
        got = np.concatenate([v[i:i + 1], gp[i], gt[i]])
        assert np.array_equal(got, np.concatenate([vi, gpi[0], gti[0]]), equal_nan=True), i


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_cpu_modules_pow_functions_are_the_printed_statements(precision):
    """refloss/_generated/_pow_cpu.py, which the CPU modules call, computes what the scalar kernels (CUDA, plain
    Python) write in: bit for bit, on ordinary and special values, with and without libm's fallback."""
    from refloss._generated import _pow_cpu

    dt = np.float64 if precision == "f64" else np.float32
    rng = np.random.default_rng(9)
    xs = np.concatenate([np.exp(rng.uniform(-30, 30, 5000)), [0.0, -0.0, 1.0, -2.0, np.inf, np.nan, 1e-320]]).astype(dt)
    ys = np.concatenate([rng.uniform(-8, 8, 5000), [2.0, 3.0, np.nan, 3.0, -1.0, 0.0, 0.5]]).astype(dt)
    for deferred, fn in ((False, getattr(_pow_cpu, f"pow_{precision}")), (True, getattr(_pow_cpu, f"pow_fast_{precision}"))):
        _, many, *_ = _compile(precision, deferred)
        want = np.empty_like(xs)
        many(xs, ys, want)
        got = np.array([fn(a, b) for a, b in zip(xs, ys)], dt)
        assert np.array_equal(got, want, equal_nan=True), deferred


def test_a_loop_calling_the_cpu_modules_pow_vectorises():
    """LLVM inlines pow_fast_<p> into the loops that call it (refloss/_numba_options.py's inlining threshold):
    the loop's machine code has packed multiplies (with LLVM's default threshold, 225 here, it has none, and
    such a loop ran 4-7x slower)."""
    from refloss._generated import _pow_cpu

    fast = _pow_cpu.pow_fast_f64

    @numba.njit(error_model="numpy")
    def loop(xs, ys, out):
        for i in range(xs.size):
            out[i] = fast(xs[i], ys[i])

    xs = np.linspace(0.1, 2.0, 64)
    out = np.empty_like(xs)
    loop(xs, xs, out)
    asm = loop.inspect_asm(loop.signatures[0])
    assert re.search(r"\bv?mulpd\b", asm), "no packed multiply: the loop calling pow did not vectorise"
