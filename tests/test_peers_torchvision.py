"""refloss against torchvision.ops box losses (float64 values and gradients).

Where they can agree (eps matched) they must; where they cannot, the peer's
behaviour is pinned as a documented discrepancy (docs/peers.md), not skipped."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvops = pytest.importorskip("torchvision.ops")

import refloss as rl  # noqa: E402
from refloss import box_cases  # noqa: E402

# edge_touching is a documented discrepancy (test below): torchvision masks the intersection
# with a strict inequality, so its gradient does not pass at zero intersection width
GROUPS = ("generic", "disjoint_x", "disjoint_xy", "contained_pred_in_target", "near_identical", "thin_tall",
          "identical", "tied_coordinates", "corner_touching")


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
    """torchvision computes alpha under no_grad: refloss's default alpha_grad=False."""
    p, t = _battery(tuple(g for g in GROUPS if g != "identical"))
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


def test_tie_convention_matches_torch_autograd():
    """At tied coordinates and touching edges the gradients are torch's (0.5/0.5 split, clamp passes)."""
    p, t = _battery(("identical", "tied_coordinates", "corner_touching"))
    _assert_agree(rl.giou_loss.value_and_grad(p, t, eps=1e-7),
                  _torch_value_and_grad(tvops.generalized_box_iou_loss, p, t, eps=1e-7), "ties: giou", p, t)


def test_discrepancy_torchvision_touching_edges_block_the_gradient():
    """Pinned: torchvision computes the intersection under a mask (x2 > x1 strictly), so at
    boxes sharing an edge the intersection's gradient is 0, while clamp(min=0) (refloss's
    documented convention) passes it. The peer's gradient is refloss's one-sided limit from
    the separated side."""
    p = np.array([[0.0, 0.0, 2.0, 1.0]])
    t = np.array([[2.0, 0.5, 3.0, 3.0]])
    _, tgp, _ = _torch_value_and_grad(tvops.generalized_box_iou_loss, p, t, eps=1e-7)
    _, (gp, _) = rl.giou_loss.value_and_grad(p, t, eps=1e-7)
    assert abs(gp[0, 2] - tgp[0, 2]) > 0.01  # d/dx2 of the predicted box differs
    gap = p - [1e-9, 0, 1e-9, 0]
    _, (gp_gap, _) = rl.giou_loss.value_and_grad(gap, t, eps=1e-7)
    np.testing.assert_allclose(tgp, gp_gap, rtol=1e-6)
