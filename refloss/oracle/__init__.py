"""Independent high-precision (mpmath, 50 digits) oracle for refloss.

Written straight from the papers' definitions -- it shares no code with the
SymPy derivation pipeline or the numba kernels it is used to check.

* :mod:`refloss.oracle.elementwise` -- element-wise losses returning
  ``(value, d/dpred, d/dtarget)`` as mpf (and ``QUADRATURE`` twins of the gradient-defined ones).
* :mod:`refloss.oracle.boxes`, :mod:`refloss.oracle.classification`, :mod:`refloss.oracle.yolo`.

Which oracle checks which kernel, with which parameters and bar, is the hand-written table
:data:`refloss._reference.REFERENCES`; :func:`oracle` looks one up.
* :mod:`refloss.oracle.rounding` -- ``round_to`` (correct rounding of an mpf to
  float32/float64), ``ulp`` and ``ulp_error``.
"""

from .elementwise import (
    DPS,
    QUADRATURE,
    balanced_l1,
    balanced_l1_by_quadrature,
    focal_l1,
    focal_l1_by_quadrature,
    huber,
    huber_by_quadrature,
    l1,
    mse,
    smooth_l1,
    smooth_l1_by_quadrature,
)
from .rounding import round_to, ulp, ulp_error

__all__ = [
    "DPS",
    "QUADRATURE",
    "balanced_l1",
    "balanced_l1_by_quadrature",
    "focal_l1",
    "focal_l1_by_quadrature",
    "huber",
    "huber_by_quadrature",
    "l1",
    "mse",
    "smooth_l1",
    "smooth_l1_by_quadrature",
    "round_to",
    "ulp",
    "ulp_error",
]

# IoU-family box losses (refloss.oracle.boxes): (value, grad_pred[4], grad_target[4]) as mpf
from .boxes import (  # noqa: E402
    ciou,
    ciou_loss,
    diou,
    diou_loss,
    eiou_loss,
    focal_eiou_loss,
    giou,
    giou_loss,
    iou,
    iou_loss,
    log_iou_loss,
)

__all__ += [
    "ciou",
    "ciou_loss",
    "diou",
    "diou_loss",
    "eiou_loss",
    "focal_eiou_loss",
    "giou",
    "giou_loss",
    "iou",
    "iou_loss",
    "log_iou_loss",
]


def oracle(name: str):
    """The oracle function of the loss ``name`` (its row in refloss/_reference.py)."""
    from .._families import oracle_function
    from .._reference import REFERENCES

    return oracle_function(REFERENCES[name].oracle)


__all__ += ["oracle"]
