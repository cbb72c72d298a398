"""The running mean of the IoU loss that Wise-IoU v2 and v3 (Tong et al., arXiv:2301.10051) focus
with, as explicit state: :func:`wiou_update_mean` updates it as the reference code
(github.com/Instinct323/wiou, ``IouLoss.forward`` in training mode) does, and
``refloss.wiou_loss(..., version=2 or 3, iou_mean=m)`` takes it as an argument, so that a result
depends on its inputs only and a resumed run continues with the value saved with it.

The reference code updates the mean *before* it scales the batch's loss, so the batch is in the
mean it is scaled by::

    m = rl.wiou_update_mean(m, l_iou, rl.wiou_momentum(n_batches, n_epochs))
    loss = rl.wiou_loss(pred, target, version=3, iou_mean=m)

with ``l_iou = 1 - IoU`` of the batch (e.g. ``rl.iou_loss(pred, target)``) and ``m = 1.0`` at the
start of training (the reference code's initial value).
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["wiou_update_mean", "wiou_momentum"]


def _real(value, name: str) -> float:
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # a Python int beyond float's range (10**400)
        raise ValueError(f"{name} must be finite, got an integer beyond float's range") from None


def wiou_momentum(batches_per_epoch: int, epochs: float) -> float:
    """Momentum ``m = 1 - 0.05**(1/(n t))`` of the Wise-IoU running mean (arXiv:2301.10051, section
    3.3; the reference code's ``time_to_real = n * t``): after ``t`` epochs of ``n`` batches the
    weight of the starting value has fallen to 5%.  (Since December 2023 the reference code uses a
    fixed momentum of 0.01 instead.)"""
    n, t = _real(batches_per_epoch, "batches_per_epoch"), _real(epochs, "epochs")
    if not (n > 0 and math.isfinite(n)):
        raise ValueError(f"batches_per_epoch must be finite and > 0, got {batches_per_epoch!r}")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"epochs must be finite and > 0, got {epochs!r}")
    return -math.expm1(math.log(0.05) / (n * t))


def wiou_update_mean(mean: float, iou_loss_values, momentum: float) -> float:
    """The running mean of ``L_IoU = 1 - IoU`` after one training batch:
    ``(1 - momentum) * mean + momentum * average(iou_loss_values)`` (the reference code's
    ``iou_mean.mul_(1 - momentum).add_(momentum * l_iou.detach().mean())``), in float64.

    ``mean``: the current running mean (> 0; 1.0 at the start); ``iou_loss_values``: the batch's
    ``1 - IoU``, any shape, finite, in [0, 1], at least one; ``momentum`` in (0, 1]."""
    m, k = _real(mean, "mean"), _real(momentum, "momentum")
    if not (m > 0 and math.isfinite(m)):
        raise ValueError(f"mean must be finite and > 0, got {mean!r}")
    if not (0 < k <= 1):
        raise ValueError(f"momentum must satisfy 0 < momentum <= 1, got {momentum!r}")
    v = np.asarray(iou_loss_values)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"iou_loss_values must be real numbers, got dtype {v.dtype}")
    v = v.astype(np.float64)
    if v.size == 0:
        raise ValueError("iou_loss_values must hold at least one value")
    if not (np.all(np.isfinite(v)) and np.all(v >= 0) and np.all(v <= 1)):
        raise ValueError("iou_loss_values must be finite and in [0, 1] (1 - IoU)")
    return (1.0 - k) * m + k * float(np.mean(v))
