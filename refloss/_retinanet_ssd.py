"""RetinaNet's and SSD's whole losses with torchvision's arguments: ``retinanet_loss`` and ``ssd_loss``.

Both take what ``torchvision.models.detection`` hands its ``compute_loss`` methods, as NumPy arrays:

- ``targets``: a list of N dicts, ``boxes`` (G_i, 4) xyxy and ``labels`` (G_i,) integers;
- ``head_outputs``: a dict with ``cls_logits`` (N, A, K) and ``bbox_regression`` (N, A, 4);
- ``anchors``: N arrays (A, 4) xyxy (one per image);
- ``matched_idxs``: N integer arrays (A,): the matched ground truth, -1 background, -2 ignored
  (what ``refloss.match_by_iou`` gives), or None to compute them from the IoU (as the models do).

The terms are the generated kernels (``sigmoid_focal_loss``, ``l1``, ``smooth_l1``, ``giou_loss``,
``diou_loss``, ``ciou_loss``, ``softmax_cross_entropy``); this module selects their elements (the
matching, the ignored band, SSD's hard negatives), encodes the targets (``encode_boxes``) or decodes
the predictions (``decode_boxes``), and normalises.  The formulas, the differences from torchvision and
a worked example: docs/retinanet-ssd.md.  Pure NumPy here (the kernels compile on first use).
"""
from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np

from . import _arrays
from ._detection import DetectionLoss, detection_result, weighted_term
from ._loss import loss_named
from ._matching import BACKGROUND, IGNORED, match_by_iou
from ._validate import as_real_array, check_finite, reject_autograd, result_dtypes
from ._yolo import real_number

RETINANET_WEIGHTS = (1.0, 1.0, 1.0, 1.0)  # torchvision's RetinaNet BoxCoder
SSD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # torchvision's SSD BoxCoder (1 / the variances 0.1, 0.2)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's BoxCoder default: dw, dh at most log(62.5)
BOX_LOSSES = ("l1", "smooth_l1", "giou", "diou", "ciou")


_KERNELS = {}


def _kernel(name: str):
    """The loss object ``refloss.<name>`` (made once here: this module does not import the package root)."""
    loss = _KERNELS.get(name)
    if loss is None:
        loss = _KERNELS[name] = loss_named(name)
    return loss


# ---------------------------------------------------------------------------------------------
# box coding

def encode_boxes(boxes, anchors, weights=RETINANET_WEIGHTS) -> np.ndarray:
    """The regression targets of ``boxes`` (M, 4) xyxy relative to ``anchors`` (M, 4) xyxy, as
    torchvision's ``BoxCoder(weights).encode_single(boxes, anchors)``:

        w_a = x2_a - x1_a,  c_a = x1_a + w_a / 2   (and h_a, the y centre alike; the same for the box)
        t_x = w_x (c_x - c_x,a) / w_a,   t_y = w_y (c_y - c_y,a) / h_a,
        t_w = w_w log(w / w_a),          t_h = w_h log(h / h_a).

    Computed in the inputs' dtype in torchvision's order of operations.  The targets are
    constants of the loss (no gradient flows into them)."""
    b, a = np.asarray(boxes), np.asarray(anchors)
    wx, wy, ww, wh = (b.dtype.type(w) for w in weights)
    aw, ah = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    half = b.dtype.type(0.5)
    acx, acy = a[:, 0] + half * aw, a[:, 1] + half * ah
    bcx, bcy = b[:, 0] + half * bw, b[:, 1] + half * bh
    return np.stack([wx * (bcx - acx) / aw, wy * (bcy - acy) / ah,
                     ww * np.log(bw / aw), wh * np.log(bh / ah)], axis=1)


def decode_boxes(codes, anchors, weights=RETINANET_WEIGHTS, clip=BBOX_XFORM_CLIP, with_grad=False):
    """The boxes (M, 4) xyxy that ``codes`` (M, 4) predict relative to ``anchors`` (M, 4), as
    torchvision's ``BoxCoder(weights, clip).decode_single(codes, anchors)``:

        d_x = t_x / w_x, ...,  d_w = min(t_w / w_w, clip),  d_h = min(t_h / w_h, clip),
        c_x = d_x w_a + c_x,a,  w = exp(d_w) w_a  (y and h alike),
        box = (c_x - w/2, c_y - h/2, c_x + w/2, c_y + h/2).

    With ``with_grad`` also the vector-Jacobian product ``vjp(g)``: for g = dL/dbox (M, 4),
    dL/dcodes = ((g_1 + g_3) w_a / w_x, (g_2 + g_4) h_a / w_y,
    (g_3 - g_1) w / (2 w_w) [t_w / w_w < clip], (g_4 - g_2) h / (2 w_h) [t_h / w_h < clip]);
    at t_w / w_w = clip exactly the gradient is 0, as torch's clamp(max=clip) gives (torch 2.14.1)."""
    t, a = np.asarray(codes), np.asarray(anchors)
    one = t.dtype.type
    wx, wy, ww, wh = (one(w) for w in weights)
    aw, ah = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    acx, acy = a[:, 0] + one(0.5) * aw, a[:, 1] + one(0.5) * ah
    dx, dy, dw_raw, dh_raw = t[:, 0] / wx, t[:, 1] / wy, t[:, 2] / ww, t[:, 3] / wh
    clip_t = one(clip)
    dw, dh = np.minimum(dw_raw, clip_t), np.minimum(dh_raw, clip_t)
    cx, cy = dx * aw + acx, dy * ah + acy
    w, h = np.exp(dw) * aw, np.exp(dh) * ah
    hw, hh = one(0.5) * w, one(0.5) * h
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    if not with_grad:
        return boxes

    def vjp(g):
        g = np.asarray(g, t.dtype)
        gcx, gcy = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
        gw, gh = one(0.5) * (g[:, 2] - g[:, 0]), one(0.5) * (g[:, 3] - g[:, 1])
        return np.stack([gcx * aw / wx, gcy * ah / wy,
                         np.where(dw_raw < clip_t, gw * w / ww, one(0)),
                         np.where(dh_raw < clip_t, gh * h / wh, one(0))], axis=1)

    return boxes, vjp


# ---------------------------------------------------------------------------------------------
# input checks

def _positive_boxes(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first box without x2 > x1 and y2 > y1 (torchvision's detection models
    reject such target boxes; the box coding divides by the anchors' sizes and takes the log of
    the boxes')."""
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: must have shape (n, 4) (xyxy boxes), got shape {arr.shape}")
    check_finite(name, arr)
    bad = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}: boxes must have positive width and height (x2 > x1, y2 > y1); "
                         f"{name}[{i}] = {arr[i].tolist()}")


def _integers(name: str, value, shape_rule: str, ndim: int = 1) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise TypeError(f"{name}: must be an integer array, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: must have shape {shape_rule}, got shape {arr.shape}")
    return arr.astype(np.int64)


def _batch(targets, head_outputs, anchors, matched_idxs, dtype, validate, first_label):
    """The checked inputs: (dt, logits, reg, boxes, labels, anchors, matched) with boxes, labels,
    anchors and matched lists of N arrays (matched None where not given)."""
    if isinstance(targets, dict) or not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets: must be a list of dicts with 'boxes' and 'labels' (one per image), "
                        f"got {type(targets).__name__}")
    if not isinstance(head_outputs, dict):
        raise TypeError(f"head_outputs: must be a dict with 'cls_logits' and 'bbox_regression', "
                        f"got {type(head_outputs).__name__}")
    for key in ("cls_logits", "bbox_regression"):
        if key not in head_outputs:
            raise ValueError(f"head_outputs: missing key {key!r} (it needs 'cls_logits' and 'bbox_regression')")
    raw_logits, raw_reg = head_outputs["cls_logits"], head_outputs["bbox_regression"]
    reject_autograd(("head_outputs['cls_logits']", "head_outputs['bbox_regression']"), (raw_logits, raw_reg))
    dt, _, out_dt = result_dtypes((raw_logits, raw_reg), dtype)  # (float16 heads: computed in float32)
    logits = as_real_array("head_outputs['cls_logits']", raw_logits, dt)
    reg = as_real_array("head_outputs['bbox_regression']", raw_reg, dt)
    n = len(targets)
    if n == 0:
        raise ValueError("targets: an empty batch (torchvision divides by the number of images)")
    if logits.ndim != 3 or logits.shape[0] != n or logits.shape[2] < 1:
        raise ValueError(f"head_outputs['cls_logits']: must have shape (N, A, K) with N = len(targets) = {n}, "
                         f"got shape {logits.shape}")
    n_anchors, n_classes = logits.shape[1], logits.shape[2]
    if n_classes <= first_label:  # (before the labels' range, which would read "in [1, 0]")
        raise ValueError(f"head_outputs['cls_logits']: SSD needs K >= 2 classes (0 is the background), got "
                         f"shape {logits.shape}")
    if reg.shape != (n, n_anchors, 4):
        raise ValueError(f"head_outputs['bbox_regression']: must have shape (N, A, 4) = {(n, n_anchors, 4)} "
                         f"(as cls_logits), got shape {reg.shape}")
    if validate:
        check_finite("head_outputs['cls_logits']", logits)
        check_finite("head_outputs['bbox_regression']", reg)
    if isinstance(anchors, dict) or len(anchors) != n:
        raise ValueError(f"anchors: must be N = {n} arrays (A, 4), one per image, got "
                         f"{len(anchors) if not isinstance(anchors, dict) else 'a dict'}")
    if matched_idxs is not None and len(matched_idxs) != n:
        raise ValueError(f"matched_idxs: must be N = {n} integer arrays (A,) or None, got {len(matched_idxs)}")
    boxes, labels, anchor_list, matched = [], [], [], []
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{i}]: must be a dict with 'boxes' and 'labels'")
        reject_autograd((f"targets[{i}]['boxes']",), (t["boxes"],), gradient=False)
        b = as_real_array(f"targets[{i}]['boxes']", t["boxes"], dt)
        if b.size == 0:
            b = b.reshape(0, 4)
        _positive_boxes(f"targets[{i}]['boxes']", b)
        lab = _integers(f"targets[{i}]['labels']", t["labels"], "(G,)")
        if lab.shape[0] != b.shape[0]:
            raise ValueError(f"targets[{i}]['labels']: must have one label a box ({b.shape[0]}), "
                             f"got shape {lab.shape}")
        bad = (lab < first_label) | (lab >= n_classes)
        if bad.any():
            j = int(np.argmax(bad))
            rule = (f"in [1, K - 1] = [1, {n_classes - 1}] (class 0 is the background)" if first_label
                    else f"in [0, K - 1] = [0, {n_classes - 1}]")
            raise ValueError(f"targets[{i}]['labels']: must lie {rule}; targets[{i}]['labels'][{j}] = {lab[j]}")
        reject_autograd((f"anchors[{i}]",), (anchors[i],), gradient=False)
        a = as_real_array(f"anchors[{i}]", anchors[i], dt)
        if a.shape != (n_anchors, 4):
            raise ValueError(f"anchors[{i}]: must have shape (A, 4) = {(n_anchors, 4)}, got shape {a.shape}")
        _positive_boxes(f"anchors[{i}]", a)
        m = None
        if matched_idxs is not None:
            m = _integers(f"matched_idxs[{i}]", matched_idxs[i], f"(A,) = ({n_anchors},)")
            if m.shape != (n_anchors,):
                raise ValueError(f"matched_idxs[{i}]: must have shape (A,) = ({n_anchors},), got shape {m.shape}")
            bad = (m < IGNORED) | (m >= b.shape[0])
            if bad.any():
                j = int(np.argmax(bad))
                rule = (f"-2 (ignored), -1 (background) or a box index in [0, {b.shape[0] - 1}]" if b.shape[0] else
                        f"-2 (ignored) or -1 (background) (targets[{i}] has no boxes)")
                raise ValueError(f"matched_idxs[{i}]: must be {rule}; matched_idxs[{i}][{j}] = {m[j]}")
        boxes.append(b)
        labels.append(lab)
        anchor_list.append(a)
        matched.append(m)
    return dt, out_dt, logits, reg, boxes, labels, anchor_list, matched


def _iou_matrix(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(G, A) IoU of each ground-truth box with each anchor (``refloss.iou``, as torchvision's box_iou)."""
    return np.asarray(_kernel("iou")(boxes[:, None, :], anchors[None, :, :]))


def _threshold(name, value):
    """A real parameter as a float; errors name it (NaN too: it surfaced as 'pred: must be finite' from the box
    kernels or as the matcher's 'high_threshold')."""
    v = real_number(name, value)
    if v != v:
        raise ValueError(f"{name}: must be a number, got nan")
    return v


def _box_weights(weights):
    try:
        w = tuple(float(v) for v in weights)
    except TypeError:
        raise TypeError(f"weights: must be 4 positive numbers (w_x, w_y, w_w, w_h), got {weights!r}") from None
    if len(w) != 4 or not all(v > 0 and math.isfinite(v) for v in w):
        raise ValueError(f"weights: must be 4 finite positive numbers (w_x, w_y, w_w, w_h), got {weights!r}")
    return w


def _box_term(kind, codes, anchors, gt, weights, clip, beta, eps, with_grad, dt):
    """sum over the rows of the box loss ``kind`` and, with ``with_grad``, its gradient with respect
    to ``codes``: l1 / smooth_l1 on the encoded targets, or giou / diou / ciou on the decoded boxes."""
    if kind in ("l1", "smooth_l1"):
        target = encode_boxes(gt, anchors, weights)
        params = {"beta": beta} if kind == "smooth_l1" else {}
        out = weighted_term(_kernel(kind), (codes, target), 1.0, with_grad, dtype=dt, **params)
        return (out[0], out[1][0]) if with_grad else out
    loss = _kernel(f"{kind}_loss")
    if not with_grad:
        return weighted_term(loss, (decode_boxes(codes, anchors, weights, clip), gt), 1.0, False, dtype=dt, eps=eps)
    pred, vjp = decode_boxes(codes, anchors, weights, clip, with_grad=True)
    value, grads = weighted_term(loss, (pred, gt), 1.0, True, dtype=dt, eps=eps)
    return value, vjp(grads[0])


# ---------------------------------------------------------------------------------------------
# RetinaNet

def _retinanet(with_grad, targets, head_outputs, anchors, matched_idxs=None, *, alpha=0.25, gamma=2.0,
               bbox_reg_loss_type="l1", beta=1.0, eps=1e-7, weights=RETINANET_WEIGHTS, bbox_xform_clip=BBOX_XFORM_CLIP,
               fg_iou_thresh=0.5, bg_iou_thresh=0.4, allow_low_quality_matches=True, dtype=None, validate=True):
    if bbox_reg_loss_type not in BOX_LOSSES:
        raise ValueError(f"bbox_reg_loss_type: must be one of {BOX_LOSSES}, got {bbox_reg_loss_type!r}")
    # beta and eps checked whichever box loss reads them (beta=-1 with the default "l1" was taken silently)
    _kernel("smooth_l1").kernel_args({"beta": beta})
    _kernel("giou_loss").kernel_args({"eps": eps})
    weights = _box_weights(weights)
    clip = _threshold("bbox_xform_clip", bbox_xform_clip)
    dt, out_dt, logits, reg, boxes, labels, anchors, matched = _batch(targets, head_outputs, anchors, matched_idxs, dtype,
                                                              validate, first_label=0)
    n, n_anchors, n_classes = logits.shape
    if matched_idxs is None:
        hi, lo = _threshold("fg_iou_thresh", fg_iou_thresh), _threshold("bg_iou_thresh", bg_iou_thresh)
        if lo > hi:
            raise ValueError(f"bg_iou_thresh: must be <= fg_iou_thresh (torchvision's Matcher asserts it), got "
                             f"bg_iou_thresh={bg_iou_thresh!r} > fg_iou_thresh={fg_iou_thresh!r}")
        matched = [match_by_iou(_iou_matrix(b, a), hi, lo, allow_low_quality_matches) if len(b)
                   else np.full(n_anchors, BACKGROUND, np.int64) for b, a in zip(boxes, anchors)]
    zero = dt.type(0)
    cls_sum = box_sum = zero
    d_logits = np.zeros_like(logits) if with_grad else None
    d_reg = np.zeros_like(reg) if with_grad else None
    num_fg = np.array([int((m >= 0).sum()) for m in matched], np.int64)
    for i in range(n):
        m = matched[i]
        fg = m >= 0
        valid = m != IGNORED
        norm = dt.type(max(1, int(num_fg[i])))
        onehot = np.zeros((n_anchors, n_classes), dt)
        onehot[np.flatnonzero(fg), labels[i][m[fg]]] = 1
        cls = weighted_term(_kernel("sigmoid_focal_loss"), (logits[i][valid], onehot[valid]), 1.0, with_grad,
                            dtype=dt, alpha=alpha, gamma=gamma)
        box = _box_term(bbox_reg_loss_type, reg[i][fg], anchors[i][fg], boxes[i][m[fg]], weights, clip, beta, eps,
                        with_grad, dt)
        if with_grad:
            (cls, (g_cls, _)), (box, g_box) = cls, box
            d_logits[i][valid] = g_cls / norm / dt.type(n)
            d_reg[i][fg] = g_box / norm / dt.type(n)
        cls_sum = cls_sum + cls / norm
        box_sum = box_sum + box / norm
    parts = {"classification": cls_sum / dt.type(n), "bbox_regression": box_sum / dt.type(n)}
    result = detection_result(parts["classification"] + parts["bbox_regression"], parts,
                              {"matched_idxs": matched, "num_foreground": num_fg,
                               "normalisers": np.maximum(num_fg, 1) * n}, out_dt)
    if not with_grad:
        return result
    return result, {"cls_logits": d_logits.astype(out_dt, copy=False), "bbox_regression": d_reg.astype(out_dt, copy=False)}


_RETINANET_DOC = """RetinaNet's loss (Lin et al., arXiv:1708.02002) as torchvision's ``RetinaNetHead.compute_loss``.

    retinanet_loss(targets, head_outputs, anchors, matched_idxs=None, *, alpha=0.25, gamma=2.0,
                   bbox_reg_loss_type="l1", beta=1.0, eps=1e-7, weights=(1, 1, 1, 1),
                   bbox_xform_clip=log(1000/16), fg_iou_thresh=0.5, bg_iou_thresh=0.4,
                   allow_low_quality_matches=True, dtype=None, validate=True) -> DetectionResult

With F_i the foreground anchors of image i (matched_idxs >= 0), V_i the anchors not ignored
(matched_idxs != -2) and n_i = max(1, |F_i|):

    classification  = 1/N sum_i 1/n_i sum_{a in V_i} sum_k FL(x_iak, y_iak),
                      y_iak = 1 if a in F_i and k = label of its ground truth, else 0,
                      FL = sigmoid_focal_loss(alpha, gamma) (refloss.sigmoid_focal_loss)
    bbox_regression = 1/N sum_i 1/n_i sum_{a in F_i} box_loss_ia

box_loss: "l1" (default) or "smooth_l1" (beta) on the encoded targets
(``encode_boxes(gt, anchor, weights)``), or "giou" / "diou" / "ciou" (eps) on the decoded
predictions (``decode_boxes(t, anchor, weights, bbox_xform_clip)``) against the ground truth.
``matched_idxs=None``: ``match_by_iou(iou(boxes, anchors), fg_iou_thresh, bg_iou_thresh,
allow_low_quality_matches)`` per image, an image without boxes all background (as torchvision).

``.parts``: {"classification", "bbox_regression"}; ``.details``: "matched_idxs" (N arrays (A,)),
"num_foreground" (N,), "normalisers" (N,) = N n_i.  ``.value_and_grad(...)`` gives
``(result, {"cls_logits": (N, A, K), "bbox_regression": (N, A, 4)})``, the gradients of the total.
Formulas, differences from torchvision and a worked example: docs/retinanet-ssd.md.
"""

retinanet_loss = DetectionLoss("retinanet_loss", _retinanet, _RETINANET_DOC)


# ---------------------------------------------------------------------------------------------
# SSD

def ssd_match(iou_matrix, threshold=0.5) -> np.ndarray:
    """torchvision's ``SSDMatcher(threshold)``: ``match_by_iou(iou_matrix, threshold, threshold)``,
    then every ground truth g takes its best anchor (the first of the highest IoU in its row),
    whatever the IoU; where two ground truths have the same best anchor, the later one (higher g)
    keeps it (torch's CPU index assignment and NumPy's both keep the last write).  SSD paper
    (arXiv:1512.02325, 2.2): "match each ground truth box to the default box with the best jaccard
    overlap", then every default box above 0.5."""
    matches = match_by_iou(iou_matrix, threshold, threshold)
    m = np.asarray(iou_matrix)
    if m.shape[0] and m.shape[1]:
        best_anchor = m.argmax(axis=1)
        matches[best_anchor] = np.arange(m.shape[0])
    return matches


def hard_negatives(losses: np.ndarray, negative: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` anchors among ``negative`` with the largest ``losses``, in that
    order: a stable sort on descending loss, so that of equal losses the lower anchor index comes
    first.  (torchvision sorts with torch's default, unstable sort: for more than 16 anchors its
    order among equal losses is the sort's own; the sum of the selected losses is the same.)"""
    candidates = np.flatnonzero(negative)
    order = np.argsort(-losses[candidates], kind="stable")
    return candidates[order[:count]]


MINING = ("paper", "torchvision")


def _negative_count(ratio: float, num_fg: int, mining: str) -> int:
    """ceil(r |F|), the hard negatives wanted, with r the shortest decimal that rounds to neg_to_pos_ratio (2.2 as
    11/5): float64's product 2.2 * 25 = 55.00000000000001 asked for 56 where the 2.2 written means 55 (a probe
    found 21 one-decimal ratios with |F| < 60 so).  mining="torchvision": torchvision's count, the anchors ranked
    below its float32 product fl32(fl32(r) |F|) (0.15 * 100 -> 15.000001: 16)."""
    if mining == "torchvision":
        with np.errstate(over="ignore", invalid="ignore"):
            product = float(np.float32(ratio) * np.float32(num_fg))
        if not math.isfinite(product):  # (a ratio beyond float32's range: inf takes every anchor, 0 * inf = NaN none)
            return 0 if product != product else sys.maxsize
        return math.ceil(product)
    return math.ceil(Fraction(repr(float(ratio))) * num_fg)


def _ssd(with_grad, targets, head_outputs, anchors, matched_idxs=None, *, neg_to_pos_ratio=3.0, beta=1.0,
         weights=SSD_WEIGHTS, iou_thresh=0.5, mining="paper", dtype=None, validate=True):
    ratio = _threshold("neg_to_pos_ratio", neg_to_pos_ratio)
    if not ratio >= 0 or math.isinf(ratio):
        raise ValueError(f"neg_to_pos_ratio: must be finite and >= 0, got {neg_to_pos_ratio!r}")
    if mining not in MINING:
        raise ValueError(f"mining: must be one of {MINING}, got {mining!r}")
    _kernel("smooth_l1").kernel_args({"beta": beta})  # (checked with no foreground anchor too)
    weights = _box_weights(weights)
    dt, out_dt, logits, reg, boxes, labels, anchors, matched = _batch(targets, head_outputs, anchors, matched_idxs, dtype,
                                                              validate, first_label=1)
    n, n_anchors, n_classes = logits.shape
    if matched_idxs is None:
        t = _threshold("iou_thresh", iou_thresh)
        matched = [ssd_match(_iou_matrix(b, a), t) if len(b) else np.full(n_anchors, BACKGROUND, np.int64)
                   for b, a in zip(boxes, anchors)]
    fg = np.stack([m >= 0 for m in matched])  # (N, A)
    num_fg = fg.sum(axis=1)
    norm = dt.type(max(1, int(num_fg.sum())))
    # box term: smooth L1 on the encoded targets of every foreground anchor of the batch
    box_sum = dt.type(0)
    d_reg = np.zeros_like(reg) if with_grad else None
    for i in range(n):
        m = matched[i]
        out = _box_term("smooth_l1", reg[i][fg[i]], anchors[i][fg[i]], boxes[i][m[fg[i]]], weights, None, beta,
                        None, with_grad, dt)
        if with_grad:
            out, d_reg[i][fg[i]] = out[0], out[1] / norm
        box_sum = box_sum + out
    softmax_ce = _kernel("softmax_cross_entropy")
    # classification: softmax cross-entropy of every anchor, background (class 0) where not foreground
    cls_target = np.zeros((n, n_anchors), np.int64)
    for i in range(n):
        cls_target[i][fg[i]] = labels[i][matched[i][fg[i]]]
    flat_logits = logits.reshape(n * n_anchors, n_classes)
    if with_grad:
        ce, grads = softmax_ce.value_and_grad(flat_logits, cls_target.reshape(-1), reduction="none", dtype=dt)
        d_ce = np.asarray(grads[0]).reshape(n, n_anchors, n_classes)
    else:
        ce = softmax_ce(flat_logits, cls_target.reshape(-1), reduction="none", dtype=dt)
    ce = np.asarray(ce).reshape(n, n_anchors)
    # hard negatives: per image the ceil(ratio * |F_i|) highest losses among its other anchors
    # (mining="torchvision": when fewer negatives are left, the first positives fill the count and are
    # counted twice, as torchvision's rank test does)
    negatives = np.zeros((n, n_anchors), bool)
    twice = np.zeros((n, n_anchors), bool)
    selected = []
    for i in range(n):
        count = _negative_count(ratio, int(num_fg[i]), mining)
        available = n_anchors - int(num_fg[i])
        chosen = hard_negatives(ce[i], ~fg[i], min(count, available))
        negatives[i][chosen] = True
        selected.append(chosen)
        if mining == "torchvision" and count > available:
            twice[i][np.flatnonzero(fg[i])[:count - available]] = True
    cls = (_arrays.reduce(ce[fg], "sum")
           + _arrays.reduce(ce[negatives | twice] if twice.any() else ce[negatives], "sum"))
    cls = cls / norm
    parts = {"bbox_regression": box_sum / norm, "classification": cls}
    result = detection_result(parts["bbox_regression"] + parts["classification"], parts,
                              {"matched_idxs": matched, "num_foreground": num_fg, "normaliser": int(norm),
                               "hard_negatives": selected, "negative_mask": negatives,
                               "positives_counted_twice": twice}, out_dt)
    if not with_grad:
        return result
    d_logits = d_ce * ((fg.astype(dt) + negatives + twice)[..., None] / norm).astype(dt)
    return result, {"cls_logits": d_logits.astype(out_dt, copy=False), "bbox_regression": d_reg.astype(out_dt, copy=False)}


_SSD_DOC = """SSD's loss (Liu et al., arXiv:1512.02325) as torchvision's ``SSD.compute_loss``.

    ssd_loss(targets, head_outputs, anchors, matched_idxs=None, *, neg_to_pos_ratio=3.0, beta=1.0,
             weights=(10, 10, 5, 5), iou_thresh=0.5, mining="paper", dtype=None,
             validate=True) -> DetectionResult

With F_i the foreground anchors of image i (matched_idxs >= 0; labels 1..K-1, class 0 is the
background), P = max(1, sum_i |F_i|) and H_i the hard negatives: the min(ceil(ratio |F_i|),
A - |F_i|) anchors outside F_i with the largest cross-entropy against class 0 (ties: lower index
first; ignored anchors, -2, count as background, as in torchvision; ratio as the decimal written,
2.2 = 11/5, so 2.2 * 25 asks for 55):

    bbox_regression = 1/P sum_i sum_{a in F_i} sum_c smooth_l1_beta(t_iac - encode(gt, anchor)_c)
    classification  = 1/P sum_i (sum_{a in F_i} CE(x_ia, label) + sum_{a in H_i} CE(x_ia, 0))

CE = refloss.softmax_cross_entropy.  ``matched_idxs=None``: torchvision's SSDMatcher
(``ssd_match``) with ``iou_thresh``.  Where ceil(ratio |F_i|) exceeds the A - |F_i| negatives
available, torchvision's rank test also selects the first positives (by anchor index, for
A <= 16; beyond, torch's unstable sort picks them) and counts their cross-entropy twice:
``mining="torchvision"`` does that, and counts as torchvision does, ceil of the float32 product
ratio * |F_i| (0.15 * 100 asks for 16); the default ``mining="paper"`` takes only the negatives
(SSD, 2.2: "at most 3:1"), ceil(ratio * |F_i|) of the ratio as written (0.15 * 100: 15).
See docs/retinanet-ssd.md.

``.details``: "matched_idxs", "num_foreground" (N,), "normaliser" P, "hard_negatives" (N index
arrays, by descending loss), "negative_mask" (N, A), "positives_counted_twice" (N, A; all
False unless ``mining="torchvision"``).  ``.value_and_grad(...)`` gives
``(result, {"cls_logits": ..., "bbox_regression": ...})``.
"""

ssd_loss = DetectionLoss("ssd_loss", _ssd, _SSD_DOC)
