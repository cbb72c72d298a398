"""refloss against torchvision.ops box losses (float64 values and gradients).

Where they can agree (eps matched) they must; where they cannot, the peer's
behaviour is pinned as a documented discrepancy (docs/peers.md), not skipped."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvops = pytest.importorskip("torchvision.ops")

import refloss as rl  # noqa: E402
from refloss import box_cases  # noqa: E402

# touching and zero-area boxes included: torchvision masks the intersection with x2 > x1
# (strict), so its gradient is 0 there, as clamp(min=0)'s at 0 in torch 2.14.1 (refloss's)
GROUPS = ("generic", "disjoint_x", "disjoint_xy", "contained_pred_in_target", "near_identical", "thin_tall",
          "identical", "tied_coordinates", "edge_touching", "corner_touching", "zero_area")


def _battery(groups=GROUPS):
    out = [g for g in box_cases.box_cases(np.float64, n_random=40) if g[0] in groups]
    return np.concatenate([g[1] for g in out]), np.concatenate([g[2] for g in out])


def _torch_value_and_grad(fn, p, t, **kw):
    a = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    v = fn(a, b, reduction="none", **kw)
    v.sum().backward()
    return v.detach().numpy(), a.grad.numpy(), b.grad.numpy()


def _size(p, t):
    return np.maximum(np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0]),
                      np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))[:, None]


def _assert_agree(ours, theirs, what, p, t):
    v, (gp, gt) = ours
    tv, tgp, tgt = theirs
    np.testing.assert_allclose(v, tv, rtol=1e-12, atol=1e-14, err_msg=f"{what}: value")
    # relative to the pair's largest component, floored at the natural scale 1/(enclosing size)
    scale = np.maximum(np.abs(tgp).max(axis=1, keepdims=True), 1 / _size(p, t))
    np.testing.assert_allclose(gp / scale, tgp / scale, rtol=0, atol=1e-10, err_msg=f"{what}: d/dpred")
    np.testing.assert_allclose(gt / scale, tgt / scale, rtol=0, atol=1e-10, err_msg=f"{what}: d/dtarget")


@pytest.mark.parametrize("ours,theirs", [("giou_loss", "generalized_box_iou_loss"),
                                         ("diou_loss", "distance_box_iou_loss")])
def test_giou_diou_agree_with_matched_eps(ours, theirs):
    p, t = _battery()
    eps = 1e-7
    _assert_agree(getattr(rl, ours).value_and_grad(p, t, eps=eps),
                  _torch_value_and_grad(getattr(tvops, theirs), p, t, eps=eps), f"{ours} vs torchvision {theirs}", p, t)


def test_ciou_agrees_at_eps_1e7_including_constant_alpha():
    """torchvision computes alpha under no_grad: refloss's default alpha_grad=False. (Zero-area
    boxes: its atan(w/h) has a NaN gradient at h = 0, pinned below.)"""
    p, t = _battery(tuple(g for g in GROUPS if g not in ("identical", "zero_area")))
    _assert_agree(rl.ciou_loss.value_and_grad(p, t, eps=1e-7),
                  _torch_value_and_grad(tvops.complete_box_iou_loss, p, t, eps=1e-7), "ciou_loss vs torchvision", p, t)
    v_exact, (gp_exact, _) = rl.ciou_loss.value_and_grad(p, t, eps=1e-7, alpha_grad=True)
    _, tgp, _ = _torch_value_and_grad(tvops.complete_box_iou_loss, p, t, eps=1e-7)
    assert np.abs(gp_exact - tgp).max() > 1e-6  # the exact derivative is a different convention


def test_discrepancy_torchvision_ciou_ignores_eps():
    """Pinned: torchvision's complete_box_iou_loss computes its IoU/DIoU part with eps=1e-7
    whatever eps is passed, so for small boxes it is not scale invariant (PEERS.md)."""
    p = np.array([[0.0, 0.0, 1e-4, 2e-4]])
    t = np.array([[5e-5, 0.0, 1.5e-4, 1e-4]])
    ours = rl.ciou_loss(p, t, eps=0.0)[0]
    scaled = rl.ciou_loss(p * 1e4, t * 1e4, eps=0.0)[0]
    theirs = tvops.complete_box_iou_loss(torch.tensor(p), torch.tensor(t), reduction="none", eps=0.0).item()
    theirs_scaled = tvops.complete_box_iou_loss(torch.tensor(p * 1e4), torch.tensor(t * 1e4), reduction="none",
                                                eps=0.0).item()
    assert ours == pytest.approx(scaled, rel=1e-14)  # refloss: scale invariant
    assert abs(theirs - ours) > 0.05  # the peer: off by the fixed eps at this scale
    assert theirs_scaled == pytest.approx(ours, rel=1e-6)  # ... and right at unit scale
    theirs_1e7 = tvops.complete_box_iou_loss(torch.tensor(p), torch.tensor(t), reduction="none", eps=1e-7).item()
    assert rl.ciou_loss(p, t, eps=1e-7)[0] == pytest.approx(theirs_1e7, rel=1e-12)  # eps = the peer's fixed one


def test_discrepancy_torchvision_giou_identical_zero_area_boxes_is_1():
    """Pinned: two identical zero-area boxes give torchvision loss 1 (pytorch/vision#7746);
    the exact GIoU is undefined there (zero union and enclosing area): refloss gives NaN."""
    b = np.array([[1.0, 1.0, 1.0, 3.0]])
    theirs = tvops.generalized_box_iou_loss(torch.tensor(b), torch.tensor(b), reduction="none").item()
    assert theirs == pytest.approx(1.0)
    assert np.isnan(rl.giou_loss(b, b)[0])
    assert rl.giou_loss(b, b, eps=1e-7)[0] == pytest.approx(theirs, rel=1e-12)  # with the peer's eps they agree


def _plain_loss(kind, a, b, eps):
    """The textbook IoU / GIoU loss in torch: torch.minimum/maximum and clamp(min=0), nothing else."""
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = inter / (union + eps)
    if kind == "iou_loss":
        return 1 - iou
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    enclose = cw * ch
    return 1 - iou + (enclose - union) / (enclose + eps)


def test_torch_clamp_min_0_has_gradient_0_at_0():
    """The convention refloss's Clamp0 follows (torch 2.14.1); an older torch passed the gradient."""
    x = torch.tensor([0.0, -0.0, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    x.clamp(min=0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0]
    y = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    torch.maximum(y, torch.tensor([0.0, 0.0], dtype=torch.float64)).sum().backward()
    assert y.grad.tolist() == [0.5, 1.0]  # ties of maximum still split


TOUCHING = ("edge_touching", "corner_touching")


@pytest.mark.parametrize("ours", ["iou_loss", "giou_loss"])
@pytest.mark.parametrize("eps", [0.0, 1e-7])
def test_touching_boxes_match_torch_autograd_of_the_plain_formula(ours, eps):
    """Shared edges and corners (every orientation, sizes 1e-6..1e6): refloss's gradients are
    torch autograd's of the textbook clamp(min=0) formula."""
    p, t = _battery(TOUCHING)
    _assert_agree(getattr(rl, ours).value_and_grad(p, t, eps=eps),
                  _torch_value_and_grad(lambda a, b, reduction, eps: _plain_loss(ours, a, b, eps), p, t, eps=eps),
                  f"{ours} vs torch autograd of the plain formula", p, t)


@pytest.mark.parametrize("ours,theirs", [("giou_loss", "generalized_box_iou_loss"),
                                         ("diou_loss", "distance_box_iou_loss"),
                                         ("ciou_loss", "complete_box_iou_loss")])
def test_touching_boxes_match_torchvision(ours, theirs):
    """torchvision's strict intersection mask gives the same gradient at touching boxes."""
    p, t = _battery(TOUCHING)
    _assert_agree(getattr(rl, ours).value_and_grad(p, t, eps=1e-7),
                  _torch_value_and_grad(getattr(tvops, theirs), p, t, eps=1e-7), f"touching: {ours} vs {theirs}", p, t)


def test_touching_gradient_is_the_separated_sides_limit():
    """At a shared edge the gradient is the one-sided limit from the separated side (torch's,
    torchvision's and refloss's), not the overlapping side's: the point is a real convention."""
    p = np.array([[0.0, 0.0, 2.0, 1.0]])
    t = np.array([[2.0, 0.5, 3.0, 3.0]])
    _, tgp, tgt = _torch_value_and_grad(tvops.generalized_box_iou_loss, p, t, eps=1e-7)
    _, (gp, gt) = rl.giou_loss.value_and_grad(p, t, eps=1e-7)
    np.testing.assert_allclose(gp, tgp, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gt, tgt, rtol=1e-12, atol=1e-15)
    step = np.array([1e-9, 0, 1e-9, 0])
    _, (gp_gap, _) = rl.giou_loss.value_and_grad(p - step, t, eps=1e-7)
    np.testing.assert_allclose(gp, gp_gap, rtol=1e-6)
    _, (gp_in, _) = rl.giou_loss.value_and_grad(p + step, t, eps=1e-7)
    assert abs(gp_in[0, 2] - gp[0, 2]) > 0.01  # the overlapping side's d/dx2 differs


def test_tie_convention_matches_torch_autograd():
    """At tied coordinates the gradients are torch's (0.5/0.5 split)."""
    p, t = _battery(("identical", "tied_coordinates"))
    _assert_agree(rl.giou_loss.value_and_grad(p, t, eps=1e-7),
                  _torch_value_and_grad(tvops.generalized_box_iou_loss, p, t, eps=1e-7), "ties: giou", p, t)


def test_discrepancy_torchvision_ciou_nan_gradient_at_zero_height():
    """Pinned: complete_box_iou_loss forms atan(w / h), whose gradient at h = 0 is 0 * inf = NaN
    for that box; refloss uses atan2 (finite), and equals the 50-digit oracle there."""
    from refloss.oracle.boxes import ciou_loss as oracle_ciou_loss

    p = np.array([[0.0, 0.5, 1.0, 0.5]])  # zero height, inside the target
    t = np.array([[0.0, 0.0, 1.0, 1.0]])
    v, tgp, tgt = _torch_value_and_grad(tvops.complete_box_iou_loss, p, t, eps=1e-7)
    assert np.isnan(tgp).all() and np.isfinite(tgt).all()
    ov, ogp, ogt = oracle_ciou_loss(p[0], t[0], eps=1e-7)
    ours, (gp, gt) = rl.ciou_loss.value_and_grad(p, t, eps=1e-7)
    np.testing.assert_allclose(ours, v, rtol=1e-12)  # the values agree
    np.testing.assert_allclose(gp[0], [float(g) for g in ogp], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gt[0], tgt[0], rtol=1e-12, atol=1e-15)  # the other box's gradient agrees


def test_discrepancy_torchvision_pairwise_nan_from_other_zero_area_pairs():
    """Pinned: box_iou(a, b) is the N x M matrix; the 0/0 = NaN entry of two zero-area boxes
    (pytorch/vision#3404) makes those boxes' gradients NaN through diagonal() (0 * NaN in
    backward), while the pair alone gives refloss's gradient (0: the clamp at ih = 0)."""
    p = np.array([[0.5, 0.0, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0]])
    t = np.array([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 2.0, 3.0]])

    def grads(rows):
        a = torch.tensor(p[rows], requires_grad=True)
        b = torch.tensor(t[rows], requires_grad=True)
        tvops.box_iou(a, b).diagonal().sum().backward()
        return a.grad.numpy(), b.grad.numpy()

    alone_p, alone_t = grads([0])
    _, (gp, gt) = rl.iou.value_and_grad(p[:1], t[:1])
    np.testing.assert_array_equal(alone_p, gp)
    np.testing.assert_array_equal(alone_t, gt)
    both_p, _ = grads([0, 1])
    assert np.isnan(both_p[0]).all()
