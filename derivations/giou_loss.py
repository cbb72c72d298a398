"""Generalized IoU loss (Rezatofighi et al., arXiv:1902.09630) on xyxy boxes."""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Step, Variant
from .iou_loss import EPS

NAME = "giou_loss"
# C - U from coordinate differences (see _boxes): accurate where C and U nearly coincide
penalty = B.enclose_minus_union / (B.enclose + B.eps)
# differentiated as 1 - (U + eps)/(C + eps): the form (C - U)/(C + eps) differentiates into
# dC/(C+eps) - (C-U) dC/(C+eps)^2, two large terms that cancel when C >> U (boxes far apart)
penalty_diff = 1 - (B.union + B.eps) / (B.enclose + B.eps)


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.one_minus_iou + penalty, 1 - (B.iou - penalty_diff), "")], args=(B.eps,),
                          checks=checks)
    return B.box_spec(
        NAME, "GIoU loss", "L = 1 - GIoU = 1 - IoU + (C - U) / (C + eps), C the area of the smallest enclosing box.",
        ["H. Rezatofighi et al., Generalized Intersection over Union, arXiv:1902.09630"], [EPS],
        {p: kernel for p in ("f64", "f32")},
        [Step("With $C$ the area of the smallest box enclosing both (corners by $\\min/\\max$):", "C",
              sp.Symbol("c_w") * sp.Symbol("c_h")),
         Step("", "L", 1 - sp.Symbol("IoU") + (sp.Symbol("C") - sp.Symbol("U")) / (sp.Symbol("C") + B.eps))],
        [B.slide_plot("GIoU loss")], "", "", checks,
        variants=[Variant("diou_giou_mixup", "DIoU, not GIoU", loss="diou_loss")])
