"""The IoU metric I / (U + eps) on xyxy boxes, with gradients."""
import sympy as sp

from . import _boxes as B
from .iou_loss import EPS

NAME = "iou"


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.iou, B.iou, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "IoU (metric)", "IoU = I / (U + eps) for xyxy boxes pred, target (..., 4).",
                      ["J. Yu et al., UnitBox, arXiv:1608.01471"], [EPS], {p: kernel for p in ("f64", "f32")},
                      [], [B.slide_plot("IoU")], "", "", checks, kind="metric")
