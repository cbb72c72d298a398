"""Shared geometry of the IoU family on xyxy boxes, with PyTorch's conventions.

pred = (px1, py1, px2, py2), target = (tx1, ty1, tx2, ty2).  The intersection and
the enclosing box use ``TMin``/``TMax`` (ties split the gradient 0.5/0.5, as
torch.minimum/maximum) and ``Clamp0`` (gradient 0 at 0, as clamp(min=0) in torch 2.14.1); see
``refloss/_derive/functions.py``.  Gradients w.r.t. all eight coordinates are
``sympy.diff`` of a differentiation form, which may differ from the evaluation form of
the value only by detached factors (``Detach``) and is proved equal to it in value.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Kernel, Step as DocStep, prove_equal
from refloss._derive.functions import Clamp0, Sub, TMax, TMin, plain

px1, py1, px2, py2 = sp.symbols("px1 py1 px2 py2", real=True)
tx1, ty1, tx2, ty2 = sp.symbols("tx1 ty1 tx2 ty2", real=True)
PRED = (px1, py1, px2, py2)
TARGET = (tx1, ty1, tx2, ty2)
ARRAYS = (("pred", 4, PRED), ("target", 4, TARGET))
eps = sp.Symbol("eps", nonnegative=True)

wp, hp = px2 - px1, py2 - py1
wt, ht = tx2 - tx1, ty2 - ty1
iw = Clamp0(TMin(px2, tx2) - TMax(px1, tx1))
ih = Clamp0(TMin(py2, ty2) - TMax(py1, ty1))
inter = iw * ih
union = wp * hp + wt * ht - inter
iou = inter / (union + eps)
# U - I = (Ap - I) + (At - I), each part from coordinate differences: with the parts of a box's
# width and height outside the intersection, wp - iw = min(wp, [px2 - tx2]+ + [tx1 - px1]+),
# Ap - I = (wp - iw) hp + iw (hp - ih), exact for every pair (disjoint ones included) and
# free of the cancellation of wp hp - iw ih when the boxes nearly coincide
out_wp = TMin(wp, Clamp0(Sub(px2, tx2)) + Clamp0(Sub(tx1, px1)))
out_hp = TMin(hp, Clamp0(Sub(py2, ty2)) + Clamp0(Sub(ty1, py1)))
out_wt = TMin(wt, Clamp0(Sub(tx2, px2)) + Clamp0(Sub(px1, tx1)))
out_ht = TMin(ht, Clamp0(Sub(ty2, py2)) + Clamp0(Sub(py1, ty1)))
union_minus_inter = (out_wp * hp + iw * out_hp) + (out_wt * ht + iw * out_ht)
# 1 - IoU as one fraction: no rounding of IoU near 1 before the subtraction, and U - I accurate
union_minus_inter_eps = union_minus_inter + eps
one_minus_iou = union_minus_inter_eps / (union + eps)
# what the proofs of the value forms see (the identity is proved once, in box_kernel)
_PROVED = ((one_minus_iou, (union - inter + eps) / (union + eps)), (union_minus_inter_eps, union - inter + eps))
# (completed below, once C - U is defined)
cw = TMax(px2, tx2) - TMin(px1, tx1)
ch = TMax(py2, ty2) - TMin(py1, ty1)
enclose = cw * ch
# C - U likewise, without subtracting areas: with the gaps between the boxes along x and y
# (0 where they overlap), C - U = out_wp out_ht + out_wt out_hp + gap_y cw + gap_x ch - gap_x gap_y
gap_x = Clamp0(TMax(px1, tx1) - TMin(px2, tx2))
gap_y = Clamp0(TMax(py1, ty1) - TMin(py2, ty2))
enclose_minus_union = out_wp * out_ht + out_wt * out_hp + gap_y * cw + gap_x * ch - gap_x * gap_y
_PROVED += ((enclose_minus_union, enclose - union),)
# centre offsets as sums of coordinate differences: exact-ish for small boxes far from 0
dx = (Sub(px1, tx1) + Sub(px2, tx2)) / 2
dy = (Sub(py1, ty1) + Sub(py2, ty2)) / 2
rho2 = dx**2 + dy**2
c2 = cw**2 + ch**2 + eps

INVALID = sp.Or(px2 < px1, py2 < py1, tx2 < tx1, ty2 < ty1)

EPS_PARAM_DOC = "stabiliser added where torchvision adds it (union, enclosing area, diagonal); 0 = exact formula"

GEOMETRY_STEPS = [
    DocStep("Boxes are $(x_1, y_1, x_2, y_2)$; $w = x_2 - x_1$, $h = y_2 - y_1$. Intersection, with "
            "$\\max/\\min$ as `torch.maximum/minimum` (a tie splits the gradient 0.5/0.5) and "
            "$[\\cdot]_+$ as `clamp(min=0)` (gradient 0 at 0, as in torch 2.14.1):",
            "I", sp.Symbol("i_w") * sp.Symbol("i_h")),
    DocStep("", "i_w", sp.Max(sp.Min(px2, tx2) - sp.Max(px1, tx1), 0)),
    DocStep("Union and IoU ($\\epsilon = 0$ by default: the exact, scale-invariant formula):",
            "U", plain(union).subs(inter, sp.Symbol("I"))),
    DocStep("", "\\mathrm{IoU}", sp.Symbol("I") / (sp.Symbol("U") + eps)),
    DocStep("$1 - \\mathrm{IoU}$ is evaluated as one fraction, so that nothing is rounded near 1 before the "
            "subtraction:", "1 - \\mathrm{IoU}", (sp.Symbol("U") - sp.Symbol("I") + eps) / (sp.Symbol("U") + eps)),
    DocStep("and $U - I = (A_p - I) + (A_t - I)$ without subtracting nearly equal areas: with the part of the "
            "predicted width outside the intersection, $w_p - i_w = \\min(w_p, [x_2^p - x_2^t]_+ + [x_1^t - x_1^p]_+)$ "
            "(likewise for heights and the target),", "A_p - I",
            sp.Symbol("(w_p - i_w)") * sp.Symbol("h_p") + sp.Symbol("i_w") * sp.Symbol("(h_p - i_h)")),
]


def box_kernel(branches, args, prelude=(), checks=None, numeric_proof=False, in_gradients=()) -> Kernel:
    """Kernel program from ``branches = [(condition or None, value form, differentiation form, label)]``:
    gradients w.r.t. the eight coordinates, value forms proved equal on overlapping boxes (with
    the accurate U - I proved equal to the plain one first, on overlapping and disjoint boxes)."""
    if checks is not None:
        checks.extend(_accurate_union_minus_inter())
    return kernel_from_forms(ARRAYS, branches, args, prelude, invalid=INVALID, checks=checks, domain=_POSITIVE_BOXES,
                             numeric_proof=numeric_proof, in_gradients=in_gradients,
                             proved=_PROVED)


@lru_cache(maxsize=None)
def _accurate_union_minus_inter() -> tuple:
    """The claims (proved once per process) that the accurate U - I equals U - I."""
    checks = []
    for name, domain in {"overlapping": _POSITIVE_BOXES, **_IDENTITY_DOMAINS}.items():
        prove_equal(plain(union_minus_inter), plain(union - inter),
                    f"U - I from the parts outside the intersection equals U - I ({name})", checks, domain=domain,
                    numeric=True)
        prove_equal(plain(enclose_minus_union), plain(enclose - union),
                    f"C - U from the parts outside the intersection and the gaps equals C - U ({name})", checks,
                    domain=domain, numeric=True)
    return tuple(checks)


# overlapping, x-disjoint, y-disjoint and nested boxes, for the accurate U - I (numerically)
_IDENTITY_DOMAINS = {
    "disjoint in x": {px1: (0, 1), px2: (1, 2), tx1: (3, 4), tx2: (4, 5), py1: (0, 1), py2: (2, 3), ty1: (1, 2),
                      ty2: (2, 4)},
    "disjoint in y": {py1: (0, 1), py2: (1, 2), ty1: (3, 4), ty2: (4, 5), px1: (0, 1), px2: (2, 3), tx1: (1, 2),
                      tx2: (2, 4)},
    "disjoint in both": {px1: (3, 4), px2: (4, 5), tx1: (0, 1), tx2: (1, 2), py1: (0, 1), py2: (1, 2), ty1: (3, 4),
                         ty2: (4, 5)},
    "target inside pred": {px1: (0, 1), px2: (5, 6), tx1: (2, 3), tx2: (3, 4), py1: (0, 1), py2: (5, 6),
                           ty1: (2, 3), ty2: (3, 4)},
}
# overlapping boxes with all coordinates distinct (for numerical proofs of identities)
_POSITIVE_BOXES = {px1: (0, 1), py1: (0, 1), px2: (2, 3), py2: (2, 3), tx1: (sp.Rational(1, 2), sp.Rational(3, 2)),
                   ty1: (sp.Rational(1, 2), sp.Rational(3, 2)), tx2: (sp.Rational(5, 2), 4), ty2: (sp.Rational(5, 2), 4),
                   eps: (0, sp.Rational(1, 10))}


def slide_path(dy: float):
    """A unit square sliding along x past a unit-square target, offset dy in y:
    x -> (pred, target, tangent of the path in the 8 coordinates)."""
    def path(x):
        return (x, dy, x + 1.0, dy + 1.0, 0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 1.0, 0.0, 0, 0, 0, 0)
    return path


def slide_plot(title: str, params: dict | None = None):
    """Loss and its derivative along the slide, for three vertical offsets."""
    from refloss._derive.core import Plot

    params = params or {}
    return Plot(f"{title}: sliding past the target",
                [(f"dy = {dy:g}", {"params": params, "path": slide_path(dy)}) for dy in (0.0, 0.5, 1.5)],
                x_range=(-4.0, 4.0), xlabel="horizontal offset of the predicted unit square",
                grad_title="derivative along the slide",
                caption="A predicted unit square slides horizontally past the target unit square at vertical offsets "
                        "dy; where the boxes do not overlap, IoU's gradient is 0 and the other losses keep pulling.")


def aspect_path(height: float):
    """A box of height ``height`` centred on the target unit square, its width x growing:
    x -> (pred, target, tangent)."""
    def path(x):
        y0 = 0.5 - height / 2
        return (0.5 - x / 2, y0, 0.5 + x / 2, y0 + height, 0.0, 0.0, 1.0, 1.0), (-0.5, 0.0, 0.5, 0.0, 0, 0, 0, 0)
    return path


def aspect_plot(title: str):
    """Loss and its derivative as the predicted box's width changes at fixed centre."""
    from refloss._derive.core import Plot

    return Plot(f"{title}: changing the aspect ratio",
                [(f"height = {h:g}", {"params": {}, "path": aspect_path(h)}) for h in (0.5, 1.0, 2.0)],
                x_range=(0.05, 4.0), xlabel="width of the predicted box (target: unit square, same centre)",
                grad_title="derivative w.r.t. the width",
                caption="The predicted box shares the target's centre; its width changes at fixed height. DIoU "
                        "cannot see the aspect ratio here (equal centres), CIoU's v and EIoU's width term can.")


def box_spec(name, title, formula, references, params, kernels, steps, plots, conventions, accuracy, checks,
             constants=(), kind="loss", variants=(), mean_weight=None):
    """The LossSpec of a box loss (``kind="metric"`` for a metric); a loss with an ``eps``
    parameter gets the eps placements peers use as variants for diagnoses."""
    from refloss._derive.core import LossSpec, Variant

    plots = list(plots) + [aspect_plot(title)]
    variants = list(variants)
    if any(p.name == "eps" for p in params):
        variants += [Variant("eps_ignored", f"eps={e:g}", params={"eps": e}) for e in EPS_VARIANTS]
    return LossSpec(name=name, title=title, formula=formula, references=references, params=params,
                    constants=list(constants), kernels=kernels, steps=GEOMETRY_STEPS + steps, plots=plots,
                    conventions=conventions or CONVENTIONS, accuracy=accuracy or ACCURACY, checks=checks,
                    family="box", kind=kind, layouts={"pred": "xyxy", "target": "xyxy"}, variants=variants,
                    mean_weight=mean_weight)


# the eps values peers use (torchvision 1e-7, mmdetection 1e-6, ...): variants a diagnosis tries
EPS_VARIANTS = (0.0, 1e-7, 1e-9, 1e-6)


CONVENTIONS = ("Non-differentiable points follow PyTorch autograd (what torch.maximum, torch.minimum and "
               "clamp(min=0) give in torch 2.14.1): a tie between coordinates splits the gradient 0.5/0.5; at "
               "touching boxes (zero intersection width or height) the clamp's gradient is 0, so the intersection "
               "contributes no gradient there (as torchvision's strict intersection mask). Where the formula is "
               "undefined for valid boxes (zero union, zero enclosing diagonal) the value is NaN.")
ACCURACY = ("1 - IoU is one fraction (U - I + eps)/(U + eps); centre offsets are sums of coordinate differences, "
            "which are exact for nearby coordinates, so small boxes far from the origin keep their digits.")
