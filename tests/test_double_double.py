"""Double-double evaluation in float64 kernels (refloss/_derive/double_double.py): a float64 kernel's
``wide`` outputs where their terms cancel, and its ``Eval64`` parts where their guard fails, are evaluated
in pairs of float64 numbers (about 106 bits) and rounded once.  Checked against exact rationals."""
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from refloss._derive.codegen import scalar_function
from refloss._derive.core import Branch, Kernel
from refloss._derive.functions import Eval64, Group, Quot, TMax

x, y, z = (sp.Symbol(n, real=True) for n in "xyz")


def _compiled(kernel, precision="f64"):
    text = scalar_function(kernel, "f", precision, kernel.output_names)
    namespace = {"math": math, "_f32": np.float32, "_f64": np.float64, "_i64": np.int64}
    exec(text, namespace)
    return text, namespace["f"]


def _ulps(got: float, exact: Fraction) -> float:
    return float(abs(Fraction(got) - exact) / (abs(exact) * Fraction(1, 2**52)))


def test_a_wide_output_whose_terms_cancel_is_correctly_rounded_in_float64():
    # d_x = 1/y - 1/(y + x) cancels for |x| << |y|: float64 keeps ~log2(y/x) bits fewer than it shows
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(), prelude=(),
                    branches=(Branch(None, {"value": x / y, "d_x": 1 / y - 1 / (y + x), "d_y": -x / y**2}),),
                    wide=("d_x",))
    text, f = _compiled(kernel)
    assert "_dd" in text and "_f64(" not in text  # pairs of float64 numbers, no other type
    plain = Kernel(**{**kernel.__dict__, "wide": ()})
    _, g = _compiled(plain)
    rng = np.random.default_rng(0)
    worst_plain = worst = 0.0
    for _ in range(300):
        yv = float(rng.uniform(0.5, 2.0))
        xv = yv * float(2.0 ** rng.uniform(-40, -8)) * (1 if rng.random() < 0.5 else -1)
        exact = 1 / Fraction(yv) - 1 / (Fraction(yv) + Fraction(xv))
        worst = max(worst, _ulps(f(xv, yv)[1], exact))
        worst_plain = max(worst_plain, _ulps(g(xv, yv)[1], exact))
    assert worst <= 1.0  # one rounding of a 106-bit value
    assert worst_plain > 1e3  # what float64 alone gives (the test would not see a lost fallback otherwise)


def test_eval64_in_a_float64_kernel_is_double_double_where_its_guard_fails():
    # log(x + z) for x = 1, z = 2^-60: x + z rounds to 1 in float64 and the log to 0; the pair keeps z
    value = Eval64(sp.log(Group(x + z)), sp.Abs(Group(x + z) - 1) - sp.Rational(1, 8))
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(z,), prelude=(),
                    branches=(Branch(None, {"value": value * y, "d_x": y / (x + z), "d_y": value}),))
    text, f = _compiled(kernel)
    assert "_xg0" in text and "_xdd" in text
    for zv in (2.0**-60, -(2.0**-70), 3e-30, 1e-9, 0.3):
        got = f(1.0, 1.0, zv)[0]
        exact = float(sp.log(1 + sp.Rational(zv)).evalf(40))
        assert abs(got - exact) <= 2**-52 * abs(exact), zv


@pytest.mark.parametrize("seed", range(4))
def test_sums_products_quotients_and_maxima_in_double_double(seed):
    # (a*b - c*d)/(e - f) + max(a - c, b - d): products and differences that cancel, a quotient, a maximum of
    # differences; the output is wide (its two terms cancel too) so that it is evaluated in pairs where they do
    a, b, c, d, e, f = (sp.Symbol(n, real=True) for n in "abcdef")
    out = Quot(a * b - c * d, e - f) - TMax(a - c, b - d)
    kernel = Kernel(arrays=(("pred", 6, (a, b, c, d, e, f)),), args=(), prelude=(),
                    branches=(Branch(None, {"value": a, "d_a": out, "d_b": b, "d_c": c, "d_d": d, "d_e": e, "d_f": f}),),
                    wide=("d_a",), wide_margin=2.0)  # (a margin above 1: every element in pairs)
    _, fn = _compiled(kernel)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        av, bv = rng.uniform(-4, 4, 2)
        cv, dv = av * (1 + rng.normal() * 2.0**-40), bv * (1 + rng.normal() * 2.0**-40)
        ev = rng.uniform(1, 2)
        fv = ev * (1 + rng.normal() * 2.0**-30)
        args = [float(v) for v in (av, bv, cv, dv, ev, fv)]
        A, B, C, D, E, F = map(Fraction, args)
        exact = (A * B - C * D) / (E - F) - max(A - C, B - D)
        if exact == 0:
            continue
        assert _ulps(fn(*args)[1], exact) <= 1.0


def test_where_the_pairs_overflow_the_float64_value_is_kept():
    # Veltkamp's split of a number above ~2^996 overflows: the output keeps its float64 value (finite), not NaN
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(), prelude=(),
                    branches=(Branch(None, {"value": x, "d_x": x * y - x * y * (1 + x * 0), "d_y": x}),),
                    wide=("d_x",))
    _, f = _compiled(kernel)
    assert f(1e300, 1.5)[1] == 0.0


@pytest.mark.parametrize("name, params", [("giou_loss", {}), ("ciou_loss", {"alpha_grad": True}),
                                          ("ciou_loss", {"darknet": True})])
def test_the_float64_sweeps_reference_agrees_with_the_oracle(name, params):
    # refloss/_generated/<loss>_ref.py: the float64 kernel's branches, every output in double-double; the float64
    # box sweeps measure every point against it (functions keep float64's rounding: a few ulps of the scale)
    import refloss as rl
    from refloss.oracle import oracle
    from refloss.sweep import _chunk
    from refloss.sweep._spaces import _boxes

    fn = getattr(rl, name)
    ref = _chunk.reference_module(fn._module("cpu"))
    _, _, (p, t) = _boxes(np.random.default_rng(11), 400, np.float64)
    out = np.empty((len(p), 9))
    ref.reference(p, t, out, *fn.kernel_args(params, "f64"))
    exact = oracle(name)
    for i in range(0, len(p), 10):
        v, ep, et = exact(p[i], t[i], **params)
        ex = np.concatenate([np.ravel(ep), np.ravel(et)]).astype(float)
        scale = max(np.max(np.abs(ex)), 1.0 / max(np.max(p[i, 2:] - p[i, :2]), np.max(t[i, 2:] - t[i, :2])))
        assert abs(out[i, 0] - float(v)) <= 4 * 2**-52 * max(abs(float(v)), 1.0)
        if params.get("darknet"):  # (its gradient convention drops 1/(w^2 + h^2): ill-conditioned; the value is
            continue               # CIoU's, which the darknet flag's derivative had once made the reference miss)
        assert np.max(np.abs(out[i, 1:] - ex)) <= 16 * 2**-52 * scale, (i, p[i], t[i])
