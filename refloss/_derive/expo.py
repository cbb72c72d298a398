"""The exponential and logarithms the code generator prints for ``exp``, ``expm1``, ``log``,
``log1p`` and ``pow``: argument reduction, a polynomial and the power of two put into the exponent bits, so
that a kernel's loop has no libm call and LLVM can vectorise it (issue 16; atan2 is done the same
way in refloss/_derive/atan.py).  A kernel keeps libm's functions where these would not make it
call-free: a loss whose float32 maxima docs/exhaustive.md states over every input
(``LossSpec.libm``, until it is swept again), a kernel that would still call ``pow``, ``sin`` or
``cos`` (its loop stays scalar anyway, and the printed forms only lengthen its compilation), and
the row kernels' float64 log1p (softmax, DFL: once a row, where libm's is the faster; their exp, in
a loop of its own, and their float32 log1p are printed: codegen.row_function).

expm1(x) shares exp's reduction below: q = exp(r) - 1 itself where k = 0, 2^k q + (2^k - 1)
with that sum's rounding error and q's added back for |k| <= 56, exp(x) - 1 beyond.

exp(x), the classic Cody-Waite reduction (Tang, ACM TOMS 15(2), 1989, without the table):

1. x is clamped to [LO, HI] (beyond them the result is 0 or inf anyway; NaN takes LO and is put
   back at the end), so that the integer below is always defined;
2. k = round(x / ln 2), by adding and subtracting 1.5 * 2^52 (float32: 1.5 * 2^23): the same
   rounding without a float-to-integer conversion (which would widen a float32 loop to
   float64), and k's bits are then the low bits of that sum;
3. r = (x - k ln2_hi) - k ln2_lo, |r| <= ln 2 / 2 (plus a hair), ln2_hi with enough trailing
   zero bits that k ln2_hi is exact and the first subtraction too (Sterbenz);
4. exp(r) = 1 + (r + (r^2 P(r) + c)), c the rounding error of r, P the polynomial below;
5. exp(x) = (exp(r) 2^k1) 2^k2, k1 = round(k/2), k2 = k - k1, the powers of two built from their
   exponent bits: both are normal numbers for every k, so the result is rounded once, also
   where it is subnormal or overflows.

log(x) (fdlibm's e_log.c, its algorithm, not its code): x = 2^k m, m in [sqrt(1/2), sqrt(2))
from the bits (subnormal x scaled by 2^54 first, float32 2^25), f = m - 1 (exact),
s = f/(2 + f), z = s^2, R = z Q(z) ~ 2 atanh(s)/s - 2, hfsq = f^2/2, and

    log(x) = k ln2_hi + (f - (hfsq - (s (hfsq + R) + k ln2_lo))),

as log(1 + f) = 2 atanh(s) = f - s (f - R) = f - hfsq + s (hfsq + R).

log1p(x): u = 1 + x; where u is in [sqrt(1/2), sqrt(2)) f = x itself (exact, k = 0), else u's
k and f and the rounding error of u, c = (x - (u - 1))/u (u <= 2) or (1 - (u - x))/u (u > 2),
both differences exact, added with k ln2_lo.

pow(x, y) = exp(y log x) for x > 0 (x = +0 by its rule: 0, 1 or inf), |y| < POW_Y_LIMIT: log x as a
pair L + l (fdlibm's form above, with f - f^2/2 kept exactly as a pair: f^2/2 by TwoProd, the difference
by TwoSum, k ln2_hi + that by TwoSum; only the third term s (f^2/2 + R), below 1/20 of the result, is
rounded: about 2^-58 relative, float32 2^-29), y (L + l) as a pair (TwoProd), and exp of it with the low
part added to r's rounding error.  x < 0, -0, inf and NaN, and |y| >= POW_Y_LIMIT (where Dekker's split
of y could overflow) take libm's result (or, in the CPU block loops' vectorised form, are computed again).

The fits are Chebyshev fits (mpmath ``chebyfit`` at 40 digits); :func:`polynomial` returns the
coefficients and the largest error they leave, measured at 40 digits on a grid of 4,001 points
(an error curve of a Chebyshev fit oscillates smoothly: its extrema lie between grid points a
fraction of the spacing apart).  The number of terms is the smallest that puts that error below
BOUND: a fraction of the result's rounding, which dominates (checked as printed against the
float64 libm and the long-double one in tests/test_expo.py).
"""
from __future__ import annotations

import functools

from mpmath import mp

#: the largest error of each polynomial: exp's relative to exp(r), log's absolute in R (which s
#: multiplies, log(1 + f) ~ 2 s: relative to the result that is half of it)
BOUND = {"f64": 2.0**-58, "f32": 2.0**-29}

#: exp's reduced argument: |r| <= ln(2)/2 plus what k's rounding of x / ln 2 adds (float32: x up
#: to 149 in magnitude, softmax's scaled exp's clamp (ScaledExp), its product with 1/ln 2 rounded to 2^-24
#: relative: ~1.3e-5 of r, within this bound's 2.6e-5 margin above ln(2)/2)
R_MAX = mp.mpf("0.3466")
#: log's z = s^2 at f = sqrt(2) - 1, s = f/(2 + f), plus a margin for m's rounding
Z_MAX = mp.mpf("0.02944")

#: exp's input range: below LO the result rounds to 0, above HI it is inf (the clamp keeps k defined)
CLAMP = {"f64": (-746.0, 710.0), "f32": (-104.0, 89.0)}
#: |y| below which pow(x, y) is printed (Dekker's split of y and y log x stay finite)
POW_Y_LIMIT = {"f64": 2.0**500, "f32": 2.0**60}
#: the number of bits of ln2_hi (so that k ln2_hi is exact: |k| < 2^11, float32 2^8)
LN2_HI_BITS = {"f64": 42, "f32": 16}


def _exp_target(r):
    """(exp(r) - 1 - r)/r^2 = 1/2 + r/6 + r^2/24 + ... (the series near 0)."""
    if abs(r) < mp.mpf("1e-6"):
        return mp.fsum(r**k / mp.factorial(k + 2) for k in range(8))
    return (mp.exp(r) - 1 - r) / r**2


def _log_target(z):
    """(2 atanh(sqrt z)/sqrt z - 2)/z = 2/3 + 2 z/5 + 2 z^2/7 + ... (the series near 0)."""
    if z < mp.mpf("1e-8"):
        return mp.fsum(2 * z**k / (2 * k + 3) for k in range(6))
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) / s - 2) / z


def _fit(target, lo, hi, error):
    """The first Chebyshev fit (fewest terms) whose ``error(coefficients, t)`` stays below the bound."""
    for terms in range(2, 20):
        coeffs, _ = mp.chebyfit(target, [lo, hi], terms, error=True)
        worst = max(error(coeffs, lo + (hi - lo) * k / 4000) for k in range(4001))
        yield coeffs, worst


@functools.lru_cache(maxsize=None)
def polynomial(function: str, precision: str) -> tuple:
    """(coefficients, highest degree first, as mpf; the largest error they leave, measured at 40
    digits) of exp's P or log's Q (``function`` "exp" or "log") for ``precision`` "f64" or "f32"."""
    with mp.workdps(40):
        if function == "exp":
            def error(c, r):
                return abs(1 + r + r * r * mp.polyval(c, r) - mp.exp(r)) / mp.exp(r)
            fits = _fit(_exp_target, -R_MAX, R_MAX, error)
        elif function == "log":
            def error(c, z):
                s = mp.sqrt(z)
                return abs(z * mp.polyval(c, z) - (2 * mp.atanh(s) / s - 2 if z else 0))
            fits = _fit(_log_target, mp.zero, Z_MAX, error)
        else:
            raise ValueError(f"no polynomial for {function!r}")
        for coeffs, worst in fits:
            if worst <= BOUND[precision]:
                return tuple(coeffs), worst
        raise ValueError(f"{function} ({precision}): no fit below {BOUND[precision]}")


def split_ln2(precision: str) -> tuple:
    """(ln2_hi, ln2_lo): ln 2 rounded to LN2_HI_BITS bits, and the rest (as mpf; the printer rounds it)."""
    with mp.workdps(60):
        ln2 = mp.log(2)
        mant, exp = mp.frexp(ln2)
        bits = LN2_HI_BITS[precision]
        hi = mp.ldexp(mp.floor(mant * 2**bits + mp.mpf(1) / 2), exp - bits)
        return hi, ln2 - hi
