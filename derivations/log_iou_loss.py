"""-ln IoU loss of UnitBox (Yu et al., arXiv:1608.01471) on xyxy boxes."""
import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import _boxes as B
from refloss._derive.core import Step
from .iou_loss import EPS

NAME = "log_iou_loss"


def derive():
    checks = []
    # -ln(I/(U+eps)) = log1p((U - I + eps)/I): accurate as IoU -> 1 (U - I from coordinate
    # differences, see _boxes), +inf when I = 0
    value = log1p(B.union_minus_inter_eps / B.inter)
    i_sym = sp.Symbol("inter", nonnegative=True)
    kernel = B.box_kernel(
        [(sp.Eq(i_sym, 0), sp.oo, sp.nan, "no overlap: +inf, gradient undefined (NaN)"),
         (None, value, -sp.log(B.iou), "overlap")],
        args=(B.eps,), prelude=((i_sym, B.inter),), checks=checks)
    return B.box_spec(
        NAME, "-ln IoU loss (UnitBox)", "L = -ln IoU = log1p((U - I + eps) / I); +inf (gradient NaN) when the boxes "
        "do not overlap.", ["J. Yu et al., UnitBox: An Advanced Object Detection Network, arXiv:1608.01471"], [EPS],
        {p: kernel for p in ("f64", "f32")},
        [Step("The loss, evaluated as $\\operatorname{log1p}((U - I + \\epsilon)/I)$ so that it keeps its digits as "
              "IoU approaches 1; for disjoint boxes it is $+\\infty$ and its gradient is undefined (NaN):",
              "L", -sp.log(sp.Symbol("IoU")))],
        [B.slide_plot("-ln IoU loss")], "", "", checks)
