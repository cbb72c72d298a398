"""The arctangent the code generator prints for ``AtanRatio`` (atan2 of a box's width and
height): argument reduction and a polynomial, so that a kernel's loop has no libm call and
LLVM can vectorise it (issue 16).

atan2(w, h) for finite w, h, as C's atan2 (signed zeros included):

1. q = min(|w|, |h|) / max(|w|, |h|) in [0, 1] (0 where both are 0), rounded once;
2. q > 1/2: atan(q) = pi/4 + atan(r), r = (q - 1)/(q + 1) in [-1/3, 0) (q - 1 exact, q + 1
   rounded and corrected by its rounding error); else r = q;
3. atan(r) = r + r s P(s), s = r^2 <= 1/4, P the polynomial below;
4. pi/2 - a where |w| > |h|; pi - a where h < 0 (or -0); the sign of w (copysign).

The constants pi/4, pi/2 and pi are added as a rounded part and its rounding error (each sum
rounds twice). r is a function of q alone, so boxes with the same rounded aspect ratio get the
same angle (CIoU's v = 0 exactly where the ratios are equal).

P approximates (atan(sqrt(s))/sqrt(s) - 1)/s on [0, 1/4] (Chebyshev fit, mpmath
``chebyfit`` at 40 digits); :func:`polynomial` returns its coefficients and the largest error of
atan(r) it leaves, relative to |r|, measured at 40 digits on a grid of 4,001 points of s
(the error curve of a Chebyshev fit oscillates smoothly: its extrema lie between grid points
a fraction of the spacing apart).  The terms are chosen so that this error is below 2^-57
(float64) and 2^-28 (float32): a fraction of the kernel's rounding, which dominates the
result's error (checked against the 50-digit oracle in tests/test_atan.py: float64 on 10^6
ratios, float32 on every float32 ratio in [0, 1]).
"""
from __future__ import annotations

import functools

from mpmath import mp

TERMS = {"f64": 13, "f32": 6}
BOUND = {"f64": 2.0**-57, "f32": 2.0**-28}


def _target(s):
    """(atan(sqrt s)/sqrt s - 1)/s, -1/3 + s/5 - s^2/7 + ... (the series below s = 1e-8)."""
    if s < mp.mpf("1e-8"):
        return mp.fsum((-1) ** (k + 1) * s**k / (2 * k + 3) for k in range(6))
    r = mp.sqrt(s)
    return (mp.atan(r) / r - 1) / s


@functools.lru_cache(maxsize=None)
def polynomial(precision: str) -> tuple:
    """(coefficients of P, highest degree first, as mpf; the largest relative error of
    r + r s P(s) as atan(r) on the interval, measured at 40 digits)."""
    with mp.workdps(40):
        top = mp.mpf(1) / 4
        coeffs = mp.chebyfit(_target, [0, top], TERMS[precision])
        worst = mp.zero
        for k in range(4001):
            s = top * k / 4000
            r = mp.sqrt(s)
            if r == 0:
                continue
            approx = r + r * s * mp.polyval(coeffs, s)
            worst = max(worst, abs(approx - mp.atan(r)) / r)
        if worst > BOUND[precision]:
            raise ValueError(f"atan polynomial ({precision}): error {mp.nstr(worst, 3)} above {BOUND[precision]}")
        return tuple(coeffs), worst
