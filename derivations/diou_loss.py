"""Distance-IoU loss (Zheng et al., arXiv:1911.08287) on xyxy boxes."""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Step, Variant
from .iou_loss import EPS

NAME = "diou_loss"
distance = B.rho2 / B.c2


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.one_minus_iou + distance, 1 - B.iou + distance, "")], args=(B.eps,), checks=checks)
    return B.box_spec(
        NAME, "DIoU loss", "L = 1 - IoU + rho^2 / (c^2 + eps): rho the distance of the centres, c the diagonal of "
        "the enclosing box. NaN when c = 0 and eps = 0 (both boxes the same point).",
        ["Z. Zheng et al., Distance-IoU Loss, arXiv:1911.08287"], [EPS], {p: kernel for p in ("f64", "f32")},
        [Step("Centre offset, evaluated as sums of coordinate differences:", "\\rho_x",
              ((sp.Symbol("p_{x1}") - sp.Symbol("t_{x1}")) + (sp.Symbol("p_{x2}") - sp.Symbol("t_{x2}"))) / 2),
         Step("", "L", 1 - sp.Symbol("IoU") + sp.Symbol("\\rho") ** 2 / (sp.Symbol("c") ** 2 + B.eps))],
        [B.slide_plot("DIoU loss")], "", "", checks,
        variants=[Variant("diou_giou_mixup", "GIoU, not DIoU", loss="giou_loss")])
