"""``dfl_decode``'s recurrences compiled (Numba): a loop over the rows (in parallel), then over the bins.

Imported at the first ``dfl_decode`` call (it imports Numba).  The operations are those of the double-double
recurrences refloss/_dfl.py describes, in the same order as the NumPy code that looped over the bins with vector
operations across the rows did them (2026-12-07; the same bits, value and gradient, float64 and float32), each
rounded as IEEE float64: no fast-math (no contraction into FMAs, no reassociation), so the results depend neither
on the thread count nor on the vector width.  The exp is NumPy's, between ``shift`` and ``decode``.
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from ._numba_options import BLOCK, CPU_OPTIONS, SERIAL_BELOW


@njit(inline="always", **CPU_OPTIONS)
def _two_sum(a, b):
    """(a + b rounded, its rounding error exactly) (Knuth)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@njit(inline="always", **CPU_OPTIONS)
def _split(a):
    """Veltkamp's split into 26- and 27-bit halves."""
    c = 134217729.0 * a  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


@njit(inline="always", **CPU_OPTIONS)
def _two_prod(a, b):
    """(a b rounded, its rounding error) by Dekker's product."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(inline="always", **CPU_OPTIONS)
def _mul(xh, xl, yh, yl):
    """(xh + xl)(yh + yl) as a float64 pair."""
    p, e = _two_prod(xh, yh)
    return _two_sum(p, e + (xh * yl + xl * yh))


@njit(inline="always", **CPU_OPTIONS)
def _div(xh, xl, yh, yl):
    """(xh + xl) / (yh + yl) as a float64 pair (one correction step)."""
    q = xh / yh
    ph, pl = _two_prod(q, yh)
    rh, rl = _two_sum(xh, -ph)
    r = rh + ((rl - pl) + (xl - q * yl))
    return _two_sum(q, r / yh)


@njit(**CPU_OPTIONS)
def shift(z, m, h, l):
    """h = fl(z_i - m) and l its rounding error (TwoSum; 0 where h is not finite: z_i - m beyond the range)
    over the C-contiguous (rows, n) z, m the rows' maxima (NumPy's: the sign of a zero maximum as NumPy gives it)."""
    rows, n = z.shape
    for r in range(rows):
        a = -m[r]
        for j in range(n):
            s, e = _two_sum(z[r, j], a)
            h[r, j] = s
            l[r, j] = e if np.isfinite(s) else 0.0


@njit(inline="always", **CPU_OPTIONS)
def _row(eh, el, c, value, grad, low, r, with_grad):
    """Row r: value[r] = R_0 / s and, ``with_grad``, grad[r, j] = c[r] S_j (j - y_hat); low: scratch of n."""
    n = eh.shape[1]
    for j in range(n):  # e_j = e^h (1 + l): its low part e^h l
        el[r, j] = eh[r, j] * el[r, j]
    # R_{j-1} = R_j + Q_j, Q_j = sum_{i>=j} e_i, from the last bin; R_j kept in grad[r, j] and low[j]
    qh, ql = eh[r, n - 1], el[r, n - 1]
    rh, rl = 0.0, 0.0
    if with_grad:
        grad[r, n - 1] = 0.0
        low[n - 1] = 0.0
    for j in range(n - 2, -1, -1):
        rh, err = _two_sum(rh, qh)
        rl = rl + (err + ql)
        qh, err = _two_sum(qh, eh[r, j])
        ql = ql + (err + el[r, j])
        if with_grad:
            grad[r, j] = rh
            low[j] = rl
    sh, sl = _two_sum(qh, ql)  # s
    th, tl = _two_sum(rh, rl)  # R_0
    vh, vl = _div(th, tl, sh, sl)
    value[r] = (0.0 + vh) + vl  # (as Python's sum of the pair)
    if not with_grad:
        return
    # L_{j+1} = L_j + P_j, P_j = sum_{i<=j} e_i; L_j - R_j (the one subtraction) into grad[r, j], low[j]
    ph, pl = eh[r, 0], el[r, 0]
    lh, ll = 0.0, 0.0
    for j in range(n):
        if j > 0:
            lh, err = _two_sum(lh, ph)
            ll = ll + (err + pl)
            ph, err = _two_sum(ph, eh[r, j])
            pl = pl + (err + el[r, j])
        dh, err = _two_sum(lh, -grad[r, j])
        grad[r, j], low[j] = _two_sum(dh, err + (ll - low[j]))
    # c e_j (L_j - R_j) / s^2 = c S_j (j - y_hat): the bins independent (a loop LLVM vectorises)
    cr = c[r]
    for j in range(n):
        mh, ml = _mul(eh[r, j], el[r, j], grad[r, j], low[j])
        ah, al = _div(mh, ml, sh, sl)
        wh, wl = _div(ah, al, sh, sl)
        grad[r, j] = cr * (wh + wl)


@njit(parallel=True, **CPU_OPTIONS)
def _decode(eh, el, c, value, grad, with_grad, per):
    rows, n = eh.shape
    for t in prange((rows + per - 1) // per):
        low = np.empty(n)
        for r in range(t * per, min((t + 1) * per, rows)):
            _row(eh, el, c, value, grad, low, r, with_grad)


def decode(eh, el, c, value, grad, with_grad: bool) -> None:
    """The rows of the C-contiguous (rows, n) e^h and l (``shift``'s; l overwritten by e^h l) and the cotangents
    c (rows,): value (rows,) and, ``with_grad``, grad (rows, n), in tasks of whole rows, about BLOCK elements each,
    in parallel; on the calling thread alone where there is one task or under SERIAL_BELOW elements (the thread
    pool's start costs more: milliseconds where another process holds a core)."""
    rows, n = eh.shape
    per = max(1, BLOCK // n)
    if rows <= per or rows * n < SERIAL_BELOW:
        threads = get_num_threads()
        set_num_threads(1)
        try:
            _decode(eh, el, c, value, grad, with_grad, per)
        finally:
            set_num_threads(threads)
    else:
        _decode(eh, el, c, value, grad, with_grad, per)
