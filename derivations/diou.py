"""The DIoU metric (Zheng et al., arXiv:1911.08287), with gradients."""
from . import _boxes as B
from .diou_loss import distance
from .iou_loss import EPS

NAME = "diou"


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.iou - distance, B.iou - distance, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "DIoU (metric)", "DIoU = IoU - rho^2 / (c^2 + eps).",
                      ["Z. Zheng et al., arXiv:1911.08287"], [EPS], {p: kernel for p in ("f64", "f32")},
                      [], [B.slide_plot("DIoU")], "", "", checks, kind="metric")
