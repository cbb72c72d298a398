"""-ln IoU loss of UnitBox (Yu et al., arXiv:1608.01471) on xyxy boxes."""
import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import _boxes as B
from refloss._derive.core import Step
from .iou_loss import EPS

NAME = "log_iou_loss"
NOTE_SLIDE = ("-ln IoU is +inf wherever the boxes do not overlap, so its curves stop at |x| = 1 and dy = 1.5 has no "
              "finite value (its gradient is NaN there); where they overlap it grows much faster than 1 - IoU toward "
              "the edge.")
NOTE_ASPECT = ("-ln IoU is smallest at width 1 for every height and grows without bound as the width goes to 0 "
               "(IoU -> 0), much faster than 1 - IoU.")


def derive():
    checks = []
    # -ln(I/(U+eps)) = log1p((U - I + eps)/I): accurate as IoU -> 1 (U - I from coordinate
    # differences, see _boxes), +inf when I = 0; NaN when also U + eps = A_p + A_t + eps = 0
    value = log1p(B.union_minus_inter_eps / B.inter)
    i_sym = sp.Symbol("inter", nonnegative=True)
    kernel = B.box_kernel(
        [(sp.And(sp.Eq(i_sym, 0), sp.Eq(B.wp * B.hp + B.wt * B.ht + B.eps, 0)), sp.nan, sp.nan,
          "zero union (eps = 0): IoU = 0/0, undefined (NaN) as in iou and iou_loss"),
         (sp.Eq(i_sym, 0), sp.oo, sp.nan, "no overlap: +inf, gradient undefined (NaN)"),
         (None, value, -sp.log(B.iou), "overlap")],
        args=(B.eps,), prelude=((i_sym, B.inter),), checks=checks)
    return B.box_spec(
        NAME, "-ln IoU loss (UnitBox)", "L = -ln IoU = log1p((U - I + eps) / I); +inf (gradient NaN) when the boxes "
        "do not overlap; NaN at zero union (U + eps = 0), as IoU.", ["J. Yu et al., UnitBox: An Advanced Object Detection Network, arXiv:1608.01471"], [EPS],
        {p: kernel for p in ("f64", "f32")},
        [Step("The loss, evaluated as $\\operatorname{log1p}((U - I + \\epsilon)/I)$ so that it keeps its digits as "
              "IoU approaches 1; for disjoint boxes ($I = 0$, `inter` in the kernel branches below) it is $+\\infty$ "
              "and its gradient is undefined (NaN); at zero union with $\\epsilon = 0$ (two boxes of zero area) IoU is "
              "0/0 and the loss NaN, as IoU and the IoU loss:", "L", "-\\ln \\mathrm{IoU}")],
        [B.slide_plot("-ln IoU loss", note=NOTE_SLIDE)], "", "", checks, aspect={"note": NOTE_ASPECT})
