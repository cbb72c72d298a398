"""refloss.design's checks of what a user gives (a probe, 2026-12-07; each test failed before its fix):
evaluation forms compared with the integral far out on an unbounded piece, not only within 10 of its start; the
loss at pred = target where the first piece's forms are not finite there (or not 0 term by term); a gradient
whose integration constants hold powers of the parameters (the Wing loss's) derived in finite time; (a probe,
2026-12-08) float bounds of a domain taken exactly, so that the kernel check's reference is exact."""
from __future__ import annotations

import math

import numpy as np
import pytest

sp = pytest.importorskip("sympy")

from refloss._derive.core import DerivationError  # noqa: E402
from refloss.design import from_gradient  # noqa: E402

a = sp.Symbol("a", nonnegative=True)
k = sp.Symbol("k", positive=True)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REFLOSS_DESIGN_CACHE", str(tmp_path / "designs"))


@pytest.mark.parametrize("form", [sp.Min(a**2 / 2, 200), a**2 / 2 + sp.Max(0, a - 20), a**2 / 2 + sp.Heaviside(a - 30),
                                  a**2 / 2 + sp.exp(a - 200)], ids=str)
def test_a_form_wrong_only_far_out_is_refused(form):
    """The forms were compared with a^2/2 at 12 points within 10 of the piece's start, and accepted."""
    with pytest.raises(DerivationError, match="evaluation form of piece 0 equals the integrated piece"):
        from_gradient("far_form", [(None, a, form)], a, {})


def test_a_wrong_form_of_the_last_piece_is_refused():
    with pytest.raises(DerivationError, match="evaluation form of piece 1"):
        from_gradient("far_form2", [(a < k, a / k), (None, 1, a - k / 2 + sp.Max(0, a - k - 20))], a, {k: 1.0})


def test_a_right_form_far_out_is_accepted():
    d = from_gradient("log_cosh_far", [(None, sp.tanh(a), a + sp.log(1 + sp.exp(-2 * a)) - sp.log(2))], a, {})
    v = d.loss(np.array([0.0, 3.0, 1e3]), 0.0)
    assert v[0] == 0 and abs(v[1] - math.log(math.cosh(3.0))) <= 4e-16 * v[1] and v[2] == 1e3 - math.log(2)


@pytest.mark.parametrize("gradient", [sp.log(a), 1 / sp.sqrt(a)], ids=str)
def test_pred_equal_to_target_gives_zero(gradient):
    """L(0) = 0 and the gradient g(0) sign(0) = 0 at pred = target: the forms as written gave NaN (0 log 0, 1/sqrt(0)),
    and a reduced loss's d_target NaN with them."""
    d = from_gradient("at_zero", [(None, gradient)], a, {})
    v, (gp, gt) = d.loss.value_and_grad(np.array([0.0, 1.0]), 0.0)
    assert v[0] == 0 and gp[0] == 0 and np.isfinite(v).all() and np.isfinite(gp).all() and np.isfinite(gt).all()
    m, (_, gt) = d.loss.value_and_grad(np.array([0.0, 1.0]), 0.0, reduction="mean")
    assert np.isfinite(m) and np.isfinite(gt)


def test_a_value_zero_at_zero_only_after_cancellation_is_exactly_zero():
    """atan(a/k)'s loss a atan(a/k) - k/2 log(a^2 + k^2) + k/2 log(k^2): -3.7e-9 at pred = target in float32."""
    d = from_gradient("atan_k", [(a < k, sp.atan(a / k)), (None, sp.pi / 4)], a, {k: 1.0})
    for dt in (np.float32, np.float64):
        assert d.loss(np.zeros(2, dt), 0.0, k=0.01)[0] == 0


def test_the_wing_loss_gradient_derives():
    """W/(eps + a) below W: its integration constant W log(1 + W/eps) - W held exact powers of random rationals
    when the kernels were checked (xreplace), which SymPy never finished simplifying."""
    w, eps = sp.symbols("W eps", positive=True)
    d = from_gradient("my_wing", [(a < w, w / (eps + a)), (None, 1)], a, {w: 10.0, eps: 2.0})
    v = d.loss(np.array([0.0, 1.0, 20.0]), 0.0)
    want = [0.0, 10 * math.log1p(0.5), 20 - 10 + 10 * math.log1p(5.0)]
    np.testing.assert_allclose(v, want, rtol=1e-14)


def test_breakpoints_that_cross_for_small_parameters_are_refused():
    """k and k + w - 1/1000 increase only for w > 1/1000: shown numerically at w in (0.1, 3.1) and accepted; at
    w = 0.0005 the loss then dropped at a = k. The order is now also sampled near the domains' edges."""
    w = sp.Symbol("w", positive=True)
    with pytest.raises(DerivationError, match="breakpoints in increasing order"):
        from_gradient("crossing", [(a < k, a), (a < k + w - sp.Rational(1, 1000), 1), (None, 0)], a, {k: 1.0, w: 2.0})
    d = from_gradient("not_crossing", [(a < k, a / k), (a < k + w, 1), (None, 0)], a, {k: 1.0, w: 2.0})
    np.testing.assert_allclose(d.loss(np.array([0.5, 2.0, 5.0]), 0.0), [0.125, 1.5, 2.5], rtol=1e-15)


@pytest.mark.parametrize("domain", [sp.Interval(0.5, 2), sp.Interval(0.1, 2.5), sp.Interval.open(0.3, 7.7)], ids=str)
def test_float_bounds_of_a_domain_are_exact(domain):
    """A probe (2026-12-08): with Interval(0.5, 2) the design failed its own kernel check ('f64 kernel program: value
    at a = 0.113...: 0.0070855477972647032 but the derived loss gives 0.0070855477972647024'): the parameter sampled
    from the 15-digit Float bound kept 15 digits in the 60-digit reference, and the kernel, right to 18 digits, was
    blamed. A float bound is now the rational of its decimal, as floats in the pieces are."""
    d = from_gradient("float_bounds", [(a < k, a / k), (None, 1)], a, {k: 1.0}, domains={k: domain})
    lo = sp.Rational(repr(float(domain.start)))
    assert d.spec.params[0].lower == lo and d.spec.params[0].upper == sp.Rational(repr(float(domain.end)))
    kv = float(domain.end) / 2
    np.testing.assert_allclose(d.loss(np.array([0.25, 10.0]), 0.0, k=kv), [0.25**2 / (2 * kv), 10.0 - kv / 2],
                               rtol=1e-15)
