"""Compensated sums for the reductions: a loss's ``reduction="sum"``/``"mean"`` and the gradients
summed over the axes an input was broadcast along.

NumPy's ``sum`` is a plain sum along any axis but the last (error up to n ulps: float32 gradients of a
target broadcast over 10^6 boxes came out 25-240 ULP from the float64 kernel's with ``reduction="sum"``,
up to 1.8e4 ULP with ``"mean"``), and pairwise along the last (up to log2 n ulps).  Here every sum is
accumulated in float64 with each addition's rounding error taken by Knuth's TwoSum and the errors summed
apart (Ogita, Rump and Oishi's Sum2, "Accurate sum and dot product", SIAM J. Sci. Comput. 26, 2005):
the result is as accurate as a sum in twice float64's precision, rounded once to float64 and then, for
float32 inputs, to float32 -- within an ulp of the exact sum of the terms, and within half an ulp unless the
terms cancel by more than 2^40 (float64; float32: 2^70).  NaN and infinities propagate as in a plain sum.

The result does not depend on the thread count: the terms are split into fixed chunks (of ``CHUNK``
elements) and the chunks' partial sums combined in order.  Imported at the first reduction (it imports
Numba); :mod:`refloss._arrays` calls it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numpy import uint64 as _unsigned

from ._numba_options import CPU_OPTIONS, SERIAL_BELOW

# independent accumulators a run of contiguous terms is spread over (each a TwoSum chain: LLVM vectorises
# across them), a multiple of the terms per step of the reduced axis
LANES = 16
# the terms of one task of the parallel sums (a multiple of the lanes)
CHUNK = 1 << 16
# below this many terms, one call sums each column in order (no lanes, no thread pool: the fixed cost counts)
SMALL = 1024


@njit(inline="always", **CPU_OPTIONS)
def _add(s, c, k, x):
    """s[k] + x by TwoSum: the rounded sum into s[k], its exact error added to c[k]."""
    a = s[k]
    b = a + x
    v = b - a
    c[k] += (a - (b - v)) + (x - v)
    s[k] = b


@njit(inline="always", **CPU_OPTIONS)
def _finish(s, c):
    """s + c where the errors' sum c is finite and non-zero, else s (an infinity or NaN in s stands; a sum of
    negative zeros stays -0)."""
    return s + c if (c - c == 0.0) & (c != 0.0) else s


@njit(inline="always", **CPU_OPTIONS)
def _columns(a, s, c):
    """The terms a[r, i] of the 2-d array ``a`` into s[i], c[i], r in order."""
    for r in range(_unsigned(a.shape[0])):
        for i in range(_unsigned(a.shape[1])):
            _add(s, c, i, np.float64(a[r, i]))


@njit(**CPU_OPTIONS)
def _lanes(run, s, c):
    """The contiguous terms ``run`` into the lanes s, c: term k into lane k % len(s)."""
    lanes = s.shape[0]
    full = run.shape[0] // lanes
    for r in range(_unsigned(full)):
        for j in range(_unsigned(lanes)):
            _add(s, c, j, np.float64(run[r * lanes + j]))
    for j in range(_unsigned(run.shape[0] - full * lanes)):
        _add(s, c, j, np.float64(run[full * lanes + j]))


@njit(**CPU_OPTIONS)
def _direct_serial(a, s, c):
    n_i = a.shape[2]
    for o in range(a.shape[0]):
        _columns(a[o], s[o * n_i:(o + 1) * n_i], c[o * n_i:(o + 1) * n_i])


@njit(parallel=True, **CPU_OPTIONS)
def _direct_parallel(a, s, c, width):
    """Tasks of ``width`` columns of one o each (the reduced axis whole, in order, in every task)."""
    per = (a.shape[2] + width - 1) // width
    for t in prange(a.shape[0] * per):
        o = t // per
        i0 = (t % per) * width
        i1 = min(i0 + width, a.shape[2])
        k = o * a.shape[2]
        _columns(a[o, :, i0:i1], s[k + i0:k + i1], c[k + i0:k + i1])


@njit(inline="always", **CPU_OPTIONS)
def _lanes_task(run2, s, c, lanes, chunk, t):
    """Task t = o * per + q: the q-th ``chunk`` of o's run of terms (row o of run2) into lanes of its own."""
    per = (run2.shape[1] + chunk - 1) // chunk
    o = t // per
    k0 = (t % per) * chunk
    _lanes(run2[o, k0:min(k0 + chunk, run2.shape[1])], s[t * lanes:(t + 1) * lanes], c[t * lanes:(t + 1) * lanes])


@njit(**CPU_OPTIONS)
def _lanes_serial(run2, s, c, lanes, chunk, tasks):
    for t in range(tasks):
        _lanes_task(run2, s, c, lanes, chunk, t)


@njit(parallel=True, **CPU_OPTIONS)
def _lanes_parallel(run2, s, c, lanes, chunk, tasks):
    for t in prange(tasks):
        _lanes_task(run2, s, c, lanes, chunk, t)


@njit(**CPU_OPTIONS)
def _combine(s, c, per, lanes, width, out):
    """out[o, i]: the partial sums s[(o*per + q)*lanes + j], j = i (mod width), combined in order with their
    errors."""
    hs = np.zeros(width)
    hc = np.zeros(width)
    for o in range(out.shape[0]):
        hs[:] = -0.0
        hc[:] = 0.0
        for q in range(per):
            base = (o * per + q) * lanes
            for j in range(lanes):
                i = j % width
                _add(hs, hc, i, s[base + j])
                hc[i] += c[base + j]
        for i in range(width):
            out[o, i] = _finish(hs[i], hc[i])


@njit(**CPU_OPTIONS)
def _finish_all(s, c, out):
    flat = out.reshape(out.size)
    for k in range(out.size):
        flat[k] = _finish(s[k], c[k])


@njit(**CPU_OPTIONS)
def _sum_small(a):
    """``_sum_middle`` of a small array in one call on this thread: a sum per column, in order."""
    n_o, n_r, n_i = a.shape
    s = np.full(n_o * n_i, -0.0)
    c = np.zeros(n_o * n_i)
    out = np.empty((n_o, n_i))
    if n_r == 0:
        out[:] = 0.0
        return out
    _direct_serial(a, s, c)
    _finish_all(s, c, out)
    return out


def _sum_middle(a: np.ndarray) -> np.ndarray:
    """Sum of the C-contiguous (O, R, I) array ``a`` over its middle axis, compensated: an (O, I) float64
    array."""
    n_o, n_r, n_i = a.shape
    if a.size < SMALL:
        return _sum_small(a)
    if n_r == 0:
        return np.zeros((n_o, n_i))
    out = np.empty((n_o, n_i))
    lanes = n_i * -(-LANES // n_i) if n_i else LANES
    parallel = a.size >= SERIAL_BELOW
    if n_r >= 64 and lanes <= CHUNK // 16:
        # o's terms a[o] are one contiguous run, term k in column k % I: lanes across the run, a multiple of I
        # (LLVM vectorises across them), in chunks of CHUNK terms (the tasks); the partial sums are at most
        # 2 lanes / (R I) of the terms (under 1/2 when R I >= 64 lanes)
        chunk = lanes * (CHUNK // lanes)
        run2 = a.reshape(n_o, n_r * n_i)
        per = -(-run2.shape[1] // chunk)
        s = np.full(n_o * per * lanes, -0.0)
        c = np.zeros(n_o * per * lanes)
        (_lanes_parallel if parallel else _lanes_serial)(run2, s, c, lanes, chunk, n_o * per)
        _combine(s, c, per, lanes, n_i, out)
        return out
    # short sums (R < 64: the output is at least 1/64 of the terms) or very wide columns: a sum per column
    s = np.full(n_o * n_i, -0.0)
    c = np.zeros(n_o * n_i)
    if parallel:
        _direct_parallel(a, s, c, max(1, min(n_i, 4096)))
    else:
        _direct_serial(a, s, c)
    _finish_all(s, c, out)
    return out


@njit(**CPU_OPTIONS)
def _total_serial(v):
    """The compensated sum of the contiguous 1-d ``v`` in one call on this thread, as a scalar (a short array: the
    fixed cost counts); 0 if empty."""
    s = np.full(LANES, -0.0)
    c = np.zeros(LANES)
    _lanes(v, s, c)
    out = np.empty((1, 1))
    _combine(s, c, 1, LANES, 1, out)
    return out[0, 0] if v.shape[0] else 0.0


def _float_view(a: np.ndarray) -> np.ndarray:
    """``a`` C-contiguous, float32 or float64 (another dtype as float64: float16 exactly)."""
    a = np.ascontiguousarray(a)
    return a if a.dtype.type in (np.float32, np.float64) else a.astype(np.float64)


def total(values: np.ndarray, wide: bool = False):
    """The sum of every element of ``values`` (a float array), compensated, as a scalar of its dtype (``wide``: as
    float64, not yet rounded to a narrower dtype: a mean divides it before its one rounding)."""
    a = _float_view(values).reshape(-1)
    if a.shape[0] < SERIAL_BELOW:
        s = _total_serial(a)
    else:
        s = _sum_middle(a.reshape(1, -1, 1))[0, 0]
    return np.float64(s) if wide else values.dtype.type(s)


def sum_axes(g: np.ndarray, axes) -> np.ndarray:
    """``g`` summed over ``axes`` (keepdims), compensated, in ``g``'s dtype: one compensated sum of every term
    of each result element (summed axes that are not adjacent are first moved together: a copy of ``g``)."""
    a = _float_view(g)
    axes = sorted(set(axes))
    keep = [k for k in range(a.ndim) if k not in axes]
    shape = tuple(1 if k in axes else n for k, n in enumerate(a.shape))
    if axes and axes[-1] - axes[0] + 1 != len(axes):  # not one group: the summed axes first, in a copy
        a = np.ascontiguousarray(a.transpose(axes + keep))
        first, last = 0, len(axes) - 1
    else:
        first, last = (axes[0], axes[-1]) if axes else (0, -1)
    n_o, n_r, n_i = math.prod(a.shape[:first]), math.prod(a.shape[first:last + 1]), math.prod(a.shape[last + 1:])
    return _sum_middle(a.reshape(n_o, n_r, n_i)).astype(g.dtype, copy=False).reshape(shape)
