"""ultralytics (YOLOv8 and later): utils.metrics.bbox_iou with its IoU / GIoU / DIoU / CIoU flags, as losses;
utils.loss.DFLoss and utils.loss.VarifocalLoss, called per element; utils.metrics.probiou (oriented boxes xywhr)
as 1 - probiou, with and without its RotatedBboxLoss's floor; v8OBBLoss.calculate_angle_loss per pair."""
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


def _dfl():
    """DFLoss(reg_max=n_bins)(logits, target[:, None]): one row per element. ``reg_max`` is the number of bins
    there (a 16-bin head is DFLoss(16)); it returns the mean over target's last axis, one number here, shape
    (n, 1). Its ``clamp_`` works in place on ``target``, so a copy is passed."""
    def make():
        from ultralytics.utils.loss import DFLoss

        def loss(logits, target):
            return DFLoss(logits.shape[-1])(logits, target[:, None].clone()).squeeze(-1)

        loss.__qualname__ = "ultralytics DFLoss(reg_max=n_bins)"
        return loss

    return make


def _vfl():
    """VarifocalLoss()(p, q, label=(q > 0)) called on each element alone, batched with torch.func.vmap: it
    reduces with .mean(1).sum(), so no single call gives per-element values; vmap runs its code unchanged on
    (1, 1) slices (the gradients flow back through vmap to each element)."""
    def make():
        import torch
        from ultralytics.utils.loss import VarifocalLoss

        vfl = VarifocalLoss()

        def one(p, q):
            return vfl(p.reshape(1, 1), q.reshape(1, 1), (q > 0).to(q.dtype).reshape(1, 1))

        def loss(logits, targets):
            return torch.func.vmap(one)(logits, targets)

        loss.__qualname__ = "ultralytics VarifocalLoss() per element (label = q > 0)"
        return loss

    return make


def _probiou(floor=0.0):
    """1 - probiou(p, t, floor=floor): the oriented-box loss (RotatedBboxLoss passes floor=0.01)."""
    def make():
        from ultralytics.utils.metrics import probiou

        def loss(p, t):
            return 1 - probiou(p, t, floor=floor).squeeze(-1)

        loss.__qualname__ = f"1 - ultralytics probiou({'floor=' + repr(floor) if floor else ''})"
        return loss

    return make


def _obb_angle():
    """v8OBBLoss.calculate_angle_loss on each pair alone (it sums over the foreground and divides by the target
    scores' sum, here 1); ``self`` is not used, so it is called on the class with None. A Python loop: its boolean
    mask indexing has no vmap rule."""
    def make():
        import torch
        from ultralytics.utils.loss import v8OBBLoss

        def one(p, t):
            mask = torch.ones(1, 1, dtype=torch.bool)
            return v8OBBLoss.calculate_angle_loss(None, p.reshape(1, 1, 5), t.reshape(1, 1, 5), mask,
                                                  torch.ones(1, dtype=p.dtype), 1.0)

        def loss(pred, target):
            return torch.stack([one(p, t) for p, t in zip(pred, target)])

        loss.__qualname__ = "ultralytics v8OBBLoss.calculate_angle_loss per pair"
        return loss

    return make


EPS_H = ("eps = 1e-7 is added to both boxes' heights (h = y2 - y1 + eps), not to their widths, before areas and "
         "aspect ratios are formed (besides the union, the enclosing area or diagonal and alpha): no refloss eps "
         "reproduces that. The error is of relative size ~eps/h: 2.5e-9 at h = 40 (just over the float64 "
         "tolerance), percents for boxes ~1e-5; in float32 only the smallest boxes show it")


DFL_F32_BOUND = ("float32 only, 2 of 99 points, d/dtarget at the \"end\" targets 7 - 0.01 placed on the clamp bound: "
                 "torch rounds DFLoss's bound reg_max - 1 - 0.01 = 6.99 to float32, the same float32 as the target "
                 "(6.98999977), so the target sits on the bound, where clamp_'s gradient is 0; refloss's float32 kernel "
                 "decides against the exact bound (7 - float32(0.01), 2e-10 above 6.99) and, as the float64 reference "
                 "on that rounded target, sees it 2.3e-7 inside, where dL/dy = z_{y_l} - z_{y_r} (rel 1). Values, "
                 "logits' gradients and float64 agree")
VFL_F32 = ("the BCE is computed in float32 whatever the input dtype (autocast(enabled=False) around "
           "binary_cross_entropy_with_logits(pred_score.float(), gt_score.float())), then multiplied by the weight in "
           "the input dtype: float64 inputs get float32-sized errors (values rel <= 3.3e-7, gradients <= 5.3e-5 at "
           "891 of 1180 points); float32 agrees")


PROBIOU_EPS = ("eps = 1e-7 in both denominators, inside the log and inside the square root, and B_D clamped to [1e-7, "
               "100]: identical boxes give 4.5e-4 (sqrt(2e-7)), not 0, and nearly identical ones differ by as much; far "
               "apart boxes (B_D > 100) have no gradient. refloss's variant 'probiou_ultralytics_eps' is this formula "
               "(diagnosis code of the same name)")
PROBIOU_FLOOR = (PROBIOU_EPS + "; RotatedBboxLoss (8.4.190) also passes floor=0.01, added to both variances (in the "
                 "loss's grid units): boxes of a few grid cells differ by percents, 'probiou_ultralytics_floor'")


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("ultralytics", function, loss, params, make, note=note, known=known)


CHECKS = (
    _check("1 - bbox_iou(xywh=False)", "iou_loss", {"eps": 1e-7}, _loss(), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, GIoU=True)", "giou_loss", {"eps": 1e-7}, _loss("GIoU"), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, DIoU=True)", "diou_loss", {"eps": 1e-7}, _loss("DIoU"), known=EPS_H),
    _check("1 - bbox_iou(xywh=False, CIoU=True)", "ciou_loss", {"eps": 1e-7}, _loss("CIoU"),
           "alpha under no_grad, no IoU gate: refloss's default", known=EPS_H),
    _check("DFLoss(reg_max=n_bins)", "dfl_loss", {"clamp": 0.01}, _dfl(),
           "target clamped to [0, n_bins - 1.01] (clamp_ in place), log_softmax over the bins", known=DFL_F32_BOUND),
    _check("VarifocalLoss()", "varifocal_loss", {"alpha": 0.75, "gamma": 2.0}, _vfl(),
           "label = (q > 0); weight alpha p^gamma (1 - label) + q label, differentiated (detach_weight=False)",
           known=VFL_F32),
    _check("1 - probiou(pred, target)", "probiou_loss", {}, _probiou(),
           "oriented boxes (cx, cy, w, h, angle in radians); 1 - ProbIoU = the Hellinger distance", known=PROBIOU_EPS),
    _check("1 - probiou(pred, target, floor=0.01)", "probiou_loss", {}, _probiou(0.01),
           "as RotatedBboxLoss calls it (8.4.190)", known=PROBIOU_FLOOR),
    _check("v8OBBLoss.calculate_angle_loss", "obb_angle_loss", {"lam": 3.0, "eps": 1e-9}, _obb_angle(),
           "the angle term of oriented-box training: exp(-ln^2((w_t + 1e-9)/(h_t + 1e-9))/9) sin^2(2 dtheta), dtheta "
           "wrapped to [-pi/2, pi/2] (rounding only)"),
)
