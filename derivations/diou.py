"""The DIoU metric (Zheng et al., arXiv:1911.08287), with gradients."""
from . import _boxes as B
from .diou_loss import distance
from .iou_loss import EPS
from refloss._derive.core import Step
from refloss._info import Properties

NAME = "diou"
NOTE_SLIDE = ("The distance term $\\rho^2/c^2$ keeps a non-zero derivative where the boxes do not overlap, while IoU is "
              "flat at 0 there. At dy = 1.5 DIoU is largest near |x| = 0.42 (not at 0): moving sideways lengthens the "
              "diagonal $c$ faster than the centre distance $\\rho$.")
NOTE_ASPECT = ("With equal centres $\\rho = 0$, so DIoU equals IoU on this figure (the dashed IoU lies on the height 0.5 "
               "curve): it does not see the aspect ratio.")


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.iou - distance, B.iou - distance, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "DIoU (metric)", "DIoU = IoU - rho^2 / (c^2 + eps).",
                      ["Z. Zheng et al., arXiv:1911.08287"], [EPS], {p: kernel for p in ("f64", "f32")},
                      B.DISTANCE_STEPS + [Step("", "\\mathrm{DIoU}", "\\mathrm{IoU} - \\frac{\\rho^2}{c^2 + \\epsilon}")],
                      [B.slide_plot("DIoU", reference="IoU", value_title="DIoU", note=NOTE_SLIDE)], "", "", checks,
                      kind="metric", aspect={"reference": "IoU", "value_title": "DIoU", "note": NOTE_ASPECT},
                      properties=Properties(value_range=(-1.0, 1.0)))
