"""MPDIoU loss (Ma and Xu, arXiv:2307.07662) on xyxy boxes.

MPDIoU = IoU - d1^2/(w^2 + h^2) - d2^2/(w^2 + h^2), d1 and d2 the distances between the
top-left corners and between the bottom-right corners of the two boxes, w and h the width
and height of the input image; L = 1 - MPDIoU.  ``image_size=(w, h)`` is required: the
loss depends on it (it is not scale invariant), so no default would be right.
"""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Param, Step
from .iou_loss import EPS

NAME = "mpdiou_loss"
diag2 = sp.Symbol("image_size", positive=True)  # the kernels get w^2 + h^2 of image_size = (w, h)
# squared corner distances from coordinate differences (exact for nearby coordinates)
d1 = B.Sub(B.px1, B.tx1)**2 + B.Sub(B.py1, B.ty1)**2
d2 = B.Sub(B.px2, B.tx2)**2 + B.Sub(B.py2, B.ty2)**2
corners = (d1 + d2) / diag2

PARAMS = [Param("image_size", diag2, None, "the input image's (width, height), in the boxes' units; required "
                "(figures: an 8 x 8 image)", kind="size", none_value=128.0), EPS]
CONVENTIONS = (B.CONVENTIONS + " The corner term is smooth. The loss is translation invariant but not scale "
               "invariant: scaling the boxes and not image_size changes it.")
ACCURACY = B.ACCURACY + " The corner offsets are coordinate differences, exact for nearby coordinates."
SLIDE_NOTE = ("For an 8 x 8 image (w^2 + h^2 = 128) the corner term (d1^2 + d2^2)/128 = 2 x^2/128 (dy = 0) adds a "
              "small parabola to 1 - IoU, which keeps a gradient where the boxes do not overlap.")
ASPECT_NOTE = ("Equal centres: both corners move by (w - 1)/2 and (h - 1)/2, so the corner term is "
               "((w - 1)^2 + (h - 1)^2)/(2 x 128), small for an 8 x 8 image.")


def derive():
    checks = []
    k = B.box_kernel([(None, B.one_minus_iou + corners, 1 - B.iou + corners, "")], args=(diag2, B.eps),
                     checks=checks)
    return B.box_spec(
        NAME, "MPDIoU loss", "L = 1 - IoU + (d1^2 + d2^2)/(w^2 + h^2): d1, d2 the distances of the top-left and of "
        "the bottom-right corners, (w, h) = image_size the input image's size (required).",
        ["S. Ma, Y. Xu, MPDIoU: A Loss for Efficient and Accurate Bounding Box Regression, arXiv:2307.07662"],
        PARAMS, {p: k for p in ("f64", "f32")},
        [Step("The squared distances of the top-left and of the bottom-right corners:", "d_1^2",
              "(px_1 - tx_1)^2 + (py_1 - ty_1)^2, \\qquad d_2^2 = (px_2 - tx_2)^2 + (py_2 - ty_2)^2"),
         Step("With $(w, h)$ the input image's size (`image_size`; the kernels take $w^2 + h^2$):", "L",
              "1 - \\mathrm{IoU} + \\frac{d_1^2 + d_2^2}{w^2 + h^2}")],
        [B.slide_plot("MPDIoU loss", {"image_size": 128.0}, note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks,
        aspect={"note": ASPECT_NOTE})
