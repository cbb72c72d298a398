"""IoU loss 1 - IoU on xyxy boxes (e.g. Yu et al., UnitBox, arXiv:1608.01471)."""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Param, Step
from refloss._info import Properties

NAME = "iou_loss"
NOTE_SLIDE = ("1 - IoU is 1, and its derivative 0, wherever the boxes do not overlap (|x| >= 1, and all of "
              "dy = 1.5): nothing pulls a disjoint box toward the target.")
NOTE_ASPECT = ("1 - IoU is smallest at width 1 for every height: 0 for height 1 (identical boxes), 0.5 for heights "
               "0.5 and 2; its derivative jumps there.")
EPS = Param("eps", B.eps, 0.0, B.EPS_PARAM_DOC, lower=sp.Integer(0))


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.one_minus_iou, 1 - B.iou, "")], args=(B.eps,), checks=checks)
    return B.box_spec(
        NAME, "IoU loss", "L = 1 - IoU = (U - I + eps) / (U + eps) for xyxy boxes pred, target (..., 4).",
        ["J. Yu et al., UnitBox: An Advanced Object Detection Network, arXiv:1608.01471"], [EPS],
        {p: kernel for p in ("f64", "f32")},
        [Step("The loss; its gradient vanishes wherever the boxes do not overlap ($I = 0$):", "L", "1 - \\mathrm{IoU}")],
        [B.slide_plot("IoU loss", reference=None, note=NOTE_SLIDE)], "", "", checks,
        aspect={"reference": None, "note": NOTE_ASPECT}, properties=Properties(value_range=(0.0, 1.0)))
