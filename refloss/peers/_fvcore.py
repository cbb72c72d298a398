"""fvcore.nn: smooth_l1_loss, giou_loss, sigmoid_focal_loss (detectron2's losses)."""
from __future__ import annotations

from . import PeerCheck, function_of, requirement


require = requirement("fvcore.nn", "torch fvcore")


def _f(name, **kw):
    return function_of("fvcore.nn", name, reduction="none", **kw)


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("fvcore", function, loss, params, make, note=note, known=known)


FLOAT32 = "casts its inputs to float32 (inputs.float()), whatever their dtype: float64 callers get float32 accuracy"
TOUCHING = ("touching edges: the intersection is masked with x2 > x1 (strict), so its gradient there is 0, as "
            "refloss's (clamp(min=0) in torch 2.14.1): they agree")


CHECKS = (
    _check("nn.smooth_l1_loss(beta=1)", "smooth_l1", {"beta": 1.0}, _f("smooth_l1_loss", beta=1.0)),
    _check("nn.smooth_l1_loss(beta=1/9)", "smooth_l1", {"beta": 1 / 9}, _f("smooth_l1_loss", beta=1 / 9)),
    _check("nn.smooth_l1_loss(beta=0)", "smooth_l1", {"beta": 0.0}, _f("smooth_l1_loss", beta=0.0),
           "beta < 1e-5 is documented as L1"),
    _check("nn.giou_loss", "giou_loss", {"eps": 1e-7}, _f("giou_loss"), known=TOUCHING),
    _check("nn.sigmoid_focal_loss(alpha=0.25)", "sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0},
           _f("sigmoid_focal_loss", alpha=0.25, gamma=2.0), known=FLOAT32),
    _check("nn.sigmoid_focal_loss (alpha=-1)", "sigmoid_focal_loss", {"alpha": None, "gamma": 2.0},
           _f("sigmoid_focal_loss"), known=FLOAT32),
)
