"""What the whole detector losses share (RetinaNet, SSD, YOLOv1-v4): the result type, the callable
with ``.value_and_grad``, and one weighted term of a generated loss.

A detector loss is a composition: the element-wise, classification and box terms are the same
generated kernels as the standalone losses (``refloss.smooth_l1``, ``refloss.sigmoid_focal_loss``,
``refloss.giou_loss``, ...); what a detector loss adds is the selection of elements (matching,
masks, hard-negative mining), the weights and the normalisation.  Those are written once, here
and in the loss's own module, never as a copy of a kernel.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from . import _arrays


@dataclass
class DetectionResult:
    """A whole detector loss: ``total`` (the sum of ``parts``, each already weighted and
    normalised), ``parts`` (name -> value) and ``details`` (what the loss selected: matched
    indices, masks, hard negatives, the normaliser; documented by each loss)."""

    total: float
    parts: dict
    details: dict = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.total)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v:.17g}" for k, v in self.parts.items())
        return f"DetectionResult(total={self.total:.17g}, parts={{{parts}}})"


def detection_result(total, parts: dict, details: dict, out_dt) -> DetectionResult:
    """The result in the returned dtype ``out_dt``: float16 heads are computed in float32 and the total and each part
    rounded to float16 once, here (README: float16 is computed in float32 and returned as float16)."""
    return DetectionResult(out_dt.type(total), {k: out_dt.type(v) for k, v in parts.items()}, details)


class DetectionLoss:
    """A whole detector loss: ``loss(...)`` gives a :class:`DetectionResult`;
    ``loss.value_and_grad(...)`` gives ``(result, grads)``, the gradients of ``result.total``
    with respect to the head outputs, in their structure: a dict keyed like them, a list over
    scales, or one array, each of its head output's shape.

    ``compute(with_grad, *args, **kwargs)`` does the work: it returns the result, and with
    ``with_grad`` the pair.
    """

    def __init__(self, name: str, compute, doc: str):
        self._name = name
        self._compute = compute
        self.__doc__ = doc
        self.__wrapped__ = compute  # inspect.signature and help() show the arguments,
        sig = inspect.signature(compute)  # without compute's leading with_grad
        self.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<refloss detector loss {self._name}>"

    def _bind(self, args, kwargs) -> None:
        """A wrong argument is the user's TypeError in this loss's name, not the inner function's."""
        try:
            self.__signature__.bind(*args, **kwargs)
        except TypeError as e:
            known = [p for p in self.__signature__.parameters]
            raise TypeError(f"{self._name}(): {e}; its arguments are {known}") from None

    def __call__(self, *args, **kwargs) -> DetectionResult:
        self._bind(args, kwargs)
        return self._compute(False, *args, **kwargs)

    def value_and_grad(self, *args, **kwargs):
        """``(result, grads)``: the result as the call gives it and the gradients of
        ``result.total`` with respect to the head outputs."""
        self._bind(args, kwargs)
        return self._compute(True, *args, **kwargs)


def weighted_term(loss, inputs, weights, with_grad: bool, dtype=None, **params):
    """sum_i w_i L(inputs_i) of a generated loss ``loss`` (reduction "none", then weighted), and
    with ``with_grad`` the gradient of that sum with respect to each input.

    The inputs must already have the loss's full element shape (select or broadcast them first):
    each input's gradient then has its shape, and the weight of element i multiplies row i of a
    box input's (..., 4) gradient.  ``weights``: a scalar or an array of the element shape.
    """
    if not with_grad:
        values = np.asarray(loss(*inputs, reduction="none", dtype=dtype, **params))
        return _arrays.reduce(values * weights, "sum")
    values, grads = loss.value_and_grad(*inputs, reduction="none", dtype=dtype, **params)
    values = np.asarray(values)
    w = np.broadcast_to(np.asarray(weights, values.dtype), values.shape)
    out = []
    for g in grads:
        g = np.asarray(g)
        out.append(g * w.reshape(w.shape + (1,) * (g.ndim - w.ndim)))
    return _arrays.reduce(values * w, "sum"), tuple(out)
