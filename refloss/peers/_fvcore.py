"""fvcore.nn: smooth_l1_loss, giou_loss, sigmoid_focal_loss (detectron2's losses)."""
from __future__ import annotations

from functools import partial

from . import PeerCheck


def require():
    try:
        import fvcore.nn  # noqa: F401
    except ImportError as e:
        raise ImportError("peer fvcore: pip install torch fvcore") from e


def _f(name, **kw):
    def make():
        import fvcore.nn

        return partial(getattr(fvcore.nn, name), reduction="none", **kw)

    return make


def _check(function, loss, params, make, note="", known=""):
    return PeerCheck("fvcore", function, loss, params, make, note=note, known=known)


FLOAT32 = "casts its inputs to float32 (inputs.float()), whatever their dtype: float64 callers get float32 accuracy"
TOUCHING = ("touching edges: the intersection is masked with x2 > x1 (strict), so the gradient there is the "
            "one-sided limit from the separated side; refloss follows clamp(min=0)")


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
