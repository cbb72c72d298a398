"""The reductions' sums (refloss/_sums.py): compensated, within an ulp of the exact sum of their terms
(math.fsum's correctly rounded sum is the reference), independent of the thread count, IEEE's
infinities and NaN as a plain sum gives them.

The bug they fix: NumPy's sum along a leading axis is a plain sum, so the float32 gradient of a target
broadcast over 10^6 boxes was 25-240 ULP from the float64 kernel's (reduction="sum") and up to 1.8e4 ULP
(reduction="mean"); test_broadcast_gradient_is_the_exact_sum fails on it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import refloss as rl
from refloss import _arrays, _sums


def _exact(g: np.ndarray, axes) -> np.ndarray:
    """``g`` (finite) summed over ``axes`` with math.fsum (keepdims), rounded to float64 then to g's dtype."""
    keep = [k for k in range(g.ndim) if k not in axes]
    n = int(np.prod([g.shape[k] for k in axes]))
    terms = np.moveaxis(g.astype(np.float64), list(axes), list(range(len(axes)))).reshape(
        n, int(np.prod([g.shape[k] for k in keep])))
    out = np.array([math.fsum(terms[:, j]) for j in range(terms.shape[1])])
    return out.astype(g.dtype).reshape([1 if k in axes else g.shape[k] for k in range(g.ndim)])


def _ulps(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want)
    return float(np.max(np.abs(got - want.astype(np.float64)) / np.spacing(np.abs(want)).astype(np.float64),
                        initial=0.0))


# shapes and axes that reach each path of _sum_middle: short sums (R < 64), long runs of few columns
# (lanes, one task and many), a reduced last axis, very wide columns, non-adjacent axes (a transposed copy)
CASES = [((5,), (0,)), ((3, 4), (0,)), ((3, 4), (1,)), ((300, 4), (0,)), ((70000, 4), (0,)),
         ((2, 40000, 3), (1,)), ((7, 300), (1,)), ((200, 5000), (0,)), ((100, 7000), (0,)), ((6, 8, 5, 4), (0, 2)),
         ((9, 70, 3, 30), (1, 3)), ((20000, 3), (0, 1)), ((4, 1, 5), (1,)), ((0, 4), (0,)), ((3, 0, 2), (1,))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axes", CASES)
def test_sum_axes_within_an_ulp_of_the_exact_sum(shape, axes, dtype):
    rng = np.random.default_rng(abs(hash((shape, axes))) % 2**32)
    g = (rng.normal(size=shape) * 10.0 ** rng.uniform(-4, 4, size=shape)).astype(dtype)
    got = _sums.sum_axes(g, axes)
    want = _exact(g, axes)
    assert got.dtype == dtype and got.shape == want.shape
    assert _ulps(got, want) <= 1.0
    assert np.mean(got == want) >= 0.99  # correctly rounded nearly everywhere


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 1000, 16383, 16384, 300001])
def test_total_within_an_ulp(n, dtype):
    rng = np.random.default_rng(n)
    v = (rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)).astype(dtype)
    got = _sums.total(v)
    assert type(got) is dtype
    assert _ulps(got, dtype(math.fsum(v.astype(np.float64)))) <= 1.0


def test_cancellation():
    """Terms that cancel by 2^53: a plain sum loses the result, the compensated one keeps it."""
    v = np.array([1e16, 1.0, -1e16, 3.0] * 5000)
    assert v.sum() != 20000.0  # (what the compensated sum is for)
    assert _sums.total(v) == 20000.0
    g = np.stack([v, -v, 2 * v], axis=1)
    assert _sums.sum_axes(g, (0,)).tolist() == [[20000.0, -20000.0, 40000.0]]
    # float32 terms are summed in float64: exact here
    w = np.array([2.0**30, 1.0, -2.0**30] * 30000, np.float32)
    assert _sums.total(w) == np.float32(30000.0)


def test_non_finite_and_zeros():
    assert math.isinf(_sums.total(np.array([np.inf, 1.0, 2.0])))
    assert math.isnan(_sums.total(np.array([np.inf, -np.inf])))
    assert math.isnan(_sums.total(np.array([1.0, np.nan] * 20000)))
    assert _sums.total(np.array([1e308, 1e308])) == np.inf  # as the plain sum overflows
    assert math.copysign(1.0, _sums.total(np.array([-0.0, -0.0]))) == -1.0
    assert math.copysign(1.0, _sums.total(np.zeros(0))) == 1.0
    big = np.ones((70000, 4))
    big[5, 1] = np.inf
    big[7, 2] = np.nan
    s = _sums.sum_axes(big, (0,))[0]
    assert s[0] == 70000.0 and s[1] == np.inf and math.isnan(s[2]) and s[3] == 70000.0
    assert _sums.total(np.float16([1, 2, 3])) == np.float16(6) and _sums.total(np.float16([1])).dtype == np.float16


def test_independent_of_the_thread_count():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(300000, 4)) * 10.0 ** rng.uniform(-8, 8, size=(300000, 4))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _sums.sum_axes(g, (0,)), _sums.total(g)
    finally:
        numba.set_num_threads(threads)
    many = _sums.sum_axes(g, (0,)), _sums.total(g)
    assert one[0].tobytes() == many[0].tobytes() and one[1] == many[1]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_broadcast_gradient_is_the_exact_sum(reduction):
    """A float32 target broadcast over 2*10^5 boxes: its gradient is the sum of the per-box gradients (those of
    the target given in full), within an ulp; NumPy's axis-0 sum was 10-1e4 ULP off."""
    rng = np.random.default_rng(7)
    p = rng.normal(size=(200000, 4)).astype(np.float32)
    t = np.float32([0.1, -0.2, 0.3, 0.5])
    value, (_, d_t) = rl.smooth_l1.value_and_grad(p, t, reduction=reduction)
    full_value, (_, d_full) = rl.smooth_l1.value_and_grad(p, np.broadcast_to(t, p.shape).copy(), reduction=reduction)
    assert value == full_value
    assert _ulps(d_t, _exact(d_full, (0,))[0]) <= 1.0
    # and the reduced value is the exact sum of the values (their mean: that sum divided once)
    values = rl.smooth_l1(p, t)
    total = np.float32(math.fsum(values.astype(np.float64).ravel()))
    assert _ulps(value, total if reduction == "sum" else total / np.float32(values.size)) <= 1.0


def test_sum_to_shape_keeps_its_contract():
    g = np.arange(24.0).reshape(2, 3, 4)
    assert _arrays.sum_to_shape(g, (3, 1)).tolist() == g.sum(axis=(0, 2), keepdims=True).reshape(3, 1).tolist()
    assert _arrays.sum_to_shape(g, (2, 3, 4)) is g or (_arrays.sum_to_shape(g, (2, 3, 4)) == g).all()
    assert _arrays.sum_to_shape(g, ()).tolist() == g.sum()


def test_float32_mean_is_rounded_once():
    """The mean is the float64 sum divided in float64, rounded to float32 once: the float32 sum divided in float32
    was rounded twice, 1.12 ulp from the exact mean of QFL's elements on a probe's batch (2026-12-07)."""
    from fractions import Fraction

    r = np.random.default_rng(3)
    x = (r.standard_normal((1000, 3)) * 5).astype(np.float32)
    y = r.random((1000, 3)).astype(np.float32)
    got = rl.qfl_loss(x, y, reduction="mean")
    elements = rl.qfl_loss(x, y)
    exact = sum(Fraction(float(v)) for v in elements.ravel()) / elements.size
    assert got.dtype == np.float32 and got == np.float32(float(exact))
    worst = 0.0
    for seed in range(200):
        v = np.random.default_rng(seed).random(1000).astype(np.float32) * 3
        m = _arrays.reduce(v, "mean")
        exact = float(sum(Fraction(float(t)) for t in v) / v.size)
        worst = max(worst, abs(float(m) - exact) / float(np.spacing(np.float32(exact))))
    assert worst <= 0.5 + 1e-6
