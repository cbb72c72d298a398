"""Focal-EIoU's batch normalisation: reduction="mean" divides by the sum of the weights.

Per element the generated kernel gives IoU^gamma * EIoU and its gradient.  The
paper (arXiv:2101.08158 v2) normalises the batch sum by sum_i IoU_i^gamma; with
weight_grad=False the normaliser is a constant in the gradient, with
weight_grad=True it is differentiated too (through the IoU kernel's gradient).
"""
from __future__ import annotations

import numpy as np

from ._loss import Loss


class FocalEIoULoss(Loss):
    def _evaluate(self, with_grad, inputs, params, reduction, dtype, device, validate):
        if reduction != "mean":
            return super()._evaluate(with_grad, inputs, params, reduction, dtype, device, validate)
        values = dict(zip(self._defaults, self._param_values(params)))
        common = dict(dtype=dtype, device=device, validate=validate)
        from . import iou

        if not with_grad:
            total = super()._evaluate(False, inputs, params, "sum", dtype, device, validate)
            weights = np.asarray(iou(*inputs, eps=values["eps"], **common)) ** values["gamma"]
            return total / weights.sum(dtype=weights.dtype)
        total, grads = super()._evaluate(True, inputs, params, "sum", dtype, device, validate)
        if values["weight_grad"]:
            m, (dm_p, dm_t) = iou.value_and_grad(*inputs, eps=values["eps"], **common)
            m, dm_p, dm_t = np.asarray(m), np.asarray(dm_p), np.asarray(dm_t)
        else:
            m = np.asarray(iou(*inputs, eps=values["eps"], **common))
        gamma = m.dtype.type(values["gamma"])
        weights = m**gamma
        norm = weights.sum(dtype=weights.dtype)
        value = total / norm
        grads = tuple(np.asarray(g) / norm for g in grads)
        if values["weight_grad"]:
            with np.errstate(divide="ignore", invalid="ignore"):
                dw = np.where(m > 0, gamma * m ** (gamma - 1), 0)[..., None]  # d(IoU^gamma)/dIoU, 0 where IoU = 0
            grads = tuple(g - value / norm * _sum_like(dw * dm, g) for g, dm in zip(grads, (dm_p, dm_t)))
        return value, grads


def _sum_like(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Sum a broadcast gradient back to the shape of ``like`` (its input's shape)."""
    from ._loss import _sum_to_shape

    return _sum_to_shape(np.broadcast_to(g, np.broadcast_shapes(g.shape, like.shape)), like.shape)
