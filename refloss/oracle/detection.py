"""Oracle for the whole RetinaNet and SSD losses (mpmath, 50 digits), composed from the papers.

Independent of ``refloss._retinanet_ssd``: the box coding, the matching masks, the hard negatives
and the normalisations are written here again from RetinaNet (Lin et al., arXiv:1708.02002, 3-4
and 5.1) and SSD (Liu et al., arXiv:1512.02325, 2.2), and every gradient by hand from them.  The
focal loss and the IoU losses are the oracle's own (:mod:`.classification`, :mod:`.boxes`).
Inputs are floats (converted exactly); every function returns
``(classification, bbox_regression, d_cls_logits, d_bbox_regression)`` with the gradients of the
total as nested lists of mpf shaped like the head outputs.
"""
from __future__ import annotations

from mpmath import mp

from . import boxes as _boxes
from .classification import sigmoid_focal_loss
from .elementwise import DPS
from .rounding import exact_mpf


def _f(v):
    return exact_mpf(v)


def _centre_size(b):
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]


def encode(box, anchor, weights):
    """Faster R-CNN's parametrisation (arXiv:1506.01497, eq. 2) with weights: the regression
    target of ``box`` relative to ``anchor`` (both xyxy mpf)."""
    cx, cy, w, h = _centre_size(box)
    ax, ay, aw, ah = _centre_size(anchor)
    return [weights[0] * (cx - ax) / aw, weights[1] * (cy - ay) / ah,
            weights[2] * mp.log(w / aw), weights[3] * mp.log(h / ah)]


def decode(t, anchor, weights, clip):
    """(box xyxy, J) the decoded box and its Jacobian J[r][c] = d box_r / d t_c."""
    ax, ay, aw, ah = _centre_size(anchor)
    sw, sh = t[2] / weights[2], t[3] / weights[3]
    ew = mp.exp(min(sw, clip)) * aw
    eh = mp.exp(min(sh, clip)) * ah
    cx, cy = ax + t[0] / weights[0] * aw, ay + t[1] / weights[1] * ah
    dcx, dcy = aw / weights[0], ah / weights[1]
    dw = ew / weights[2] if sw < clip else mp.zero  # d w / d t_w (0 at and beyond the clip)
    dh = eh / weights[3] if sh < clip else mp.zero
    box = [cx - ew / 2, cy - eh / 2, cx + ew / 2, cy + eh / 2]
    jac = [[dcx, 0, -dw / 2, 0], [0, dcy, 0, -dh / 2], [dcx, 0, dw / 2, 0], [0, dcy, 0, dh / 2]]
    return box, jac


def _l1(d):
    return abs(d), mp.sign(d)


def _smooth_l1(d, beta):
    if abs(d) < beta:
        return d * d / (2 * beta), d / beta
    return abs(d) - beta / 2, mp.sign(d)


def _box_term(kind, t, anchor, gt, weights, beta, eps, clip):
    """(loss, d loss / d t) of one foreground anchor."""
    if kind in ("l1", "smooth_l1"):
        target = encode(gt, anchor, weights)
        terms = [_l1(a - b) if kind == "l1" else _smooth_l1(a - b, beta) for a, b in zip(t, target)]
        return sum(v for v, _ in terms), [g for _, g in terms]
    box, jac = decode(t, anchor, weights, clip)
    value, d_box, _ = getattr(_boxes, f"{kind}_loss")(box, gt, eps)
    return value, [sum(d_box[r] * jac[r][c] for r in range(4)) for c in range(4)]


def _zeros(n, a, k):
    return [[[mp.zero] * k for _ in range(a)] for _ in range(n)]


def retinanet(targets, cls_logits, bbox_regression, anchors, matched, box="l1", alpha=0.25, gamma=2.0, beta=1.0,
              eps=1e-7, weights=(1, 1, 1, 1), clip=None):
    """RetinaNet: per image, the focal loss summed over every class of every anchor that is not
    ignored (matched -2) plus the box loss of the foreground anchors (matched >= 0), both divided
    by max(1, the image's foreground count); averaged over the images."""
    with mp.workdps(DPS + 10):
        clip = mp.log(mp.mpf(1000) / 16) if clip is None else _f(clip)
        n, n_anchors, n_classes = len(cls_logits), len(cls_logits[0]), len(cls_logits[0][0])
        d_cls, d_reg = _zeros(n, n_anchors, n_classes), _zeros(n, n_anchors, 4)
        cls_total = box_total = mp.zero
        for i in range(n):
            m = [int(v) for v in matched[i]]
            scale = 1 / (mp.mpf(max(1, sum(v >= 0 for v in m))) * n)
            for a, v in enumerate(m):
                if v == -2:
                    continue
                label = int(targets[i]["labels"][v]) if v >= 0 else -1
                for k in range(n_classes):
                    value, d_x, _ = sigmoid_focal_loss(cls_logits[i][a][k], 1.0 if k == label else 0.0, alpha, gamma)
                    cls_total += value * scale
                    d_cls[i][a][k] = d_x * scale
                if v >= 0:
                    t = [_f(x) for x in bbox_regression[i][a]]
                    value, grad = _box_term(box, t, [_f(x) for x in anchors[i][a]],
                                            [_f(x) for x in targets[i]["boxes"][v]], weights, _f(beta), eps, clip)
                    box_total += value * scale
                    d_reg[i][a] = [g * scale for g in grad]
        return +cls_total, +box_total, d_cls, d_reg


def _softmax_ce(x, label):
    """(CE, dCE/dx) of -log softmax(x)_label: lse(x) - x_label, softmax(x) - e_label."""
    top = max(x)
    s = sum(mp.exp(v - top) for v in x)
    lse = top + mp.log(s)
    return lse - x[label], [mp.exp(v - top) / s - (1 if k == label else 0) for k, v in enumerate(x)]


def ssd(targets, cls_logits, bbox_regression, anchors, matched, ratio=3, beta=1.0, weights=(10, 10, 5, 5)):
    """SSD: (L_conf + L_loc) / N_pos of the batch (1 if none).  L_loc: smooth L1 of the encoded
    offsets of the foreground anchors; L_conf: the softmax cross-entropy of the foreground anchors
    against their class and of each image's hard negatives against the background (class 0): the
    anchors outside the foreground with the largest cross-entropy, ratio times the image's
    foreground count or all there are (the paper's "at most 3:1"), ties to the lower index."""
    with mp.workdps(DPS + 10):
        n, n_anchors, n_classes = len(cls_logits), len(cls_logits[0]), len(cls_logits[0][0])
        d_cls, d_reg = _zeros(n, n_anchors, n_classes), _zeros(n, n_anchors, 4)
        n_pos = sum(int(v) >= 0 for m in matched for v in m)
        scale = 1 / mp.mpf(max(1, n_pos))
        conf = loc = mp.zero
        for i in range(n):
            m = [int(v) for v in matched[i]]
            negatives = []
            for a, v in enumerate(m):
                x = [_f(z) for z in cls_logits[i][a]]
                label = int(targets[i]["labels"][v]) if v >= 0 else 0
                ce, grad = _softmax_ce(x, label)
                if v < 0:
                    negatives.append((-ce, a, grad))
                    continue
                conf += ce
                d_cls[i][a] = [g * scale for g in grad]
                t = [_f(z) for z in bbox_regression[i][a]]
                value, g_t = _box_term("smooth_l1", t, [_f(z) for z in anchors[i][a]],
                                       [_f(z) for z in targets[i]["boxes"][v]], weights, _f(beta), None, None)
                loc += value
                d_reg[i][a] = [g * scale for g in g_t]
            count = int(mp.ceil(ratio * sum(v >= 0 for v in m)))
            for neg_ce, a, grad in sorted(negatives, key=lambda e: (e[0], e[1]))[:count]:
                conf -= neg_ce
                d_cls[i][a] = [g * scale for g in grad]
        return +(conf * scale), +(loc * scale), d_cls, d_reg
