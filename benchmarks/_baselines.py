"""The baseline to beat (issue 16): straightforward hand-fused Numba kernels of the textbook
formulas, value and gradients w.r.t. pred and target in one parallel pass, no accuracy work.

GIoU, DIoU (arXiv:1911.08287) and CIoU (alpha constant in the gradient, as torchvision) on xyxy
boxes, and Smooth L1.  Written for timing only: not checked beyond agreeing with refloss on
ordinary boxes (``python -m benchmarks --check``).
"""
from __future__ import annotations

import math

import numpy as np

# refloss's CPU settings (512-bit vectors where they pay, refloss/_numba_options.py) before the first @njit: Numba
# fixes its CPU features when its codegen is made, at the first decorator, so that importing this module first
# compiled refloss's kernels and these baselines with LLVM's 256-bit preference, under refloss's header "512-bit
# vectors (refloss)" (found 2026-12-07); now both compile as refloss compiles for its users
import refloss._numba_options  # noqa: E402,F401
from numba import njit, prange  # noqa: E402

_OPTS = dict(parallel=True, fastmath=False, cache=True)


@njit(inline="always")
def _iou_parts(px1, py1, px2, py2, tx1, ty1, tx2, ty2):
    wp, hp, wt, ht = px2 - px1, py2 - py1, tx2 - tx1, ty2 - ty1
    iw = min(px2, tx2) - max(px1, tx1)
    ih = min(py2, ty2) - max(py1, ty1)
    ox = 1.0 if iw > 0 else 0.0
    oy = 1.0 if ih > 0 else 0.0
    iw, ih = iw * ox, ih * oy
    inter = iw * ih
    union = wp * hp + wt * ht - inter
    return wp, hp, wt, ht, iw, ih, ox, oy, inter, union


@njit(inline="always")
def _box_grads(kind, px1, py1, px2, py2, tx1, ty1, tx2, ty2, g):
    """value and d/d(8 coordinates) of 1 - IoU + penalty, kind 0 GIoU, 1 DIoU, 2 CIoU."""
    wp, hp, wt, ht, iw, ih, ox, oy, inter, union = _iou_parts(px1, py1, px2, py2, tx1, ty1, tx2, ty2)
    iou = inter / union
    # d inter / d coords (the overlap's edges), d union = d areas - d inter
    px2_in = 1.0 if px2 < tx2 else 0.0
    px1_in = 1.0 if px1 > tx1 else 0.0
    py2_in = 1.0 if py2 < ty2 else 0.0
    py1_in = 1.0 if py1 > ty1 else 0.0
    di = (-ih * ox * px1_in, -iw * oy * py1_in, ih * ox * px2_in, iw * oy * py2_in,
          -ih * ox * (1 - px1_in), -iw * oy * (1 - py1_in), ih * ox * (1 - px2_in), iw * oy * (1 - py2_in))
    da = (-hp, -wp, hp, wp, -ht, -wt, ht, wt)
    for k in range(8):
        du = da[k] - di[k]
        g[k] = -(di[k] * union - inter * du) / (union * union)
    cw = max(px2, tx2) - min(px1, tx1)
    ch = max(py2, ty2) - min(py1, ty1)
    if kind == 0:
        c = cw * ch
        value = 1.0 - iou + (c - union) / c
        cx2p = 1.0 if px2 > tx2 else 0.0
        cx1p = 1.0 if px1 < tx1 else 0.0
        cy2p = 1.0 if py2 > ty2 else 0.0
        cy1p = 1.0 if py1 < ty1 else 0.0
        dc = (-ch * cx1p, -cw * cy1p, ch * cx2p, cw * cy2p,
              -ch * (1 - cx1p), -cw * (1 - cy1p), ch * (1 - cx2p), cw * (1 - cy2p))
        for k in range(8):
            du = da[k] - di[k]
            g[k] += (dc[k] * union - c * du) / (c * c)  # d (1 - U/C)
        return value
    dx = (px1 + px2 - tx1 - tx2) * 0.5
    dy = (py1 + py2 - ty1 - ty2) * 0.5
    rho2 = dx * dx + dy * dy
    c2 = cw * cw + ch * ch
    value = 1.0 - iou + rho2 / c2
    cx2p = 1.0 if px2 > tx2 else 0.0
    cx1p = 1.0 if px1 < tx1 else 0.0
    cy2p = 1.0 if py2 > ty2 else 0.0
    cy1p = 1.0 if py1 < ty1 else 0.0
    dc2 = (-2 * cw * cx1p, -2 * ch * cy1p, 2 * cw * cx2p, 2 * ch * cy2p,
           -2 * cw * (1 - cx1p), -2 * ch * (1 - cy1p), 2 * cw * (1 - cx2p), 2 * ch * (1 - cy2p))
    drho = (dx, dy, dx, dy, -dx, -dy, -dx, -dy)
    for k in range(8):
        g[k] += (drho[k] * c2 - rho2 * dc2[k]) / (c2 * c2)
    if kind == 2:
        v = 4.0 / (math.pi * math.pi) * (math.atan(wt / ht) - math.atan(wp / hp)) ** 2
        alpha = v / (1.0 - iou + v)
        value += alpha * v
        d = math.atan(wt / ht) - math.atan(wp / hp)
        f = alpha * 8.0 / (math.pi * math.pi) * d
        np_ = wp * wp + hp * hp
        nt = wt * wt + ht * ht
        # d atan(w/h) = (h dw - w dh) / (w^2 + h^2)
        g[0] += f * (hp / np_)
        g[2] -= f * (hp / np_)
        g[1] -= f * (wp / np_)
        g[3] += f * (wp / np_)
        g[4] -= f * (ht / nt)
        g[6] += f * (ht / nt)
        g[5] += f * (wt / nt)
        g[7] -= f * (wt / nt)
    return value


def _make_box(kind):
    @njit(**_OPTS)
    def fused(p, t, out, gp, gt):
        for i in prange(p.shape[0]):
            g = np.empty(8, p.dtype)
            out[i] = _box_grads(kind, p[i, 0], p[i, 1], p[i, 2], p[i, 3], t[i, 0], t[i, 1], t[i, 2], t[i, 3], g)
            for k in range(4):
                gp[i, k] = g[k]
                gt[i, k] = g[4 + k]

    def run(p, t):
        out = np.empty(p.shape[0], p.dtype)
        gp, gt = np.empty_like(p), np.empty_like(t)
        fused(p, t, out, gp, gt)
        return out, gp, gt

    return run


@njit(**_OPTS)
def _smooth_l1(p, t, beta, out, gp, gt):
    for i in prange(p.shape[0]):
        x = p[i] - t[i]
        a = abs(x)
        if a < beta:
            out[i] = 0.5 * x * x / beta
            d = x / beta
        else:
            out[i] = a - 0.5 * beta
            d = 1.0 if x > 0 else -1.0
        gp[i] = d
        gt[i] = -d


def smooth_l1(p, t, beta=1.0):
    out, gp, gt = np.empty_like(p), np.empty_like(p), np.empty_like(t)
    _smooth_l1(p, t, p.dtype.type(beta), out, gp, gt)
    return out, gp, gt


BOXES = {"giou_loss": _make_box(0), "diou_loss": _make_box(1), "ciou_loss": _make_box(2)}


@njit(**_OPTS)
def parallel_copy(src, dst):
    """The memory roofline's copy, on every core."""
    for i in prange(src.shape[0]):
        dst[i] = src[i]
