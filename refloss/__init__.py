"""refloss: the float64 reference for object-detection box-regression losses.

Every loss is derived in SymPy (``derivations/``), generated as Numba CPU and CUDA
kernels with analytic gradients (``refloss/_generated/``), and checked against a
50-digit mpmath oracle (``refloss verify``).

>>> import numpy as np, refloss as rl
>>> float(rl.smooth_l1(np.array([0.5]), np.array([0.0]), beta=1.0)[0])
0.125

Importing refloss imports NumPy only; Numba is imported and kernels compile (with
an on-disk cache) on first use.  The losses below are made from the generated index
(``refloss/_generated/_index.py``, one entry per ``derivations/<loss>.py``).
"""
from . import _cpu_features

_cpu_features.arrange()  # Numba's CPU features for 512-bit vectors, before the user's own @njit (not imported here)

from ._boxes import box_convert
from ._dfl import dfl_decode
from ._loss import Loss, loss_named
from ._matching import match_by_iou
from ._retinanet_ssd import retinanet_loss, ssd_loss
from ._yolo import yolo_decode, yolo_encode, yolo_ignore_mask
from ._yolo_losses import yolo_assign, yolov1_assign, yolov1_loss, yolov2_loss, yolov3_loss, yolov4_loss

from ._wiou import wiou_momentum, wiou_update_mean

from ._version import __version__

try:
    from ._generated._index import LOSSES as _INDEX
except ModuleNotFoundError as _e:  # only a checkout whose generated files were deleted: let
    if _e.name != "refloss._generated._index":  # `python -m derivations` (which imports refloss) rebuild them
        raise
    import warnings

    warnings.warn("refloss/_generated/_index.py is missing: no losses are defined; run `python -m derivations`",
                  stacklevel=2)
    _INDEX = {}


def _names(family=None, kind=None) -> tuple:
    return tuple(n for n, i in _INDEX.items() if (family is None or i.family == family)
                 and (kind is None or i.kind == kind) and i.kind != "coding")


# every generated loss and metric as refloss.<name> (yolo_decode, a "coding", has its own API above)
ALL_LOSSES = _names()
globals().update({_name: loss_named(_name) for _name in ALL_LOSSES})
ELEMENTWISE_LOSSES = _names("elementwise")
BOX_LOSSES = _names("box", "loss")
METRICS = _names("box", "metric")
CLASSIFICATION_LOSSES = _names("classification")
YOLO_LOSSES = _names("yolo")
ROTATED_LOSSES = _names("rotated")

__all__ = ["Loss", "ALL_LOSSES", "ELEMENTWISE_LOSSES", "BOX_LOSSES", "METRICS", "CLASSIFICATION_LOSSES",
           "YOLO_LOSSES", "ROTATED_LOSSES", "box_convert", "match_by_iou", "retinanet_loss", "ssd_loss", "yolo_decode", "yolo_encode", "yolo_ignore_mask",
           "yolo_assign", "yolov1_assign", "yolov1_loss", "yolov2_loss", "yolov3_loss", "yolov4_loss", "dfl_decode",
           "wiou_update_mean", "wiou_momentum", *ALL_LOSSES]


def __getattr__(name: str):
    """AttributeError for a name refloss does not have, with the closest of its names (a typo: refloss.giou_los)."""
    hint = ""
    if not name.startswith("_"):
        import difflib

        close = [n for n in __all__ if n.lower() == name.lower()] or difflib.get_close_matches(name, __all__, 1)
        hint = f" (did you mean refloss.{close[0]}?)" if close else ""
    raise AttributeError(f"module 'refloss' has no attribute {name!r}{hint}")
