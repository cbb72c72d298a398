"""The IoU metric I / (U + eps) on xyxy boxes, with gradients."""
import sympy as sp

from . import _boxes as B
from .iou_loss import EPS
from refloss._info import Properties

NAME = "iou"
NOTE_SLIDE = ("IoU is 0, and so is its derivative, wherever the boxes do not overlap (|x| >= 1, and all of dy = 1.5): "
              "nothing pulls a disjoint box toward the target.")
NOTE_ASPECT = ("IoU peaks at width 1 for every height: at 1 for height 1 (identical boxes), at 0.5 for heights 0.5 "
               "and 2; its derivative jumps there.")


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.iou, B.iou, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "IoU (metric)", "IoU = I / (U + eps) for xyxy boxes pred, target (..., 4).",
                      ["J. Yu et al., UnitBox, arXiv:1608.01471"], [EPS], {p: kernel for p in ("f64", "f32")},
                      [], [B.slide_plot("IoU", reference=None, value_title="IoU", note=NOTE_SLIDE)], "", "", checks,
                      kind="metric", aspect={"reference": None, "value_title": "IoU", "note": NOTE_ASPECT},
                      properties=Properties(value_range=(0.0, 1.0)))
