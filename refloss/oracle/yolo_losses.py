"""Oracle for the whole YOLO losses (mpmath, 50 digits): YOLOv1 eq. (3) of arXiv:1506.02640,
YOLOv2 (YOLOv1's sums of squares per anchor, arXiv:1612.08242 and the seed), YOLOv3
(arXiv:1804.02767: t-space squares, BCE objectness with the ignore rule, sigmoid classes) and
YOLOv4 (arXiv:2004.10934: the box term 1 - CIoU, arXiv:1911.08287), each divided by the number
of images, as docs/yolo-losses.md writes them.

Written from those formulas with its own loops (assignment, IoU, CIoU, sigmoid, BCE, softmax);
it imports nothing from refloss's kernels.  ``oracle_v1`` and ``oracle_anchor`` return the parts
(``coord``, ``obj``, ``noobj``, ``cls``, ``total``) and, under ``"_decisions"``, what they decided
(the responsible predictors, the IoU targets, the matches, the ignored anchors); passed back as
``frozen=`` they are held fixed, which is what the gradients hold fixed.  ``gradient`` gives the
derivative of the total with respect to every head entry by ``mpmath.diff`` with the decisions
held.
"""
from __future__ import annotations

import numpy as np
from mpmath import mp

from .elementwise import DPS
from .rounding import exact_mpf


def _m(v):
    return v if isinstance(v, mp.mpf) else exact_mpf(v)


def _iou(a, b):
    """IoU of two cxcywh boxes."""
    ax1, ax2, ay1, ay2 = a[0] - a[2] / 2, a[0] + a[2] / 2, a[1] - a[3] / 2, a[1] + a[3] / 2
    bx1, bx2, by1, by2 = b[0] - b[2] / 2, b[0] + b[2] / 2, b[1] - b[3] / 2, b[1] + b[3] / 2
    iw = max(mp.mpf(0), min(ax2, bx2) - max(ax1, bx1))
    ih = max(mp.mpf(0), min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _ciou_loss(a, b):
    """1 - CIoU (Zheng et al., arXiv:1911.08287, eqs. 9-11) of cxcywh boxes; alpha as a function
    (its derivative counts: the kernels' alpha_grad=True)."""
    iou = _iou(a, b)
    rho2 = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    cw = max(a[0] + a[2] / 2, b[0] + b[2] / 2) - min(a[0] - a[2] / 2, b[0] - b[2] / 2)
    ch = max(a[1] + a[3] / 2, b[1] + b[3] / 2) - min(a[1] - a[3] / 2, b[1] - b[3] / 2)
    v = 4 / mp.pi ** 2 * (mp.atan(b[2] / b[3]) - mp.atan(a[2] / a[3])) ** 2
    alpha = v / ((1 - iou) + v) if v else mp.mpf(0)
    return 1 - iou + rho2 / (cw ** 2 + ch ** 2) + alpha * v


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def _bce(x, y):
    return y * mp.log(1 + mp.exp(-x)) + (1 - y) * mp.log(1 + mp.exp(x))


def _cellof(c, size):
    return min(int(mp.floor(_m(c) * size)), size - 1)


def _normalised(parts, n, normalize):
    scale = mp.mpf(1) / n if normalize == "batch" else 1
    parts = {k: v * scale for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def oracle_v1(head, boxes, labels, B=2, lc=5, ln=0.5, obj_target="iou", size_output="w", normalize="batch",
              frozen=None):
    """YOLOv1, eq. (3) of arXiv:1506.02640, summed over the images, divided by N.  ``head``
    (N, S, S, 5B + C) of floats or mpf."""
    with mp.workdps(max(DPS, mp.dps)):  # mp.diff raises the precision: keep its digits
        N, S, _, D = head.shape
        C = D - 5 * B
        parts = dict(coord=mp.mpf(0), obj=mp.mpf(0), noobj=mp.mpf(0), cls=mp.mpf(0))
        decisions = {} if frozen is None else frozen
        for n in range(N):
            owner = {}
            for g in range(len(boxes[n])):
                cell = (_cellof(boxes[n][g][1], S), _cellof(boxes[n][g][0], S))
                owner.setdefault(cell, g)
            for r in range(S):
                for c in range(S):
                    v = [_m(x) for x in head[n, r, c]]
                    preds = [v[5 * j:5 * j + 5] for j in range(B)]
                    resp = -1
                    if (r, c) in owner:
                        gt = [_m(x) for x in boxes[n][owner[(r, c)]]]
                        if frozen is None:
                            best = None
                            for j, (x, y, w, h, _) in enumerate(preds):
                                if size_output == "sqrt":
                                    w, h = w * w, h * h
                                iou = _iou(((c + x) / S, (r + y) / S, w, h), gt)
                                if best is None or iou > best:
                                    best, resp = iou, j
                            decisions[(n, r, c)] = (resp, best)
                        resp, best = decisions[(n, r, c)]
                        x, y, w, h, conf = preds[resp]
                        xt, yt = gt[0] * S - c, gt[1] * S - r
                        if size_output == "sqrt":
                            size = (w - mp.sqrt(gt[2])) ** 2 + (h - mp.sqrt(gt[3])) ** 2
                        else:
                            size = (mp.sqrt(w) - mp.sqrt(gt[2])) ** 2 + (mp.sqrt(h) - mp.sqrt(gt[3])) ** 2
                        parts["coord"] += lc * ((x - xt) ** 2 + (y - yt) ** 2 + size)
                        target = best if obj_target == "iou" else 1
                        parts["obj"] += (conf - target) ** 2
                        label = labels[n][owner[(r, c)]]
                        parts["cls"] += sum((v[5 * B + k] - (1 if k == label else 0)) ** 2 for k in range(C))
                    for j in range(B):
                        if j != resp:
                            parts["noobj"] += ln * preds[j][4] ** 2
        out = _normalised(parts, N, normalize)
        out["_decisions"] = decisions
        return out


def oracle_anchor(version, heads, anchors, boxes, labels, lc=None, ln=0.5, ignore=None, pos_thr=None,
                  xy_loss=None, scale_xy=1.1, obj_target="iou", frozen=None):
    """YOLOv2 (per-anchor sums of squares), YOLOv3 (t-space squares, BCE), YOLOv4 (CIoU box term),
    divided by N.  ``heads``: a list over scales of (N, H, W, B, 5 + C) of floats or mpf."""
    lc = (5 if version == "v2" else 1) if lc is None else lc
    ignore = (0.6 if version == "v2" else 0.5) if ignore is None else ignore
    xy_loss = xy_loss or ("sigmoid" if version == "v2" else "t")
    with mp.workdps(max(DPS, mp.dps)):  # mp.diff raises the precision: keep its digits
        N = heads[0].shape[0]
        C = heads[0].shape[-1] - 5
        flat = [(k, a, _m(anchors[k][a][0]), _m(anchors[k][a][1])) for k in range(len(heads))
                for a in range(len(anchors[k]))]
        parts = dict(coord=mp.mpf(0), obj=mp.mpf(0), noobj=mp.mpf(0), cls=mp.mpf(0))
        decisions = {} if frozen is None else frozen
        for n in range(N):
            gts = [[_m(x) for x in b] for b in boxes[n]]
            owner = {}  # (k, r, c, a) -> g
            claims = []
            for g, gt in enumerate(gts):
                shape = [_iou((0, 0, gt[2], gt[3]), (0, 0, pw, ph)) for _, _, pw, ph in flat]
                best = max(range(len(flat)), key=lambda i: (shape[i], -i))
                claims.append((0, g, best))
                if pos_thr is not None:
                    claims += [(1, g, i) for i in range(len(flat)) if i != best and shape[i] > pos_thr]
            for step in (0, 1):
                for s_, g, i in claims:
                    if s_ == step:
                        k, a = flat[i][:2]
                        H, W = heads[k].shape[1:3]
                        owner.setdefault((k, _cellof(boxes[n][g][1], H), _cellof(boxes[n][g][0], W), a), g)
            for k, head in enumerate(heads):
                H, W, A = head.shape[1:4]
                s = _m(scale_xy) if version == "v4" else mp.mpf(1)
                for r in range(H):
                    for c in range(W):
                        for a in range(A):
                            t = [_m(x) for x in head[n, r, c, a]]
                            pw, ph = _m(anchors[k][a][0]), _m(anchors[k][a][1])
                            box = ((s * _sig(t[0]) - (s - 1) / 2 + c) / W, (s * _sig(t[1]) - (s - 1) / 2 + r) / H,
                                   pw * mp.exp(t[2]), ph * mp.exp(t[3]))
                            g = owner.get((k, r, c, a))
                            if g is None:
                                key = (n, k, r, c, a)
                                if frozen is None:
                                    decisions[key] = any(_iou(box, gt) > ignore for gt in gts)
                                if decisions[key]:
                                    continue  # ignored
                                parts["noobj"] += ln * (_sig(t[4]) ** 2 if version == "v2" else _bce(t[4], 0))
                                continue
                            gt = gts[g]
                            ox, oy = gt[0] * W - c, gt[1] * H - r  # centre offsets in the cell
                            tw, th = mp.log(gt[2] / pw), mp.log(gt[3] / ph)
                            if version == "v4":
                                parts["coord"] += lc * _ciou_loss(box, gt)
                            else:
                                if xy_loss == "t":
                                    ux, uy = (ox + (s - 1) / 2) / s, (oy + (s - 1) / 2) / s
                                    xy = (t[0] - mp.log(ux / (1 - ux))) ** 2 + (t[1] - mp.log(uy / (1 - uy))) ** 2
                                else:
                                    xy = (_sig(t[0]) - ox) ** 2 + (_sig(t[1]) - oy) ** 2
                                parts["coord"] += lc * (xy + (t[2] - tw) ** 2 + (t[3] - th) ** 2)
                            label = labels[n][g]
                            if version == "v2":
                                key = (n, k, r, c, a, "iou")
                                if frozen is None:
                                    decisions[key] = _iou(box, gt) if obj_target == "iou" else mp.mpf(1)
                                parts["obj"] += (_sig(t[4]) - decisions[key]) ** 2
                                e = [mp.exp(z) for z in t[5:]]
                                parts["cls"] += sum((e[q] / sum(e) - (1 if q == label else 0)) ** 2
                                                    for q in range(C))
                            else:
                                parts["obj"] += _bce(t[4], 1)
                                parts["cls"] += sum(_bce(t[5 + q], 1 if q == label else 0) for q in range(C))
        out = _normalised(parts, N, "batch")
        out["_decisions"] = decisions
        return out


def gradient(total_of, heads, images=None):
    """d total / d every entry of ``heads`` (a list of arrays) by ``mpmath.diff`` at 50 digits;
    ``total_of(mp_heads)`` evaluates the oracle on object arrays of mpf with its decisions held.
    ``images``: only the entries of these images (the others are left None)."""
    with mp.workdps(DPS):
        mp_heads = [np.vectorize(_m, otypes=[object])(np.asarray(h, np.float64)) for h in heads]
        out = []
        for k, h in enumerate(mp_heads):
            g = np.empty(h.shape, object)
            for idx in np.ndindex(h.shape):
                if images is not None and idx[0] not in images:
                    continue
                x0 = h[idx]

                def f(x, idx=idx, h=h):
                    h[idx] = x
                    try:
                        return total_of(mp_heads)
                    finally:
                        h[idx] = x0
                g[idx] = mp.diff(f, x0)
            out.append(g)
        return out
