"""Efficient-IoU loss (Zhang et al., Focal and Efficient IOU Loss, arXiv:2101.08158)."""

from . import _boxes as B
from refloss._derive.core import Step
from refloss._derive.functions import DiffOfDiffs
from .diou_loss import distance
from .iou_loss import EPS
from refloss._info import Properties

NAME = "eiou_loss"
# width and height differences as differences of coordinate differences with their rounding errors
# added back (DiffOfDiffs, TwoSum): the coordinate differences alone lost 3.4e-4 of the largest gradient
# component in float32 for two boxes of width 3.5e-3, 0.14 apart, the widths' difference 2.0e-3 for
# boxes of nearly equal height (and choosing the smaller of the two still 6.5e-5)
dw = DiffOfDiffs(B.px1, B.px2, B.tx1, B.tx2)
dh = DiffOfDiffs(B.py1, B.py2, B.ty1, B.ty2)
shape_value = dw**2 / (B.cw**2 + B.eps) + dh**2 / (B.ch**2 + B.eps)
# differentiated with the same differences: (hp - ht) from the widths loses ulp(coordinate)/|hp - ht| of
# the gradient 2 (hp - ht)/ch^2 (2e-3 of the largest component in float32 for boxes of nearly equal height)
shape_diff = shape_value
value = B.one_minus_iou + distance + shape_value
diff_form = 1 - B.iou + distance + shape_diff


def doc_steps(lhs: str) -> list:
    """The EIoU loss after the shared geometry, named ``lhs`` (the focal variants build on it)."""
    return B.DISTANCE_STEPS + [
        Step("The EIoU loss adds to DIoU's distance term the differences of the widths and of the heights, each "
             "relative to the enclosing box ($w_p - w_t$ is evaluated as $(px_2 - tx_2) - (px_1 - tx_1)$ with the "
             "rounding errors of the two offsets added back (TwoSum), accurate for boxes of nearly equal size near "
             "each other or far apart; likewise $h_p - h_t$; the gradient uses the same differences):", lhs,
             "1 - \\mathrm{IoU} + \\frac{\\rho^2}{c^2 + \\epsilon} + \\frac{(w_p - w_t)^2}{c_w^2 + \\epsilon} "
             "+ \\frac{(h_p - h_t)^2}{c_h^2 + \\epsilon}")]


# what the figures show
SLIDE_NOTE = ("Along this slide both boxes are unit squares, so the width and height terms are 0 and the curves are "
              "those of DIoU loss: the distance term $\\rho^2/c^2$ keeps a non-zero derivative where the boxes do not "
              "overlap, and at dy = 1.5 the minimum is near |x| = 0.42 (not at 0).")
ASPECT_NOTE = ("With equal centres $\\rho = 0$; the width term $(w_p - w_t)^2/c_w^2$ is 0 only at width 1, and the "
               "height term $(h_p - h_t)^2/c_h^2$, constant along each curve, is 0.25 for heights 0.5 and 2: it lifts "
               "the height 0.5 curve above the dashed 1 - IoU.")


def derive():
    checks = []
    k = B.box_kernel([(None, value, diff_form, "")], args=(B.eps,), checks=checks)
    return B.box_spec(
        NAME, "EIoU loss", "L = 1 - IoU + rho^2/(c^2 + eps) + (wp - wt)^2/(cw^2 + eps) + (hp - ht)^2/(ch^2 + eps), "
        "cw, ch the enclosing box's width and height.",
        ["Y.-F. Zhang et al., Focal and Efficient IOU Loss for Accurate Bounding Box Regression, arXiv:2101.08158"],
        [EPS], {p: k for p in ("f64", "f32")},
        doc_steps("L"), [B.slide_plot("EIoU loss", note=SLIDE_NOTE)], "", "", checks, aspect={"note": ASPECT_NOTE},
        properties=Properties(value_range=(0.0, 4.0)))
