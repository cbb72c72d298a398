"""The GIoU metric (Rezatofighi et al., arXiv:1902.09630), with gradients."""
from . import _boxes as B
from .giou_loss import penalty, penalty_diff
from .iou_loss import EPS

NAME = "giou"


def derive():
    checks = []
    kernel = B.box_kernel([(None, B.iou - penalty, B.iou - penalty_diff, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "GIoU (metric)", "GIoU = IoU - (C - U) / (C + eps).",
                      ["H. Rezatofighi et al., arXiv:1902.09630"], [EPS], {p: kernel for p in ("f64", "f32")},
                      [], [B.slide_plot("GIoU")], "", "", checks, kind="metric")
