"""rl.retinanet_loss and rl.ssd_loss: conformance with torchvision's own compute_loss (values and
autograd gradients, float64 to ~1e-12), an independent 50-digit mpmath composition from the
papers' formulas with finite differences, the worked example of docs/retinanet-ssd.md, the edge
cases (an image without boxes, everything ignored, more positives than negatives) and bad input."""
import math
from pathlib import Path
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import pytest

import refloss as rl
from refloss import _retinanet_ssd as rs

torch = pytest.importorskip("torch")
tv_det = pytest.importorskip("torchvision.models.detection")
from torchvision.models.detection import _utils as det_utils  # noqa: E402
from torchvision.models.detection.retinanet import RetinaNetHead  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# --- inputs: the batches and torchvision adapters of `refloss verify torchvision` ----------------

from refloss.peers._detection import make_batch, rel, torch_inputs, tv_matches, tv_retinanet, tv_ssd  # noqa: E402


def assert_matches_tv(result, grads, want, want_grads, rtol=1e-12):
    assert rel(result.total, want["total"]) <= rtol, (result.total, want["total"])
    for k in ("classification", "bbox_regression"):
        assert rel(result.parts[k], want[k]) <= rtol, (k, result.parts[k], want[k])
    for k in ("cls_logits", "bbox_regression"):
        assert grads[k].shape == want_grads[k].shape
        assert rel(grads[k], want_grads[k]) <= rtol, (k, rel(grads[k], want_grads[k]))


# --- RetinaNet against torchvision ----------------------------------------------------------------

RETINA_MATCHER = det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)


@pytest.mark.parametrize("loss_type", rs.BOX_LOSSES)
def test_retinanet_matches_torchvision(loss_type):
    for seed, n_classes in ((4, 4), (10, 5)):  # seeds whose matching has positives and ignored anchors
        targets, head, anchors = make_batch(seed, n_classes=n_classes)
        matched = tv_matches(targets, anchors, RETINA_MATCHER)
        assert any((m == -2).any() for m in matched) and any((m >= 0).any() for m in matched)
        want, want_grads = tv_retinanet(targets, head, anchors, matched, loss_type)
        params = {"bbox_reg_loss_type": loss_type}
        result, grads = rl.retinanet_loss.value_and_grad(targets, head, anchors, matched, **params)
        assert_matches_tv(result, grads, want, want_grads)
        assert float(rl.retinanet_loss(targets, head, anchors, matched, **params).total) == float(result.total)


def test_retinanet_matching_from_thresholds_as_torchvision():
    targets, head, anchors = make_batch(3, boxes_per_image=(4, 2))
    net = SimpleNamespace(proposal_matcher=RETINA_MATCHER, head=RetinaNetHead(1, 1, 4))
    t, h, a, _ = torch_inputs(targets, head, anchors, [np.zeros(0)] * 2)
    from torchvision.models.detection.retinanet import RetinaNet

    parts = RetinaNet.compute_loss(net, t, h, a)
    result = rl.retinanet_loss(targets, head, anchors, None)
    want = tv_matches(targets, anchors, RETINA_MATCHER)
    for got, w in zip(result.details["matched_idxs"], want):
        assert got.tolist() == w.tolist()
    for k in parts:
        assert rel(result.parts[k], parts[k].item()) <= 1e-12


def test_a_box_no_anchor_overlaps_enough_gets_its_best_anchor():
    """The low-quality rule (RetinaNet) and SSDMatcher's best-anchor rule: a ground truth whose best
    IoU (0.3 with anchor 1) is below both thresholds still gets that anchor, as in torchvision."""
    anchors = [np.array([[0, 0, 2, 2], [4, 4, 6, 6], [8, 8, 10, 10]], float)]
    targets = [{"boxes": np.array([[4.0, 4.0, 7.0, 8.0]]), "labels": np.array([1])}]
    head = {"cls_logits": np.array([[[0.5, -0.5], [0.25, 1.0], [-1.0, 0.0]]]), "bbox_regression": np.zeros((1, 3, 4))}
    assert np.asarray(rl.iou(targets[0]["boxes"], anchors[0][1])).item() == pytest.approx(4 / 12)
    result = rl.retinanet_loss(targets, head, anchors, None)
    assert result.details["matched_idxs"][0].tolist() == [-1, 0, -1]
    from torchvision.models.detection.retinanet import RetinaNet

    net = SimpleNamespace(proposal_matcher=RETINA_MATCHER, head=RetinaNetHead(1, 1, 2))
    t, h, a, _ = torch_inputs(targets, head, anchors, [np.zeros(0)])
    want = RetinaNet.compute_loss(net, t, h, a)
    for k in want:
        assert rel(result.parts[k], want[k].item()) <= 1e-12
    assert rs.ssd_match(np.array([[0.0, 1 / 3, 0.0]])).tolist() == [-1, 0, -1]
    assert det_utils.SSDMatcher(0.5)(torch.tensor([[0.0, 1 / 3, 0.0]])).tolist() == [-1, 0, -1]
    # two ground truths whose best anchor is the same: the later one keeps it, as torch's index assignment
    shared = [[0.7, 0.1, 0.0], [0.6, 0.2, 0.0]]
    want = det_utils.SSDMatcher(0.5)(torch.tensor(shared)).tolist()
    assert rs.ssd_match(np.array(shared)).tolist() == want == [1, -1, -1]


def test_retinanet_float32_matches_torchvision_float32():
    targets, head, anchors = make_batch(4)
    matched = tv_matches(targets, anchors, RETINA_MATCHER)
    want, want_grads = tv_retinanet(targets, head, anchors, matched, dtype=torch.float32)
    head32 = {k: v.astype(np.float32) for k, v in head.items()}
    result, grads = rl.retinanet_loss.value_and_grad(targets, head32, anchors, matched)
    assert result.total.dtype == np.float32 and grads["cls_logits"].dtype == np.float32
    assert_matches_tv(result, grads, want, want_grads, rtol=2e-6)


def test_retinanet_edge_cases_match_torchvision():
    targets, head, anchors = make_batch(5, boxes_per_image=(2, 0))
    n_anchors = len(anchors[0])
    cases = {"all ignored": [np.full(n_anchors, -2), np.full(n_anchors, -2)],
             "no foreground": [np.full(n_anchors, -1), np.full(n_anchors, -1)],
             "every anchor foreground": [np.arange(n_anchors) % 2, np.full(n_anchors, -1)]}
    for name, matched in cases.items():
        want, want_grads = tv_retinanet(targets, head, anchors, matched)
        result, grads = rl.retinanet_loss.value_and_grad(targets, head, anchors, matched)
        assert_matches_tv(result, grads, want, want_grads)
    result = rl.retinanet_loss(targets, head, anchors, cases["all ignored"])
    assert result.total == 0 and result.details["num_foreground"].tolist() == [0, 0]


# --- SSD against torchvision ----------------------------------------------------------------------

def ssd_tv_matches(targets, anchors):
    return tv_matches(targets, anchors, det_utils.SSDMatcher(0.5))


def test_ssd_matches_torchvision():
    for seed in (1, 2):
        targets, head, anchors = make_batch(seed, n_classes=3 + seed, ssd=True)
        matched = ssd_tv_matches(targets, anchors)
        want, want_grads = tv_ssd(targets, head, anchors, matched)
        result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, matched)
        assert_matches_tv(result, grads, want, want_grads)
        assert float(rl.ssd_loss(targets, head, anchors, matched).total) == float(result.total)
        # matching computed from iou_thresh: torchvision's SSDMatcher
        result = rl.ssd_loss(targets, head, anchors, None)
        assert [m.tolist() for m in result.details["matched_idxs"]] == [m.tolist() for m in matched]
        assert rel(result.total, want["total"]) <= 1e-12


def test_ssd_float32_matches_torchvision_float32():
    targets, head, anchors = make_batch(6, ssd=True, boxes_per_image=(3, 2))
    matched = ssd_tv_matches(targets, anchors)
    want, want_grads = tv_ssd(targets, head, anchors, matched, dtype=torch.float32)
    head32 = {k: v.astype(np.float32) for k, v in head.items()}
    result, grads = rl.ssd_loss.value_and_grad(targets, head32, anchors, matched)
    assert grads["bbox_regression"].dtype == np.float32
    assert_matches_tv(result, grads, want, want_grads, rtol=2e-6)


def test_ssd_ignored_anchors_are_background_and_no_boxes_give_no_negatives():
    targets, head, anchors = make_batch(7, ssd=True, boxes_per_image=(2, 0))
    n_anchors = len(anchors[0])
    matched = [np.where(np.arange(n_anchors) < 3, [0, 1, 0] + [-2] * (n_anchors - 3), -1)[:n_anchors],
               np.full(n_anchors, -2)]
    matched[0][3:8] = -2
    want, want_grads = tv_ssd(targets, head, anchors, matched)
    result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, matched)
    assert_matches_tv(result, grads, want, want_grads)
    assert len(result.details["hard_negatives"][1]) == 0 and len(result.details["hard_negatives"][0]) == 9
    nothing = [np.full(n_anchors, -1)] * 2
    want, want_grads = tv_ssd(targets, head, anchors, nothing)
    result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, nothing)
    assert result.total == 0 == want["total"] and not grads["cls_logits"].any()


def test_ssd_more_positives_than_negatives_differs_from_torchvision_as_documented():
    """6 of 8 anchors positive: 3 x 6 = 18 negatives wanted, 2 available.  refloss's default (the
    paper) takes the 2; torchvision's rank test also selects the 6 positives' ranks after them, so
    it counts those positives' cross-entropy twice: the difference is exactly that."""
    targets, head, anchors = make_batch(8, n_anchors=8, ssd=True, boxes_per_image=(2, 1))
    matched = [np.array([0, 1, 0, 1, 0, 1, -1, -1]), np.array([-1, 0, -1, -1, -1, -1, -1, -1])]
    want, _ = tv_ssd(targets, head, anchors, matched)
    result = rl.ssd_loss(targets, head, anchors, matched)
    assert [len(h) for h in result.details["hard_negatives"]] == [2, 3]
    # torchvision's selection, recomputed from its own rule with torch: positives ranked after negatives
    fg = np.stack([m >= 0 for m in matched])
    labels = np.zeros(fg.shape, np.int64)
    for i, m in enumerate(matched):
        labels[i][fg[i]] = targets[i]["labels"][m[fg[i]]]
    ce = torch.nn.functional.cross_entropy(torch.tensor(head["cls_logits"]).reshape(-1, 4),
                                           torch.tensor(labels.reshape(-1)), reduction="none").reshape(2, 8)
    negative = ce.clone()
    negative[torch.tensor(fg)] = -math.inf
    rank = negative.sort(1, descending=True)[1].sort(1)[1]
    chosen = (rank < 3 * torch.tensor(fg).sum(1, keepdim=True)).numpy()
    twice = ce.numpy()[chosen & fg].sum() / fg.sum()
    assert twice > 0
    assert abs(want["classification"] - (result.parts["classification"] + twice)) <= 1e-12 * want["classification"]
    assert result.parts["bbox_regression"] == pytest.approx(want["bbox_regression"], rel=1e-12)
    # mining="torchvision" reproduces it (A = 8 <= 16: torch's sort keeps the positives in index order)
    want, want_grads = tv_ssd(targets, head, anchors, matched)
    result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, matched, mining="torchvision")
    assert result.details["positives_counted_twice"].tolist() == (chosen & fg).tolist()
    assert_matches_tv(result, grads, want, want_grads)


@pytest.mark.parametrize("ratio, n_fg, paper, torchvision", [(2.2, 25, 55, 55), (0.15, 100, 15, 16), (3.0, 7, 21, 21)])
def test_hard_negative_count_takes_the_ratio_as_written(ratio, n_fg, paper, torchvision):
    """ceil(r |F|) with r the decimal written: 2.2 * 25 asks for 55 (float64's product, 55.00000000000001, asked
    for 56: a probe); mining="torchvision" counts as torchvision does, from its float32 product (0.15 * 100 ->
    15.000001: 16), and then matches its compute_loss."""
    targets, head, anchors = make_batch(3, n_anchors=200, ssd=True, boxes_per_image=(1,))
    matched = [np.r_[np.zeros(n_fg, np.int64), np.full(200 - n_fg, -1)]]
    result = rl.ssd_loss(targets, head, anchors, matched, neg_to_pos_ratio=ratio)
    assert len(result.details["hard_negatives"][0]) == paper
    want, want_grads = tv_ssd(targets, head, anchors, matched, neg_to_pos_ratio=ratio)
    result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, matched, neg_to_pos_ratio=ratio,
                                               mining="torchvision")
    assert len(result.details["hard_negatives"][0]) == torchvision
    assert_matches_tv(result, grads, want, want_grads)


def test_hard_negative_count_beyond_float32_s_range():
    """mining="torchvision" with a ratio beyond float32's range: torchvision's product is inf (every negative) or
    0 * inf = NaN (none); the count raised OverflowError (a review)."""
    assert rs._negative_count(1e39, 3, "torchvision") >= 10**18 and rs._negative_count(1e39, 0, "torchvision") == 0
    assert rs._negative_count(1e39, 3, "paper") == 3 * 10**39


def test_hard_negative_ties_take_the_lower_index_first():
    losses = np.array([0.5, 2.0, 1.0, 2.0, 1.0, 1.0, 3.0])
    negative = np.array([True, True, True, True, False, True, False])
    assert rs.hard_negatives(losses, negative, 4).tolist() == [1, 3, 2, 5]
    # two images with identical logits rows: equal cross-entropies; the selection stays reproducible
    targets, head, anchors = make_batch(9, ssd=True, boxes_per_image=(1, 1))
    head["cls_logits"][:, :] = head["cls_logits"][:, :1]
    matched = [np.r_[0, np.full(19, -1)], np.r_[np.full(19, -1), 0]]
    result = rl.ssd_loss(targets, head, anchors, matched)
    assert [h.tolist() for h in result.details["hard_negatives"]] == [[1, 2, 3], [0, 1, 2]]
    want, _ = tv_ssd(targets, head, anchors, matched)
    assert rel(result.total, want["total"]) <= 1e-12


# --- box coding -----------------------------------------------------------------------------------

def test_box_coding_matches_torchvision_and_the_vjp_is_the_autograd_one():
    rng = np.random.default_rng(10)
    a = np.concatenate([rng.uniform(0, 5, (6, 2)), rng.uniform(6, 9, (6, 2))], axis=1)
    b = a + rng.normal(0, 0.3, (6, 4))
    t = rng.normal(0, 1, (6, 4))
    t[0, 2] = 5 * math.log(1000 / 16)  # exactly at the clip: gradient 0, as torch's clamp
    t[1, 3] = 40.0  # beyond the clip
    for w in (rs.RETINANET_WEIGHTS, rs.SSD_WEIGHTS):
        coder = det_utils.BoxCoder(w)
        want = coder.encode_single(torch.tensor(b), torch.tensor(a)).numpy()
        assert rel(rs.encode_boxes(b, a, w), want) <= 1e-15
        tt = torch.tensor(t, requires_grad=True)
        dec = coder.decode_single(tt, torch.tensor(a))
        g = rng.normal(0, 1, (6, 4))
        (dec * torch.tensor(g)).sum().backward()
        boxes, vjp = rs.decode_boxes(t, a, w, with_grad=True)
        assert rel(boxes, dec.detach().numpy()) <= 1e-15
        assert rel(vjp(g), tt.grad.numpy()) <= 1e-15
    assert vjp(g)[0, 2] == 0 == vjp(g)[1, 3] or w != rs.SSD_WEIGHTS


# --- an independent oracle: 50-digit mpmath, straight from the papers ------------------------------

@pytest.fixture(autouse=True)
def _fifty_digits():
    """The oracle below at 50 digits, for this module's tests only (set at import, it was every
    worker's global mpmath precision, which refloss's oracle must not depend on)."""
    with mp.workdps(50):
        yield


def mp_focal(x, y, alpha=mp.mpf("0.25"), gamma=2):
    p = 1 / (1 + mp.exp(-x))
    pt = p if y else 1 - p
    at = alpha if y else 1 - alpha
    return -at * (1 - pt) ** gamma * mp.log(pt)


def mp_encode(b, a, w):
    aw, ah, bw, bh = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    return [w[0] * ((b[0] + b[2]) / 2 - (a[0] + a[2]) / 2) / aw, w[1] * ((b[1] + b[3]) / 2 - (a[1] + a[3]) / 2) / ah,
            w[2] * mp.log(bw / aw), w[3] * mp.log(bh / ah)]


def mp_smooth_l1(d, beta=1):
    return d * d / (2 * beta) if abs(d) < beta else abs(d) - mp.mpf(beta) / 2


def mp_giou_loss(p, g):
    """1 - GIoU (Rezatofighi et al., arXiv:1902.09630) with torchvision's eps in U and C."""
    eps = mp.mpf("1e-7")
    iw = max(0, min(p[2], g[2]) - max(p[0], g[0]))
    ih = max(0, min(p[3], g[3]) - max(p[1], g[1]))
    inter = iw * ih
    union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
    c = (max(p[2], g[2]) - min(p[0], g[0])) * (max(p[3], g[3]) - min(p[1], g[1]))
    return 1 - inter / (union + eps) + (c - union) / (c + eps)


def mp_decode(t, a, w):
    aw, ah = a[2] - a[0], a[3] - a[1]
    cx, cy = a[0] + aw / 2 + t[0] / w[0] * aw, a[1] + ah / 2 + t[1] / w[1] * ah
    pw, ph = mp.exp(t[2] / w[2]) * aw, mp.exp(t[3] / w[3]) * ah
    return [cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2]


def mp_retinanet(targets, head, anchors, matched, box="l1"):
    """RetinaNet (arXiv:1708.02002, 4 and 5.1): focal loss over every non-ignored anchor and class,
    box loss over the positives, each image normalised by its positives (at least 1), averaged."""
    logits, reg = head["cls_logits"], head["bbox_regression"]
    cls = bbox = mp.mpf(0)
    for i, m in enumerate(matched):
        n_pos = max(1, sum(1 for v in m if v >= 0))
        s_cls = s_box = mp.mpf(0)
        for a_idx, v in enumerate(m):
            if v == -2:
                continue
            for k in range(logits.shape[2]):
                y = v >= 0 and targets[i]["labels"][v] == k
                s_cls += mp_focal(mp.mpf(logits[i, a_idx, k]), y)
            if v >= 0:
                anc = [mp.mpf(float(x)) for x in anchors[i][a_idx]]
                gt = [mp.mpf(float(x)) for x in targets[i]["boxes"][v]]
                t = [mp.mpf(x) for x in reg[i, a_idx]]
                if box == "l1":
                    s_box += sum(abs(p - q) for p, q in zip(t, mp_encode(gt, anc, (1, 1, 1, 1))))
                else:
                    s_box += mp_giou_loss(mp_decode(t, anc, (1, 1, 1, 1)), gt)
        cls += s_cls / n_pos
        bbox += s_box / n_pos
    n = len(matched)
    return cls / n, bbox / n


def mp_softmax_ce(x, label):
    m = max(x)
    return m + mp.log(sum(mp.exp(v - m) for v in x)) - x[label]


def mp_ssd(targets, head, anchors, matched, ratio=3):
    """SSD (arXiv:1512.02325, 2.2): smooth L1 on the (10, 10, 5, 5)-encoded offsets of the positives;
    softmax confidence loss on the positives and on the negatives with the highest loss, at most
    3 a positive; both divided by the number of positives."""
    logits, reg = head["cls_logits"], head["bbox_regression"]
    total_pos = sum(int((m >= 0).sum()) for m in matched)
    conf = loc = mp.mpf(0)
    for i, m in enumerate(matched):
        neg = []
        for a_idx, v in enumerate(m):
            x = [mp.mpf(z) for z in logits[i, a_idx]]
            if v >= 0:
                conf += mp_softmax_ce(x, int(targets[i]["labels"][v]))
                anc = [mp.mpf(float(z)) for z in anchors[i][a_idx]]
                gt = [mp.mpf(float(z)) for z in targets[i]["boxes"][v]]
                enc = mp_encode(gt, anc, (10, 10, 5, 5))
                loc += sum(mp_smooth_l1(mp.mpf(p) - q) for p, q in zip(reg[i, a_idx], enc))
            else:
                neg.append(mp_softmax_ce(x, 0))
        n_pos = int((m >= 0).sum())
        conf += sum(sorted(neg, reverse=True)[:ratio * n_pos])
    n = max(1, total_pos)
    return conf / n, loc / n


def tiny_batch():
    """The worked example of docs/retinanet-ssd.md: 2 images, 5 anchors, K = 3."""
    anchors = [np.array([[0, 0, 4, 4], [3, 0, 7, 4], [4, 0, 8, 4], [0, 4, 4, 8], [1, 1, 7, 7]], float)] * 2
    targets = [{"boxes": np.array([[0.5, 0.5, 4.5, 4.0], [4.0, 0.5, 8.0, 4.5]]), "labels": np.array([1, 2])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]
    logits = np.array([[[1.0, -0.5, 0.25], [0.0, 0.5, -1.0], [-0.75, 0.0, 1.5], [0.5, 0.25, 0.0],
                        [-1.0, 1.0, 0.5]],
                       [[0.25, -0.25, 0.0], [1.25, 0.0, -0.5], [0.0, 0.0, 0.75], [-0.5, 1.0, 0.0],
                        [0.5, -1.0, 0.25]]])
    reg = np.array([[[0.1, 0.0, -0.05, 0.0], [0.0, 0.2, 0.1, -0.1], [0.05, 0.1, 0.02, 0.1], [0.0, 0.0, 0.0, 0.0],
                     [0.3, -0.2, 0.1, 0.0]], np.zeros((5, 4))])
    reg[1] = 0.1
    return targets, {"cls_logits": logits, "bbox_regression": reg}, anchors


def test_worked_example_retinanet_against_mpmath_and_the_page():
    targets, head, anchors = tiny_batch()
    result = rl.retinanet_loss(targets, head, anchors, None)
    matched = result.details["matched_idxs"]
    assert [m.tolist() for m in matched] == [[0, -2, 1, -1, -1], [-1] * 5]
    cls, box = mp_retinanet(targets, head, anchors, matched)
    assert rel(result.parts["classification"], float(cls)) <= 4e-16
    assert rel(result.parts["bbox_regression"], float(box)) <= 4e-16
    page = (REPO / "docs" / "retinanet-ssd.md").read_text()
    for value in (result.parts["classification"], result.parts["bbox_regression"], result.total):
        assert f"{float(value):.12f}" in page, f"{float(value):.12f} not in docs/retinanet-ssd.md"
    giou = rl.retinanet_loss(targets, head, anchors, matched, bbox_reg_loss_type="giou")
    # through the decode (exp, corners each rounded) the GIoU part is within a few ULP (here 4.5)
    want = float(mp_retinanet(targets, head, anchors, matched, "giou")[1])
    assert rel(giou.parts["bbox_regression"], want) <= 1e-15


def test_worked_example_ssd_against_mpmath_and_the_page():
    targets, head, anchors = tiny_batch()
    result = rl.ssd_loss(targets, head, anchors, None)
    matched = result.details["matched_idxs"]
    assert [m.tolist() for m in matched] == [[0, -1, 1, -1, -1], [-1] * 5]
    cls, box = mp_ssd(targets, head, anchors, matched)
    assert rel(result.parts["classification"], float(cls)) <= 4e-16
    assert rel(result.parts["bbox_regression"], float(box)) <= 4e-16
    # the hard negatives: image 0's 3 x 2 = 6 wanted, its 3 negatives available, by descending mpmath loss
    ce = {a: mp_softmax_ce([mp.mpf(z) for z in head["cls_logits"][0, a]], 0) for a in (1, 3, 4)}
    assert [h.tolist() for h in result.details["hard_negatives"]] == [sorted(ce, key=ce.get, reverse=True), []]
    page = (REPO / "docs" / "retinanet-ssd.md").read_text()
    for value in (result.parts["classification"], result.parts["bbox_regression"], result.total):
        assert f"{float(value):.12f}" in page, f"{float(value):.12f} not in docs/retinanet-ssd.md"


@pytest.mark.parametrize("which", ["retinanet-l1", "retinanet-giou", "ssd"])
def test_gradients_against_mpmath_central_differences(which):
    """d total / d head outputs against 50-digit central differences of the mpmath composition
    (h = 1e-12: the truncation error, ~h^2, is far below float64's resolution)."""
    targets, head, anchors = tiny_batch()
    if which == "ssd":
        matched = [np.array([0, -1, 1, -1, -1]), np.full(5, -1)]
        result, grads = rl.ssd_loss.value_and_grad(targets, head, anchors, matched)
        oracle = mp_ssd
        kw = {}
    else:
        box = which.split("-")[1]
        matched = [np.array([0, -2, 1, -1, -1]), np.full(5, -1)]
        result, grads = rl.retinanet_loss.value_and_grad(targets, head, anchors, matched, bbox_reg_loss_type=box)
        oracle = mp_retinanet
        kw = {"box": box}
    h = mp.mpf("1e-12")
    for key in ("cls_logits", "bbox_regression"):
        for idx in [(0, 0, 1), (0, 2, 2), (0, 4, 0), (1, 1, 0)] if key == "cls_logits" else [(0, 0, 0), (0, 2, 3)]:
            def at(delta):
                shifted = dict(head)
                shifted[key] = np.vectorize(mp.mpf, otypes=[object])(head[key])
                shifted[key][idx] += delta
                return sum(oracle(targets, shifted, anchors, matched, **kw))
            fd = (at(h) - at(-h)) / (2 * h)
            assert abs(grads[key][idx] - float(fd)) <= 1e-14 * max(1.0, abs(float(fd))), (key, idx)


# --- bad input ------------------------------------------------------------------------------------

def test_bad_input_is_named():
    targets, head, anchors = tiny_batch()
    matched = [np.array([0, -2, 1, -1, -1]), np.full(5, -1)]
    cases = [
        (TypeError, r"targets: must be a list", dict(targets=targets[0])),
        (ValueError, r"head_outputs: missing key 'bbox_regression'",
         dict(head_outputs={"cls_logits": head["cls_logits"]})),
        (ValueError, r"head_outputs\['bbox_regression'\]: must have shape \(N, A, 4\)",
         dict(head_outputs={**head, "bbox_regression": head["bbox_regression"][:, :4]})),
        (ValueError, r"targets\[0\]\['boxes'\]: boxes must have positive width and height .*; "
                     r"targets\[0\]\['boxes'\]\[1\]",
         dict(targets=[{"boxes": np.array([[0, 0, 1, 1], [2, 2, 2, 3.0]]), "labels": np.array([0, 1])},
                       targets[1]])),
        (ValueError, r"targets\[0\]\['labels'\]: must lie in \[0, K - 1\] = \[0, 2\]; "
                     r"targets\[0\]\['labels'\]\[1\] = 3",
         dict(targets=[{"boxes": targets[0]["boxes"], "labels": np.array([1, 3])}, targets[1]])),
        (ValueError, r"anchors\[1\]: boxes must have positive width",
         dict(anchors=[anchors[0], anchors[0][:, [2, 1, 0, 3]]])),
        (ValueError, r"matched_idxs\[0\]: must be -2 \(ignored\), -1 \(background\) or a box index in \[0, 1\]; "
                     r"matched_idxs\[0\]\[2\] = 2", dict(matched_idxs=[np.array([0, -2, 2, -1, -1]), matched[1]])),
        (TypeError, r"matched_idxs\[1\]: must be an integer array", dict(matched_idxs=[matched[0], np.zeros(5)])),
        (ValueError, r"head_outputs\['cls_logits'\]: must be finite",
         dict(head_outputs={**head, "cls_logits": np.where(head["cls_logits"] > 1.4, np.nan, head["cls_logits"])})),
        (ValueError, r"bbox_reg_loss_type: must be one of", dict(bbox_reg_loss_type="l2")),
        (ValueError, r"targets: an empty batch", dict(targets=[], anchors=[], matched_idxs=[])),
    ]
    for error, message, change in cases:
        args = dict(targets=targets, head_outputs=head, anchors=anchors, matched_idxs=matched) | change
        with pytest.raises(error, match=message):
            rl.retinanet_loss(**args)
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]: must lie in \[1, K - 1\] = \[1, 2\] "
                                         r"\(class 0 is the background\); targets\[0\]\['labels'\]\[0\] = 0"):
        rl.ssd_loss([{"boxes": targets[0]["boxes"], "labels": np.array([0, 1])}, targets[1]], head, anchors, matched)
    with pytest.raises(ValueError, match="mining: must be one of"):
        rl.ssd_loss(targets, head, anchors, matched, mining="all")
    # parameters named in their errors (a probe: NaN surfaced as "pred: must be finite" and "high_threshold")
    with pytest.raises(ValueError, match="^bbox_xform_clip: must be a number, got nan"):
        rl.retinanet_loss(targets, head, anchors, matched, bbox_xform_clip=math.nan, bbox_reg_loss_type="giou")
    with pytest.raises(ValueError, match="^iou_thresh: must be a number, got nan"):
        rl.ssd_loss(targets, head, anchors, iou_thresh=math.nan)
    with pytest.raises(ValueError, match="^bg_iou_thresh: must be <= fg_iou_thresh"):
        rl.retinanet_loss(targets, head, anchors, fg_iou_thresh=0.4, bg_iou_thresh=0.5)
    with pytest.raises(TypeError, match="requires grad"):
        rl.retinanet_loss(targets, {**head, "cls_logits": torch.tensor(head["cls_logits"], requires_grad=True)},
                          anchors, matched)


def test_what_a_probe_found_is_named():
    """A probe's findings (2026-12-07): each read another message, or none."""
    targets, head, anchors = tiny_batch()
    matched = [np.array([0, -2, 1, -1, -1]), np.full(5, -1)]
    no_boxes = [targets[0], {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]
    # one class: SSD's own message (it read "must lie in [1, K - 1] = [1, 0]")
    with pytest.raises(ValueError, match=r"SSD needs K >= 2 classes"):
        rl.ssd_loss(targets, {**head, "cls_logits": head["cls_logits"][..., :1]}, anchors, matched)
    # an index into an image with no boxes (it read "a box index in [0, -1]")
    with pytest.raises(ValueError, match=r"matched_idxs\[1\]: must be -2 \(ignored\) or -1 \(background\) "
                                         r"\(targets\[1\] has no boxes\); matched_idxs\[1\]\[0\] = 0"):
        rl.retinanet_loss(no_boxes, head, anchors, [matched[0], np.array([0, -1, -1, -1, -1])])
    # beta and eps checked whichever box loss reads them (taken silently with the default "l1")
    for kw, name in (({"beta": -1.0}, "beta"), ({"eps": -1.0}, "eps"), ({"beta": math.nan}, "beta")):
        with pytest.raises(ValueError, match=f"^{name}: must satisfy"):
            rl.retinanet_loss(targets, head, anchors, matched, **kw)
    with pytest.raises(ValueError, match="^beta: must satisfy"):  # (no foreground anchor reads it)
        rl.ssd_loss(no_boxes[1:] * 2, head, anchors, beta=-1.0)
    # inputs refloss takes no gradient of: the message does not point to a gradient
    anchor = torch.tensor([[0.3, 0.3]], requires_grad=True)
    for call in (lambda: rl.match_by_iou(torch.zeros(2, 3, requires_grad=True), 0.5, 0.4),
                 lambda: rl.yolo_encode(np.array([[0.5, 0.5, 0.2, 0.2]]), anchor, np.zeros((1, 2))),
                 lambda: rl.yolo_decode(np.zeros((1, 4)), anchor, np.zeros((1, 2))),
                 lambda: rl.retinanet_loss([{"boxes": torch.tensor(targets[0]["boxes"], requires_grad=True),
                                             "labels": targets[0]["labels"]}, targets[1]], head, anchors)):
        with pytest.raises(TypeError, match=r"\.detach\(\) \(refloss takes no gradient with respect to it\)$"):
            call()


@pytest.mark.parametrize("loss", ["retinanet_loss", "ssd_loss"])
def test_float16_heads_give_float16_results(loss):
    """README's rule: float16 is computed in float32 and returned as float16 (these returned float32): the total,
    each part and each gradient the float32 computation's, rounded once."""
    targets, head, anchors = tiny_batch()
    h16 = {k: v.astype(np.float16) for k, v in head.items()}
    result, grads = getattr(rl, loss).value_and_grad(targets, h16, anchors)
    ref, ref_grads = getattr(rl, loss).value_and_grad(targets, {k: v.astype(np.float32) for k, v in h16.items()},
                                                      anchors)
    assert type(result.total) is np.float16 and result.total == np.float16(ref.total)
    assert all(type(v) is np.float16 and v == np.float16(ref.parts[k]) for k, v in result.parts.items())
    for k, g in grads.items():
        assert g.dtype == np.float16
        np.testing.assert_array_equal(g, ref_grads[k].astype(np.float16))
    assert getattr(rl, loss)(targets, h16, anchors).total == result.total


# --- refloss verify rows --------------------------------------------------------------------------

def test_verify_rows_pass_and_catch_a_planted_fault():
    from refloss import _verify_retinanet_ssd as vd

    row = vd.check("retinanet_loss", {"bbox_reg_loss_type": "giou"}, "float64")
    assert row.ok and row.points == 3 and row.value_err <= 1e-15, row
    # the loss given alpha = 0.3 against the oracle's paper value 0.25: the row fails
    bad = vd.check("retinanet_loss", {"alpha": 0.3}, "float64")
    assert not bad.ok and bad.value_err > 1e-3
    assert vd.names() == ("retinanet_loss", "ssd_loss")
