"""mmdetection 3.x (``mmdet.models.losses``): the IoU family (``iou_loss``, ``giou_loss``, ``diou_loss``,
``ciou_loss``, ``eiou_loss``, ``siou_loss``), ``smooth_l1_loss``, ``l1_loss``, ``mse_loss``, ``balanced_l1_loss``,
``quality_focal_loss``, ``distribution_focal_loss`` and ``varifocal_loss``, each called with ``reduction='none'``.

mmdetection's package ``__init__`` files import every model, and with them mmcv's compiled ops (``mmcv._ext``),
which PyPI has only as source packages that do not build against current torch. The loss modules themselves
are plain torch. So, where ``mmdet.models`` does not import, :func:`losses` loads them on their own: it puts
empty packages for ``mmdet.models``, ``mmdet.models.losses``, ``mmdet.structures`` and
``mmdet.structures.bbox`` in ``sys.modules`` (their real directories as ``__path__``, their ``__init__``
not run), and then imports the loss modules and ``mmdet.structures.bbox.bbox_overlaps`` unchanged. Install:
``pip install mmdet==3.3.0 mmengine "mmcv-lite<2.2"`` (mmdet checks mmcv's version on import; mmcv-lite is
mmcv without the ops). ``mmdet.models.losses.focal_loss`` needs the ops even so (``from mmcv.ops import
sigmoid_focal_loss``) and is not checked.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

from . import PeerCheck

# the packages whose __init__ reaches mmcv's ops; the loss modules need only their directories
_SKIPPED_INITS = ("mmdet.models", "mmdet.models.losses", "mmdet.structures", "mmdet.structures.bbox")


def require():
    try:
        importlib.import_module("mmdet")
        importlib.import_module("torch")
    except ImportError as e:
        raise ImportError('peer mmdet: pip install torch mmdet==3.3.0 mmengine "mmcv-lite<2.2"') from e


def losses(name: str):
    """The module ``mmdet.models.losses.<name>``, imported normally where mmcv has its ops, else on its own
    (module docstring)."""
    def overlaps():  # what iou_loss imports from the package
        bbox = sys.modules["mmdet.structures.bbox"]
        if not hasattr(bbox, "bbox_overlaps"):
            bbox.bbox_overlaps = importlib.import_module("mmdet.structures.bbox.bbox_overlaps").bbox_overlaps

    return import_without_inits(f"mmdet.models.losses.{name}", _SKIPPED_INITS, overlaps)


def import_without_inits(full: str, skipped, prepare=None, errors=(ImportError,)):
    """Import the module ``full``: normally if that works (an exception in ``errors`` if not), else with each
    package of ``skipped`` put in ``sys.modules`` as its directory alone (its ``__init__`` not run), ``prepare()``
    called before the import. The packages' root (``skipped[0]``'s first name) must import."""
    if full in sys.modules:
        return sys.modules[full]
    try:
        return importlib.import_module(full)
    except errors:
        pass
    import types

    top = full.split(".")[0]
    spec = importlib.util.find_spec(top)
    root = spec.submodule_search_locations[0]
    for package in skipped:
        stale = sys.modules.get(package)
        if stale is None or not hasattr(stale, "__file__"):  # absent, or left half-imported by the failure above
            module = types.ModuleType(package, "(refloss.peers: directory only, __init__ not run)")
            module.__path__ = [os.path.join(root, *package.split(".")[1:])]
            module.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            module.__spec__.submodule_search_locations = module.__path__
            sys.modules[package] = module
    if prepare is not None:
        prepare()
    return importlib.import_module(full)


def _fn(module: str, name: str, **kw):
    """mmdet.models.losses.<module>.<name>(pred, target, reduction='none', **kw)."""
    def make():
        fn = getattr(losses(module), name)

        def loss(pred, target):
            return fn(pred, target, reduction="none", **kw)

        args = "".join(f", {k}={v!r}" for k, v in kw.items())
        loss.__qualname__ = f"mmdet {name}(reduction='none'{args})"
        return loss

    return make


def _qfl():
    """quality_focal_loss(pred (n, 1), (label, score)): one class; label 0 makes every element a positive of
    that class, whose loss is BCE(x, q)·|q − σ(x)|^β, the negatives' BCE(x, 0)·σ^β at q = 0 as well."""
    def make():
        import torch

        fn = losses("gfocal_loss").quality_focal_loss

        def loss(logits, targets):
            label = torch.zeros(logits.shape, dtype=torch.long)
            return fn(logits.reshape(-1, 1), (label, targets), reduction="none")

        loss.__qualname__ = "mmdet quality_focal_loss(pred[:, None], (0, score))"
        return loss

    return make


def _dfl():
    """distribution_focal_loss(logits, label) on the target clamped as GFLHead's targets are: its
    ``bbox_coder.encode(centers, targets, reg_max)`` (``DistancePointBBoxCoder``) calls ``bbox2distance`` with its
    default eps = 0.1, which clamps them to [0, reg_max − 0.1], reg_max = n_bins − 1 (D-FINE's bound; the function
    is not imported: ``mmdet.structures.bbox.transforms`` imports mmcv's ops)."""
    def make():
        fn = losses("gfocal_loss").distribution_focal_loss

        def loss(logits, target):
            reg_max = logits.shape[-1] - 1
            return fn(logits, target.clamp(min=0, max=reg_max - 0.1), reduction="none")

        loss.__qualname__ = "mmdet distribution_focal_loss(pred, bbox2distance clamp)"
        return loss

    return make


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("mmdetection", function, loss, params, make, note=note, known=known)


EPS_H = ("eps = 1e-7 is added to both boxes' heights (h = y2 - y1 + eps) where the aspect ratios are formed, besides "
         "the union and c^2: no refloss eps reproduces that (ultralytics does the same)")
EXTENDED = ("mmdetection's eiou_loss is the Extended-IoU loss (Peng et al. 2021, libfacedetection): the intersection "
            "extended to disjoint boxes, and smooth L1 of 1 - IoU at smooth_point 0.1; refloss's eiou_loss is Zhang "
            "et al.'s Efficient-IoU (arXiv 2101.08158). Only the names collide")
SIOU_REWARD = ("neg_gamma=False (its default) gives gamma = 2 - Lambda > 0, so the distance term "
               "2 - e^(gamma rho_x) - e^(gamma rho_y) is <= 0 and falls as the centres move apart, a reward for "
               "moving away from the target (refloss siou_loss(positive_exponent=True)); its comment says it 'makes "
               "training more stable'. Besides, YOLOv6's eps placement: eps = 1e-7 added to the centre offsets and the "
               "heights, the enclosing box's sides clamped at eps, the SIoU clamped to [-1, 1]")
SIOU_EPS = ("eps = 1e-7 added to both centre offsets (s_cw + eps, s_ch + eps) and to both heights, the enclosing box's "
            "sides clamped at eps and the SIoU clamped to [-1, 1]: no refloss eps reproduces all of them")
BALANCED = ("mmdetection writes alpha/b (b|x| + 1) ln(b|x|/beta + 1) - alpha|x|: the paper's form (and refloss's) at "
            "beta = 1, where the two coincide; for beta != 1 its gradient is not continuous at |x| = beta (the value "
            "is: beta = 1/9, gamma = 1.5, the gradient 1.699 below against 1.5 above)")
IOU_CLAMP = ("bbox_overlaps floors the union at eps = 1e-6 (max(U, eps)) and iou_loss clamps the IoU at eps = 1e-6 "
             "before 1 - IoU: disjoint boxes give 1 - 1e-6, not 1")
IOU_LOG_CLAMP = ("-ln(max(IoU, eps)) with the union floored at eps (eps = 1e-6): disjoint boxes give -ln 1e-6 = 13.8 "
                 "with no gradient, where -ln IoU is +inf; boxes of area ~eps differ")
GIOU_FLOOR = ("bbox_overlaps(mode='giou') floors U and C at eps (max(U, eps), max(C, eps)) instead of adding it: equal "
              "to giou_loss(eps=0) wherever U, C > 1e-7")
CIOU_GATE = (EPS_H + "; alpha = [IoU > 0.5] v / (1 - IoU + v) under no_grad (refloss alpha_gate=0.5), and the CIoU "
             "clamped to [-1, 1]")
VFL_DQ = ("the negatives' weight is alpha |sigma(x) - q|^gamma (the paper's alpha p^gamma at q = 0): the value "
          "agrees, but d/dq at q = 0 has the extra term -gamma alpha sigma^(gamma - 1) BCE(x, 0)")


CHECKS = (
    _check("iou_loss(mode='linear')", "iou_loss", {"eps": 1e-6}, _fn("iou_loss", "iou_loss", mode="linear"),
           "1 - IoU", known=IOU_CLAMP),
    _check("iou_loss", "log_iou_loss", {"eps": 1e-6}, _fn("iou_loss", "iou_loss"),
           "its default mode='log': -ln IoU (UnitBox)", known=IOU_LOG_CLAMP),
    _check("giou_loss", "giou_loss", {"eps": 1e-7}, _fn("iou_loss", "giou_loss"), known=GIOU_FLOOR),
    _check("diou_loss", "diou_loss", {"eps": 1e-7}, _fn("iou_loss", "diou_loss"), "U + eps and c^2 + eps, eps = 1e-7"),
    _check("ciou_loss", "ciou_loss", {"eps": 1e-7, "alpha_gate": 0.5}, _fn("iou_loss", "ciou_loss"), known=CIOU_GATE),
    _check("eiou_loss", "eiou_loss", {"eps": 1e-7}, _fn("iou_loss", "eiou_loss"), known=EXTENDED),
    _check("siou_loss", "siou_loss", {"eps": 1e-7}, _fn("iou_loss", "siou_loss"),
           "SIoU (arXiv 2205.12740), its default neg_gamma=False", known=SIOU_REWARD),
    _check("siou_loss(neg_gamma=True)", "siou_loss", {"eps": 1e-7}, _fn("iou_loss", "siou_loss", neg_gamma=True),
           "'follows original implementation in paper' (its comment)", known=SIOU_EPS),
    _check("smooth_l1_loss(beta=1)", "smooth_l1", {"beta": 1.0}, _fn("smooth_l1_loss", "smooth_l1_loss", beta=1.0)),
    _check("smooth_l1_loss(beta=1/9)", "smooth_l1", {"beta": 1 / 9},
           _fn("smooth_l1_loss", "smooth_l1_loss", beta=1 / 9)),
    _check("l1_loss", "l1", {}, _fn("smooth_l1_loss", "l1_loss")),
    _check("mse_loss", "mse", {}, _fn("mse_loss", "mse_loss")),
    _check("balanced_l1_loss", "balanced_l1", {}, _fn("balanced_l1_loss", "balanced_l1_loss"),
           "beta = 1, alpha = 0.5, gamma = 1.5 (Libra R-CNN's)"),
    _check("balanced_l1_loss(beta=1/9)", "balanced_l1", {"beta": 1 / 9},
           _fn("balanced_l1_loss", "balanced_l1_loss", beta=1 / 9), known=BALANCED),
    _check("quality_focal_loss", "qfl_loss", {"beta": 2.0}, _qfl(), "sigma not detached"),
    _check("distribution_focal_loss", "dfl_loss", {"clamp": 0.1}, _dfl(),
           "targets clamped to [0, n_bins - 1.1] as GFLHead's bbox_coder.encode (bbox2distance, eps 0.1) does"),
    _check("varifocal_loss", "varifocal_loss", {"alpha": 0.75, "gamma": 2.0}, _fn("varifocal_loss", "varifocal_loss"),
           "weight q [q > 0] + alpha |sigma - q|^gamma [q <= 0], not detached", known=VFL_DQ),
    _check("varifocal_loss(iou_weighted=False)", "varifocal_loss", {"iou_weighted": False},
           _fn("varifocal_loss", "varifocal_loss", iou_weighted=False), known=VFL_DQ),
)
