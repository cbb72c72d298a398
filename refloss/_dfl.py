"""``dfl_decode``: the expectation of the distribution a DFL head predicts (NumPy and a Numba kernel).

Generalized Focal Loss (Li et al., arXiv 2006.04388, sec. 3.3) predicts a box side as a
softmax S = softmax(z) over the bins 0, 1, ..., n - 1 (the LAST axis of the logits, n = reg_max + 1)
and decodes it as its expectation (the "integral")

    y_hat = sum_i i S_i,

what ultralytics' ``DFL`` module (a fixed 1x1 convolution with weights 0..n-1 after a softmax),
mmdetection's ``Integral`` and D-FINE's weighted sum compute.  Its vector-Jacobian product for a
cotangent c (one number per row) is  dy_hat/dz_j c = c S_j (j - y_hat).

Hand-written, not generated: the recurrences over the bins below, a row at a time, compiled
(refloss/_dfl_cpu.py, imported at the first call; NumPy's max and exp around it).

- e_i = e^(z_i - m), m the row's maximum (no overflow for logits of any magnitude), with the rounding error
  of z_i - m carried (TwoSum): e^hi (1 + lo), e^hi by NumPy's exp.
- j - y_hat = (L_j - R_j) / s with s = sum_i e_i, L_j = sum_{i<j} e_i (j - i), R_j = sum_{i>j} e_i (i - j):
  sums of non-negative terms, by the recurrences L_{j+1} = L_j + sum_{i<=j} e_i and
  R_{j-1} = R_j + sum_{i>=j} e_i, each addition's rounding error kept (TwoSum, Ogita-Rump-Oishi's Sum2), and
  one subtraction at the end: the gradient is as accurate as the conditioning (L_j + R_j) / |L_j - R_j| of
  that difference allows (j - y_hat with y_hat rounded first lost every digit where y_hat ~ j).
- y_hat = R_0 / s (R_0 = sum_i i e_i), both compensated sums of non-negative terms.

float32 (and float16, bfloat16) logits are computed in float64 and rounded once to float32 (float16: then
to float16, refloss's rule), as refloss's means are: NumPy's float32 exp alone is up to 2 ULP off.
Accuracy (docs/accuracy.md, "dfl_decode"): values within 4 ULP, gradients within 4 ULP of the magnitude of
the terms that cancel, |c| S_j (L_j + R_j) / s, against a 50-digit oracle.
"""
from __future__ import annotations

import numpy as np

from ._validate import as_real_array, check_finite, reject_autograd, result_dtypes

__all__ = ["dfl_decode"]


def _prepare(logits, dtype):
    """(logits as float64, the computation dtype, the result dtype), as the losses read their inputs
    (refloss/_validate.py): a tensor that requires grad, a masked array, a ragged list and a dtype other
    than float64/float32 are refused with errors that name them; float16 is computed in float32 and returned
    as float16, a bfloat16 tensor computed and returned in float32, integers and wider floats in float64."""
    reject_autograd(("logits",), (logits,))
    dt, _, result = result_dtypes((logits,), dtype)
    z = as_real_array("logits", logits, dt)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits: needs a last axis of at least one element (the bins), got shape {z.shape}")
    check_finite("logits", z)
    return z.astype(np.float64, copy=False), dt, result


def _cast(x: np.ndarray, dt: np.dtype, result: np.dtype) -> np.ndarray:
    """The float64 result rounded to the computation dtype, then to the result dtype (float16: float32's
    result rounded to float16, as the losses return it)."""
    with np.errstate(over="ignore"):  # (beyond float32's or float16's range is inf, as NumPy's cast gives)
        return x.astype(dt, copy=False).astype(result, copy=False)


def _run(z: np.ndarray, c, with_grad: bool):
    """(value, grad or None) in float64, of the rows' shape and of z's, for the float64 logits z and cotangents c
    (None: ones): the recurrences over the bins compiled (refloss/_dfl_cpu.py, imported here: ``import refloss``
    imports no Numba), e^(z_i - m) by NumPy's exp.  e^h alone was off by |z_i - m| ulp/2 (relative): 130 ULP64 at
    logits [0.1, -400.3], 20.6 ULP32 at [0.1, -40.3]; the rounding error l of h = fl(z_i - m) is carried."""
    from ._cpu import read_only
    from ._dfl_cpu import decode, shift

    n = z.shape[-1]
    m = z.max(axis=-1)
    z = np.ascontiguousarray(z).reshape(-1, n)
    rows = z.shape[0]
    h, l = np.empty(z.shape), np.empty(z.shape)
    shift(read_only(z), read_only(np.ascontiguousarray(m).reshape(rows)), h, l)
    eh = np.exp(h)  # (h = -inf where z_i - m is beyond the range: e_i = 0, and l = 0 there)
    c = read_only(np.ones(rows) if c is None else np.ascontiguousarray(c, dtype=np.float64).reshape(rows))
    value = np.empty(rows)
    grad = np.empty(z.shape if with_grad else (0, n))
    decode(eh, l, c, value, grad, with_grad)
    # (a scalar, not a 0-d array, for one row, as NumPy's operations gave)
    return value.reshape(m.shape)[()], grad.reshape(m.shape + (n,)) if with_grad else None


class _Decode:
    """dfl_decode(logits, dtype=None) -> (...,): the expectation sum_i i softmax_i(logits) over the
    LAST axis (the bins 0..n_bins-1).  ``dfl_decode.value_and_grad(logits, cotangent=None)`` ->
    (value, d_logits): the vector-Jacobian product c S_j (j - y_hat) for a cotangent c of the
    value's shape (None: ones, the gradient of the sum)."""

    __name__ = "dfl_decode"

    def __repr__(self) -> str:
        return "refloss.dfl_decode"

    def __call__(self, logits, dtype=None):
        z, dt, result = _prepare(logits, dtype)
        return _cast(_run(z, None, False)[0], dt, result)

    def value_and_grad(self, logits, cotangent=None, dtype=None):
        z, dt, result = _prepare(logits, dtype)
        c = None
        if cotangent is not None:
            reject_autograd(("cotangent",), (cotangent,))
            c = as_real_array("cotangent", cotangent, dt)
            if c.shape != z.shape[:-1]:
                raise ValueError(f"cotangent: must have the value's shape {z.shape[:-1]} (logits without the bins), "
                                 f"got {c.shape}")
            check_finite("cotangent", c)
            c = c.astype(np.float64, copy=False)
        value, grad = _run(z, c, True)
        return _cast(value, dt, result), _cast(grad, dt, result)


dfl_decode = _Decode()
