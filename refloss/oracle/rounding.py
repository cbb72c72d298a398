"""Correct rounding of mpmath numbers into IEEE binary formats, ULPs and ULP errors.

Everything here is exact integer/mpf arithmetic: no value passes through a
wider or narrower float on its way to the target format, so there is no double
rounding (``float(mpf)`` itself rounds to 53 bits first and then again when the
result is subnormal, which is wrong in rare halfway cases).

IEEE 754-2019 (round-to-nearest, ties-to-even) is the reference; there is no
paper to cite for these helpers.
"""

from __future__ import annotations

import math

import numpy as np
from mpmath import libmp, mp

from .. import _measures

__all__ = ["round_to", "split", "ulp", "ulp_error"]


def _format(dtype) -> tuple[int, int, int, float]:
    """(precision p in bits incl. the hidden bit, emin, emax, largest finite) of a float dtype.

    Normal numbers are m * 2**e with 2**(p-1) <= m < 2**p and emin <= e + p - 1 <= emax.
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"not a floating-point dtype: {dt}")
    fi = np.finfo(dt)
    return fi.nmant + 1, fi.minexp, fi.maxexp - 1, float(fi.max)


def exact_mpf(x) -> mp.mpf:
    """Exact conversion of an mpf / int / float (Python or NumPy) to mpf."""
    if isinstance(x, mp.mpf):
        return x
    if isinstance(x, (int, np.integer)):
        return mp.make_mpf(libmp.from_int(int(x)))
    # exact whatever mpmath's working precision (mp.mpf(float) rounds to it: 27 bits at 8 digits)
    return mp.make_mpf(libmp.from_float(float(x), 53, libmp.round_nearest))


def round_to(x, dtype) -> float:
    """Correctly rounded (round-half-even) value of ``x`` in ``dtype``, as a Python float.

    ``x`` is an mpf (ints and floats are converted exactly).  ``dtype`` is
    anything ``np.dtype`` accepts (``np.float32``, ``np.dtype("float64")``, ...).
    With p = precision of the format and ``top = floor(log2 |x|)``, the result is
    ``|x|`` rounded to a multiple of the quantum ``2**(max(top, emin) - p + 1)``
    (this one formula covers normals and subnormals), ties to an even multiple;
    a rounded magnitude >= 2**(emax+1) becomes +-inf (IEEE overflow under
    round-to-nearest).  0 -> 0.0, +-inf -> +-inf, NaN -> NaN; results that
    round to zero keep the sign of ``x`` (-0.0).  The returned Python float is
    exactly representable in ``dtype``.
    """
    p, emin, emax, _ = _format(dtype)
    x = exact_mpf(x)
    if mp.isnan(x):
        return math.nan
    if mp.isinf(x):
        return math.inf if x > 0 else -math.inf
    if x == 0:
        return 0.0
    sign, man, exp, bc = x._mpf_  # x = (-1)**sign * man * 2**exp, 2**(bc-1) <= man < 2**bc
    quantum = max(exp + bc - 1, emin) - p + 1
    if exp >= quantum:
        m = man << (exp - quantum)
    elif quantum - exp > bc:  # |x| < 2**(quantum - 1), half the smallest step: rounds to zero (without
        # forming 2**shift, a number of millions of bits for e.g. exp(-1e7))
        return -0.0 if sign else 0.0
    else:
        shift = quantum - exp
        m = man >> shift
        rem = man - (m << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and m & 1):
            m += 1
    if m and m.bit_length() + quantum > emax + 1:  # m * 2**quantum >= 2**(emax+1)
        return -math.inf if sign else math.inf
    value = math.ldexp(m, quantum)  # m < 2**53 and the result is in range: exact
    return -value if sign else value


def split(x) -> tuple[float, float]:
    """``(hi, lo)``: ``hi`` = x correctly rounded to float64, ``lo`` = (x - hi) correctly rounded:
    x to about 106 bits as two floats, the form the error measures (:mod:`refloss._measures`)
    and the stored references take."""
    x = exact_mpf(x)
    hi = round_to(x, np.float64)
    if not math.isfinite(hi):
        return hi, 0.0
    with mp.workdps(60):
        return hi, round_to(mp.fsub(x, mp.mpf(hi), exact=True), np.float64)


def ulp(v, dtype) -> float:
    """Unit in the last place of the finite value ``v`` in ``dtype`` (a positive Python float):
    :func:`refloss._measures.ulp`, which see.  Raises ``ValueError`` for NaN, infinities and
    values beyond the format's range."""
    _, _, _, fmax = _format(dtype)
    v = abs(float(v))
    if not math.isfinite(v) or v > fmax:
        raise ValueError(f"ulp of a non-finite value in {np.dtype(dtype)}: {v!r}")
    return float(_measures.ulp(v, dtype))


def ulp_error(got, exact, dtype) -> float:
    """Error of ``got`` against the exact value in ULPs of ``dtype``: ``|got - exact| / ulp(round_to(exact))``
    (:func:`refloss._measures.ulp_error` of :func:`split` ``(exact)``; the one ULP measure of
    the project).  0.5 or less means correctly rounded.  Special values: 0.0 if both are NaN;
    inf if exactly one is NaN; an ``exact`` that rounds to +-inf in ``dtype`` counts as that
    infinity."""
    hi, lo = split(exact)
    return float(_measures.ulp_error(float(got), hi, lo, dtype))
