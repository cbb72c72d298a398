"""The error measures of the whole project (NumPy only, vectorised).

An exact result is carried as a pair of float64 ``(hi, lo)``: ``hi`` the correctly rounded
value, ``lo`` the correctly rounded remainder (exact - hi), about 106 significant bits;
:func:`refloss.oracle.rounding.split` makes the pair from a 50-digit mpmath number and the
stored references keep it (``refloss/reference_values/``).

- :func:`ulp_error`: ``|got - exact|`` in units in the last place, in ``dtype``, of the
  correctly rounded exact result (or of a floor: the magnitude of the terms that cancel,
  where no float evaluation can do better).  0.5 means correctly rounded at worst.
- :func:`box_errors`: the box family's measure, the value's absolute error and the gradient's
  error relative to the pair's largest exact component (at least 1 / the enclosing box's size).
"""
from __future__ import annotations

import numpy as np


def _format(dtype) -> tuple:
    fi = np.finfo(dtype)
    return fi.nmant + 1, int(fi.minexp)  # precision p (with the hidden bit), emin


def ulp(v, dtype) -> np.ndarray:
    """Unit in the last place of the finite values ``v`` in ``dtype`` (float64 array):
    ``2**(max(floor(log2 |v|), emin) - p + 1)``, the spacing at |v| towards larger magnitudes;
    ulp(0) is the smallest subnormal."""
    p, emin = _format(dtype)
    v = np.abs(np.asarray(v, dtype=np.float64))
    _, e = np.frexp(v)
    top = np.where(v > 0, e - 1, emin)
    return np.ldexp(1.0, np.maximum(top, emin) - p + 1)


def round_pair(hi, lo, dtype) -> np.ndarray:
    """hi + lo correctly rounded to ``dtype`` (as float64 values); for float64 that is ``hi``."""
    hi = np.asarray(hi, dtype=np.float64)
    if np.dtype(dtype) == np.float64:
        return hi
    lo = np.asarray(lo, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = hi.astype(dtype).astype(np.float64)  # ties to even, subnormals included
        d = hi - r  # exact: r is hi rounded to fewer bits
        half = ulp(r, dtype) / 2
        # hi lies exactly halfway between two neighbours: lo decides (ties only when lo == 0)
        tie = np.isfinite(r) & (np.abs(d) == half) & (lo != 0) & (np.sign(lo) == np.sign(d))
        away = np.nextafter(r.astype(dtype), (r + 2 * d).astype(dtype)).astype(np.float64)
    return np.where(tie, away, r)


def ulp_error(got, hi, lo, dtype, floor=None) -> np.ndarray:
    """``|got - (hi + lo)|`` in ULPs of ``dtype`` at max(|exact rounded to dtype|, floor).

    Special values: 0 if both are NaN, inf if exactly one is; an exact value that rounds to
    +-inf in ``dtype`` counts as that infinity (0 if ``got`` is the same infinity, else inf);
    a floor of inf gives 0 (a documented limit: the point is not measured)."""
    got = np.asarray(got, dtype=np.float64)
    hi, lo = np.broadcast_arrays(np.asarray(hi, np.float64), np.asarray(lo, np.float64))
    rounded = round_pair(hi, lo, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        # (a finite floor beyond the dtype's range counts as its largest number, not as inf)
        ref = np.abs(rounded) if floor is None else np.maximum(
            np.abs(rounded), np.minimum(round_pair(floor, 0.0, dtype), float(np.finfo(dtype).max)))
        diff = np.abs((got - hi) - lo)
        err = diff / ulp(np.where(np.isfinite(ref), ref, 0.0), dtype)
        err = np.where(diff == 0, 0.0, err)
        nan_got, nan_exact = np.isnan(got), np.isnan(hi)
        inf_case = np.isinf(got) | np.isinf(rounded)
        err = np.where(inf_case, np.where(got == rounded, 0.0, np.inf), err)
        err = np.where(nan_got | nan_exact, np.where(nan_got & nan_exact, 0.0, np.inf), err)
        if floor is not None:
            err = np.where(np.isinf(np.asarray(floor)) & ~(nan_got | nan_exact), 0.0, err)
    return err


def box_errors(got_value, got_grads, exact_value, exact_grads, pred, target, size=None) -> tuple:
    """Per pair: (value absolute error (relative where |exact value| > 1), gradient error relative to max(the pair's largest
    finite exact component, 1 / the enclosing box's larger side)).  NaN where both are NaN
    counts as 0, else inf; equal infinities count as 0.  ``*_grads`` are (n, 8) arrays.  ``size``
    (per pair) replaces the enclosing box's larger side of xyxy boxes (rotated boxes:
    :func:`rotated_extent`)."""
    value = np.asarray(got_value, np.float64)
    grads = np.asarray(got_grads, np.float64)
    ev, eg = np.asarray(exact_value, np.float64), np.asarray(exact_grads, np.float64)
    with np.errstate(invalid="ignore"):
        verr = np.where(np.isnan(ev) & np.isnan(value), 0.0, np.abs(value - ev))
        verr = np.where(ev == value, 0.0, verr)  # equal infinities
        # relative above 1: a loss with an unbounded term (MPDIoU's corner distances over the image's
        # diagonal) is ~1e14 for boxes 1e10 apart, where no float result is within 1e-14 absolute
        verr = verr / np.maximum(1.0, np.where(np.isfinite(ev), np.abs(ev), 1.0))
        scale = np.nanmax(np.abs(np.where(np.isfinite(eg), eg, np.nan)), axis=1, initial=0.0)
        # floor: the natural gradient scale 1/(enclosing size). Where the exact gradient cancels to
        # (nearly) 0 (identical boxes, tied coordinates) no float computation of the O(1/size) terms
        # can match it relative to itself
        if size is None:
            p64, t64 = np.asarray(pred, np.float64), np.asarray(target, np.float64)
            size = np.maximum(np.maximum(p64[:, 2], t64[:, 2]) - np.minimum(p64[:, 0], t64[:, 0]),
                              np.maximum(p64[:, 3], t64[:, 3]) - np.minimum(p64[:, 1], t64[:, 1]))
        scale = np.maximum(scale, np.where(size > 0, 1.0 / np.where(size > 0, size, 1.0), 0.0))
        diff = np.where(np.isnan(eg) & np.isnan(grads), 0.0, np.abs(grads - eg))
        gerr = np.nanmax(np.where(np.isnan(diff), np.inf, diff), axis=1, initial=0.0) / np.where(scale > 0, scale, 1.0)
    return np.where(np.isnan(verr), np.inf, verr), gerr


def rotated_extent(pred, target) -> np.ndarray:
    """Per pair of rotated boxes (cx, cy, w, h, angle): the length the gradient scale of a box loss
    is the inverse of, the larger of the boxes' sides and of their centre offset along x and y."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.max(np.column_stack([p[:, 2], p[:, 3], t[:, 2], t[:, 3], np.abs(p[:, 0] - t[:, 0]),
                                       np.abs(p[:, 1] - t[:, 1])]), axis=1)
