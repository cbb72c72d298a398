"""SIoU (Gevorgyan, arXiv:2205.12740) and Wise-IoU (Tong et al., arXiv:2301.10051): what is their own.
The generic tests (oracle rows, finite differences, invariances at the defaults, float32, CUDA
simulator) pick both up from the index; here: the papers' special cases written out by hand,
coincident centres, the distance-cost sign (mmdetection's as a diagnosed variant), Wise-IoU's
detached quantities against torch autograd of the paper's formula, and the running-mean helper."""
import math

import numpy as np
import pytest

import refloss as rl
import refloss.testing as rt
from refloss.oracle import boxes as O

UNIT = [0.0, 0.0, 1.0, 1.0]


def _value(fn, p, t, **params):
    return float(fn(np.array([p]), np.array([t]), **params)[0])


# ------------------------------------------------------------------ SIoU: the paper's costs by hand

@pytest.mark.parametrize("target,expected", [
    # centres on a horizontal line: alpha = 0, Lambda = 0, gamma = 2; rho_x = (2/3)^2; equal shapes: Omega = 0
    ([2.0, 0.0, 3.0, 1.0], 1 + (1 - math.exp(-2 * 4 / 9)) / 2),
    # on the diagonal: alpha = pi/4, Lambda = 1, gamma = 1, rho_x = rho_y = 1/4
    ([1.0, 1.0, 2.0, 2.0], 1 + (2 - 2 * math.exp(-1 / 4)) / 2),
    # overlapping, offset (1/2, 1/4): sin(2 alpha) = 2 (1/2)(1/4)/(1/4 + 1/16) = 4/5, gamma = 6/5;
    # c_w = 3/2, c_h = 5/4: rho_x = 1/9, rho_y = 1/25; IoU = (1/2 * 3/4)/(2 - 3/8) = 3/13
    ([0.5, 0.25, 1.5, 1.25], 1 - 3 / 13 + (2 - math.exp(-6 / 5 / 9) - math.exp(-6 / 5 / 25)) / 2),
])
def test_siou_special_cases_written_out(target, expected):
    assert _value(rl.siou_loss, UNIT, target) == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_siou_shape_cost_and_theta():
    """Same centre: the distance cost is 0 (its limit) and L = 1 - IoU + Omega/2, with
    omega_w = |2 - 1|/2, omega_h = 0; theta is the exponent."""
    p, t = [-0.5, 0.0, 1.5, 1.0], UNIT
    for theta in (4.0, 2.0):
        expected = 1 - 1 / 2 + (1 - math.exp(-0.5)) ** theta / 2
        assert _value(rl.siou_loss, p, t, theta=theta) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(ValueError, match="theta"):
        rl.siou_loss(np.array([p]), np.array([t]), theta=0.5)


def test_siou_at_coincident_centres_is_finite_and_the_limit():
    """Coincident centres: value and gradient finite, equal to the oracle's limit convention, and
    the gradient the limit of the gradients at offsets shrinking to 0 (several directions)."""
    p = np.array([[0.0, 0.0, 2.0, 3.0]])
    t = np.array([[0.5, 1.0, 1.5, 2.0]])  # same centre (1, 1.5)
    v, (gp, gt) = rl.siou_loss.value_and_grad(p, t)
    assert np.isfinite(v).all() and np.isfinite(gp).all() and np.isfinite(gt).all()
    ov, op, ot = O.siou_loss(p[0], t[0])
    assert abs(v[0] - float(ov)) < 1e-15
    np.testing.assert_allclose(np.concatenate([gp[0], gt[0]]), [float(x) for x in op + ot], rtol=1e-14, atol=1e-15)
    for d in ([1.0, 0.0], [0.6, -0.8], [0.0, 1.0]):
        shift = 1e-7 * np.array([d[0], d[1], d[0], d[1]])
        _, (gp2, gt2) = rl.siou_loss.value_and_grad(p + shift, t)
        np.testing.assert_allclose(gp2, gp, atol=1e-6)
        np.testing.assert_allclose(gt2, gt, atol=1e-6)


def test_siou_angle_cost_is_symmetric_in_alpha_and_beta():
    """The paper's switch between alpha and beta = pi/2 - alpha changes nothing: swapping x and y
    of both boxes gives the same loss."""
    p, t = np.array([[0.0, 0.0, 1.0, 2.0]]), np.array([[0.3, 1.4, 1.5, 2.2]])
    assert rl.siou_loss(p, t)[0] == pytest.approx(rl.siou_loss(p[:, [1, 0, 3, 2]], t[:, [1, 0, 3, 2]])[0], rel=1e-15)


def test_siou_invariances_with_the_variant():
    rng = np.random.default_rng(3)
    xy, wh = rng.integers(0, 64, (8, 2)), rng.integers(1, 64, (8, 2))
    p = np.concatenate([xy, xy + wh], 1) / 16.0
    xy, wh = rng.integers(0, 64, (8, 2)), rng.integers(1, 64, (8, 2))
    t = np.concatenate([xy, xy + wh], 1) / 16.0
    for params in ({"positive_exponent": True}, {"theta": 2.0}):
        v, (gp, gt) = rl.siou_loss.value_and_grad(p, t, **params)
        np.testing.assert_allclose(rl.siou_loss(p + [3.25, -1.5, 3.25, -1.5], t + [3.25, -1.5, 3.25, -1.5], **params),
                                   v, rtol=1e-12, atol=1e-13)
        v8, (gp8, gt8) = rl.siou_loss.value_and_grad(p * 8, t * 8, **params)
        np.testing.assert_allclose(v8, v, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(gp8, gp / 8, rtol=1e-12, atol=1e-14)


def test_siou_distance_cost_is_a_cost_in_the_paper_and_a_reward_in_mmdetection():
    """A unit square moving away from the unit-square target along a line, never overlapping: the
    paper's loss grows with the distance, mmdetection's default (positive_exponent=True) falls."""
    xs = np.array([2.0, 3.0, 5.0, 9.0])
    p = np.stack([xs, 0.5 * xs, xs + 1, 0.5 * xs + 1], 1)
    t = np.tile(UNIT, (len(xs), 1))
    paper, mmdet = rl.siou_loss(p, t), rl.siou_loss(p, t, positive_exponent=True)
    assert np.all(np.diff(paper) > 0) and np.all(np.diff(mmdet) < 0)
    assert np.all(mmdet < 1)  # 1 - IoU = 1 and Omega = 0: the distance term is negative


def _siou_torch(torch, pred, target, neg_gamma=True, eps=0.0):
    """SIoU in the structure of mmdetection's siou_loss (mmdet/models/losses/iou_loss.py, read, not
    copied), by default without its eps (exact arithmetic is what is checked) and with a safe sigma at
    coincident centres: ``neg_gamma=True`` is the paper's distance cost, mmdetection's default False the
    reward; ``eps > 0`` puts eps where mmdetection (after YOLOv6) does: union, centre offsets and heights
    + eps, the enclosing sides clamped at eps, the SIoU clamped to [-1, 1]."""
    ix = (torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    iy = (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1])).clamp(min=0)
    w1, h1 = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1]
    w2, h2 = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    inter = ix * iy
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    h1, h2 = h1 + eps, h2 + eps
    cw = (torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0])).clamp(min=eps)
    ch = (torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])).clamp(min=eps)
    s_cw = (target[:, 0] + target[:, 2] - pred[:, 0] - pred[:, 2]) * 0.5 + eps
    s_ch = (target[:, 1] + target[:, 3] - pred[:, 1] - pred[:, 3]) * 0.5 + eps
    sigma2 = s_cw**2 + s_ch**2
    sigma = torch.sqrt(torch.where(sigma2 > 0, sigma2, torch.ones_like(sigma2)))
    s1, s2 = s_cw.abs() / sigma, s_ch.abs() / sigma
    sin_alpha = torch.where(s1 > math.sqrt(2) / 2, s2, s1)
    angle = torch.cos(torch.asin(sin_alpha) * 2 - math.pi / 2)
    gamma = angle - 2 if neg_gamma else 2 - angle
    dist = 2 - torch.exp(gamma * (s_cw / cw) ** 2) - torch.exp(gamma * (s_ch / ch) ** 2)
    ow, oh = (w1 - w2).abs() / torch.maximum(w1, w2), (h1 - h2).abs() / torch.maximum(h1, h2)
    shape = (1 - torch.exp(-ow)) ** 4 + (1 - torch.exp(-oh)) ** 4
    siou = iou - 0.5 * (dist + shape)
    return 1 - (siou.clamp(min=-1.0, max=1.0) if eps else siou)


@pytest.mark.parametrize("neg_gamma", [False, True])
def test_check_loss_names_mmdetections_eps_placement_and_sign(neg_gamma):
    """With mmdetection's (YOLOv6's) eps = 1e-7 placements the variants no longer explain it; the
    recogniser siou_yolov6_eps does, and says which distance sign it found."""
    torch = pytest.importorskip("torch")
    r = rt.check_loss(lambda p, t: _siou_torch(torch, p, t, neg_gamma=neg_gamma, eps=1e-7), "siou_loss",
                      framework="torch", eps=1e-7)
    assert not r.ok and r.codes == ["siou_yolov6_eps"], str(r)
    assert ("paper's distance cost" in r.diagnosis) == neg_gamma and ("reward" in r.diagnosis) != neg_gamma


def test_check_loss_names_mmdetections_distance_sign():
    torch = pytest.importorskip("torch")
    r = rt.check_loss(lambda p, t: _siou_torch(torch, p, t, neg_gamma=False), "siou_loss", framework="torch",
                      cases="standard")
    assert not r.ok and r.codes[0] == "siou_distance_reward", str(r)
    r = rt.check_loss(lambda p, t: _siou_torch(torch, p, t), "siou_loss", framework="torch", cases="standard")
    assert r.ok or r.codes == ["convention_only"], str(r)


# ------------------------------------------------------------------ Wise-IoU

def _wiou_torch(torch, p, t, version=1, iou_mean=1.0, gamma=0.5, alpha=1.9, delta=3.0, detach=True):
    """Wise-IoU from the paper's formulas (arXiv:2301.10051, eqs. of v1, v2, v3), * as .detach()."""
    ix = (torch.minimum(p[:, 2], t[:, 2]) - torch.maximum(p[:, 0], t[:, 0])).clamp(min=0)
    iy = (torch.minimum(p[:, 3], t[:, 3]) - torch.maximum(p[:, 1], t[:, 1])).clamp(min=0)
    inter = ix * iy
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - inter
    l_iou = 1 - inter / union
    wg = torch.maximum(p[:, 2], t[:, 2]) - torch.minimum(p[:, 0], t[:, 0])
    hg = torch.maximum(p[:, 3], t[:, 3]) - torch.minimum(p[:, 1], t[:, 1])
    c2 = wg**2 + hg**2
    rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) / 2) ** 2 + ((p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) / 2) ** 2
    loss = torch.exp(rho2 / (c2.detach() if detach else c2)) * l_iou
    beta = l_iou.detach() / iou_mean
    if version == 2:
        loss = beta**gamma * loss
    elif version == 3:
        loss = beta / (delta * alpha ** (beta - delta)) * loss
    return loss


@pytest.mark.parametrize("params", [{}, {"enclosing_grad": True}, {"version": 2, "iou_mean": 0.7},
                                    {"version": 2, "iou_mean": 0.3, "gamma": 1.5},
                                    {"version": 3, "iou_mean": 0.5}, {"version": 3, "iou_mean": 0.9, "alpha": 1.7,
                                                                      "delta": 2.7}])
def test_wiou_matches_torch_autograd_of_the_papers_formula(params):
    """Value and gradients (the detached diagonal and focusing factors) against torch autograd of the
    paper's formula, float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    xy, wh = rng.uniform(-2, 2, (16, 2)), rng.uniform(0.2, 3, (16, 2))
    p = np.concatenate([xy, xy + wh], 1)
    xy, wh = rng.uniform(-2, 2, (16, 2)), rng.uniform(0.2, 3, (16, 2))
    t = np.concatenate([xy, xy + wh], 1)
    tp, tt = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
    kw = {k: v for k, v in params.items() if k != "enclosing_grad"}
    ref = _wiou_torch(torch, tp, tt, detach=not params.get("enclosing_grad", False), **kw)
    ref.sum().backward()
    v, (gp, gt) = rl.wiou_loss.value_and_grad(p, t, **params)
    np.testing.assert_allclose(v, ref.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gp, tp.grad.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gt, tt.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_wiou_detach_changes_the_gradient_not_the_value():
    p, t = np.array([[0.0, 0.0, 1.0, 1.0]]), np.array([[1.5, 0.5, 3.0, 2.0]])
    v, (gp, _) = rl.wiou_loss.value_and_grad(p, t)
    v2, (gp2, _) = rl.wiou_loss.value_and_grad(p, t, enclosing_grad=True)
    assert v[0] == v2[0] and not np.allclose(gp, gp2)
    # disjoint: L_IoU = 1, L = exp(rho^2/c^2), rho^2 = 1.75^2 + 0.75^2, c^2 = 3^2 + 2^2
    assert v[0] == pytest.approx(math.exp((1.75**2 + 0.75**2) / 13), rel=1e-15)


def test_wiou_v3_focusing_factor_by_hand():
    """v3 = r * v1, r = beta/(delta alpha^(beta - delta)): r = 1 at beta = delta (the paper's
    anchor: the gradient gain is 1 where the outlier degree equals delta)."""
    p, t = np.array([[0.0, 0.0, 2.0, 1.0]]), np.array([[0.0, 0.0, 1.0, 1.0]])  # same left edge, IoU = 1/2
    v1 = rl.wiou_loss(p, t)[0]
    for mean, alpha, delta in ((0.5 / 3, 1.9, 3.0), (0.25, 1.9, 3.0), (0.5 / 2.7, 1.7, 2.7)):
        beta = 0.5 / mean
        r = beta / (delta * alpha ** (beta - delta))
        v3 = rl.wiou_loss(p, t, version=3, iou_mean=mean, alpha=alpha, delta=delta)[0]
        assert v3 == pytest.approx(r * v1, rel=1e-14)
    assert rl.wiou_loss(p, t, version=3, iou_mean=0.5 / 3)[0] == pytest.approx(v1, rel=1e-14)
    assert rl.wiou_loss(p, t, version=2, iou_mean=0.125)[0] == pytest.approx(2 * v1, rel=1e-14)  # sqrt(4)


@pytest.mark.parametrize("bad,error", [({"version": 4}, ValueError), ({"version": 2.5}, ValueError),
                                       ({"version": 0}, ValueError), ({"version": True}, TypeError),
                                       ({"iou_mean": 0.0}, ValueError), ({"alpha": -1.0}, ValueError)])
def test_wiou_parameters_are_validated(bad, error):
    with pytest.raises(error, match=next(iter(bad))):
        rl.wiou_loss(np.array([UNIT]), np.array([UNIT]), **bad)


def test_wiou_enclosing_grad_is_diagnosed():
    torch = pytest.importorskip("torch")
    r = rt.check_loss(lambda p, t: _wiou_torch(torch, p, t, detach=False), "wiou_loss", framework="torch",
                      cases="standard")
    assert not r.ok and r.codes[0] == "wiou_enclosing_grad", str(r)


def test_wiou_running_mean_helper():
    """As the reference code: mean <- (1 - m) mean + m * batch mean of L_IoU; m = 1 - 0.05^(1/(n t))
    leaves 5% of the starting value after n t updates."""
    assert rl.wiou_update_mean(1.0, [0.2, 0.4], 0.01) == pytest.approx(0.99 + 0.01 * 0.3, rel=1e-15)
    m = rl.wiou_momentum(100, 3)
    assert (1 - m) ** 300 == pytest.approx(0.05, rel=1e-12)
    mean = 1.0
    for _ in range(300):
        mean = rl.wiou_update_mean(mean, np.zeros((2, 3)), m)
    assert mean == pytest.approx(0.05, rel=1e-12)
    for args, error in (((0.0, [0.1], 0.1), ValueError), ((1.0, [], 0.1), ValueError), ((1.0, [1.5], 0.1), ValueError),
                        ((1.0, [0.1], 0.0), ValueError), ((1.0, ["a"], 0.1), TypeError), (("1", [0.1], 0.1), TypeError)):
        with pytest.raises(error):
            rl.wiou_update_mean(*args)
    with pytest.raises(ValueError, match="epochs"):
        rl.wiou_momentum(10, 0)
    with pytest.raises(ValueError, match="batches_per_epoch must be finite, got an integer beyond float's range"):
        rl.wiou_momentum(10**5000, 10)  # (OverflowError from float() before)
