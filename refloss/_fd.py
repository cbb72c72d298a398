"""The finite-difference checker of the whole project: Richardson-extrapolated central
differences, element-wise, with an estimate of their own error (NumPy only).

``gradient(f, inputs, k, h)`` differentiates ``f(*inputs) -> per-element values`` with
respect to every coordinate of input ``k`` (shape (n,) or (n, w)); the step of each element
is ``h`` (an array), taken as the difference of the rounded inputs (the step actually made).
The estimate is the extrapolation's correction |d(h/2) - d(h)| (large where a step crosses
a kink) plus the rounding noise of the differences, from the inputs' dtype.  With ``quantum``
(per element: the unit in the last place of the largest magnitude among the element's inputs)
steps are whole multiples of it, so that a step on one input changes the rounded differences it
forms with the others (a step on ``target`` below ``pred``'s ULP leaves ``pred - target`` as it
was and would measure a derivative of 0); where ``h`` is below two quanta the estimate is inf.  Used by
``refloss verify`` (the kernels' own gradients), ``check_loss`` (implementations without
autograd) and the tests.
"""
from __future__ import annotations

import numpy as np

# rounding noise of a difference quotient: this many epsilons of the values, over the step
NOISE_EPS = 64


def gradient(f, inputs, k: int, h, quantum=None) -> tuple:
    """(derivative, error estimate) of ``f`` w.r.t. input ``k``, both of that input's shape
    (as float64).  Where the rounded step is zero, ``h`` is below two ``quantum`` (when given)
    or a difference is not finite, the estimate is inf (no check possible there)."""
    xs = list(inputs)
    dt = xs[k].dtype
    a = xs[k].astype(np.float64)
    g, est = np.zeros_like(a), np.zeros_like(a)
    coords = [(slice(None),)] if a.ndim == 1 else [(slice(None), j) for j in range(a.shape[-1])]
    h = np.asarray(h, dtype=np.float64)
    unresolved = np.zeros(h.shape, bool)
    if quantum is not None:  # whole multiples of two quanta (h / 2 a multiple of one)
        q2 = 2 * np.broadcast_to(np.asarray(quantum, dtype=np.float64), h.shape)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            m = np.floor(h / q2)
        unresolved = ~(m >= 1)
        h = np.where(unresolved | (m >= 2.0**52), h, m * q2)  # a step of 2**52 quanta is whole already
    for c in coords:
        def at(step):
            b = a.copy()
            b[c] = (b[c] + step).astype(dt)
            args = list(xs)
            args[k] = b.astype(dt)
            return np.asarray(f(*args), dtype=np.float64), b[c] - a[c]  # the step actually taken

        (fp, hp), (fm, hm), (fp2, hp2), (fm2, hm2) = at(h), at(-h), at(h / 2), at(-h / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            d1 = (fp - fm) / (hp - hm)
            d2 = (fp2 - fm2) / (hp2 - hm2)
            g[c] = (4 * d2 - d1) / 3
            noise = NOISE_EPS * np.finfo(dt).eps * np.maximum(np.abs(fp), np.abs(fm)) / np.abs(hp2 - hm2)
            ok = np.isfinite(d1) & np.isfinite(d2) & (hp2 != hm2) & ~unresolved
            est[c] = np.where(ok, np.abs(d2 - d1) + noise, np.inf)
    return g, est
