"""ultralytics (YOLOv8 and later): utils.metrics.bbox_iou with its IoU / GIoU / DIoU / CIoU flags, as losses."""
from __future__ import annotations

from . import PeerCheck, requirement


require = requirement("ultralytics.utils.metrics", "torch ultralytics")


def _loss(flag=None):
    """1 - bbox_iou(p, t, xywh=False, <flag>=True): the per-box loss on xyxy boxes."""
    def make():
        from ultralytics.utils.metrics import bbox_iou

        kw = {flag: True} if flag else {}

        def loss(p, t):
            return 1 - bbox_iou(p, t, xywh=False, **kw).squeeze(-1)

        loss.__qualname__ = f"1 - ultralytics bbox_iou(xywh=False{', ' + flag + '=True' if flag else ''})"
        return loss

    return make


EPS_H = ("eps = 1e-7 is added to both boxes' heights (h = y2 - y1 + eps), not to their widths, before areas and "
         "aspect ratios are formed (besides the union, the enclosing area or diagonal and alpha): no refloss eps "
         "reproduces that. The error is of relative size ~eps/h: 2.5e-9 at h = 40 (just over the float64 "
         "tolerance), percents for boxes ~1e-5; in float32 only the smallest boxes show it")


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("ultralytics", function, loss, params, make, note=note, known=known)


CHECKS = (
    _check("1 - bbox_iou(xywh=False)", "iou_loss", {"eps": 1e-7}, _loss(), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, GIoU=True)", "giou_loss", {"eps": 1e-7}, _loss("GIoU"), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, DIoU=True)", "diou_loss", {"eps": 1e-7}, _loss("DIoU"), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, CIoU=True)", "ciou_loss", {"eps": 1e-7}, _loss("CIoU"),
           "alpha under no_grad, no IoU gate: refloss's default", known=EPS_H),
)
