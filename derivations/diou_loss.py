"""Distance-IoU loss (Zheng et al., arXiv:1911.08287) on xyxy boxes."""

from . import _boxes as B
from refloss._derive.core import Step, Variant
from .iou_loss import EPS
from refloss._info import Properties

NAME = "diou_loss"
distance = B.rho2 / B.c2
# what the figures show of every loss with the distance term and no other term along them
SLIDE_DISTANCE = ("The distance term $\\rho^2/c^2$ keeps a non-zero derivative where the boxes do not overlap, while "
                  "1 - IoU is flat there. At dy = 1.5 the loss is smallest near |x| = 0.42 (not at 0): moving sideways "
                  "lengthens the diagonal $c$ faster than the centre distance $\\rho$.")
NOTE_SLIDE = SLIDE_DISTANCE
NOTE_ASPECT = ("With equal centres $\\rho = 0$, so DIoU loss equals 1 - IoU on this figure (the dashed curve lies on the "
               "height 0.5 curve): it does not see the aspect ratio.")


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.one_minus_iou + distance, 1 - B.iou + distance, "")], args=(B.eps,), checks=checks)
    return B.box_spec(
        NAME, "DIoU loss", "L = 1 - IoU + rho^2 / (c^2 + eps): rho the distance of the centres, c the diagonal of "
        "the enclosing box. NaN when c = 0 and eps = 0 (both boxes the same point).",
        ["Z. Zheng et al., Distance-IoU Loss, arXiv:1911.08287"], [EPS], {p: kernel for p in ("f64", "f32")},
        B.DISTANCE_STEPS + [Step("The loss:", "L", "1 - \\mathrm{IoU} + \\frac{\\rho^2}{c^2 + \\epsilon}")],
        [B.slide_plot("DIoU loss", note=NOTE_SLIDE)], "", "", checks, aspect={"note": NOTE_ASPECT},
        variants=[Variant("diou_giou_mixup", "GIoU, not DIoU", loss="giou_loss")],
        properties=Properties(value_range=(0.0, 2.0), strict_upper=True))
