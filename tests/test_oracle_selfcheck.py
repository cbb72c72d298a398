"""Self-checks of the mpmath oracle (refloss.oracle) and the input battery (refloss.cases)."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from mpmath import mp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from refloss import cases  # noqa: E402
from refloss.oracle import oracle  # noqa: E402
from refloss.oracle import (  # noqa: E402
    QUADRATURE,
    balanced_l1,
    focal_l1,
    huber,
    l1,
    round_to,
    smooth_l1,
    ulp,
    ulp_error,
)

E = math.e
BETAS = (1 / 9, 0.5, 1.0, 2.0, 3.0)
BALANCED_AG = ((0.5, 1.5), (1.0, 1.0))
FOCAL_BETAS = (1 / E, 0.5, 0.8, 1.0)

# (loss, params, kink) for every parameter set exercised here
PARAM_SETS = (
    [("smooth_l1", {"beta": b}, b) for b in BETAS]
    + [("huber", {"delta": b}, b) for b in BETAS]
    + [("balanced_l1", {"beta": b, "alpha": a, "gamma": g}, b) for b in BETAS for a, g in BALANCED_AG]
    + [("focal_l1", {"beta": b}, 1.0) for b in FOCAL_BETAS]
)
SMOOTH_SETS = [("l1", {}, 1.0), ("mse", {}, 1.0)] + PARAM_SETS


@pytest.fixture(autouse=True)
def _mp_precision():
    """Do the tests' own mpf arithmetic at 60 digits (the oracle works at 50)."""
    with mp.workdps(60):
        yield


def _ids(sets):
    return [f"{name}-" + ",".join(f"{k}={v:.4g}" for k, v in p.items()) for name, p, _ in sets]


def _rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), mp.mpf(10) ** -300)


def _points(kink, ratios, targets=(0.0, 0.25, -3.0)):
    """(pred, target) floats with |pred - target| ~ ratio * kink, alternating sign and target."""
    out = []
    for i, r in enumerate(ratios):
        t = targets[i % len(targets)]
        out.append((t + (-1) ** i * r * kink, t))
    return out


QUAD_RATIOS = (1e-6, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0, 1.0, 1.001,
               1.2, 1.5, 2.0, 3.0, 7.0, 10.0, 100.0, 1e3, 1e5)


# ---------------------------------------------------------------- oracle


@pytest.mark.parametrize("name,params,kink", PARAM_SETS, ids=_ids(PARAM_SETS))
def test_closed_form_matches_quadrature(name, params, kink):
    closed, quad = oracle(name), QUADRATURE[name]
    points = _points(kink, QUAD_RATIOS) + [(kink, 0.0), (0.0, kink), (1.5, 1.5)]
    for pred, target in points:
        c, q = closed(pred, target, **params), quad(pred, target, **params)
        for cv, qv in zip(c, q):
            assert _rel_diff(cv, qv) < mp.mpf(10) ** -30, (pred, target, c, q)


@pytest.mark.parametrize("name,params,kink", SMOOTH_SETS, ids=_ids(SMOOTH_SETS))
def test_gradients_match_numerical_derivative(name, params, kink):
    f = oracle(name)
    h = mp.mpf(10) ** -15
    for pred, target in _points(kink, (0.013, 0.3, 0.7, 1.7, 5.0, 40.0)):
        _, gp, gt = f(pred, target, **params)
        p0, t0 = mp.mpf(pred), mp.mpf(target)
        dp = mp.diff(lambda p: f(p, t0, **params)[0], p0, h=h)
        dt = mp.diff(lambda t: f(p0, t, **params)[0], t0, h=h)
        assert _rel_diff(gp, dp) < 1e-18, (pred, target, gp, dp)
        assert _rel_diff(gt, dt) < 1e-18, (pred, target, gt, dt)
        assert gt == -gp


def test_zero_and_outer_boundary_conventions():
    for name, params, _ in SMOOTH_SETS:
        v, gp, gt = oracle(name)(2.5, 2.5, **params)
        assert v == 0 and gp == 0 and gt == 0, name
    # at |x| == beta the outer branch is used; the value is continuous anyway
    v, gp, _ = smooth_l1(2.0, 0.0, beta=2.0)
    assert v == 1 and gp == 1
    v, gp, _ = smooth_l1(-3.0, 0.0, beta=0.0)  # beta = 0 is L1
    assert (v, gp) == l1(-3.0, 0.0)[:2] == (3, -1)
    with pytest.raises(ValueError):
        smooth_l1(1.0, 0.0, beta=-1.0)
    with pytest.raises(ValueError):
        huber(1.0, 0.0, delta=0.0)


def test_known_values():
    v, gp, gt = smooth_l1(0.5, 0.0, beta=1.0)
    assert (v, gp, gt) == (0.125, 0.5, -0.5)
    assert huber(np.float32(3.0), np.float32(1.0), delta=1.0) == (1.5, 1, -1)
    # huber = delta * smooth_l1(beta=delta)
    for x in (0.3, 1.7, -4.0):
        for d in (0.5, 2.0):
            assert _rel_diff(huber(x, 0.0, d)[0], d * smooth_l1(x, 0.0, d)[0]) < 1e-45
    # float32 inputs are taken exactly (0.1f != 0.1)
    assert l1(np.float32(0.1), 0.0)[0] == mp.mpf(float(np.float32(0.1)))


@pytest.mark.parametrize("alpha,gamma", BALANCED_AG)
def test_balanced_l1_paper_form_at_beta_1(alpha, gamma):
    b = mp.e ** (mp.mpf(gamma) / alpha) - 1
    for x in (1e-7, 0.05, 0.4, 0.999, 1.0, 1.5, 20.0):
        a = mp.mpf(x)
        paper = (alpha / b * (b * a + 1) * mp.log(b * a + 1) - alpha * a if a < 1
                 else gamma * a + gamma / b - alpha)
        v, gp, _ = balanced_l1(-x, 0.0, beta=1.0, alpha=alpha, gamma=gamma)
        assert _rel_diff(v, paper) < 1e-45, x
        expected_grad = alpha * mp.log(b * a + 1) if a < 1 else mp.mpf(gamma)
        assert _rel_diff(-gp, expected_grad) < 1e-45, x


@pytest.mark.parametrize("alpha,gamma", BALANCED_AG)
def test_balanced_l1_scaling_law(alpha, gamma):
    # L_beta(x) = beta * L_1(x / beta), dL_beta/dx(x) = dL_1/dx(x / beta)
    for beta in BETAS:
        for x in (1e-5, 0.05, 0.3, 0.9, 2.0, 7.0):
            scaled = mp.mpf(x) / beta
            v_b, g_b, _ = balanced_l1(x, 0.0, beta=beta, alpha=alpha, gamma=gamma)
            v_1, g_1, _ = balanced_l1(scaled, 0.0, beta=1.0, alpha=alpha, gamma=gamma)
            assert _rel_diff(v_b, beta * v_1) < 1e-45, (beta, x)
            assert _rel_diff(g_b, g_1) < 1e-45, (beta, x)


def test_balanced_l1_tiny_x_no_cancellation():
    # (1+u) ln(1+u) - u ~ u^2/2: L ~ alpha b a^2 / (2 beta) for tiny a
    alpha, gamma, beta = 0.5, 1.5, 1 / 9
    b = mp.e ** 3 - 1
    for a in (1e-300, 1e-30, 1e-14):
        v = balanced_l1(a, 0.0, beta=beta, alpha=alpha, gamma=gamma)[0]
        u = b * a / beta
        approx = alpha * beta / b * (u**2 / 2 - u**3 / 6)
        assert _rel_diff(v, approx) < 1e-20, a


@pytest.mark.parametrize("beta", FOCAL_BETAS)
def test_focal_l1_continuity_and_c1_at_one(beta):
    eps = mp.mpf(2) ** -150
    below, at, above = 1 - eps, mp.one, 1 + eps
    vb, gb, _ = focal_l1(below, 0.0, beta=beta)
    va, ga, _ = focal_l1(at, 0.0, beta=beta)
    vc, gc, _ = focal_l1(above, 0.0, beta=beta)
    alpha = mp.e * beta
    assert abs(vc - va) < 1e-40 and abs(va - vb) < 1e-40
    assert abs(gc - ga) < 1e-40 and abs(ga - gb) < 1e-40
    assert _rel_diff(ga, -alpha * mp.log(beta)) < 1e-45
    # value/gradient 0 at 0, gradient peak alpha / (e beta) = 1 at a = 1/(e beta)
    # (for beta = float(1/e) the peak sits at the kink, on either side of it)
    assert focal_l1(0.0, 0.0, beta=beta) == (0, 0, 0)
    a_peak = 1 / (mp.e * beta)
    assert _rel_diff(focal_l1(a_peak, 0.0, beta=beta)[1], mp.one) < 1e-30


# -------------------------------------------------------------- rounding

F32, F64 = np.float32, np.float64


def _exact_sum(*terms):
    with mp.workprec(4000):
        return mp.fsum(mp.mpf(t) for t in terms)


def _pow2(e):
    return mp.ldexp(mp.one, e)


def test_round_to_float32_halfway_cases():
    assert round_to(_exact_sum(1, _pow2(-24)), F32) == 1.0
    assert round_to(_exact_sum(1, 3 * _pow2(-24)), F32) == 1 + 2.0**-22
    # just above half way: the float64 detour (double rounding) would give 1.0
    assert round_to(_exact_sum(1, _pow2(-24), _pow2(-100)), F32) == 1 + 2.0**-23
    assert round_to(_exact_sum(-1, -_pow2(-24), -_pow2(-100)), F32) == -(1 + 2.0**-23)
    assert round_to(_exact_sum(1, _pow2(-53)), F64) == 1.0
    assert round_to(_exact_sum(1, 3 * _pow2(-53)), F64) == 1 + 2.0**-51


def test_round_to_subnormals_and_specials():
    assert round_to(_pow2(-150), F32) == 0.0  # tie to even (zero)
    assert math.copysign(1, round_to(-_pow2(-150), F32)) == -1  # -0.0
    assert round_to(_exact_sum(_pow2(-150), _pow2(-200)), F32) == 2.0**-149
    assert round_to(3 * _pow2(-150), F32) == 2.0**-148
    assert round_to(5 * _pow2(-151), F32) == 2.0**-149  # 1.25 ulp
    assert round_to(_pow2(-1075), F64) == 0.0
    # float(mpf) double-rounds this one to 0.0
    assert round_to(_exact_sum(_pow2(-1075), _pow2(-1200)), F64) == 5e-324
    # subnormal -> normal boundary and overflow
    assert round_to(_exact_sum(_pow2(-126), -_pow2(-151)), F32) == 2.0**-126
    f32max = float(np.finfo(F32).max)
    assert round_to(_exact_sum(f32max, _pow2(103)), F32) == math.inf  # half way -> even = 2^128
    assert round_to(_exact_sum(f32max, _pow2(103), -_pow2(50)), F32) == f32max
    assert round_to(-_exact_sum(2**1024), F64) == -math.inf
    assert round_to(mp.mpf(0), F32) == 0.0
    assert round_to(mp.inf, np.dtype("float64")) == math.inf
    assert round_to(-mp.inf, F32) == -math.inf
    assert math.isnan(round_to(mp.nan, F32))
    assert round_to(mp.mpf(1) / 3, "float32") == float(np.float32(1 / 3))


def test_round_to_matches_hardware_rounding():
    rng = np.random.default_rng(1)
    vals = np.concatenate([
        rng.standard_normal(500) * 10.0 ** rng.uniform(-50, 39, 500),
        rng.standard_normal(300) * 2.0 ** rng.uniform(-155, -120, 300),  # float32 subnormals
        rng.standard_normal(100) * 2.0 ** rng.uniform(-1074, -1000, 100),
    ])
    with np.errstate(over="ignore"):
        for v in vals:
            assert round_to(mp.mpf(float(v)), F32) == float(np.float32(v)), v
            assert round_to(mp.mpf(float(v)), F64) == float(v), v


def test_ulp():
    assert ulp(1.0, F32) == 2.0**-23
    assert ulp(np.float32(-1.0), F64) == 2.0**-52
    assert ulp(0.0, F32) == 2.0**-149 and ulp(0.0, F64) == 5e-324
    assert ulp(np.finfo(F32).max, F32) == 2.0**104
    assert ulp(1e-40, F32) == 2.0**-149
    rng = np.random.default_rng(2)
    for v in 10.0 ** rng.uniform(-40, 38, 200):
        assert ulp(F32(v), F32) == np.spacing(F32(v))
        assert ulp(v, F64) == np.spacing(v)
    with pytest.raises(ValueError):
        ulp(math.inf, F64)
    with pytest.raises(ValueError):
        ulp(1e39, F32)


def test_ulp_error():
    one = mp.mpf(1)
    assert ulp_error(1.0, one, F32) == 0.0
    assert ulp_error(np.nextafter(F32(1), F32(2)), one, F32) == 1.0
    assert ulp_error(np.nextafter(F32(1), F32(0)), one, F32) == 0.5
    assert ulp_error(1.0, _exact_sum(1, _pow2(-24)), F32) == 0.5
    assert ulp_error(1.0, _exact_sum(1, _pow2(-60)), F64) == 2.0**-8
    assert ulp_error(float(np.float32(0.1)), mp.mpf(1) / 10, F32) <= 0.5
    assert ulp_error(0.0, _pow2(-149), F32) == 1.0
    assert ulp_error(math.nan, mp.nan, F32) == 0.0
    assert ulp_error(math.nan, one, F32) == math.inf
    assert ulp_error(1.0, mp.nan, F32) == math.inf
    assert ulp_error(math.inf, mp.inf, F64) == 0.0
    assert ulp_error(-math.inf, mp.inf, F64) == math.inf
    assert ulp_error(math.inf, one, F64) == math.inf
    assert ulp_error(1.0, mp.inf, F64) == math.inf
    assert ulp_error(math.inf, mp.mpf(2) ** 200, F32) == 0.0  # overflows in float32


# ------------------------------------------------------------------ cases

CASE_CONFIGS = [({"beta": 1 / 9}, ()), ({"delta": 1.0}, ()), ({"beta": 0.5}, (1.0,)),
                ({"beta": 0.5, "alpha": 0.5, "gamma": 1.5}, ()), ({}, ())]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("params,extra", CASE_CONFIGS)
def test_cases_dtypes_finite_and_groups(params, extra, dtype):
    groups = cases.elementwise_cases(params, dtype, kinks=extra, n_random=50)
    names = [g[0] for g in groups]
    expected = ["decades"] + (["kink"] if params or extra else []) + ["zero", "random"]
    assert names == expected
    tiny = np.finfo(dtype).tiny
    for name, pred, target in groups:
        assert pred.dtype == np.dtype(dtype) and target.dtype == np.dtype(dtype), name
        assert pred.ndim == 1 and pred.shape == target.shape and pred.size > 0, name
        assert np.isfinite(pred).all() and np.isfinite(target).all(), name
        for arr in (pred, target):  # no subnormal inputs
            assert not ((arr != 0) & (np.abs(arr) < tiny)).any(), name
    g = dict((n, (p, t)) for n, p, t in groups)
    assert len(g["random"][0]) == 50
    x = g["decades"][0][g["decades"][1] == 0]
    assert np.isclose(np.abs(x).min(), 1e-8) and np.isclose(np.abs(x).max(), 1e8)
    assert (x > 0).any() and (x < 0).any()
    zp, zt = g["zero"]
    assert (zp == zt).sum() >= 5
    assert {float(tiny), -float(tiny)} <= set((zp - zt).tolist())


@pytest.mark.parametrize("dtype", [F32, F64])
def test_kink_group_contains_exact_neighbours(dtype):
    params, extra = {"beta": 1 / 9, "delta": 2.0}, (1.0,)
    assert cases.kinks_from_params(params, extra) == (1 / 9, 1.0, 2.0)
    (_, pred, target), = [g for g in cases.elementwise_cases(params, dtype, kinks=extra) if g[0] == "kink"]
    x = pred[target == 0]  # target 0: x exact
    assert set(np.unique(target).tolist()) == {0.0, 1.0}
    up, down = dtype(np.inf), dtype(-np.inf)
    for k in (1 / 9, 1.0, 2.0):
        k = dtype(k)
        want = [k, k * dtype(1 + 1e-6), k * dtype(1 - 1e-6)]
        u = d = k
        for n in range(1, 17):
            u, d = np.nextafter(u, up), np.nextafter(d, down)
            if n in (1, 2, 16):
                want += [u, d]
        for w in want:
            assert w.dtype == np.dtype(dtype)
            assert (x == w).any() and (x == -w).any(), (k, w)


def test_random_group_reproducible_and_dtype_consistent():
    def rand(dtype, seed):
        return [g for g in cases.elementwise_cases({}, dtype, seed=seed) if g[0] == "random"][0]

    _, p1, t1 = rand(F64, 3)
    _, p2, t2 = rand(F64, 3)
    _, p3, _ = rand(F64, 4)
    _, p32, t32 = rand(F32, 3)
    assert len(p1) == 200 and np.array_equal(p1, p2) and np.array_equal(t1, t2)
    assert not np.array_equal(p1, p3)
    assert np.array_equal(t32, t1.astype(F32))
    assert np.allclose(p32, p1, rtol=1e-6, atol=1e-5)
    x = p1 - t1
    assert (x > 0).any() and (x < 0).any()


def test_near_kink_and_kink_groups():
    assert cases.KINK_GROUPS == {"kink", "zero"}
    x = np.array([0.0, 1e-9, 0.1, -1.0, 1.0000005, 1.00001, -2.0, 2.5], dtype=F32)
    mask = cases.near_kink(x, (1.0, 2.0))
    assert mask.tolist() == [True, True, False, True, True, False, True, False]
    assert cases.near_kink(x, (), rel=0.2).tolist() == [True, True, True] + [False] * 5


def test_cases_module_does_not_import_mpmath():
    tree = ast.parse((ROOT / "refloss" / "cases.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "mpmath" not in imported and "sympy" not in imported
    assert imported <= {"numpy", "__future__"}


@pytest.mark.parametrize("dtype", [F32, F64])
def test_oracle_runs_on_whole_battery(dtype):
    """Every oracle evaluates on every case; values >= 0, grads bounded, results round finitely."""
    configs = {"l1": {}, "mse": {}, "smooth_l1": {"beta": 1 / 9}, "huber": {"delta": 1.0},
               "balanced_l1": {"beta": 1.0, "alpha": 0.5, "gamma": 1.5}, "focal_l1": {"beta": 0.5}}
    for name, params in configs.items():
        extra = (1.0,) if name == "focal_l1" else ()
        for group, pred, target in cases.elementwise_cases(params, dtype, kinks=extra, n_random=20):
            for p, t in zip(pred[::3], target[::3]):
                v, gp, gt = oracle(name)(p, t, **params)
                assert v >= 0 and gp == -gt, (name, group, p, t)
                assert math.isfinite(round_to(v, F64)), (name, group, p, t)
                if name != "mse":
                    assert abs(gp) <= 2, (name, group, p, t)


@pytest.mark.parametrize("z", [16.0, 40.0, 300.0, 700.0])
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_focal_oracle_keeps_digits_where_the_target_gradient_cancels(z, target):
    """alpha_t (3 + gamma) = 1 (alpha 0.25, gamma 1 at target 1; alpha 0.75 at target 0), on the wrong side z of
    the hard target: d/dy's three terms, of size z, cancel to -alpha_t sigma(z) (l + (z + l) e^-z), l = ln(1 + e^-z)
    (the leading parts in closed form), e^-z of them: more than 50 digits from z = 116.  The oracle adds the digits
    its terms lost."""
    from refloss.oracle import classification as cls

    alpha = 0.25 if target == 1.0 else 0.75
    got = cls.sigmoid_focal_loss(-z if target == 1.0 else z, target, alpha=alpha, gamma=1.0)[2]
    with mp.workdps(400):
        u = mp.exp(-mp.mpf(z))
        lg = mp.log1p(u)
        want = -(1 - 2 * target) * -0.25 * (lg + (z + lg) * u) / (1 + u)
        assert abs(got - want) <= abs(want) * mp.mpf(10) ** -40, (z, target, got, want)
