"""The sine and cosine the code generator prints for sin and cos (refloss/_derive/trig.py, issue 16):
Cody-Waite reduction by pi/2 in four parts, two polynomials and a selection on j's low bits, no libm
call, so that the rotated-box losses' loops vectorise.  Checked here as printed (Numba-compiled, and
as plain Python, which is how the CUDA simulator runs them): float64 against the long-double libm
(x87, 64-bit significand) on random points of the whole range and at the doubles nearest to the
multiples of pi/2 (where x - j pi/2 cancels), float32 against float64 libm on every 64th float32 in
[-LIMIT, LIMIT] (all of them with REFLOSS_EXHAUSTIVE=1), beyond the limit libm's result itself, and
the special values (NaN, infinities, zeros of both signs)."""
from __future__ import annotations

import math
import os

import numba
import numpy as np
import pytest
import sympy as sp
from mpmath import mp

from refloss._derive import trig
from refloss._derive.codegen import KernelPrinter
from test_expo import _compile, _ulp  # noqa: E402  (the printing and ULP helpers of the exp/log tests)

LONG = np.finfo(np.longdouble).nmant >= 63  # x87 long double: a reference 11 bits beyond float64
# ULP against the exact result (float32: against float64 libm's, within 2^-29 of it). Measured (10^6 random points
# in [-2^20, 2^20], 10^6 in [-4, 4], 66,000 doubles next to multiples of pi/2): float64 sin 0.875, 0.815, 0.5;
# cos 0.829, 0.805, 0.5 (libm's 0.515 on [-4, 4]); float32 0.84 (sin) and 0.86 (cos) on every 64th float32, 0.8703
# and 0.8927 on every float32 in [-1024, 1024] (python benchmarks/trig_exhaustive.py)
BAR = {"f64": 1.0, "f32": 1.0}


def _printed(name, precision, deferred=False):
    """The printed function as plain Python, and a Numba loop over arrays (the statements in its body)."""
    return _compile(getattr(sp, name), precision, deferred)


def _near_quarter_turns(n, rng):
    """The doubles nearest to j pi/2 (and their neighbours) for j up to the limit: x - j pi/2 cancels."""
    j = np.concatenate([np.arange(1, 2000), rng.integers(1, int(trig.LIMIT["f64"] * 2 / np.pi), n)])
    with mp.workdps(40):
        x = np.array([float(mp.mpf(int(k)) * mp.pi / 2) for k in j])
    return np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])


@pytest.mark.parametrize("name", ["sin", "cos"])
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_polynomial_error_is_below_its_bound(name, precision):
    _, worst = trig.polynomial(name, precision)
    assert worst <= trig.BOUND[precision]


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_half_pi_split_makes_exact_products(precision):
    parts = trig.split_half_pi(precision)
    jmax = round(trig.LIMIT[precision] * 2 / math.pi) + 1
    assert jmax.bit_length() + trig.PART_BITS[precision] <= {"f64": 53, "f32": 24}[precision]
    for c in parts[:3]:  # j c exact: the bits of j and of c fit in the precision's significand
        mant, _ = mp.frexp(c)
        assert (mant * 2 ** trig.PART_BITS[precision]) % 1 == 0
    with mp.workdps(80):
        assert abs(mp.pi / 2 - sum(parts)) < mp.mpf(2) ** {"f64": -150, "f32": -70}[precision]


@pytest.mark.skipif(not LONG, reason="needs the x87 long double as the float64 reference")
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_float64_against_long_double(name):
    rng = np.random.default_rng(5)
    lim = trig.LIMIT["f64"]
    xs = np.concatenate([rng.uniform(-lim, lim, 200_000), rng.uniform(-4, 4, 200_000), _near_quarter_turns(3000, rng),
                         rng.choice([-1, 1], 20_000) * 10.0 ** rng.uniform(-320, 0, 20_000)])
    f, many = _printed(name, "f64")
    got = np.empty_like(xs)
    many(xs, got)
    want = getattr(np, name)(xs.astype(np.longdouble))
    err = _ulp(got, want, np.float64)
    assert err.max() <= BAR["f64"], (err.max(), xs[np.argmax(err)])
    for k in range(0, xs.size, 997):  # as plain Python (the CUDA simulator's way): the same numbers
        assert f(float(xs[k])) == got[k]


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_float32_against_float64_libm(name):
    lim = np.float32(trig.LIMIT["f32"])
    step = 1 if os.environ.get("REFLOSS_EXHAUSTIVE") == "1" else 64
    top = int(np.array(lim, np.float32).view(np.int32))
    bits = np.arange(0, top + 1, step, dtype=np.int64).astype(np.int32)
    pos = bits.view(np.float32)
    xs = np.concatenate([pos, -pos])
    _, many = _printed(name, "f32")
    got = np.empty_like(xs)
    many(xs, got)
    want = getattr(np, name)(xs.astype(np.float64))
    err = _ulp(got, want, np.float32)
    assert err.max() <= BAR["f32"], (err.max(), xs[np.argmax(err)])


@pytest.mark.parametrize("precision", ["f64", "f32"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_beyond_the_limit_and_special_values_are_libms(name, precision):
    dt = np.float64 if precision == "f64" else np.float32
    lim = trig.LIMIT[precision]
    xs = np.array([np.nextafter(lim, np.inf), -np.nextafter(lim, np.inf), 1e7, -3e12, 1e300 if dt is np.float64 else 3e38,
                   np.inf, -np.inf, np.nan], dt)
    _, many = _printed(name, precision)
    got = np.empty_like(xs)
    many(xs, got)
    want = getattr(np, name)(xs)  # libm's (NumPy's float32 sin and cos are libm's sinf, cosf)
    assert np.array_equal(got, want, equal_nan=True)
    zeros = np.array([0.0, -0.0], dt)
    out = np.empty_like(zeros)
    many(zeros, out)
    assert np.array_equal(np.signbit(out), np.signbit(getattr(np, name)(zeros)))
    assert np.array_equal(out, getattr(np, name)(zeros))


def test_deferred_form_has_no_libm_call_and_records_its_guard():
    x = sp.Symbol("x", real=True)
    printer = KernelPrinter("f64", width=100)
    printer.deferred_libm = True
    code = printer.doprint(sp.sin(x) + sp.cos(x))
    text = "\n".join(printer.take_statements()) + code
    assert "math.sin" not in text and "math.cos" not in text
    guards = printer.libm_guards()
    assert len(guards) == 1 and f"{guards[0]} = abs(x) <= " in text  # sin and cos share one reduction


@pytest.mark.parametrize("loss", ["gwd_loss", "probiou_loss"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rotated_kernels_beyond_the_limit_equal_the_scalar_kernel(loss, dtype):
    """Angles beyond trig.LIMIT (and ordinary ones in the same block): the CPU block loop leaves those elements
    to the scalar kernel (libm's sin and cos), so each element's result is the scalar kernel's, whatever its
    neighbours."""
    import importlib

    import refloss as rl

    rng = np.random.default_rng(3)
    n = 64
    p = np.column_stack([rng.uniform(-2, 2, (n, 2)), rng.uniform(0.5, 3, (n, 2)), rng.uniform(-3, 3, n)]).astype(dtype)
    t = np.column_stack([rng.uniform(-2, 2, (n, 2)), rng.uniform(0.5, 3, (n, 2)), rng.uniform(-3, 3, n)]).astype(dtype)
    p[::3, 4] = dtype(3.0e7)
    t[1::5, 4] = dtype(-2.5e6)
    fn = getattr(rl, loss)
    v, (gp, gt) = fn.value_and_grad(p, t, reduction="none")
    scalar = importlib.import_module(f"refloss._generated.{loss}")
    prec = "f64" if dtype is np.float64 else "f32"
    kernel = numba.njit(error_model="numpy")(getattr(scalar, f"value_and_grad_{prec}"))
    # a choice parameter reaches the kernel as its index among the choices
    params = scalar.constants(**{q.name: float(q.choices.index(q.default)) if q.kind == "choice" else q.default
                                 for q in fn.info.params})
    for i in range(n):
        r = kernel(*p[i], *t[i], *(dtype(a) for a in params))
        assert r[0] == v[i] or (np.isnan(r[0]) and np.isnan(v[i]))
        assert np.array_equal(np.array(r[1:6], dtype), gp[i]) and np.array_equal(np.array(r[6:11], dtype), gt[i])


@pytest.mark.parametrize("name", ["SinSmall", "CosSmall"])
@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_small_forms_without_reduction(name, precision):
    # SinSmall/CosSmall (the rotated losses' sin and cos of the angle difference's rounding error): the polynomials
    # of x itself within R_MAX, libm's beyond (the scalar form; the deferred form's guard sends those elements there)
    from refloss._derive.functions import CosSmall, SinSmall

    function = {"SinSmall": SinSmall, "CosSmall": CosSmall}[name]
    dtype = np.float64 if precision == "f64" else np.float32
    rng = np.random.default_rng(11)
    r = float(trig.R_MAX) * 0.9999
    xs = np.concatenate([rng.uniform(-r, r, 100_000), rng.choice([-1, 1], 10_000) * 10.0 ** rng.uniform(-40, 0, 10_000),
                         [0.0, -0.0, r, -r]]).astype(dtype)
    f, many = _compile(function, precision)
    got = np.empty_like(xs)
    many(xs, got)
    libm = np.sin if name == "SinSmall" else np.cos
    want = libm(xs.astype(np.longdouble if LONG and precision == "f64" else np.float64))
    err = _ulp(got, want, dtype)
    assert err.max() <= BAR[precision], (err.max(), xs[np.argmax(err)])
    if name == "SinSmall":  # -0 keeps its sign
        assert np.signbit(got[xs.size - 3]) and not np.signbit(got[xs.size - 4])
    beyond = np.array([1.0, -2.5, 1e10, np.inf, np.nan], dtype)
    out = np.empty_like(beyond)
    many(beyond, out)
    assert _ulp(out[:3], libm(beyond[:3].astype(np.float64)), dtype).max() <= BAR[precision] and np.isnan(out[3:]).all()
    for k in range(0, xs.size, 997):  # as plain Python (the CUDA simulator's way): the same numbers
        assert f(xs[k]) == got[k]
