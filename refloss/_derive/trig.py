"""The sine and cosine the code generator prints for ``sin`` and ``cos`` (the rotated-box losses'
rotation matrices): argument reduction and two polynomials, so that a kernel's loop has no libm
call and LLVM can vectorise it (issue 16; exp and log are done the same way in
refloss/_derive/expo.py, atan2 in refloss/_derive/atan.py).

sin(x) and cos(x) for |x| <= LIMIT (fdlibm's k_sin.c, k_cos.c and the medium case of
e_rem_pio2.c: their algorithm, not their code):

1. j = round(x 2/pi), by adding and subtracting 1.5 * 2^52 (float32: 1.5 * 2^23), as exp's k;
2. x - j pi/2 with pi/2 split into PARTS: the first three with few enough bits that j times each
   is exact (|j| < 2^20, float32 2^10), the fourth rounded to the precision.  x - j c1 is exact
   where it cancels (Sterbenz), and each later difference is a TwoSum: r + rl = x - j pi/2 with
   an error of |j| times pi/2's truncation (2^-152 relative, float32 2^-71) and j c4's rounding,
   so that r keeps its relative accuracy also where x is within 2^-60 of a multiple of pi/2;
3. with z = r^2 (|r| <= pi/4 and a hair):
   sin(r + rl) = r + (rl + (r z S(z) - (z/2) rl)),
   cos(r + rl) = w + (((1 - w) - z/2) + (z^2 C(z) - r rl)), w = 1 - z/2
   (1 - z/2 with its rounding error: cos(r) ~ 0.71 at r = pi/4, where z/2 ~ 0.31 cancels);
4. sin(x) = sin(r), cos(r), -sin(r), -cos(r) for j = 0, 1, 2, 3 (mod 4); cos(x) likewise from
   j + 1: selections on j's low bits, no branch.

Beyond LIMIT (and for inf and NaN) the kernel uses libm's ``math.sin``/``math.cos``: in the CPU
block loops' vectorised form such an element is noted (``_xok``) and computed again by the
scalar kernel; the scalar kernel (CUDA's too) selects libm's result there.

S(z) = (sin(sqrt z) - sqrt z)/z^(3/2) and C(z) = (cos(sqrt z) - 1 + z/2)/z^2 are Chebyshev fits
in z on [0, Z_MAX] (mpmath ``chebyfit`` at 40 digits); :func:`polynomial` returns the
coefficients and the largest error they leave relative to the result (sin(r), cos(r)),
measured at 40 digits on a grid of 4,001 points.  The number of terms is the smallest that puts
that error below BOUND, a fraction of the result's rounding (checked as printed against mpmath
in tests/test_trig.py, and every float32 input in [-LIMIT, LIMIT] by
``python benchmarks/trig_exhaustive.py``).
"""
from __future__ import annotations

import functools

from mpmath import mp

#: the largest error of each polynomial relative to the result (sin(r) or cos(r))
BOUND = {"f64": 2.0**-58, "f32": 2.0**-29}

#: |x| up to which the printed forms are used (|j| = round(|x| 2/pi) < 2^20, float32 2^10)
LIMIT = {"f64": 2.0**20, "f32": 2.0**10}

#: the bits of pi/2's first three parts (j times each is exact: |j| < 2^20 and 33 bits make 53;
#: float32 2^10 and 14 bits make 24); the fourth part is rounded to the precision
PART_BITS = {"f64": 33, "f32": 14}

#: r's largest magnitude: pi/4, plus what the rounding of x 2/pi adds (float32: |x| <= 2^10, the
#: product rounded to 2^-24 relative: 2^-14 of a quarter turn)
R_MAX = mp.mpf("0.7856")


def _sin_target(z):
    """(sin(r) - r)/r^3 = -1/6 + z/120 - ... (the series below z = 1e-8)."""
    if z < mp.mpf("1e-8"):
        return mp.fsum((-1) ** (k + 1) * z**k / mp.factorial(2 * k + 3) for k in range(6))
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def _cos_target(z):
    """(cos(r) - 1 + z/2)/z^2 = 1/24 - z/720 + ... (the series below z = 1e-8)."""
    if z < mp.mpf("1e-8"):
        return mp.fsum((-1) ** k * z**k / mp.factorial(2 * k + 4) for k in range(6))
    return (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z)


@functools.lru_cache(maxsize=None)
def polynomial(function: str, precision: str) -> tuple:
    """(coefficients, highest degree first, as mpf; the largest error they leave relative to the
    result, measured at 40 digits) of sin's S or cos's C (``function`` "sin" or "cos") for
    ``precision`` "f64" or "f32"."""
    with mp.workdps(40):
        top = R_MAX**2
        if function == "sin":
            target = _sin_target

            def error(c, z):
                r = mp.sqrt(z)
                return abs(r + r * z * mp.polyval(c, z) - mp.sin(r)) / mp.sin(r) if z else mp.zero
        elif function == "cos":
            target = _cos_target

            def error(c, z):
                return abs(1 - z / 2 + z * z * mp.polyval(c, z) - mp.cos(mp.sqrt(z))) / mp.cos(mp.sqrt(z))
        else:
            raise ValueError(f"no polynomial for {function!r}")
        for terms in range(2, 20):
            coeffs = mp.chebyfit(target, [0, top], terms)
            worst = max(error(coeffs, top * k / 4000) for k in range(4001))
            if worst <= BOUND[precision]:
                return tuple(coeffs), worst
        raise ValueError(f"{function} ({precision}): no fit below {BOUND[precision]}")


@functools.lru_cache(maxsize=None)
def split_half_pi(precision: str) -> tuple:
    """(c1, c2, c3, c4) as mpf: pi/2 = c1 + c2 + c3 + c4 + (a remainder below 2^-152, float32 2^-71),
    c1..c3 rounded to PART_BITS bits each (of the rest), c4 to the precision's 53 or 24 bits."""
    with mp.workdps(80):
        rest, parts = mp.pi / 2, []
        for bits in (PART_BITS[precision],) * 3 + ({"f64": 53, "f32": 24}[precision],):
            mant, exp = mp.frexp(rest)
            part = mp.ldexp(mp.floor(mant * 2**bits + mp.mpf(1) / 2), exp - bits)
            parts.append(part)
            rest -= part
        return tuple(parts)
