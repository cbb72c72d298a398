"""exp, expm1, log, log1p and pow of double-double numbers, to about 100 bits: the functions of the float64
sweeps' reference kernels (``refloss/_generated/<loss>_ref.py``, codegen's ``reference_function``).

A double-double number is a pair (hi, lo) of float64 numbers with |lo| <= ulp(hi)/2, carrying about
106 bits (refloss/_derive/double_double.py).  A reference that evaluated each function as f(hi) +
f'(hi) lo would keep the function's float64 rounding (up to an ulp of its value), and where the
kernel's evaluation form cancels function values (Balanced L1's l + l/u - 1 just above z = 1/2) that
rounding is amplified in the reference as in the kernel: the reference would miss, and misreport,
exactly the errors a sweep looks for.  These functions are accurate to about 2^-100 relative instead
(tests/test_dd_functions.py measures them against mpmath), so a float64 kernel is measured against a
value within a hair of its correctly rounded result.

- exp(x): N = round(64 x / ln 2) = 64 k + j (0 <= j < 64), r = x - N ln 2/64 with ln 2 to 159 bits (three
  float64 words), |r| <= ln 2/128 + 2e-7 < 0.0055 (N rounded with ln 2's 32-bit word); exp(r) - 1 = r + r^2/2!
  + ... + r^11/11!, the terms to r^6 in double-double and those from r^7 (below 2.8e-20, so float64's rounding
  of them is below 2^-114) in float64 (the first term left out, r^12/12!, is below 2^-118); then exp(x) =
  2^k 2^(j/64) (1 + (exp(r) - 1)), 2^(j/64) from a table of double-double numbers (computed with the decimal
  module at import, 60 digits), 2^k in two steps (so that the scaling is exact for results down to the
  subnormal range).  (Until 2026-12-05, r/2^10,
  the series to degree 12 in double-double, squared ten times: the same accuracy, about 2.5 times the work.)
- log(x): y0 = log(hi) (libm, within an ulp), then one Newton step y0 + (x exp(-y0) - 1), in
  double-double: the error squares (2^-104 relative); x beyond 2^(+-900) scaled by 2^(-+200) first
  (exp(-y0) would overflow or be subnormal).  Near x = 1 (|x - 1| < 2^-5) log1p(x - 1) instead (x - 1
  exact in double-double there).
- log1p(x): |x| < 2^-5: the series x - x^2/2 + x^3/3 - ... to degree 26 (2^-5 to the 27th is below
  2^-130); else log(1 + x) with 1 + x in double-double, scaled as log's.
- expm1(x): its series to degree 12 for |x| < 2^-10; for |x| <= ln 2 / 2, x/2^10, the series, squared ten
  times as (1 + e)^2 = 1 + (2e + e^2) (no 1 added); else exp(x) - 1.
- pow(x, y) for x > 0: exp(y log x) (float64's pow where y log x is beyond the floats).

Products are double-double products (Dekker's), their error-free part a b - fl(a b) by an FMA
(refloss/_fma.py; until 2026-12-05 by Veltkamp's splits, the same bits for products that neither overflow nor
underflow, and NaN where a split overflowed: log1p beyond about 1.3e300).

Arguments beyond each function's range (exp beyond +-708, log of x <= 0, NaN, infinities) give the
float64 function of hi with lo = 0: the reference is then float64's value there, as before.  Results below
2^-969 keep hi correctly rounded but lo, subnormal, fewer bits (the pair's relative accuracy falls to 2^-70 at
exp(-700)).
Never imported by ``import refloss``: the reference kernels, their tests, and the kernels with an ``EvalAccurate``
part (QFL's float64 soft targets for 0 < beta <= 1), when their module is first loaded.  They compile for CUDA too
(numba-cuda compiles a CPU dispatcher called from a device function as a device function of its own; the FMA
is LLVM's intrinsic, PTX's fma.rn there).
"""
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
from numba import njit

from ._fma import fma
from ._numba_options import CPU_OPTIONS

# ln 2 as three float64 words (hi has 32 significant bits: k * hi is exact for |k| < 2^21)
_LN2_HI = 0.6931471803691238
_LN2_MID = 1.9082149292705877e-10
_LN2_LO = 1.1612227229362532e-26  # (ln 2 - hi - mid, rounded; the three words within 6e-43 of ln 2)
_SQUARINGS = 10
_EXP_TERMS = 12
_LOG1P_TERMS = 26
_NEAR_ONE = 2.0**-5


def _pairs(values) -> np.ndarray:
    """Rationals as double-double numbers: rows (hi, lo), hi + lo within 2^-106 relative."""
    out = np.empty((len(values), 2))
    for k, v in enumerate(values):
        out[k, 0] = float(v)
        out[k, 1] = float(v - Fraction(out[k, 0]))
    return out


_INV_FACTORIAL = _pairs([Fraction(1, math.factorial(n)) for n in range(_EXP_TERMS + 1)])  # row n: 1/n!
_TABLE = 64  # exp's reduction: x = (64 k + j) ln 2/64 + r
_EXP_DD = 6  # exp's series: the terms r^n/n! to n = 6 in double-double, from 7 to _EXP_TERMS_F64 in float64
_EXP_TERMS_F64 = 11


def _exp2_table() -> np.ndarray:
    """2^(j/64) for j = 0..63 as double-double numbers (decimal's power at 60 digits, then split)."""
    with localcontext() as ctx:
        ctx.prec = 60
        return _pairs([Fraction(Decimal(2) ** (Decimal(j) / _TABLE)) for j in range(_TABLE)])


_EXP2 = _exp2_table()
_INV_FACTORIAL_F64 = np.array([1.0 / math.factorial(n) for n in range(_EXP_TERMS_F64 + 1)])
_INV = _pairs([Fraction(1, max(n, 1)) for n in range(_LOG1P_TERMS + 1)])  # row n: 1/n


@njit(inline="always", **CPU_OPTIONS)
def _two_sum(a, b):
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@njit(inline="always", **CPU_OPTIONS)
def _fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


@njit(inline="always", **CPU_OPTIONS)
def _two_prod(a, b):
    """(p, e): p = fl(a b), e = a b - p exactly (an FMA; exact where a b neither overflows nor underflows)."""
    a, b = np.float64(a), np.float64(b)  # (an integer k of the reductions; float64 numbers, as these functions take)
    p = a * b
    return p, fma(a, b, -p)


@njit(inline="always", **CPU_OPTIONS)
def add(xh, xl, yh, yl):
    """(xh + xl) + (yh + yl), double-double (the accurate sum of Joldes, Muller and Popescu)."""
    s, e = _two_sum(xh, yh)
    t, f = _two_sum(xl, yl)
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


@njit(inline="always", **CPU_OPTIONS)
def mul(xh, xl, yh, yl):
    p, e = _two_prod(xh, yh)
    return _fast_two_sum(p, e + (xh * yl + xl * yh))


@njit(inline="always", **CPU_OPTIONS)
def div(xh, xl, yh, yl):
    q1 = xh / yh
    rh, rl = mul(yh, yl, q1, 0.0)
    rh, rl = add(xh, xl, -rh, -rl)
    q2 = rh / yh
    rh2, rl2 = mul(yh, yl, q2, 0.0)
    rh, rl = add(rh, rl, -rh2, -rl2)
    q3 = rh / yh
    q, e = _fast_two_sum(q1, q2)
    return _fast_two_sum(q, e + q3)


@njit(inline="always", **CPU_OPTIONS)
def _exp_parts(xh, xl):
    """(k, exp(r) - 1) with x = k ln 2 + r, |r| <= ln 2 / 2, exp(r) - 1 as a double-double number (r/2^10, the
    series to degree 12, squared ten times): expm1's form for |x| <= ln 2 / 2, where no 1 may be added."""
    k = math.floor(xh / _LN2_HI + 0.5)
    # r = x - k ln 2: k * hi exact, the rest in double-double
    rh, rl = add(xh, xl, -k * _LN2_HI, 0.0)
    ph, pl = _two_prod(k, _LN2_MID)
    rh, rl = add(rh, rl, -ph, -(pl + k * _LN2_LO))
    scale = 2.0**-_SQUARINGS
    rh, rl = rh * scale, rl * scale
    # exp(r) - 1 = r + r^2/2 + ... (Horner, in double-double)
    sh, sl = _INV_FACTORIAL[_EXP_TERMS, 0], _INV_FACTORIAL[_EXP_TERMS, 1]
    for n in range(_EXP_TERMS - 1, 0, -1):
        sh, sl = mul(sh, sl, rh, rl)
        sh, sl = add(sh, sl, _INV_FACTORIAL[n, 0], _INV_FACTORIAL[n, 1])
    sh, sl = mul(sh, sl, rh, rl)  # e = exp(r) - 1, kept apart from the 1 while squaring: (1 + e)^2 = 1 + (2e + e^2)
    for _ in range(_SQUARINGS):
        th, tl = mul(sh, sl, sh, sl)
        sh, sl = add(2.0 * sh, 2.0 * sl, th, tl)
    return k, sh, sl


@njit(**CPU_OPTIONS)
def exp(xh, xl):
    """exp(xh + xl) as a double-double number."""
    if not (abs(xh) <= 708.0):  # (NaN, infinities, and results beyond float64's normal range)
        return math.exp(xh), 0.0
    n = math.floor(xh * (_TABLE / _LN2_HI) + 0.5)
    # r = x - n ln 2/64: n * hi/64 exact (hi has 32 significant bits, |n| < 2^17), the rest in double-double
    rh, rl = add(xh, xl, -n * (_LN2_HI / _TABLE), 0.0)
    ph, pl = _two_prod(n, _LN2_MID / _TABLE)
    rh, rl = add(rh, rl, -ph, -(pl + n * (_LN2_LO / _TABLE)))
    # exp(r) - 1 = r (1 + r (1/2! + r (1/3! + ...))): from 1/7! in float64, to 1/1! in double-double
    q = _INV_FACTORIAL_F64[_EXP_TERMS_F64]
    for m in range(_EXP_TERMS_F64 - 1, _EXP_DD, -1):
        q = q * rh + _INV_FACTORIAL_F64[m]
    sh, sl = q, 0.0
    for m in range(_EXP_DD, 0, -1):
        sh, sl = mul(sh, sl, rh, rl)
        sh, sl = add(sh, sl, _INV_FACTORIAL[m, 0], _INV_FACTORIAL[m, 1])
    sh, sl = mul(sh, sl, rh, rl)
    j = n - _TABLE * math.floor(n / _TABLE)
    k = (n - j) / _TABLE
    th, tl = _EXP2[int(j), 0], _EXP2[int(j), 1]
    ph, pl = mul(th, tl, sh, sl)  # 2^(j/64) exp(r) = 2^(j/64) + 2^(j/64) (exp(r) - 1)
    eh, el = add(th, tl, ph, pl)
    k1 = math.floor(k / 2.0)
    f1, f2 = 2.0**k1, 2.0 ** (k - k1)
    return (eh * f1) * f2, (el * f1) * f2


@njit(**CPU_OPTIONS)
def expm1(xh, xl):
    """exp(xh + xl) - 1 as a double-double number: for |x| <= ln 2 / 2 the reduced exp(r) - 1 itself (no 1
    added and taken away), else exp(x) - 1 (at most a factor 2.5 of cancellation)."""
    if not (abs(xh) <= 708.0):
        return math.expm1(xh), 0.0
    if abs(xh) < 2.0**-10:  # the series itself (x^13/13! is below 2^-150 of x), without exp's scaling by 2^-10,
        sh, sl = _INV_FACTORIAL[_EXP_TERMS, 0], _INV_FACTORIAL[_EXP_TERMS, 1]  # whose low words would be subnormal
        for n in range(_EXP_TERMS - 1, 0, -1):  # for tiny x
            sh, sl = mul(sh, sl, xh, xl)
            sh, sl = add(sh, sl, _INV_FACTORIAL[n, 0], _INV_FACTORIAL[n, 1])
        return mul(sh, sl, xh, xl)
    if math.floor(xh / _LN2_HI + 0.5) == 0.0:  # (_exp_parts' k = 0: its reduced exp(r) - 1 is expm1 itself)
        _, sh, sl = _exp_parts(xh, xl)
        return sh, sl
    eh, el = exp(xh, xl)
    return add(eh, el, -1.0, 0.0)


@njit(**CPU_OPTIONS)
def log1p(xh, xl):
    """log(1 + (xh + xl)) as a double-double number."""
    if not (xh > -1.0 and xh < math.inf):
        return math.log1p(xh), 0.0
    if abs(xh) < _NEAR_ONE:
        # x - x^2/2 + x^3/3 - ... = x (1 - x (1/2 - x (1/3 - ...)))
        sh, sl = _INV[_LOG1P_TERMS, 0], _INV[_LOG1P_TERMS, 1]
        for n in range(_LOG1P_TERMS - 1, 0, -1):
            sh, sl = mul(sh, sl, -xh, -xl)
            sh, sl = add(sh, sl, _INV[n, 0], _INV[n, 1])
        return mul(sh, sl, xh, xl)
    uh, ul = add(1.0, 0.0, xh, xl)
    return _log_scaled(uh, ul)  # (scaled beyond 2^900: before 2026-12-05, NaN from about 1.3e300)


@njit(**CPU_OPTIONS)
def _log_newton(xh, xl):
    y0 = math.log(xh)
    eh, el = exp(-y0, 0.0)
    th, tl = mul(xh, xl, eh, el)
    th, tl = add(th, tl, -1.0, 0.0)
    return add(y0, 0.0, th, tl)


@njit(**CPU_OPTIONS)
def _log_scaled(xh, xl):
    """log(x) by the Newton step, x scaled by 2^(+-200) first beyond 2^(+-900): exp(-y0) would overflow (tiny x)
    or lose bits as a subnormal (huge x)."""
    if xh < 2.0**-900 or xh > 2.0**900:
        e = 200.0 if xh < 1.0 else -200.0
        yh, yl = _log_newton(xh * 2.0**e, xl * 2.0**e)
        ph, pl = _two_prod(e, _LN2_MID)  # e ln 2: e * hi exact
        ph, pl = add(e * _LN2_HI, 0.0, ph, pl + e * _LN2_LO)
        return add(yh, yl, -ph, -pl)
    return _log_newton(xh, xl)


@njit(**CPU_OPTIONS)
def log(xh, xl):
    """log(xh + xl) as a double-double number."""
    if not (xh > 0.0 and xh < math.inf):
        return math.log(xh), 0.0
    if abs(xh - 1.0) < _NEAR_ONE:
        mh, ml = add(xh, xl, -1.0, 0.0)
        return log1p(mh, ml)
    return _log_scaled(xh, xl)


@njit(**CPU_OPTIONS)
def pow(xh, xl, yh, yl):
    """(xh + xl) ** (yh + yl) for x > 0, as a double-double number (float64's pow elsewhere)."""
    if not (xh > 0.0 and xh < math.inf) or not (abs(yh) < math.inf):
        return math.pow(xh, yh), 0.0
    lh, ll = log(xh, xl)
    ph, pl = mul(lh, ll, yh, yl)
    if not (abs(ph) < math.inf):  # (y log x beyond the floats: float64's pow, inf, 0 or 1, not NaN)
        return math.pow(xh, yh), 0.0
    return exp(ph, pl)
