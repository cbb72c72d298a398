"""``dfl_decode``: the expectation of the distribution a DFL head predicts (NumPy only).

Generalized Focal Loss (Li et al., arXiv 2006.04388, sec. 3.3) predicts a box side as a
softmax S = softmax(z) over the bins 0, 1, ..., n - 1 (the LAST axis of the logits, n = reg_max + 1)
and decodes it as its expectation (the "integral")

    y_hat = sum_i i S_i,

what ultralytics' ``DFL`` module (a fixed 1x1 convolution with weights 0..n-1 after a softmax),
mmdetection's ``Integral`` and D-FINE's weighted sum compute.  Its vector-Jacobian product for a
cotangent c (one number per row) is  dy_hat/dz_j c = c S_j (j - y_hat).

Written in NumPy, not generated: two reductions over a row.  S_j = e^(z_j - m) / sum_i e^(z_i - m)
with m the row's maximum (no overflow for logits of any magnitude); y_hat = (sum_i i e_i) / s, a
sum of non-negative terms (within a few ULP of the exact expectation); j - y_hat is exact where
Sterbenz applies and the VJP's terms do not cancel beyond that difference.
"""
from __future__ import annotations

import numpy as np

from ._validate import as_real_array, check_finite, numpy_dtype, reject_masked

__all__ = ["dfl_decode"]


def _softmax(z: np.ndarray):
    m = z.max(axis=-1, keepdims=True)
    e = np.exp(z - m)
    return e, e.sum(axis=-1, keepdims=True)


def _prepare(logits, dtype):
    """(logits in the computation dtype, the result dtype): float16 computed in float32 and returned as float16
    (refloss's rule; float32 came back before)."""
    reject_masked("logits", logits)
    z = np.asarray(logits)
    dt = np.result_type(z.dtype, np.float32) if dtype is None else numpy_dtype(dtype)
    result = np.dtype(np.float16) if dtype is None and z.dtype == np.float16 else None
    if dt not in (np.float32, np.float64):
        dt = np.dtype(np.float64) if dt != np.float16 else np.dtype(np.float32)
    z = as_real_array("logits", z, dt)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits: needs a last axis of at least one element (the bins), got shape {z.shape}")
    check_finite("logits", z)
    return z, result or dt


def _cast(x: np.ndarray, dt: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore"):  # (float16: beyond its range is inf, as NumPy's cast gives)
        return x.astype(dt, copy=False)


class _Decode:
    """dfl_decode(logits, dtype=None) -> (...,): the expectation sum_i i softmax_i(logits) over the
    LAST axis (the bins 0..n_bins-1).  ``dfl_decode.value_and_grad(logits, cotangent=None)`` ->
    (value, d_logits): the vector-Jacobian product c S_j (j - y_hat) for a cotangent c of the
    value's shape (None: ones, the gradient of the sum)."""

    __name__ = "dfl_decode"

    def __repr__(self) -> str:
        return "refloss.dfl_decode"

    def __call__(self, logits, dtype=None):
        z, result = _prepare(logits, dtype)
        e, s = _softmax(z)
        bins = np.arange(z.shape[-1], dtype=z.dtype)
        return _cast((e @ bins) / s[..., 0], result)

    def value_and_grad(self, logits, cotangent=None, dtype=None):
        z, result = _prepare(logits, dtype)
        e, s = _softmax(z)
        bins = np.arange(z.shape[-1], dtype=z.dtype)
        value = (e @ bins) / s[..., 0]
        c = np.ones(value.shape, z.dtype) if cotangent is None else as_real_array("cotangent", cotangent, z.dtype)
        if c.shape != value.shape:
            raise ValueError(f"cotangent: must have the value's shape {value.shape} (logits without the bins), got "
                             f"{c.shape}")
        p = e / s
        return _cast(value, result), _cast(c[..., None] * p * (bins - value[..., None]), result)


dfl_decode = _Decode()
