"""``dfl_decode``: the expectation of the distribution a DFL head predicts (NumPy only).

Generalized Focal Loss (Li et al., arXiv 2006.04388, sec. 3.3) predicts a box side as a
softmax S = softmax(z) over the bins 0, 1, ..., n - 1 (the LAST axis of the logits, n = reg_max + 1)
and decodes it as its expectation (the "integral")

    y_hat = sum_i i S_i,

what ultralytics' ``DFL`` module (a fixed 1x1 convolution with weights 0..n-1 after a softmax),
mmdetection's ``Integral`` and D-FINE's weighted sum compute.  Its vector-Jacobian product for a
cotangent c (one number per row) is  dy_hat/dz_j c = c S_j (j - y_hat).

Written in NumPy, not generated: recurrences over the bins, vectorised over the rows.

- e_i = e^(z_i - m), m the row's maximum (no overflow for logits of any magnitude), with the rounding error
  of z_i - m carried (TwoSum): e^hi (1 + lo).
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


def _two_sum(a, b):
    """(a + b rounded, its rounding error exactly) (Knuth)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _split(a):
    """Veltkamp's split of float64 numbers into 26- and 27-bit halves (|a| well inside the range)."""
    c = 134217729.0 * a  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """(a b rounded, its rounding error) by Dekker's product (exact where a b does not underflow)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _mul(xh, xl, yh, yl):
    """(xh + xl)(yh + yl) as a float64 pair (about 2^-104 relative)."""
    p, e = _two_prod(xh, yh)
    return _two_sum(p, e + (xh * yl + xl * yh))


def _div(xh, xl, yh, yl):
    """(xh + xl) / (yh + yl) as a float64 pair, yh != 0 (one correction step: about 2^-104 relative)."""
    q = xh / yh
    ph, pl = _two_prod(q, yh)
    rh, rl = _two_sum(xh, -ph)
    r = rh + ((rl - pl) + (xl - q * yl))
    return _two_sum(q, r / yh)


def _exp_shifted(z: np.ndarray):
    """e_i = e^(z_i - m) per row as a float64 pair (hi, lo), m the row's maximum (e_i <= 1: no overflow for
    logits of any magnitude), with the rounding error of z_i - m carried: h = fl(z_i - m), l its error (TwoSum),
    e_i = e^h (1 + l).  e^h alone was off by |z_i - m| ulp/2 (relative): 130 ULP64 at logits [0.1, -400.3],
    20.6 ULP32 at [0.1, -40.3]."""
    m = z.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):  # (z_i - m beyond the range: -inf, e_i = 0, l unused)
        h, l = _two_sum(z, -m)
        l = np.where(np.isfinite(h), l, 0.0)
    eh = np.exp(h)
    return eh, eh * l


def _right(eh, el, keep: bool):
    """(s, R_0, R per bin or None), each a float64 pair (the rounded sum, its errors summed apart): the
    recurrence from the last bin, Q_j = sum_{i>=j} e_i, R_{j-1} = R_j + Q_j.  The bins on the first axis."""
    n = eh.shape[0]
    qh, ql = eh[n - 1].copy(), el[n - 1].copy()
    rh, rl = np.zeros(eh.shape[1:]), np.zeros(eh.shape[1:])
    r = (np.zeros(eh.shape), np.zeros(eh.shape)) if keep else None
    for j in range(n - 2, -1, -1):
        rh, err = _two_sum(rh, qh)
        rl = rl + (err + ql)
        qh, err = _two_sum(qh, eh[j])
        ql = ql + (err + el[j])
        if keep:
            r[0][j], r[1][j] = rh, rl
    return _two_sum(qh, ql), _two_sum(rh, rl), r


def _left(eh, el):
    """L per bin as a float64 pair: P_j = sum_{i<=j} e_i, L_{j+1} = L_j + P_j, as ``_right``'s."""
    n = eh.shape[0]
    ph, pl = eh[0].copy(), el[0].copy()
    lh, ll = np.zeros(eh.shape[1:]), np.zeros(eh.shape[1:])
    left = (np.zeros(eh.shape), np.zeros(eh.shape))
    for j in range(1, n):
        lh, err = _two_sum(lh, ph)
        ll = ll + (err + pl)
        left[0][j], left[1][j] = lh, ll
        ph, err = _two_sum(ph, eh[j])
        pl = pl + (err + el[j])
    return left


def _bins_first(z):
    """The pair e (``_exp_shifted``) with the bins on the first axis."""
    return tuple(np.ascontiguousarray(np.moveaxis(a, -1, 0)) for a in _exp_shifted(z))  # (rows contiguous)


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
        eh, el = _bins_first(z)
        s, t, _ = _right(eh, el, False)
        return _cast(sum(_div(*t, *s)), dt, result)

    def value_and_grad(self, logits, cotangent=None, dtype=None):
        z, dt, result = _prepare(logits, dtype)
        if cotangent is None:
            c = np.ones(z.shape[:-1])
        else:
            reject_autograd(("cotangent",), (cotangent,))
            c = as_real_array("cotangent", cotangent, dt)
            if c.shape != z.shape[:-1]:
                raise ValueError(f"cotangent: must have the value's shape {z.shape[:-1]} (logits without the bins), "
                                 f"got {c.shape}")
            check_finite("cotangent", c)
            c = c.astype(np.float64, copy=False)
        eh, el = _bins_first(z)
        s, t, (rh, rl) = _right(eh, el, True)
        lh, ll = _left(eh, el)
        dh, err = _two_sum(lh, -rh)  # L_j - R_j = (j - y_hat) s: the one subtraction
        d = _two_sum(dh, err + (ll - rl))
        w = _div(*_div(*_mul(eh, el, *d), *s), *s)  # e_j (L_j - R_j) / s^2 = S_j (j - y_hat)
        grad = np.moveaxis(c * (w[0] + w[1]), 0, -1)
        return _cast(sum(_div(*t, *s)), dt, result), _cast(grad, dt, result)


dfl_decode = _Decode()
