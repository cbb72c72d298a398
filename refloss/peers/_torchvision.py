"""torchvision.ops: the box IoU losses, the pairwise IoU functions (their diagonal) and sigmoid_focal_loss;
torchvision.models.detection: RetinaNet's and SSD's compute_loss and det_utils.Matcher (DETECTOR_CHECKS)."""
from __future__ import annotations

from . import PeerCheck, function_of, requirement
from ._detection import DetectorPeerCheck, tv_matcher


require = requirement("torchvision.ops", "torch torchvision")


def _loss(name, **kw):
    return function_of("torchvision.ops", name, reduction="none", **kw)


def _pairwise(name, **kw):
    """ops.<name>(a, b) is the N x M matrix of pairs: its diagonal is refloss's element-wise metric."""
    def make():
        import torchvision.ops as ops

        fn = getattr(ops, name)

        def diagonal(p, t):
            return fn(p, t, **kw).diagonal()

        diagonal.__qualname__ = f"torchvision.ops.{name}(...).diagonal()"
        return diagonal

    return make


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("torchvision", function, loss, params, make, note=note, known=known)


TOUCHING = ("touching edges: the losses mask the intersection with x2 > x1 (strict), the pairwise functions "
            "clamp(min=0) it; either way its gradient there is 0, as refloss's (clamp(min=0) in torch 2.14.1): they "
            "agree")
ZERO_AREA = ("zero-area boxes: 0/0 gives NaN in the IoU (pytorch/vision#3404), and refloss with eps=0 agrees; the "
             "N x N matrix whose diagonal is compared holds such 0/0 entries (two zero-area boxes), whose NaN "
             "reaches the zero-area boxes' gradients in backward (0 * NaN): NaN where refloss's, and torchvision's "
             "for the pair alone, are finite")
ZERO_HEIGHT = ("zero-height boxes: the aspect term atan(w / h) is differentiated through w / h = inf, so that box's "
               "gradient is NaN (0 * inf); refloss's atan2 is finite there")
EPS_C2 = ("eps is added to the enclosing diagonal c^2 but not to the union (box_iou has no eps), so no refloss eps "
          "reproduces it and the result depends on the boxes' scale: below sizes ~1e-2 the eps term shows")


CHECKS = (
    _check("ops.generalized_box_iou_loss", "giou_loss", {"eps": 1e-7}, _loss("generalized_box_iou_loss"),
           known=TOUCHING + "; two identical zero-area boxes give 1 (pytorch/vision#7746), as refloss with eps=1e-7"),
    _check("ops.distance_box_iou_loss", "diou_loss", {"eps": 1e-7}, _loss("distance_box_iou_loss"), known=TOUCHING),
    _check("ops.complete_box_iou_loss", "ciou_loss", {"eps": 1e-7}, _loss("complete_box_iou_loss"),
           "alpha constant (no_grad), as the official CIoU code: refloss's default",
           known=TOUCHING + "; " + ZERO_HEIGHT),
    _check("ops.complete_box_iou_loss(eps=0)", "ciou_loss", {"eps": 0.0}, _loss("complete_box_iou_loss", eps=0.0),
           "eps=0 asks for the exact, scale-invariant CIoU",
           known="the IoU/DIoU part ignores eps and always uses 1e-7 (_diou_iou_loss is called without eps), so "
                 "the loss depends on the boxes' scale: wrong for boxes below ~1e-2 (for sizes ~1e-4 by more than "
                 "0.05), right at unit scale; alpha = v / (1 - iou + v + eps) does take eps=0, and is 0/0 = NaN at "
                 "identical boxes large enough that U + 1e-7 rounds to U (IoU exactly 1)"),
    _check("ops.box_iou(...).diagonal()", "iou", {}, _pairwise("box_iou"), known=TOUCHING + "; " + ZERO_AREA),
    _check("ops.generalized_box_iou(...).diagonal()", "giou", {}, _pairwise("generalized_box_iou"),
           known=TOUCHING + "; " + ZERO_AREA),
    _check("ops.distance_box_iou(...).diagonal()", "diou", {}, _pairwise("distance_box_iou"),
           "default eps=1e-7", known=EPS_C2),
    _check("ops.complete_box_iou(...).diagonal()", "ciou", {}, _pairwise("complete_box_iou"),
           "default eps=1e-7", known=EPS_C2),
    _check("ops.sigmoid_focal_loss", "sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0},
           _loss("sigmoid_focal_loss")),
    _check("ops.sigmoid_focal_loss(alpha=-1, gamma=1.5)", "sigmoid_focal_loss", {"alpha": None, "gamma": 1.5},
           _loss("sigmoid_focal_loss", alpha=-1, gamma=1.5)),
)


# --- whole detector losses and matching (refloss.peers._detection: batches, not element-wise points) ---

def _adapter(name, **kw):
    """A DetectorPeerCheck ``make``: refloss.peers._detection.<name> (torchvision's compute_loss) with ``kw``."""
    return function_of("refloss.peers._detection", name, **kw)


SSD_MINING = ("more positives than a third of the anchors (3 |F_i| > A - |F_i|): torchvision's rank test "
              "`idx.sort(1)[1] < num_negative` also selects positives, ranked after the negatives, and counts their "
              "cross-entropy twice; refloss's default takes only negatives (SSD, arXiv:1512.02325, 2.2: \"at most "
              "3:1\"); traced: there rl.ssd_loss(mining='torchvision') agrees (docs/retinanet-ssd.md)")
MATCHER_EMPTY = ("an image without boxes (G = 0): Matcher raises ValueError('No ground-truth boxes available ...'), "
                 "rl.match_by_iou returns all -1, what torchvision's RetinaNet and SSD write for such an image "
                 "(docs/matching.md)")

DETECTOR_CHECKS = (
    *(DetectorPeerCheck("torchvision", f"RetinaNetHead.compute_loss (_loss_type={t!r})", "retinanet_loss",
                        {"bbox_reg_loss_type": t}, _adapter("tv_retinanet", loss_type=t),
                        note="matched_idxs given: Matcher(0.5, 0.4, allow_low_quality_matches=True)")
      for t in ("l1", "smooth_l1", "giou", "ciou", "diou")),
    DetectorPeerCheck("torchvision", "SSD.compute_loss", "ssd_loss", {"mining": "torchvision"}, _adapter("tv_ssd"),
                      matching="ssd", note="matched_idxs given: SSDMatcher(0.5); BoxCoder (10, 10, 5, 5), ratio 3"),
    DetectorPeerCheck("torchvision", "SSD.compute_loss (vs the paper's mining)", "ssd_loss", {},
                      _adapter("tv_ssd"), matching="ssd", note="refloss's default mining='paper'", known=SSD_MINING,
                      known_params={"mining": "torchvision"}),
    *(DetectorPeerCheck("torchvision", f"det_utils.Matcher(0.5, 0.4{', allow_low_quality_matches=True' * a})",
                        "match_by_iou", {"high_threshold": 0.5, "low_threshold": 0.4, "allow_low_quality_matches": a},
                        tv_matcher(0.5, 0.4, a), kind="matcher", known=MATCHER_EMPTY,
                        known_raises="No ground-truth boxes")
      for a in (False, True)),
)
