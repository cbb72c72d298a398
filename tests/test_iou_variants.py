"""What is each issue-15 IoU variant's own (Alpha-IoU, NWD, MPDIoU, Shape-IoU, Inner-IoU): the papers' special cases and
worked values, invariances, parameter validation.  Oracle agreement on the battery, float32, CUDA
simulator, vectors etc. come from the generic tests parametrised over the index."""
import math

import numpy as np
import pytest

import refloss as rl
from refloss.oracle import boxes as oracle

RNG = np.random.default_rng(15)


def _boxes(n, scale=10.0):
    xy = RNG.uniform(-scale, scale, (n, 2))
    wh = RNG.uniform(0.1, scale, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


P, T = _boxes(6), _boxes(6)
T[:3] = P[:3] + RNG.uniform(-0.5, 0.5, (3, 4)) * [1, 1, 0, 0]  # overlapping pairs too
T[:3, 2:] = np.maximum(T[:3, 2:], T[:3, :2] + 0.1)


def _close_to_oracle(fn, pred, target, rtol=1e-13, **params):
    value, (gp, gt) = getattr(rl, fn).value_and_grad(pred, target, **params)
    for i in range(len(pred)):
        v, dp, dt = getattr(oracle, fn)(pred[i], target[i], **params)
        scale = max(1.0, max(abs(float(x)) for x in dp + dt))
        assert abs(value[i] - float(v)) <= rtol * max(1.0, abs(float(v)))
        assert np.max(np.abs(np.r_[gp[i], gt[i]] - np.array([float(x) for x in dp + dt], float))) <= rtol * scale


# ------------------------------------------------------------------------------------------ Alpha-IoU

@pytest.mark.parametrize("form,base", [("iou", "iou_loss"), ("giou", "giou_loss"), ("diou", "diou_loss"),
                                       ("ciou", "ciou_loss")])
def test_alpha_one_is_the_base_loss(form, base):
    # the paper: alpha = 1 recovers the base loss (L_IoU, L_GIoU, L_DIoU, L_CIoU with its beta a constant in the
    # gradient, as ciou_loss's default)
    got = rl.alpha_iou_loss.value_and_grad(P, T, alpha=1.0, form=form)
    want = getattr(rl, base).value_and_grad(P, T)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13, atol=1e-15)
    # gradients where the penalty is > 0: at P = 0 the power's derivative is 0 by convention (also at alpha = 1)
    pen = rl.alpha_iou_loss(P, T, alpha=1.0, form=form) - rl.iou_loss(P, T)
    keep = pen > 0 if form != "iou" else np.ones(len(P), bool)
    assert keep.sum() >= 3
    np.testing.assert_allclose(np.c_[got[1]][keep], np.c_[want[1]][keep], rtol=1e-12, atol=1e-14)


def test_alpha_power_and_penalty_from_the_paper():
    # 1 - IoU^alpha + P^alpha with IoU, P written out for two boxes: pred (0,0,2,2), target (1,0,3,2)
    pred, target = np.array([0.0, 0, 2, 2]), np.array([1.0, 0, 3, 2])
    iou, giou_p, diou_p = 2 / 6, 0.0, 1 / (9 + 4)  # C = U; rho = 1, c^2 = 3^2 + 2^2
    for form, pen in (("iou", 0.0), ("giou", giou_p), ("diou", diou_p)):
        for a in (0.5, 3.0):
            assert math.isclose(float(rl.alpha_iou_loss(pred, target, alpha=a, form=form)), 1 - iou**a + pen**a,
                                rel_tol=1e-14)


def test_alpha_ciou_from_the_paper_in_torch():
    # L = 1 - IoU^alpha + (rho^2/c^2)^alpha + (beta v)^alpha, beta = v/((1 - IoU) + v) under no_grad, written in
    # torch from the paper; value and autograd gradient at alpha 3 and 1/2
    torch = pytest.importorskip("torch")
    for a in (3.0, 0.5):
        p = torch.tensor(P, requires_grad=True)
        t = torch.tensor(T, requires_grad=True)
        wp, hp = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        wt, ht = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        iw = (torch.minimum(p[:, 2], t[:, 2]) - torch.maximum(p[:, 0], t[:, 0])).clamp(min=0)
        ih = (torch.minimum(p[:, 3], t[:, 3]) - torch.maximum(p[:, 1], t[:, 1])).clamp(min=0)
        iou = iw * ih / (wp * hp + wt * ht - iw * ih)
        cw = torch.maximum(p[:, 2], t[:, 2]) - torch.minimum(p[:, 0], t[:, 0])
        ch = torch.maximum(p[:, 3], t[:, 3]) - torch.minimum(p[:, 1], t[:, 1])
        rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) ** 2 + (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) ** 2) / 4
        v = (4 / math.pi**2) * (torch.atan2(wt, ht) - torch.atan2(wp, hp)) ** 2
        with torch.no_grad():
            beta = v / ((1 - iou) + v)
        loss = 1 - iou**a + (rho2 / (cw**2 + ch**2)) ** a + (beta * v) ** a
        loss.sum().backward()
        got, (gp, gt) = rl.alpha_iou_loss.value_and_grad(P, T, alpha=a, form="ciou")
        np.testing.assert_allclose(got, loss.detach().numpy(), rtol=1e-13)
        # (disjoint pairs at alpha < 1: torch's d(IoU^alpha) at IoU = 0 is inf * 0 = NaN, refloss's convention 0)
        keep = (iou > 0).numpy() | (a >= 1)
        assert keep.sum() >= 3
        np.testing.assert_allclose(np.c_[gp, gt][keep], np.c_[p.grad.numpy(), t.grad.numpy()][keep], rtol=1e-10,
                                   atol=1e-13)
        _close_to_oracle("alpha_iou_loss", P, T, alpha=a, form="ciou")
    # identical boxes: v = 0 and 1 - IoU = 0, so beta = 0/0; the aspect term is 0 with no gradient
    v, (gp, gt) = rl.alpha_iou_loss.value_and_grad(P, P, alpha=0.5, form="ciou")
    np.testing.assert_array_equal(v, 0.0)
    assert np.isfinite(np.r_[gp, gt]).all()


def test_alpha_accurate_near_iou_one():
    # IoU = 1 - 1e-12: 1 - IoU^3 ~ 3e-12 keeps its digits (1 - IoU**3 formed from IoU would lose ~4 of them)
    pred = np.array([[0.0, 0.0, 1.0, 1.0]])
    target = pred + np.array([[0.0, 0.0, 0.0, 1e-12]])
    _close_to_oracle("alpha_iou_loss", pred, target)
    _close_to_oracle("alpha_iou_loss", P, T, form="giou", alpha=0.5)


def test_alpha_disjoint_boxes():
    # IoU = 0: the IoU term is 1 with no gradient; the penalties still pull (alpha-GIoU, alpha-DIoU)
    pred, target = np.array([0.0, 0, 1, 1]), np.array([3.0, 0, 4, 1])
    v, (gp, _) = rl.alpha_iou_loss.value_and_grad(pred, target)
    assert v == 1.0 and not gp.any()
    v, (gp, _) = rl.alpha_iou_loss.value_and_grad(pred, target, form="diou")
    assert math.isclose(float(v), 1 + (9 / 17) ** 3, rel_tol=1e-14) and gp[0] > 0


@pytest.mark.parametrize("form", ["iou", "giou", "diou"])
def test_alpha_translation_and_scale_invariant(form):
    base = rl.alpha_iou_loss(P, T, form=form)
    np.testing.assert_allclose(rl.alpha_iou_loss(P + 3.25, T + 3.25, form=form), base, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rl.alpha_iou_loss(P * 8.0, T * 8.0, form=form), base, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("form", ["iou", "giou", "diou"])
def test_alpha_a_form_not_chosen_does_not_poison_the_chosen_one(form):
    """Each form's penalty is selected, not multiplied by a 0/1 indicator: float32, alpha 0.1, eps 1e4, nearly
    identical boxes, the CIoU aspect term's (beta v)^(alpha - 1) overflowed and 0 * inf made every gradient of
    the IoU, GIoU and DIoU forms NaN (a parameter probe, 2026-12-06).  Against the oracle at the float32 box bar
    (5.4e-6 value, 5.4e-5 of the largest gradient component), at the pair and at a corner-touching one."""
    pairs = [([0.006832262501120567, 0.1940915584564209, 0.628467321395874, 0.4493114650249481],
              [0.006832262966781855, 0.1940915584564209, 0.628467321395874, 0.4493114650249481], 0.1, 1e4),
             ([-10.511556625366211, -7.7239203453063965, 2.658262014389038, 31.086633682250977],
              [2.658262014389038, 31.086633682250977, 15.828080177307129, 69.89718627929688], 0.0537, 573.0)]
    for p, t, alpha, eps in pairs:
        p32, t32 = np.array([p], np.float32), np.array([t], np.float32)
        v, (gp, gt) = rl.alpha_iou_loss.value_and_grad(p32, t32, alpha=alpha, form=form, eps=eps)
        ev, dp, dt = oracle.alpha_iou_loss(p32[0].astype(float), t32[0].astype(float), alpha=alpha, form=form,
                                           eps=eps)
        exact = np.array([float(x) for x in dp + dt])
        assert abs(float(v[0]) - float(ev)) <= 5.4e-6 * max(1.0, abs(float(ev)))
        assert np.all(np.isfinite(gp)) and np.all(np.isfinite(gt))
        assert np.max(np.abs(np.r_[gp[0], gt[0]] - exact)) <= 5.4e-5 * max(np.max(np.abs(exact)), 1e-30), form


@pytest.mark.parametrize("beta_grad", [False, True])
def test_alpha_ciou_aspect_power_below_float32_s_normal_range(beta_grad):
    """(beta v)^alpha where beta v = v^2/(1 - IoU + v + eps) is subnormal or 0 in float32 (aspect ratios equal to
    float32's precision: v ~ 1e-29, and with eps ~1e2 v ~ 1e-19): the power is taken in float64 there and its
    derivative as alpha (beta v)^alpha (dbeta/beta + dv/v); D one precision up where the aspect ratios agree to
    2^-26.  Before, alpha 0.05: the value 1.2-1.5 % off and every
    gradient 0 (the power of an underflowed 0), or +-inf (alpha (beta v)^(alpha - 1) overflowed; alpha 0.0537, eps
    100-573).  Against the oracle at the float32 box bar (5.4e-6 value, 5.4e-5 of the largest gradient component)."""
    n = 2.0**23  # sides 2^23 +- 1: w_t h_p - h_t w_p = -1 of 2^47
    corner = ([-10.511556625366211, -7.7239203453063965, 2.658262014389038, 31.086633682250977],
              [2.658262014389038, 31.086633682250977, 15.828080177307129, 69.89718627929688])
    # sides grown by one factor: aspect ratios equal to 2^-35, where D's float32 cross product kept 2^-13 (now one
    # precision up) and v^2 was subnormal with beta v normal (now beta times v): found by 2^25 sweeps at alpha 0.05
    grown = ([-1.6061147789514507e-06, -3.4874055927502923e-06, 6.538513844134286e-06, 8.149307177518494e-06],
             [-1.6061153473856393e-06, -3.4874062748713186e-06, 6.53851566312369e-06, 8.1493099060026e-06])
    near = ([33.675086975097656, -77.29733276367188, 91.89675903320312, -19.038894653320312],
            [33.67512893676758, -77.29734802246094, 91.89679718017578, -19.03891372680664])
    cases = [([0, 0, n, n - 1], [0, 0, n + 1, n], 0.05, 0.0), ([5, 7, 5 + n, 6 + n], [3, 4, 4 + n, 4 + n], 0.05, 0.0),
             ([5, 7, 5 + n, 6 + n], [3, 4, 4 + n, 4 + n], 0.1, 1e-7), (*corner, 0.0537, 100.0), (*corner, 0.0537, 573.0),
             (*grown, 0.05, 0.0), (*grown, 0.25, 0.0), (*near, 0.05, 0.0)]
    for p, t, alpha, eps in cases:
        p32, t32 = np.array([p], np.float32), np.array([t], np.float32)
        v, (gp, gt) = rl.alpha_iou_loss.value_and_grad(p32, t32, alpha=alpha, form="ciou", eps=eps, beta_grad=beta_grad)
        ev, dp, dt = oracle.alpha_iou_loss(p32[0].astype(float), t32[0].astype(float), alpha=alpha, form="ciou",
                                           eps=eps, beta_grad=beta_grad)
        exact = np.array([float(x) for x in dp + dt])
        assert abs(float(v[0]) - float(ev)) <= 5.4e-6 * abs(float(ev)), (p, t, alpha, eps)
        assert np.max(np.abs(np.r_[gp[0], gt[0]] - exact)) <= 5.4e-5 * np.max(np.abs(exact)), (p, t, alpha, eps)


def test_alpha_parameters_validated():
    with pytest.raises(ValueError, match="form"):
        rl.alpha_iou_loss(P, T, form="eiou")
    with pytest.raises(TypeError, match="form"):
        rl.alpha_iou_loss(P, T, form=1)
    with pytest.raises(ValueError, match="alpha"):
        rl.alpha_iou_loss(P, T, alpha=0.0)


# ---------------------------------------------------------------------------------------------- NWD

def test_nwd_paper_formula():
    # equal sizes, centres 5 apart: W2 = 5, NWD = exp(-5/C); sizes differing by (2, 4): W2^2 += 1 + 4
    pred = np.array([[0.0, 0, 2, 2], [0.0, 0, 2, 2]])
    target = np.array([[3.0, 4, 5, 6], [-1.0, -2, 3, 4]])
    np.testing.assert_allclose(rl.nwd_loss(pred, target), [1 - math.exp(-5 / 12.8), 1 - math.exp(-math.sqrt(5) / 12.8)],
                               rtol=1e-15)
    assert math.isclose(float(rl.nwd_loss(pred[0], target[0], c=2.0)), -math.expm1(-2.5), rel_tol=1e-15)


def test_nwd_coincident_boxes_convention():
    v, (gp, gt) = rl.nwd_loss.value_and_grad(P, P)
    assert not v.any() and not gp.any() and not gt.any()
    # eps > 0 (the authors' 1e-7) makes it smooth there: value 1 - exp(-sqrt(eps)/C), gradient 0 by symmetry
    v = rl.nwd_loss(P[:1], P[:1], eps=1e-6)
    assert math.isclose(float(v[0]), -math.expm1(-1e-3 / 12.8), rel_tol=1e-14)


def test_nwd_translation_invariant_not_scale_invariant():
    base = rl.nwd_loss(P, T)
    np.testing.assert_allclose(rl.nwd_loss(P - 7.5, T - 7.5), base, rtol=1e-13)
    assert not np.allclose(rl.nwd_loss(2 * P, 2 * T), base)
    # W2 is a length: scaling the boxes and C together leaves it unchanged
    np.testing.assert_allclose(rl.nwd_loss(2 * P, 2 * T, c=25.6), base, rtol=1e-14)


def test_nwd_authors_eps_matches_torch_transcription():
    # the authors' code adds eps to the squared centre distance and to each width and height (which cancel in the
    # differences): eps=1e-7 here; written in torch from that description, value and autograd gradient
    torch = pytest.importorskip("torch")
    p = torch.tensor(P, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    centre = ((p[:, :2] + p[:, 2:]) / 2 - (t[:, :2] + t[:, 2:]) / 2).pow(2).sum(1) + 1e-7
    wh = ((p[:, 2:] - p[:, :2]) - (t[:, 2:] - t[:, :2])).pow(2).sum(1) / 4
    loss = 1 - torch.exp(-torch.sqrt(centre + wh) / 12.8)
    loss.sum().backward()
    v, (gp, gt) = rl.nwd_loss.value_and_grad(P, T, eps=1e-7)
    np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(np.r_[gp, gt], np.r_[p.grad.numpy(), t.grad.numpy()], rtol=1e-11, atol=1e-15)


def test_nwd_c_validated():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="c"):
            rl.nwd_loss(P, T, c=bad)


# ------------------------------------------------------------------------------------------- MPDIoU

def test_mpdiou_paper_formula():
    # L = 1 - IoU + d1^2/(w^2 + h^2) + d2^2/(w^2 + h^2) written out
    pred, target = np.array([0.0, 0, 2, 2]), np.array([1.0, 0, 3, 3])
    iou = 2 / (4 + 6 - 2)
    d1, d2 = 1.0, 1.0 + 1.0
    want = 1 - iou + (d1 + d2) / (640.0**2 + 480.0**2)
    assert math.isclose(float(rl.mpdiou_loss(pred, target, image_size=(640, 480))), want, rel_tol=1e-15)
    _close_to_oracle("mpdiou_loss", P, T, image_size=(20.0, 15.0))


def test_mpdiou_image_size_required_and_validated():
    with pytest.raises(TypeError, match="image_size: required"):
        rl.mpdiou_loss(P, T)
    for bad in ((0, 480), (640, -1), (640, float("inf")), (640, float("nan"))):
        with pytest.raises(ValueError, match="image_size"):
            rl.mpdiou_loss(P, T, image_size=bad)
    for bad in (640, (640,), "640x480", (640, 480, 3), (True, 2)):
        with pytest.raises(TypeError, match="image_size"):
            rl.mpdiou_loss(P, T, image_size=bad)


def test_mpdiou_translation_invariant_scale_only_with_the_image():
    base = rl.mpdiou_loss(P, T, image_size=(64, 48))
    np.testing.assert_allclose(rl.mpdiou_loss(P + 5.5, T + 5.5, image_size=(64, 48)), base, rtol=1e-13)
    assert not np.allclose(rl.mpdiou_loss(4 * P, 4 * T, image_size=(64, 48)), base)
    np.testing.assert_allclose(rl.mpdiou_loss(4 * P, 4 * T, image_size=(256, 192)), base, rtol=1e-14)


# ------------------------------------------------------------------------------------------ Shape-IoU

def test_shape_iou_paper_formula_written_out():
    # pred (0, 0, 2, 1) against target (1, 0, 2, 2): IoU = 1/(2 + 2 - 1), centres (1, 0.5) and (1.5, 1), enclosing
    # box 2 x 2 (c^2 = 8); target w = 1, h = 2: at scale 1, ww = 2/3, hh = 4/3
    pred, target = np.array([0.0, 0, 2, 1]), np.array([1.0, 0, 2, 2])
    for scale, ww, hh in ((0.0, 1.0, 1.0), (1.0, 2 / 3, 4 / 3), (2.0, 2 / 5, 8 / 5)):
        distance = (hh * 0.5**2 + ww * 0.5**2) / 8
        omega_w, omega_h = hh * 1 / 2, ww * 1 / 2
        shape = (1 - math.exp(-omega_w)) ** 4 + (1 - math.exp(-omega_h)) ** 4
        want = 1 - 1 / 3 + distance + shape / 2
        assert math.isclose(float(rl.shape_iou_loss(pred, target, scale=scale)), want, rel_tol=1e-15)


def test_shape_iou_against_the_oracle_and_a_torch_transcription():
    # the paper's formula written in torch (value and autograd gradient), weights not detached
    # (with eps = 1e-7: the authors' shape_iou adds it to the union and to the squared diagonal, where refloss's
    # eps goes, and nowhere else)
    torch = pytest.importorskip("torch")
    for scale, eps in ((0.0, 0.0), (0.5, 0.0), (4.0, 0.0), (0.0, 1e-7), (4.0, 1e-7)):
        p = torch.tensor(P, requires_grad=True)
        t = torch.tensor(T, requires_grad=True)
        wp, hp = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        wt, ht = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        iw = (torch.minimum(p[:, 2], t[:, 2]) - torch.maximum(p[:, 0], t[:, 0])).clamp(min=0)
        ih = (torch.minimum(p[:, 3], t[:, 3]) - torch.maximum(p[:, 1], t[:, 1])).clamp(min=0)
        inter = iw * ih
        iou = inter / (wp * hp + wt * ht - inter + eps)
        ww = 2 * wt.pow(scale) / (wt.pow(scale) + ht.pow(scale))
        hh = 2 * ht.pow(scale) / (wt.pow(scale) + ht.pow(scale))
        cw = torch.maximum(p[:, 2], t[:, 2]) - torch.minimum(p[:, 0], t[:, 0])
        ch = torch.maximum(p[:, 3], t[:, 3]) - torch.minimum(p[:, 1], t[:, 1])
        dx = (p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) / 2
        dy = (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) / 2
        distance = (hh * dx**2 + ww * dy**2) / (cw**2 + ch**2 + eps)
        shape = (1 - torch.exp(-hh * (wp - wt).abs() / torch.maximum(wp, wt))) ** 4 \
            + (1 - torch.exp(-ww * (hp - ht).abs() / torch.maximum(hp, ht))) ** 4
        loss = 1 - iou + distance + shape / 2
        loss.sum().backward()
        v, (gp, gt) = rl.shape_iou_loss.value_and_grad(P, T, scale=scale, eps=eps)
        np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(np.r_[gp, gt], np.r_[p.grad.numpy(), t.grad.numpy()], rtol=1e-11, atol=1e-14)
        _close_to_oracle("shape_iou_loss", P, T, scale=scale, eps=eps)


def test_shape_iou_scale_zero_is_diou_plus_half_the_siou_shape_cost():
    # ww = hh = 1: the shape distance is DIoU's rho^2/c^2 and the shape cost SIoU's with theta = 4
    # (at coincident centres SIoU's distance cost is 0, so SIoU there is 1 - IoU + Omega/2)
    pred = np.array([[0.0, 0, 2, 1], [1.0, 1, 4, 5], [0.0, 0, 3, 3]])
    target = np.array([[0.5, -0.25, 1.5, 1.25], [1.5, 0, 3.5, 6], [-1.0, -1, 4, 4]])  # equal centres
    np.testing.assert_allclose(rl.shape_iou_loss(pred, target), rl.siou_loss(pred, target), rtol=1e-15)
    # any pair: the shape cost depends on the sizes only, so it is SIoU's minus 1 - IoU with pred moved to
    # the target's centre
    shift = ((T[:, :2] + T[:, 2:]) - (P[:, :2] + P[:, 2:])) / 2
    centred = P + np.c_[shift, shift]
    half_shape = rl.siou_loss(centred, T) - rl.iou_loss(centred, T)
    np.testing.assert_allclose(rl.shape_iou_loss(P, T) - rl.diou_loss(P, T), half_shape, rtol=1e-12, atol=1e-15)
    assert np.all(half_shape > 0)


def test_shape_iou_translation_and_scale_invariant_weights_from_the_target():
    for scale in (0.0, 4.0):
        base = rl.shape_iou_loss(P, T, scale=scale)
        np.testing.assert_allclose(rl.shape_iou_loss(P + 5.5, T + 5.5, scale=scale), base, rtol=1e-13)
        np.testing.assert_allclose(rl.shape_iou_loss(8 * P, 8 * T, scale=scale), base, rtol=1e-13)
    # the weights are the target's: a tall target weights the horizontal offset more (hh > 1) at scale > 0
    pred, target = np.array([1.0, 0, 2, 4]), np.array([0.0, 0, 1, 4])  # offset along x only
    assert rl.shape_iou_loss(pred, target, scale=1.0) > rl.shape_iou_loss(pred, target, scale=0.0)
    pred = np.array([0.0, 1, 1, 5])  # the same target, offset along y only: ww < 1 weights it less
    assert rl.shape_iou_loss(pred, target, scale=1.0) < rl.shape_iou_loss(pred, target, scale=0.0)


def test_shape_iou_degenerate_targets():
    # zero-height target: finite value and gradient at scale 0 and 4 (d(h^s)/dh taken as 0 at h = 0), equal to
    # the oracle; a point target: the weights are 0/0 for scale > 0 (NaN, as the authors' code) and 1 at scale 0
    pred, flat = np.array([[0.0, 0, 2, 1]]), np.array([[0.5, 0.5, 1.5, 0.5]])
    for scale in (0.0, 4.0):
        v, (gp, gt) = rl.shape_iou_loss.value_and_grad(pred, flat, scale=scale)
        assert np.isfinite(v).all() and np.isfinite(gp).all() and np.isfinite(gt).all()
        _close_to_oracle("shape_iou_loss", pred, flat, scale=scale)
    point = np.array([[1.0, 0.5, 1.0, 0.5]])
    assert np.isfinite(rl.shape_iou_loss(pred, point, scale=0.0)).all()
    _close_to_oracle("shape_iou_loss", pred, point, scale=0.0)
    assert np.isnan(rl.shape_iou_loss(pred, point, scale=4.0)).all()
    assert math.isnan(float(oracle.shape_iou_loss(pred[0], point[0], scale=4.0)[0]))


def test_shape_iou_scale_validated():
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="scale"):
            rl.shape_iou_loss(P, T, scale=bad)


# ------------------------------------------------------------------------------------------ Inner-IoU

def _inner(b, ratio):
    c, half = (b[..., :2] + b[..., 2:]) / 2, (b[..., 2:] - b[..., :2]) * ratio / 2
    return np.concatenate([c - half, c + half], axis=-1)


def test_inner_iou_paper_formula_written_out():
    # pred (0, 0, 4, 2), target (2, 0, 6, 2); at ratio 0.5 the auxiliary boxes are (1, 0.5, 3, 1.5) and
    # (3, 0.5, 5, 1.5): touching, IoU^inner = 0; at ratio 1.5, (-1, -0.5, 5, 2.5) and (1, -0.5, 7, 2.5):
    # I = 4 x 3, U = 2 x 18 - 12
    pred, target = np.array([0.0, 0, 4, 2]), np.array([2.0, 0, 6, 2])
    assert float(rl.inner_iou_loss(pred, target, ratio=0.5)) == 1.0
    assert math.isclose(float(rl.inner_iou_loss(pred, target, ratio=1.5)), 1 - 12 / 24, rel_tol=1e-15)
    assert math.isclose(float(rl.inner_iou_loss(pred, target)), 1 - (1 * 1.5) / (2 * 3 * 1.5 - 1 * 1.5), rel_tol=1e-15)


def test_inner_iou_is_the_iou_loss_of_the_auxiliary_boxes():
    # value and gradient: the iou_loss of the scaled boxes, its gradient pulled back through the scaling
    # (d/dx1 = (1 + r)/2 d/dx1' + (1 - r)/2 d/dx2'); ratio 1 is the IoU loss
    for ratio in (0.5, 0.75, 1.0, 1.4):
        v, (gp, gt) = rl.inner_iou_loss.value_and_grad(P, T, ratio=ratio)
        vi, (gpi, gti) = rl.iou_loss.value_and_grad(_inner(P, ratio), _inner(T, ratio))
        a, b = (1 + ratio) / 2, (1 - ratio) / 2
        pull = np.array([[a, 0, b, 0], [0, a, 0, b], [b, 0, a, 0], [0, b, 0, a]])
        np.testing.assert_allclose(v, vi, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(np.r_[gp, gt], np.r_[gpi @ pull, gti @ pull], rtol=1e-12, atol=1e-14)
        _close_to_oracle("inner_iou_loss", P, T, ratio=ratio)
    np.testing.assert_array_equal(rl.inner_iou_loss(P, T, ratio=1.0), rl.iou_loss(P, T))


def test_inner_ciou_of_the_paper_matches_a_torch_transcription():
    # the authors' inner_ciou returns IoU^inner - (rho^2/c^2 + alpha v) with eps = 1e-7 in both unions and the
    # diagonal, alpha detached; as a loss, 1 minus it = ciou_loss - iou_loss + inner_iou_loss (L_Inner-CIoU =
    # L_CIoU + IoU - IoU^inner, the paper), written in torch from that description
    torch = pytest.importorskip("torch")
    eps, ratio = 1e-7, 0.75
    p = torch.tensor(P, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)

    def inter_union(a, b):
        w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
        h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
        area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
        return w * h, area(a) + area(b) - w * h + eps

    def inner(b):
        c, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) * ratio / 2
        return torch.cat([c - half, c + half], dim=1)

    i, u = inter_union(p, t)
    iou = i / u
    ii, iu = inter_union(inner(p), inner(t))
    cw = torch.maximum(p[:, 2], t[:, 2]) - torch.minimum(p[:, 0], t[:, 0])
    ch = torch.maximum(p[:, 3], t[:, 3]) - torch.minimum(p[:, 1], t[:, 1])
    rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) ** 2 + (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan((t[:, 2] - t[:, 0]) / (t[:, 3] - t[:, 1]))
                            - torch.atan((p[:, 2] - p[:, 0]) / (p[:, 3] - p[:, 1]))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    loss = 1 - (ii / iu - (rho2 / (cw**2 + ch**2 + eps) + v * alpha))
    loss.sum().backward()
    parts = [f.value_and_grad(P, T, eps=eps) for f in (rl.ciou_loss, rl.iou_loss)]
    vin, (gpin, gtin) = rl.inner_iou_loss.value_and_grad(P, T, ratio=ratio, eps=eps)
    value = parts[0][0] - parts[1][0] + vin
    gp = parts[0][1][0] - parts[1][1][0] + gpin
    gt = parts[0][1][1] - parts[1][1][1] + gtin
    np.testing.assert_allclose(value, loss.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.r_[gp, gt], np.r_[p.grad.numpy(), t.grad.numpy()], rtol=1e-9, atol=1e-12)


def test_inner_iou_exact_at_nested_and_degenerate_boxes():
    # a zero-height box inside the other (auxiliary) box: no intersection, gradient 0 (the clamp's at 0), in
    # both dtypes; identical boxes: value and gradient 0 (exact ties)
    pred = np.array([[1.0, 1.5, 3.0, 1.5], [0.0, 0.0, 4.0, 4.0]])
    target = np.array([[0.0, 0.0, 4.0, 4.0], [1.0, 1.5, 3.0, 1.5]])
    for dtype in (np.float64, np.float32):
        v, (gp, gt) = rl.inner_iou_loss.value_and_grad(pred, target, dtype=dtype)
        np.testing.assert_array_equal(v, 1.0)
        np.testing.assert_array_equal(np.r_[gp, gt], 0.0)
        v, (gp, gt) = rl.inner_iou_loss.value_and_grad(P, P, dtype=dtype)
        np.testing.assert_array_equal(v, 0.0)
        np.testing.assert_array_equal(np.r_[gp, gt], 0.0)
    _close_to_oracle("inner_iou_loss", pred, target)


def test_inner_iou_ratio_validated():
    for bad in (0.0, -1.0, float("nan"), 0.005, 101.0):  # the domain 1/100..100 (the module's note)
        with pytest.raises(ValueError, match="ratio"):
            rl.inner_iou_loss(P, T, ratio=bad)
