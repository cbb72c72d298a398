"""The focal family at large exponents: sigmoid focal loss's gamma, QFL's beta and VFL's gamma above the
swept sets (gamma <= 2, beta <= 3.5), at the hard targets, against the 50-digit oracle.

There sigma(z)^gamma of the negative signed logit z was formed as pow(e, gamma) of a rounded e = exp(-|z|),
whose rounding gamma multiplied: float32 13.1 ULP (sigmoid focal, gamma 5.53), 15.9 (QFL, beta 16.9), 11.8
(VFL, gamma 11.6) and float64 9 ULP64 (VFL) against bars of 8, 12, 8 (benchmarks/param_probe.py).  The kernels
now form e^(-gamma |z|) from gamma |z| split error-free, and where alpha_t e^gamma d^-gamma is subnormal (from
gamma |z| ~ 87 in float32) d/dtargets multiplies its factors between two halves of that exponential, as
d/dlogits does where its factor e + gamma l exceeds 1 (gamma above ~30 in float32: 12 ULP at gamma 68 before).
"""
from __future__ import annotations

import numpy as np
import pytest

import refloss as rl
from refloss._measures import ulp_error
from refloss.oracle import classification as oracle

# (loss, its exponent's name, other parameters, bar in ULP, targets)
CASES = [("sigmoid_focal_loss", "gamma", lambda rng: {"alpha": float(rng.uniform(0.05, 0.95))}, 8.0, (0.0, 1.0)),
         ("qfl_loss", "beta", lambda rng: {}, 12.0, (0.0, 1.0)),
         ("varifocal_loss", "gamma", lambda rng: {"alpha": float(rng.uniform(0.05, 0.95)),
                                                "detach_weight": bool(rng.integers(2))}, 8.0, (0.0,))]


def _floors(name, x, y, dtype, params):
    """(value, d_logits, d_target) floors of the loss's bar: its oracle's gradient scale (refloss/_reference.py)."""
    scales = tuple(float(s) for s in getattr(oracle, name.replace("_loss", "").replace("sigmoid_", "")
                                             + "_gradient_scale")(x, y, dtype, **params))
    return scales if len(scales) == 3 else (None, *scales)


def _worst(name, dtype, points):
    """(the largest error in ULP, where) of the loss's value and gradients at ``points`` [(x, y, params)] against the
    oracle, each against its bar's floor."""
    loss, exact_of = getattr(rl, name), getattr(oracle, name)
    worst = (0.0, None)
    for x, y, params in points:
        exact = exact_of(x, y, **params)
        value, grads = loss.value_and_grad(np.array([x], dtype), np.array([y], dtype), **params)
        for what, got, want, floor in zip(("value", "d_logits", "d_target"), (value[0], *(g[0] for g in grads)), exact,
                                          _floors(name, x, y, dtype, params)):
            err = float(ulp_error(float(got), float(want), float(want - float(want)), dtype, floor))
            worst = max(worst, (err, (what, x, y, params)), key=lambda w: w[0])
    return worst


def _points(dtype, rng, name, exponent, others, targets, n):
    """n (logit, target, parameters): exponents in [4, 17], signed logits z = -|x| where sigma(z)^gamma is
    e^(gamma z) (z in [-20, -0.05], float64 [-45, -0.05]); two fifths where gamma |z| nears float32's or
    float64's subnormal range (the far tails' limit aside), half of them at exponents in [25, 40]."""
    # d/dlogits' factor e + gamma l above 1 times a subnormal power (float32 12.0 and 10.6 ULP before)
    out = {("sigmoid_focal_loss", np.float32): [(1.1909375190734863, 1.0, {"gamma": 67.94143676757812, "alpha": 0.3703})],
           ("qfl_loss", np.float32): [(1.039522409439087, 1.0, {"beta": 77.3170394897461})]}.get((name, dtype), [])
    far = 20.0 if dtype == np.float32 else 45.0
    for k in range(n):
        g = float(dtype(rng.uniform(4.0, 17.0)))
        y = float(targets[k % len(targets)])
        if k % 5 < 2:  # gamma |z| in [60, 110] (float32), [600, 760] (float64), |z| below the far tail
            low, high = (60.0, 110.0) if dtype == np.float32 else (600.0, 760.0)
            # (one in two of them at gamma in [25, 40] and |z| small: e + gamma l > 1 times a subnormal power)
            g = float(dtype(max(g, high / far) if k % 5 == 0 else rng.uniform(25.0, 40.0)))
            t = min(rng.uniform(low, high) / g, far * 0.999)
        else:
            t = 10 ** rng.uniform(np.log10(0.05), np.log10(far * 0.999))
        z = float(dtype(-t))
        out.append((z if y == 0.0 else -z, y, {exponent: g, **others(rng)}))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, exponent, others, bar, targets", CASES, ids=[c[0] for c in CASES])
def test_large_exponents_within_bar(dtype, name, exponent, others, bar, targets):
    rng = np.random.default_rng([7, 0 if dtype == np.float32 else 1, len(name)])
    worst = _worst(name, dtype, _points(dtype, rng, name, exponent, others, targets, 150))
    assert worst[0] <= bar, worst


@pytest.mark.parametrize("dtype,gamma", [(np.float32, 1e6), (np.float32, 1e10), (np.float32, 1e14),
                                         (np.float64, 1e17), (np.float64, 1e30)])
def test_sigmoid_focal_at_huge_gamma_is_zero(dtype, gamma):
    """sigma(z)^gamma underflows for every signed logit z = (1 - 2y) x below ~40: the loss and its gradients are 0 (the
    printed pow, beyond exp's range, gave a negative loss at gamma 1e10 in float32, NaN at 1e14, 2.3e-178 at 1e30 in
    float64: tests/test_pow.py)."""
    z = np.array([-30.0, -2.0, -0.35, 0.0, 0.5, 3.0], dtype)  # the signed logit: sigma(z)^gamma underflows
    for t in (0.0, 1.0):
        x, y = z * dtype(1 - 2 * t), np.full_like(z, t)
        v, (dx, dy) = rl.sigmoid_focal_loss.value_and_grad(x, y, alpha=0.25, gamma=gamma)
        assert np.all(v == 0) and np.all(dx == 0) and np.all(dy == 0), (t, v, dx, dy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, exponent, others, bar, targets", [CASES[0], CASES[2]], ids=[CASES[0][0], CASES[2][0]])
def test_e_rounding_not_multiplied_by_gamma(dtype, name, exponent, others, bar, targets):
    """d^-gamma (d = 1 + e, e = exp(-|z|)) carries e's rounding times gamma e/d, up to gamma/4 ulps, largest where e is
    not small (|z| below ~3): with e printed (refloss/_derive/expo.py, within 1 ulp) sigmoid focal loss and VFL
    reached 9.0 ULP at gamma 17, 11-17 at 25-40 (float32 and float64, bar 8).  The correction of d's rounding now
    takes e's own rounding error from its exp's reduction where the exponent exceeds 3: 3-5 ULP there."""
    rng = np.random.default_rng([11, 0 if dtype == np.float32 else 1, len(name)])
    points = []
    for k in range(120):
        y = float(targets[k % len(targets)])
        params = {exponent: float(dtype(rng.uniform(12.0, 40.0))), **others(rng)}
        z = float(dtype(-rng.uniform(0.05, 2.5)))
        points.append((z if y == 0.0 else -z, y, params))
    worst = _worst(name, dtype, points)
    assert worst[0] <= bar, worst


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, exponent, others, bar", [("sigmoid_focal_loss", "gamma", [0.25, 0.5], 8.0),
                                                         ("qfl_loss", "beta", [None], 12.0)])
def test_soft_targets_at_large_exponents(dtype, name, exponent, others, bar):
    """Soft targets, exponents in [4, 100]: the float64 kernel's double-double from float64's roundings of sigma and
    1 - p_t (QFL: D) kept an error growing with the exponent (a probe, 2026-12-07: sigmoid focal 11.5 ULP64 at gamma
    8, 47 at 40 at logit 11.03, target 0.669, bar 8; QFL 10.8 at beta 8, 58.9 at 40, bar 12); now with ~100-bit
    functions (EvalAccurate) from gamma 4 (QFL: beta 6)."""
    rng = np.random.default_rng([13, 0 if dtype == np.float32 else 1, len(name)])
    alpha = (lambda: {"alpha": float(rng.choice(others))}) if name == "sigmoid_focal_loss" else dict
    points = [(11.027427609807742, 0.6694123519986497, {**alpha(), exponent: 40.0})]
    points += [(rng.uniform(-20, 20), rng.uniform(0.02, 0.98),
                {**alpha(), exponent: float(dtype(rng.choice([4.0, 6.0, 8.0, 17.0, 40.0, 100.0])))}) for _ in range(100)]
    worst = _worst(name, dtype, [(float(dtype(x)), float(dtype(y)), params) for x, y, params in points])
    assert worst[0] <= bar, worst
