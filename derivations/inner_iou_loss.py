"""Inner-IoU loss (Zhang, Xu and Zhang, Inner-IoU: More Effective Intersection over Union Loss with
Auxiliary Bounding Box, arXiv:2311.02877) on xyxy boxes.

The IoU of auxiliary boxes: each box scaled by ``ratio`` about its own centre (same centre, width
and height times ratio).  L = 1 - IoU^inner.  The paper combines it with another IoU loss as
L_Inner-X = L_X + IoU - IoU^inner (e.g. Inner-CIoU = ciou_loss - iou_loss + inner_iou_loss).

Every comparison of two auxiliary coordinates is the sign of their difference, formed from the
coordinate differences of the input boxes: with r = ratio,

    D1 = px1' - tx1' = ((1 + r)(px1 - tx1) + (1 - r)(px2 - tx2))/2,
    D2 = px2' - tx2' = ((1 - r)(px1 - tx1) + (1 + r)(px2 - tx2))/2,

so that identical boxes give D = 0 exactly and nearly identical ones D with few rounding errors:
rounding the auxiliary coordinates themselves moved near-ties to the other side of a kink, where
the gradient jumps (float32: O(1) errors).  (Lengths in units of r instead, D/r = c/r -+ dw/2 with c
the centres' offset, kept tiny and huge ratios' areas in range but rounded c/r: 50 times the
gradient error, and touching boxes at ratio 1 no longer touched.)  The intersection's width, and the
parts of each auxiliary width outside it, follow from D1, D2 and the auxiliary widths r w:

    i_w' = [r w_p - max(D2, 0) - max(-D1, 0)]_+  where w_p < w_t (else [r w_t - max(-D2, 0) - max(D1, 0)]_+:
    from the smaller box, so that it is its exact width when it lies inside the other),
    w_p' - i_w' = min(r w_p, max(D2, 0) + max(-D1, 0)),  w_t' - i_w' = min(r w_t, max(-D2, 0) + max(D1, 0)),

with torch's conventions (min/max split a tie's gradient 0.5/0.5; that is what min(px2', tx2') does
in the paper's formula), and 1 - IoU^inner = (U' - I' + eps)/(U' - I' + eps + I') with
U' - I' = (w_p' - i_w') h_p' + i_w' (h_p' - i_h') + (w_t' - i_w') h_t' + i_w' (h_t' - i_h'),
differentiated as -dIoU = -((1 - IoU) dI - IoU d(U - I))/(U + eps) with both factors quotients of
their own (the quotient rule cancels where IoU is near 0 or near 1).  The ratio's domain is 1/100 <= ratio <= 100 (the paper uses 0.5 to 1.5).  At a tie (identical boxes,
equal edges) the gradient averages one-sided derivatives (1 + r)/2 and (1 - r)/2 of the auxiliary
coordinates, whose difference r cancels: about 0.1 eps/r of the largest component (measured 2.7e-11
at r = 1e-6 in float64), within the box bar for r >= 1/100; tinier ratios also underflow r^2 w h.
"""
import dataclasses

import sympy as sp

from . import _boxes as B
from refloss._derive.core import Param, Step, prove_equal
from refloss._derive.functions import HAND_RULES, Clamp0, Decide64, HandDiff, Quot, Step as Above0, Sub, TMax, TMin, plain

NAME = "inner_iou_loss"
r = sp.Symbol("ratio", positive=True)


def _axis(p1, p2, t1, t2):
    """(inner width of pred, of target, intersection width, pred's and target's widths outside it) of one axis."""
    d1, d2 = Sub(p1, t1), Sub(p2, t2)
    # every kink that depends on D1 or D2 (their signs, the intersection's and the parts outside it) is decided
    # in float64 in the float32 kernel: rounded, disjoint boxes whose auxiliary boxes overlap by a sliver lost it
    # (gradient 0 where it is ~1e-3; found by the 10^9-point sweep)
    lo = Decide64(((1 + r) * d1 + (1 - r) * d2) / 2)  # p1' - t1'
    hi = Decide64(((1 - r) * d1 + (1 + r) * d2) / 2)  # p2' - t2'
    wp, wt = r * Sub(p2, p1), r * Sub(t2, t1)
    beyond_p = TMax(hi, 0) + TMax(-lo, 0)  # (p2' - min(p2', t2')) + (max(p1', t1') - p1')
    beyond_t = TMax(-hi, 0) + TMax(lo, 0)
    # the intersection's extent min(p2', t2') - max(p1', t1') from the smaller box, r w_p - beyond_p (or the
    # target's): exactly its width when it lies inside the other (a zero-width box gives 0, no rounding)
    smaller_p = Above0(Sub(t2, t1) - Sub(p2, p1))  # (either choice is the width where the widths are near-equal)
    inter = Clamp0(smaller_p * (wp - beyond_p) + (1 - smaller_p) * (wt - beyond_t))
    return wp, wt, inter, TMin(wp, beyond_p), TMin(wt, beyond_t)


wp_, wt_, iw_, out_wp, out_wt = _axis(B.px1, B.px2, B.tx1, B.tx2)
hp_, ht_, ih_, out_hp, out_ht = _axis(B.py1, B.py2, B.ty1, B.ty2)
inter = iw_ * ih_
union_minus_inter = B.eps + (out_wp * hp_ + iw_ * out_hp) + (out_wt * ht_ + iw_ * out_ht)
one_minus_iou = union_minus_inter / (union_minus_inter + inter)


def _inner_iou_derivative(s):
    """dIoU/ds = ((1 - IoU) dI - IoU d(U - I))/(U + eps), both factors quotients of their own (no subtraction):
    the quotient rule on (U - I + eps)/(U + eps), (d(U - I) - (1 - IoU)(dI + d(U - I)))/(U + eps), cancels
    d(U - I) against (1 - IoU) d(U - I) where IoU is small (thin crossing boxes: 1e-12 of the largest component
    in float64), and on I/(U + eps) cancels dI against IoU dI where IoU is near 1 (eps > 0 at identical boxes)."""
    u = union_minus_inter + inter
    return Quot(Quot(union_minus_inter, u) * sp.diff(inter, s) - Quot(inter, u) * sp.diff(union_minus_inter, s), u)


_RULE = 15  # (keys 1-4 are _boxes')
HAND_RULES[_RULE] = _inner_iou_derivative
diff_form = 1 - HandDiff(inter / (union_minus_inter + inter), sp.Integer(_RULE))

PARAMS = [Param("ratio", r, 0.75, "scale of the auxiliary boxes about their centres (the paper uses 0.5 to 1.5: "
                "< 1 for high-IoU samples, > 1 for low-IoU ones; 1 gives 1 - IoU, the authors' code's default; "
                "1/100 to 100: see the module's note on small ratios)",
                lower=sp.Rational(1, 100), upper=sp.Integer(100)),
          Param("eps", B.eps, 0.0, "stabiliser added to the auxiliary union (as the authors' code, 1e-7); "
                "0 = exact formula", lower=sp.Integer(0))]
CONVENTIONS = (B.CONVENTIONS + " The conventions apply to the auxiliary boxes (ties and touching among the scaled "
               "coordinates, decided from differences of the input coordinates).")
ACCURACY = ("1 - IoU of the auxiliary boxes is one fraction (U' - I' + eps)/(U' + eps) with U' - I' and I' from the "
            "differences D1 = px1' - tx1', D2 = px2' - tx2' (and likewise along y), each formed from the input "
            "coordinate differences: identical boxes give exact ties and nearly identical ones keep their digits, "
            "so the gradient is on the same side of every kink as the exact one. The gradient is "
            "((1 - IoU) dI - IoU d(U - I))/(U + eps), 1 - IoU and IoU each one quotient: no cancellation where "
            "IoU is near 0 (thin crossing boxes) or near 1.")
SLIDE_NOTE = ("With ratio = 0.75 the auxiliary unit squares are 0.75 wide: the loss reaches 1 at |x| = 0.75 instead of "
              "1, and its slope near x = 0 is steeper than that of 1 - IoU (the paper's faster convergence for "
              "high-IoU samples).")
ASPECT_NOTE = "Equal centres: the auxiliary boxes keep the aspect ratios, and IoU^inner equals IoU here."


def derive():
    checks = []
    # the auxiliary boxes as the paper writes them, and the geometry above proved equal to their IoU
    half = sp.Rational(1, 2)

    def aux(a1, a2):
        c, w = (a1 + a2) * half, a2 - a1
        return c - r * w * half, c + r * w * half

    (ax1, ax2), (bx1, bx2) = aux(B.px1, B.px2), aux(B.tx1, B.tx2)
    (ay1, ay2), (by1, by2) = aux(B.py1, B.py2), aux(B.ty1, B.ty2)
    paper_inter = sp.Max(sp.Min(ax2, bx2) - sp.Max(ax1, bx1), 0) * sp.Max(sp.Min(ay2, by2) - sp.Max(ay1, by1), 0)
    paper_union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - paper_inter
    for name, boxes in {"overlapping": B._POSITIVE_BOXES, **B._IDENTITY_DOMAINS}.items():
        domain = {**boxes, r: (sp.Rational(1, 2), sp.Rational(3, 2)), B.eps: (0, 1)}
        prove_equal(plain(inter), paper_inter, "the intersection of the auxiliary boxes from D1, D2 and r w equals "
                    f"the paper's min(b_r, b_r^gt) - max(b_l, b_l^gt) (clamped at 0) times its height ({name})",
                    checks, domain=domain, numeric=True)
        prove_equal(plain(one_minus_iou), 1 - paper_inter / (paper_union + B.eps), "1 - IoU^inner from U' - I' "
                    f"equals 1 - I'/(U' + eps) of the paper's auxiliary boxes ({name})", checks, domain=domain,
                    numeric=True)
    x = sp.Symbol("x")
    big_x, big_i = sp.Function("X")(x), sp.Function("I")(x)  # U - I + eps and I, any functions of a coordinate
    u = big_x + big_i
    prove_equal((big_x / u * big_i.diff(x) - big_i / u * big_x.diff(x)) / u, sp.diff(big_i / u, x),
                "the rule ((1 - IoU) dI - IoU d(U - I))/(U + eps) is dIoU for any U - I + eps and I", checks)
    k = B.box_kernel([(None, one_minus_iou, diff_form, "")], args=(r, B.eps), checks=checks, numeric_proof=True)
    # its float32 gradients' guarded decisions flag ~4 pairs in 10^4; computed by a function of their own, the main
    # loop ran 0.81-0.83x the time on two threads (docs/performance.md)
    k = dataclasses.replace(k, flagged_apart=True)
    return B.box_spec(
        NAME, "Inner-IoU loss", "L = 1 - IoU(inner(pred), inner(target)), inner(b) the box b scaled by ratio about "
        "its centre; the paper's L_Inner-X = L_X + IoU - IoU^inner combines it with another IoU loss.",
        ["H. Zhang, C. Xu, S. Zhang, Inner-IoU: More Effective Intersection over Union Loss with Auxiliary Bounding "
         "Box, arXiv:2311.02877"], PARAMS, {p: k for p in ("f64", "f32")},
        [Step("The auxiliary box of the prediction has the same centre and its sides scaled by the ratio $r$ "
              "(likewise for the target):", "px_1'",
              "\\frac{px_1 + px_2}{2} - r\\,\\frac{px_2 - px_1}{2}, \\qquad px_2' = \\frac{px_1 + px_2}{2} + "
              "r\\,\\frac{px_2 - px_1}{2}"),
         Step("Every comparison of two auxiliary coordinates is the sign of their difference, formed from the "
              "differences of the input coordinates (exact ties at identical boxes, few roundings near them):", "D_1",
              "px_1' - tx_1' = \\frac{(1 + r)(px_1 - tx_1) + (1 - r)(px_2 - tx_2)}{2}, \\qquad "
              "D_2 = px_2' - tx_2' = \\frac{(1 - r)(px_1 - tx_1) + (1 + r)(px_2 - tx_2)}{2}"),
         Step("The auxiliary intersection's width and the parts of the auxiliary widths outside it (likewise along "
              "$y$; from the smaller box, here the prediction, so that a box inside the other gives its exact width):",
              "i_w'", "\\left[r w_p - \\max(D_2, 0) - \\max(-D_1, 0)\\right]_+, \\qquad "
              "w_p' - i_w' = \\min\\left(r w_p, \\max(D_2, 0) + \\max(-D_1, 0)\\right)"),
         Step("The loss, with $U' - I' = (w_p' - i_w') h_p' + i_w' (h_p' - i_h') + (w_t' - i_w') h_t' + "
              "i_w' (h_t' - i_h')$:", "L",
              "1 - \\mathrm{IoU}^{\\mathrm{inner}} = \\frac{U' - I' + \\epsilon}{U' - I' + \\epsilon + I'}")],
        [B.slide_plot("Inner-IoU loss", {"ratio": 0.75}, note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks,
        aspect={"note": ASPECT_NOTE})
