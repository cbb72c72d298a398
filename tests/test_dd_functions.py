"""exp, expm1, log, log1p and pow of double-double numbers (refloss/_dd_functions.py), the functions of the float64
element-wise sweeps' reference kernels: about 100 bits against mpmath, float64's function beyond their ranges."""
import math

import mpmath as mp
import numpy as np
import pytest

from refloss import _dd_functions as F

mp.mp.prec = 300


def _pair(v):
    """A number as a double-double pair (hi, lo)."""
    h = float(v)
    return h, float(v - mp.mpf(h))


def _rel(got, exact) -> float:
    g = mp.mpf(got[0]) + mp.mpf(got[1])
    return float(abs(g - exact) / abs(exact))


def _points(rng, n, make):
    # each point with bits below float64's (a low word), as the reference kernels pass them
    return [mp.mpf(make()) * (1 + mp.mpf(float(rng.uniform(-1, 1))) * mp.mpf(2) ** -60) for _ in range(n)]


@pytest.mark.parametrize("name, make, exact, bound", [
    ("exp", lambda r: r.uniform(-700, 700) * r.choice([1, 1e-3, 1e-9, 1e-18]), mp.exp, 2.0**-100),
    # near the reduction's multiples n ln 2/64 (its table's entries and the rounding of n between them)
    ("exp", lambda r: int(r.integers(-65000, 65000)) * math.log(2) / 64 * (1 + r.uniform(-1, 1) * r.choice([1e-3, 1e-12])),
     mp.exp, 2.0**-100),
    ("expm1", lambda r: r.uniform(-1, 1) * 10.0 ** r.uniform(-300, 2.8), mp.expm1, 2.0**-99),
    ("log", lambda r: 10.0 ** r.uniform(-307, 307), mp.log, 2.0**-97),
    ("log", lambda r: 1 + r.uniform(-0.1, 0.1) * r.choice([1, 1e-7, 1e-15]), mp.log, 2.0**-88),
    ("log1p", lambda r: r.uniform(-1, 1) * 10.0 ** r.uniform(-300, 0), mp.log1p, 2.0**-88),
    ("log1p", lambda r: 10.0 ** r.uniform(-1.5, 300), mp.log1p, 2.0**-88),
    # up to the largest float (NaN from about 1.3e300 before 2026-12-05: Veltkamp's split in the Newton step overflowed)
    ("log1p", lambda r: 10.0 ** r.uniform(295, 308.25), mp.log1p, 2.0**-95),
])
def test_the_functions_keep_about_100_bits(name, make, exact, bound):
    rng = np.random.default_rng(7)
    fn = getattr(F, name)
    worst = 0.0
    for v in _points(rng, 400, lambda: make(rng)):
        h, lo = _pair(v)
        e = exact(mp.mpf(h) + mp.mpf(lo))
        if name == "exp" and e < mp.mpf(2) ** -960:  # (the low word is subnormal there)
            continue
        worst = max(worst, _rel(fn(h, lo), e))
    assert worst <= bound, (name, worst)


def test_pow_keeps_about_100_bits_and_exp_at_the_edges():
    rng = np.random.default_rng(3)
    for _ in range(300):
        x, y = 10.0 ** rng.uniform(-30, 30), float(rng.uniform(-8, 8))
        h, lo = _pair(mp.mpf(x) * (1 + mp.mpf(2) ** -58))
        # (|y ln x| up to 550: the exponent's 2^-98 relative error is 2^-89 of the result)
        assert _rel(F.pow(h, lo, y, 0.0), mp.power(mp.mpf(h) + mp.mpf(lo), y)) <= 2.0**-88
    # the scaled paths of log: tiny (a split of exp(-log x) would overflow) and huge arguments
    for x in (5e-324, 1e-310, 1.4841712982596454e-301, 2.0**-900, 1.5 * 2.0**900, 1e300, 1.7e308):
        assert _rel(F.log(x, 0.0), mp.log(mp.mpf(x))) <= 2.0**-95, x


def test_beyond_their_ranges_they_are_the_float64_functions():
    assert F.exp(800.0, 0.0) == (math.inf, 0.0)
    assert F.exp(-800.0, 0.0) == (0.0, 0.0)
    assert math.isnan(F.exp(math.nan, 0.0)[0])
    assert math.isnan(F.log(-1.0, 0.0)[0]) and F.log(0.0, 0.0)[0] == -math.inf
    assert F.log(math.inf, 0.0)[0] == math.inf
    assert F.log1p(-1.0, 0.0)[0] == -math.inf and math.isnan(F.log1p(-2.0, 0.0)[0])
    assert F.pow(0.0, 0.0, 2.0, 0.0) == (0.0, 0.0) and F.pow(2.0, 0.0, math.inf, 0.0)[0] == math.inf


def test_pow_where_y_log_x_overflows_and_the_fma_in_python():
    """pow(x, y) with y log x beyond the floats: float64's pow (inf, 0), not NaN (a review found 23 of 4,682 such
    points NaN); the error-free product takes float32 numbers as float64 ones; refloss/_fma.py's fma in Python
    (NUMBA_DISABLE_JIT) is the correctly rounded a b + c."""
    from fractions import Fraction

    from refloss._fma import fma

    assert F.pow(1e300, 0.0, 1e307, 0.0) == (math.inf, 0.0)
    assert F.pow(1e-300, 0.0, 1e307, 0.0) == (0.0, 0.0)
    h, lo = F.mul(np.float32(0.1), 0.0, np.float32(0.1), 0.0)
    assert Fraction(h) + Fraction(lo) == Fraction(float(np.float32(0.1))) ** 2
    rng = np.random.default_rng(2)
    for a, b, c in rng.normal(0, 1, (200, 3)) * 10.0 ** rng.integers(-20, 20, (200, 3)):
        assert fma(a, b, c) == float(Fraction(a) * Fraction(b) + Fraction(c))
    assert fma(1e308, 10.0, 0.0) == math.inf and math.isnan(fma(math.nan, 1.0, 0.0))
