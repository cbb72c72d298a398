"""Efficient-IoU loss (Zhang et al., Focal and Efficient IOU Loss, arXiv:2101.08158)."""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Step
from refloss._derive.functions import Sub
from .diou_loss import distance
from .iou_loss import EPS

NAME = "eiou_loss"
# width and height differences as differences of coordinate differences (accurate for nearby boxes)
dw = Sub(B.px2, B.tx2) - Sub(B.px1, B.tx1)
dh = Sub(B.py2, B.ty2) - Sub(B.py1, B.ty1)
shape_value = dw**2 / (B.cw**2 + B.eps) + dh**2 / (B.ch**2 + B.eps)
shape_diff = (B.wp - B.wt) ** 2 / (B.cw**2 + B.eps) + (B.hp - B.ht) ** 2 / (B.ch**2 + B.eps)
value = B.one_minus_iou + distance + shape_value
diff_form = 1 - B.iou + distance + shape_diff


def derive():
    checks = []
    k = B.box_kernel([(None, value, diff_form, "")], args=(B.eps,), checks=checks)
    return B.box_spec(
        NAME, "EIoU loss", "L = 1 - IoU + rho^2/(c^2 + eps) + (wp - wt)^2/(cw^2 + eps) + (hp - ht)^2/(ch^2 + eps), "
        "cw, ch the enclosing box's width and height.",
        ["Y.-F. Zhang et al., Focal and Efficient IOU Loss for Accurate Bounding Box Regression, arXiv:2101.08158"],
        [EPS], {p: k for p in ("f64", "f32")},
        [Step("The loss:", "L", 1 - sp.Symbol("IoU") + sp.Symbol("\\rho") ** 2 / (sp.Symbol("c") ** 2 + B.eps)
              + (sp.Symbol("w") - sp.Symbol("w_t")) ** 2 / (sp.Symbol("c_w") ** 2 + B.eps)
              + (sp.Symbol("h") - sp.Symbol("h_t")) ** 2 / (sp.Symbol("c_h") ** 2 + B.eps))],
        [B.slide_plot("EIoU loss")],
        "", "", checks)
