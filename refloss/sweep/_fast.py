"""The one per-point pass of a sweep chunk, compiled with Numba (imported only by a worker).

:func:`ulp_errors` is :func:`refloss._measures.ulp_error` with ``lo = 0`` (the reference is
one float64 number: the float64 kernel's result) in one loop instead of some twenty NumPy
passes, and it flags the points whose reference lies within ``hair`` float64 ULPs of a
rounding boundary of ``dtype`` (there the float64 result rounded to float32 may not be the
correctly rounded exact result).  ``tests/test_sweep.py`` holds the two measures equal.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from .._numba_options import CACHE

_OPTIONS = {"cache": CACHE, "error_model": "numpy", "nogil": True}


_POW2 = np.ldexp(1.0, np.arange(-1074, 1024))  # 2.0**k at index k + 1074 (a constant of the compiled code)


@njit(**_OPTIONS)
def _pow2(k):
    """2.0**k for an integer -1074 <= k <= 1023 (a table look-up, no libm call)."""
    return _POW2[k + 1074]


@intrinsic
def _bits(typingctx, v):
    """The bit pattern of the float64 v as a uint64 (one LLVM bitcast)."""
    if v != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint64))

    return types.uint64(types.float64), codegen


@njit(**_OPTIONS)
def _ulp(v, p, emin):
    """ulp of the finite v >= 0 (refloss._measures.ulp): 2**(max(floor(log2 v), emin) - p + 1)."""
    e = int((_bits(v) >> np.uint64(52)) & np.uint64(0x7FF)) - 1023  # floor(log2 v) for normal v
    top = e if (v > 0 and e > emin) else emin  # (float64 subnormals lie below every emin here)
    return _pow2(top - p + 1)


@njit(**_OPTIONS)
def _round(h, single):
    return float(np.float32(h)) if single else h


@njit(**_OPTIONS)
def ulp_errors(got, ref, floor, single, hair, err, near, bar, fail):
    """err[i] = |got[i] - ref[i]| in ULPs (float32 if ``single`` else float64) of
    max(|ref rounded|, floor[i] rounded), with refloss._measures.ulp_error's special values;
    near[i] |= the reference is within ``hair`` float64 ULPs of a rounding boundary of float32
    (``single`` only); fail[i] |= err[i] > bar.  ``floor`` may have length 1 (one floor for
    every point).  Returns the largest error."""
    p, emin = (24, -126) if single else (53, -1022)
    nf = floor.shape[0]
    top = 0.0
    for i in range(got.shape[0]):
        g = float(got[i])
        h = ref[i]
        f = floor[i if nf > 1 else 0]
        r = _round(h, single)
        mag = abs(r)
        if f > 0:  # (a finite floor beyond the dtype's range counts as its largest number, not as inf)
            mag = max(mag, min(_round(f, single), 3.4028234663852886e38 if single else 1.7976931348623157e308))
        if math.isnan(g) or math.isnan(h):
            e = 0.0 if (math.isnan(g) and math.isnan(h)) else math.inf
        elif math.isinf(f):
            e = 0.0
        elif math.isinf(g) or math.isinf(r):
            e = 0.0 if g == r else math.inf
        else:
            diff = abs(g - h)
            e = 0.0 if diff == 0 else diff / _ulp(mag if math.isfinite(mag) else 0.0, p, emin)
        err[i] = e
        top = max(top, e)
        if e > bar:
            fail[i] = True
        if single and math.isfinite(h) and math.isfinite(r):
            # the float32 midpoint nearest h: half a float32 spacing from r on h's side (below a
            # power of two r the spacing is the lower binade's); exact in float64
            half = _ulp(min(abs(r), abs(h)), 24, -126) / 2
            if half - abs(h - r) <= hair * _ulp(abs(h), 53, -1022):
                near[i] = True
    return top


@njit(**_OPTIONS)
def kth_largest(err, k):
    """The k-th largest positive value of ``err`` (counting repeats), 0.0 if fewer than k are
    positive: one pass keeping the k largest in a small buffer."""
    buf = np.empty(k, np.float64)
    count = 0
    low = 0.0  # the smallest value in the full buffer
    at = 0
    for i in range(err.shape[0]):
        e = err[i]
        if not e > 0:
            continue
        if count < k:
            buf[count] = e
            count += 1
            if count == k:
                at = 0
                for j in range(1, k):
                    if buf[j] < buf[at]:
                        at = j
                low = buf[at]
        elif e > low:
            buf[at] = e
            at = 0
            for j in range(1, k):
                if buf[j] < buf[at]:
                    at = j
            low = buf[at]
    return low if count == k else 0.0


@njit(**_OPTIONS)
def is_negation(a, b):
    """Whether a[i] == -b[i] for every i (NaN matching NaN); stops at the first difference."""
    if a.shape[0] != b.shape[0]:
        return False
    for i in range(a.shape[0]):
        x, y = a[i], b[i]
        if x != -y and not (x != x and y != y):
            return False
    return True


@njit(**_OPTIONS)
def box_scale(p, t, gp, gt, out):
    """out[i] = the gradient scale of the pair i of (x1, y1, x2, y2) boxes: the largest finite
    |gradient component| (0 if none), at least 1/(the side of the pair's enclosing box) where that
    side is positive (refloss.sweep._chunk.box_floors's NumPy form, the same numbers)."""
    for i in range(p.shape[0]):
        s = 0.0
        for k in range(4):
            a, b = abs(gp[i, k]), abs(gt[i, k])
            if a > s and a < math.inf:
                s = a
            if b > s and b < math.inf:
                s = b
        f = np.float64  # (float() of a float32 stays float32 under Numba)
        w = max(f(p[i, 2]), f(t[i, 2])) - min(f(p[i, 0]), f(t[i, 0]))
        h = max(f(p[i, 3]), f(t[i, 3])) - min(f(p[i, 1]), f(t[i, 1]))
        size = max(w, h)
        if size > 0:
            s = max(s, 1.0 / size)
        out[i] = s
