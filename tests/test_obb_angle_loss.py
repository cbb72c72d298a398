"""obb_angle_loss, the angle term of ultralytics' oriented-box training (v8OBBLoss.calculate_angle_loss):
the formula written out, the oracle at angles far from 0 and where sin(4 phi) vanishes, its periods and
invariances, the conventions at zero-size targets, and ultralytics itself (tests/test_conformance.py pins it
over the rotated battery; here a few pairs with their gradients, float64)."""
import math

import numpy as np
import pytest

import refloss as rl
from refloss.oracle import rotated as oracle

RNG = np.random.default_rng(31)


def _boxes(n):
    return np.column_stack([RNG.normal(0, 2, (n, 2)), np.exp(RNG.uniform(-1.5, 1.5, (n, 2))),
                            RNG.uniform(-math.pi, math.pi, n)])


P, T = _boxes(40), _boxes(40)


def _grads(p, t, **params):
    v, (gp, gt) = rl.obb_angle_loss.value_and_grad(p, t, **params)
    return v, np.concatenate([gp, gt], axis=-1)


def test_listed_as_a_rotated_loss():
    assert "obb_angle_loss" in rl.ROTATED_LOSSES and "obb_angle_loss" in rl.ALL_LOSSES
    assert rl.obb_angle_loss.info.layouts == ("xywhr", "xywhr")
    assert "sin(2*(angle_p - angle_t))**2" in rl.obb_angle_loss.__doc__


@pytest.mark.parametrize("lam, eps", [(3.0, 0.0), (1.0, 0.0), (3.0, 1e-9)])
def test_the_formula_written_out(lam, eps):
    v = rl.obb_angle_loss(P, T, lam=lam, eps=eps, reduction="none")
    for i in range(len(P)):
        w, h = T[i, 2] + eps, T[i, 3] + eps
        want = math.exp(-math.log(w / h) ** 2 / lam**2) * math.sin(2 * (P[i, 4] - T[i, 4])) ** 2
        assert math.isclose(v[i], want, rel_tol=1e-13, abs_tol=1e-16)


def test_gradient_is_2_weight_sin_4phi_and_the_weights_derivative():
    v, g = _grads(P, T)
    phi = P[:, 4] - T[:, 4]
    r = np.log(T[:, 2] / T[:, 3])
    weight = np.exp(-r**2 / 9)
    np.testing.assert_allclose(g[:, 4], 2 * weight * np.sin(4 * phi), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g[:, 9], -g[:, 4], rtol=0, atol=0)
    np.testing.assert_allclose(g[:, 7], -2 * r / 9 / T[:, 2] * v, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g[:, 8], 2 * r / 9 / T[:, 3] * v, rtol=1e-12, atol=1e-15)
    assert not g[:, [0, 1, 2, 3, 5, 6]].any()  # centres and the prediction's size do not enter


# angles far from 0 (the rounded difference alone loses eps |angle| of phi), phi near pi/4 (sin 4 phi = 0: the
# gradient cos^2 - sin^2 would cancel), near 0 and near pi/2, and far from square targets
HARD = [((0, 0, 1, 1, 1000.3), (0, 0, 2, 1, 1000.3 - 1e-9)),
        ((0, 0, 1, 1, 1e4 + math.pi / 8), (0, 0, 3, 1, 1e4)),
        ((0, 0, 1, 1, math.pi / 4 + 1e-12), (0, 0, 1, 1, 0.0)),
        ((0, 0, 1, 1, 0.7853981633974483), (0, 0, 1.5, 1, 0.0)),
        ((0, 0, 1, 1, 1e-300), (0, 0, 1, 1, 0.0)),
        ((0, 0, 1, 1, math.pi / 2), (0, 0, 1, 1, 0.0)),
        ((0, 0, 1, 1, 0.4), (0, 0, 1e6, 1e-6, 0.0))]


@pytest.mark.parametrize("p, t", HARD)
def test_agrees_with_the_oracle_where_digits_are_easily_lost(p, t):
    p, t = np.array(p), np.array(t)
    v, g = _grads(p, t)
    ov, op, ot = oracle.obb_angle_loss(p, t)
    exact = np.array([float(x) for x in op + ot])
    # the exponent ln^2(w/h)/lambda^2 is rounded: a relative error of eps times it (1.9e-14 at w/h = 1e12)
    k = 1 + math.log(t[2] / t[3]) ** 2 / 9
    assert abs(v - float(ov)) <= 4e-16 * k * abs(float(ov))
    scale = np.abs(exact).max()
    assert np.abs(g - exact).max() <= 1e-15 * k * scale, (g, exact)


def test_periods_swap_translation_and_scale():
    v = rl.obb_angle_loss(P, T, reduction="none")
    turn = np.zeros(5)
    turn[4] = math.pi / 2
    np.testing.assert_allclose(rl.obb_angle_loss(P + turn, T, reduction="none"), v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rl.obb_angle_loss(P, T - turn, reduction="none"), v, rtol=1e-12, atol=1e-14)
    swapped = T[:, [0, 1, 3, 2, 4]] + turn  # the same box: w and h swapped, turned by pi/2
    np.testing.assert_allclose(rl.obb_angle_loss(P, swapped, reduction="none"), v, rtol=1e-12, atol=1e-14)
    shift, k = np.array([3.0, -7.0, 0, 0, 0]), np.array([5.0, 5.0, 5.0, 5.0, 1.0])
    np.testing.assert_array_equal(rl.obb_angle_loss(P + shift, T + shift, reduction="none"), v)
    np.testing.assert_allclose(rl.obb_angle_loss(P * k, T * k, reduction="none"), v, rtol=1e-14, atol=1e-16)


def test_zero_size_targets_and_invalid_boxes():
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.3])
    for t in ([0, 0, 0.0, 2.0, 0.0], [0, 0, 2.0, 0.0, 0.0]):
        v, g = _grads(p, np.array(t))
        assert v == 0.0 and not g.any()
        ov, op, ot = oracle.obb_angle_loss(p, t)
        assert ov == 0 and not any(op + ot)
    v, g = _grads(p, np.array([0, 0, 0.0, 0.0, 0.0]))
    assert math.isnan(v) and np.isnan(g).all()
    v, g = _grads(p, np.array([0, 0, 0.0, 0.0, 0.0]), eps=1e-9)  # ultralytics' eps: a point target is square
    assert v == pytest.approx(math.sin(0.6) ** 2, rel=1e-15)
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        rl.obb_angle_loss(p, np.array([0, 0, -1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="lam"):
        rl.obb_angle_loss(p, p, lam=0.0)


def test_float32_near_the_oracle():
    p, t = P.astype(np.float32), T.astype(np.float32)
    v, g = _grads(p, t)
    assert v.dtype == np.float32
    for i in range(0, 40, 7):
        ov, op, ot = oracle.obb_angle_loss(p[i], t[i])
        exact = np.array([float(x) for x in op + ot])
        assert abs(float(v[i]) - float(ov)) <= 5.37e-6
        assert np.abs(g[i] - exact).max() <= 5.37e-5 * np.abs(exact).max()


def test_ultralytics_calculate_angle_loss_with_its_gradients():
    torch = pytest.importorskip("torch")
    loss_mod = pytest.importorskip("ultralytics.utils.loss")
    p = torch.tensor(P[:8], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(T[:8], dtype=torch.float64, requires_grad=True)
    total = loss_mod.v8OBBLoss.calculate_angle_loss(None, p[None], t[None], torch.ones(1, 8, dtype=torch.bool),
                                                    torch.ones(8, dtype=torch.float64), 1.0)
    total.backward()
    v, (gp, gt) = rl.obb_angle_loss.value_and_grad(P[:8], T[:8], eps=1e-9, reduction="sum")
    assert math.isclose(v, total.item(), rel_tol=1e-13)
    np.testing.assert_allclose(gp, p.grad.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(gt, t.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_float32_nearly_square_target_keeps_the_log_ratio_digits():
    """ln(w/h) of a nearly square target as log1p((w - h)/h), w - h exact: the log of the rounded ratio was off
    by 1.2e-5 of ln(w/h) at this pair (the 10^7-pair sweep's worst, 107 ULP of d/dh_t); now about 1 ULP."""
    from refloss.oracle.rounding import ulp_error

    p = np.array([-3.3844430446624756, 2.0988142490386963, 2.0902185440063477, 0.9894559979438782,
                  -0.14025689661502838], np.float32)
    t = np.array([-591.8412475585938, 552.9970092773438, 0.48724788427352905, 0.4852835536003113,
                  2.2146544456481934], np.float32)
    _, (_, gt) = rl.obb_angle_loss.value_and_grad(p, t, lam=1.0)
    _, _, exact = oracle.obb_angle_loss(p.astype(float), t.astype(float), lam=1.0)
    for i in (2, 3):  # d/dw_t, d/dh_t: proportional to ln(w/h)
        assert ulp_error(gt[i], exact[i], np.float32) <= 4, (i, gt[i], exact[i])


@pytest.mark.parametrize("dtype,tw,th,lam", [(np.float32, 1e20, 1e-19, 100.0), (np.float32, 1e-19, 1e20, 100.0),
                                             (np.float64, 1e200, 1e-200, 1000.0), (np.float32, 3e-39, 1.0, 100.0)])
def test_a_target_ratio_beyond_the_float_range_keeps_its_weight(dtype, tw, th, lam):
    # w_t/h_t overflowed to inf (or to 0, or a subnormal): the weight's limit 0 was taken where the weight is 0.79
    # (|ln(w_t/h_t)|/lam = 0.92 < 27.3; a probe, 2026-12-07); now ln w_t - ln h_t there
    p, t = np.array([0, 0, 1, 1, 0.5], dtype), np.array([0, 0, tw, th, 0.1], dtype)
    v, g = _grads(p, t, lam=lam)
    ov, op, ot = oracle.obb_angle_loss(p, t, lam=lam)
    want = np.array([float(x) for x in op + ot])
    value_bar, grad_bar = (1e-14, 1e-13) if dtype == np.float64 else (5.4e-6, 5.4e-5)
    assert float(ov) > 0.1 and abs(float(v) - float(ov)) <= value_bar * float(ov), (float(v), float(ov))
    assert np.max(np.abs(g - want)) <= grad_bar * np.abs(want).max(), (g, want)
