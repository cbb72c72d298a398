"""The floors of the ULP measure at soft targets, for sweeps of the classification losses.

At a soft target y (0 < y < 1) a classification loss's gradients are signed sums of terms that cancel
near the optimum sigma(x) = y: no float evaluation from the inputs can match such a result relative to
itself, only relative to the magnitude of its terms.  ``refloss verify`` measures there against that
magnitude, the ``floor`` of the loss's entry in refloss/_reference.py (an mpmath function of
refloss/oracle/classification.py, one point at a time).  A sweep needs the same floors at millions of
points a second: these are those functions in float64 NumPy, the same formulas term for term.  A floor
is a magnitude, so float64's rounding of it (a few ulps of the floor) moves the measure by as little;
the one difference that cancels, QFL's |y - sigma(x)|, is formed in double-double from an accurate
sigma (refloss/_dd_functions.py), since near the optimum it is far below an ulp of sigma.  Hard targets
(0 and 1) get no floor: the sweeps measure them relative to the result itself, as the exhaustive tables
do (stricter than verify there).  ``tests/test_sweep_soft.py`` checks each floor against the oracle's.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import _dd_functions as dd
from .._numba_options import CPU_OPTIONS

__all__ = ["FLOORS", "floors"]


def _sigmoids(x):
    """(sigma(x), sigma(-x)), without overflow."""
    e = np.exp(-np.abs(x))
    big, small = 1.0 / (1.0 + e), e / (1.0 + e)
    pos = x >= 0
    return np.where(pos, big, small), np.where(pos, small, big)


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _ce(x, y):
    return y * _softplus(-x) + (1 - y) * _softplus(x)


def _focal_scales(x, y, gamma, alpha):
    """(scale d/dx, scale d/dy) of the focal loss (gamma None: BCE), refloss.oracle.classification._scales."""
    p, q = _sigmoids(x)
    dce = (1 - y) * p + y * q
    if gamma is None:
        return dce, np.abs(x)
    g = float(gamma)
    ce = _ce(x, y)
    m = y * q + (1 - y) * p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mg = m**g
        dmg = np.where((m > 0) & (g != 0), g * m ** (g - 1), 0.0)
    weighted = alpha is not None and alpha >= 0
    at = alpha * y + (1 - alpha) * (1 - y) if weighted else 1.0
    dat = abs(2 * alpha - 1) if weighted else 0.0
    with np.errstate(invalid="ignore"):
        sx = at * (dmg * p * q * np.abs(1 - 2 * y) * ce + mg * dce)
        sy = dat * mg * ce + at * (dmg * np.abs(np.tanh(x / 2)) * ce + mg * np.abs(x))
    return sx, sy


def _bce(x, y, dtype):
    return [np.zeros_like(x), *_focal_scales(x, y, None, None)]


def _focal(x, y, dtype, alpha=0.25, gamma=2.0):
    sx, sy = _focal_scales(x, y, gamma, alpha)
    if gamma < 1:  # the documented limit: 1 - p_t underflows in dtype, its negative power taken as 0 (not measured)
        p, q = _sigmoids(x)
        out = (y * q + (1 - y) * p) < float(np.finfo(dtype).tiny)
        sx, sy = np.where(out, np.inf, sx), np.where(out, np.inf, sy)
    return [np.zeros_like(x), sx, sy]


@njit(**CPU_OPTIONS)
def _abs_y_minus_sigmoid(x, y, out):
    """out[i] = |y[i] - sigma(x[i])|, sigma in double-double: near the optimum the difference is far
    below an ulp of sigma, and float64's sigma would leave only its rounding."""
    for i in range(x.shape[0]):
        t = x[i]
        eh, el = dd.exp(-abs(t), 0.0)  # e^-|x|
        dh, dl = dd.add(1.0, 0.0, eh, el)
        if t >= 0:
            sh, sl = dd.div(1.0, 0.0, dh, dl)
        else:
            sh, sl = dd.div(eh, el, dh, dl)
        rh, rl = dd.add(y[i], 0.0, -sh, -sl)
        out[i] = abs(rh + rl)


def _qfl(x, y, dtype, beta=2.0):
    """refloss.oracle.classification.qfl_gradient_scale: (value, d/dx, d/dy) floors."""
    s, sn = _sigmoids(x)
    b = float(beta)
    t = y * sn + (1 - y) * s
    d = np.empty_like(x)
    _abs_y_minus_sigmoid(np.ascontiguousarray(x), np.ascontiguousarray(y), d)
    u = float(np.finfo(dtype).eps) / 2
    ad = d + u * t  # (|D| + u T: D's own error, see the oracle's)
    ce = _ce(x, y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w = t**b
        dw = b * t ** (b - 1) if b != 0 else np.zeros_like(x)
        value = np.where((ad > 0) & (b != 0), b * t * ad ** (b - 1) * ce, 0.0)
        out = [value, dw * s * sn * ce + w * t, dw * ce + w * np.abs(x)]
    if 0 < b < 1 or (b == 1 and dtype != np.float32):  # (the documented limit: D's sign undetermined within its
        # own error, but for float32's D formed in float64 at beta = 1, see the oracle's)
        limit = d <= 4 * u * t
        out[1:] = [np.where(limit, np.inf, c) for c in out[1:]]
    return out


def _varifocal(x, q, dtype, alpha=0.75, gamma=2.0, detach_weight=False, iou_weighted=True):
    """refloss.oracle.classification.varifocal_gradient_scale (0 on the negatives, q = 0)."""
    p, pn = _sigmoids(x)
    terms = (1 - q) * p + q * pn
    if not iou_weighted:
        sx, sy = terms, np.abs(x)
    else:
        sx, sy = q * terms, q * np.abs(x) + (0.0 if detach_weight else _ce(x, q))
    neg = q == 0
    return [np.zeros_like(x), np.where(neg, 0.0, sx), np.where(neg, 0.0, sy)]


#: the oracle's floor functions (refloss/_reference.py's ``floor``) -> their float64 NumPy forms
FLOORS = {"classification.bce_gradient_scale": _bce, "classification.focal_gradient_scale": _focal,
          "classification.qfl_gradient_scale": _qfl, "classification.varifocal_gradient_scale": _varifocal}


def floors(name: str | None, logits, targets, dtype, params: dict):
    """Per column (value, d/dlogits, d/dtargets), the floor of each point's ULP measure: the loss's
    ``floor`` at soft targets, 0 at the hard targets 0 and 1; None where every target is hard (no
    floors needed).  ``name``: the loss's floor (refloss/_reference.py); ``params``: every parameter."""
    x, y = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    soft = (y != 0) & (y != 1)
    if not soft.any():
        return None
    if name not in FLOORS:
        raise ValueError(f"no float64 form of the floor {name!r}: soft targets cannot be swept for this loss")
    fn = FLOORS[name]
    kwargs = {k: v for k, v in params.items() if k in fn.__code__.co_varnames[3:fn.__code__.co_argcount]}
    return [np.where(soft, c, 0.0) for c in fn(x, y, np.dtype(dtype), **kwargs)]
