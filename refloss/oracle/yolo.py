"""Oracle for YOLO box decoding (mpmath, 50 digits), from the papers' formulas.

``decode(t, anchor, grid, variant, scale_xy, stride)`` returns the box (cx, cy, w, h)
and ``jacobian(...)`` the 4x4 matrix d box / d t, both written out by hand.
"""
from __future__ import annotations

from mpmath import mp

from .elementwise import DPS
from .rounding import exact_mpf


def _params(variant, scale_xy):
    if variant in ("v2", "v3"):
        return mp.one, False
    if variant == "v4":
        return exact_mpf(scale_xy), False
    if variant == "scaled":
        return mp.mpf(2), True
    raise ValueError(f"unknown variant {variant!r}")


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def decode(t, anchor, grid, variant="v3", scale_xy=1.0, stride=1.0):
    """(b_x, b_y, b_w, b_h): centres (s sigma(t) - (s-1)/2 + c) * stride; sizes p e^t, or
    p (2 sigma(t))^2 for Scaled-YOLOv4 (v2/v3: s = 1; scaled: s = 2)."""
    with mp.workdps(DPS):
        s, scaled = _params(variant, scale_xy)
        st = exact_mpf(stride)
        tx, ty, tw, th = (exact_mpf(v) for v in t)
        pw, ph = (exact_mpf(v) for v in anchor)
        cx, cy = (exact_mpf(v) for v in grid)
        bx = (s * _sig(tx) - (s - 1) / 2 + cx) * st
        by = (s * _sig(ty) - (s - 1) / 2 + cy) * st
        if scaled:
            bw, bh = pw * (2 * _sig(tw)) ** 2, ph * (2 * _sig(th)) ** 2
        else:
            bw, bh = pw * mp.exp(tw), ph * mp.exp(th)
        return bx, by, bw, bh


def jacobian_diagonal(t, anchor, grid, variant="v3", scale_xy=1.0, stride=1.0):
    """d b_k / d t_k (the Jacobian is diagonal): s sigma(1 - sigma) stride for centres;
    p e^t, or 8 p sigma^2 (1 - sigma) for Scaled-YOLOv4 sizes."""
    with mp.workdps(DPS):
        s, scaled = _params(variant, scale_xy)
        st = exact_mpf(stride)
        tx, ty, tw, th = (exact_mpf(v) for v in t)
        pw, ph = (exact_mpf(v) for v in anchor)
        out = [s * _sig(tx) * _sig(-tx) * st, s * _sig(ty) * _sig(-ty) * st]
        for tt, p in ((tw, pw), (th, ph)):
            out.append(8 * p * _sig(tt) ** 2 * _sig(-tt) if scaled else p * mp.exp(tt))
        return tuple(out)


def decode_vjp(t, anchor, grid, cotangent, variant="v3", scale_xy=1.0, stride=1.0):
    """The decoded box and the vector-Jacobian product cotangent^T (d box / d t): 8 mpf."""
    box = decode(t, anchor, grid, variant, scale_xy, stride)
    jac = jacobian_diagonal(t, anchor, grid, variant, scale_xy, stride)
    with mp.workdps(DPS):
        return tuple(box) + tuple(j * exact_mpf(c) for j, c in zip(jac, cotangent))


def yolov1_box_loss(pred, target, lambda_coord=5.0):
    """YOLOv1 coordinate term (arXiv 1506.02640) for boxes (x, y, w, h):
    lambda [(x-x^)^2 + (y-y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2];
    returns (value, grad_pred 4-tuple, grad_target 4-tuple), written out by hand."""
    with mp.workdps(DPS):
        lam = exact_mpf(lambda_coord)
        x, y, w, h = (exact_mpf(v) for v in pred)
        xt, yt, wt, ht = (exact_mpf(v) for v in target)
        value = lam * ((x - xt) ** 2 + (y - yt) ** 2 + (mp.sqrt(w) - mp.sqrt(wt)) ** 2 + (mp.sqrt(h) - mp.sqrt(ht)) ** 2)
        gw = lam * (mp.sqrt(w) - mp.sqrt(wt)) / mp.sqrt(w)
        gh = lam * (mp.sqrt(h) - mp.sqrt(ht)) / mp.sqrt(h)
        gwt = -lam * (mp.sqrt(w) - mp.sqrt(wt)) / mp.sqrt(wt)
        ght = -lam * (mp.sqrt(h) - mp.sqrt(ht)) / mp.sqrt(ht)
        gp = (2 * lam * (x - xt), 2 * lam * (y - yt), gw, gh)
        gt = (-gp[0], -gp[1], gwt, ght)
        return value, gp, gt
