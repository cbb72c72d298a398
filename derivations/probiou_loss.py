"""ProbIoU loss (Llerena et al., Gaussian Bounding Boxes and Probabilistic Intersection-over-Union for
Object Detection, arXiv:2106.06072) on rotated boxes (cx, cy, w, h, angle).

Each box is the Gaussian N(centre, R diag(w^2/12, h^2/12) R^T) (the covariance of the uniform
distribution on the box).  The Bhattacharyya distance of the two Gaussians,

    B_D = 1/8 Delta^T Sigma^-1 Delta + 1/2 ln(det Sigma / sqrt(det Sigma_p det Sigma_t)),
    Sigma = (Sigma_p + Sigma_t)/2,

and the Hellinger distance H_D = sqrt(1 - exp(-B_D)) = 1 - ProbIoU.  mode="hellinger" (default) gives
L = H_D, the paper's L1 and what ultralytics trains oriented boxes with (1 - probiou); mode="bd"
gives L = B_D, the paper's L2 = -ln(1 - H_D^2).

Evaluated in closed form (proved equal to the matrix definition): with every length divided by the
largest side m (B_D is invariant under scaling, so m is held fixed in the gradient),

    B_D = 3 sum_i (h_i^2 u_i^2 + w_i^2 v_i^2)/(N + D) + 1/2 log1p(N/D),
    N = (w_p h_p - w_t h_t)^2 + cos^2(phi) (w_t h_p - w_p h_t)^2 + sin^2(phi) (w_p w_t - h_p h_t)^2,
    D = 4 w_p h_p w_t h_t,

(u_i, v_i) the centre offset in box i's frame, phi the angle difference: sums of squares, so nothing
cancels for nearly equal boxes (ultralytics' (a1 + a2)(b1 + b2) - (c1 + c2)^2 and the log of a ratio
near 1 do), and each difference of products is formed from differences of the sides.
"""
import dataclasses

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from . import _rotated as R
from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Param, Step, Variant, prove_equal
from refloss._derive.functions import HAND_RULES, Clamp0, Detach, Group, HandDiff, Select, Step as Above0, Sub, TMax, TMin, plain

NAME = "probiou_loss"
mode = sp.Symbol("mode", nonnegative=True)  # 0 hellinger, 1 bd
MODES = ("hellinger", "bd")
bd_sym = sp.Symbol("b_d", nonnegative=True)


_LOG_RULE = 23  # HAND_RULES key of d/ds log1p(N/D)
_FAR = sp.Integer(2)**100  # N/D above this: log(N) - log(D) from the logs of the sides (N/D overflows float32 ~2^128)


def log_term(n, d, sides, hand):
    """log1p(N/D) for D = 4 times the product of ``sides`` (each a length over m, m held fixed): where N/D is
    below 2^100, log1p(N/D) differentiated by hand as (N' - N (ln D)')/(N + D), (ln D)' = sum of (ln side)' =
    1/w_p etc. (the chain rule's N D'/D^2 underflowed D^2 to 0 -- gradient -inf -- where one box's sides are
    below ~1e-13 (float32) or 1e-100 (float64) times the other's: D is the product of four sides, D^2 of eight);
    above, log(N) - log 4 - the logs of the sides (N/D overflows; log(N + D) = log(N) to 2^-100)."""
    if not hand:
        return log1p(n / d)
    near = HandDiff(log1p(n / d), sp.Integer(_LOG_RULE))
    far = sp.log(n) - sp.log(4) - sp.Add(*(sp.log(x) for x in sides))
    return Select(n < _FAR * d, near, far)


def log_rule(n, d, raw_sides):
    """s -> d/ds log1p(N/D) = (N' - N (ln D)')/(N + D), (ln D)' from the raw sides (m held fixed)."""
    return lambda s: (sp.diff(n, s) - n * sp.Add(*(sp.diff(x, s) / x for x in raw_sides))) / (n + d)


def scaled_offset(p, t, m):
    """c (p - t)/m, c = R.FAR_SCALE = 2^-600 (the far branches' offsets in units of m, scaled): (c p - c t)/m, each
    product exact, where |p| + |t| > 1 (one of them normal after scaling: the other's lost bits are below 2^-1074,
    2^-474 of the difference's scale, and it cannot overflow as p - t can); else (p - t)/(m/c), m/c = m 2^600 exact
    (here m < 2^-500, as the offset is beyond 2^500 m: the product c p - c t would have been subnormal for offsets
    below 2^-422, tiny boxes nearby)."""
    c = R.FAR_SCALE
    return Select(sp.Abs(p) + sp.Abs(t) > 1, Group(Sub(c * p, c * t) / m), Group(Sub(p, t) / Group(m / c)))


def closed_form(m, hand=False, parts=None, scaled=False):
    """B_D with every length divided by m (any m > 0); ``hand``: log1p(N/D) in the kernel's form (see
    ``log_term``, its derivative registered as HAND_RULES[23]); ``scaled``: the centre term's offsets times c =
    R.FAR_SCALE (``scaled_offset``), so that ``parts["centre"]`` (3 q/(N + D)) is c^2 times B_D's (its choices of
    form selects, not sums weighted by 0/1 steps: no 0 * inf)."""
    g = lambda e: Group(e / m)  # noqa: E731 - a length over m, formed before it is multiplied
    w1, h1, w2, h2 = g(R.pw), g(R.ph), g(R.tw), g(R.th)
    # w_p h_p - w_t h_t from the differences of the sides that are close: the same sides for boxes of the same
    # orientation (w - h of one sign), crossed ones otherwise (a box and its w/h swap, turned by pi/2)
    same = Above0((R.pw - R.ph) * (R.tw - R.th))
    a = same * (w1 * g(R.ph - R.th) + h2 * g(R.pw - R.tw)) + Group(1 - same) * (w1 * g(R.ph - R.tw) + w2 * g(R.pw - R.th))
    b = h1 * g(R.tw - R.pw) + w1 * g(R.ph - R.th)  # w_t h_p - w_p h_t
    e = w1 * g(R.tw - R.ph) + h1 * g(R.pw - R.th)  # w_p w_t - h_p h_t
    # cos^2 b^2 + sin^2 e^2 = b^2 + sin^2 K = e^2 - cos^2 K with K = e^2 - b^2 = (w_p^2 - h_p^2)(w_t^2 - h_t^2): the form
    # whose terms are >= 0 (its angle derivative 2 sin cos K is then one product, not the difference of two terms
    # that cancel for a nearly square box: 4.9e3 ULP of the gradient scale in float32)
    k = Group(g(R.pw - R.ph) * (w1 + h1)) * Group(g(R.tw - R.th) * (w2 + h2))
    n = a**2 + same * (b**2 + R.sin_phi**2 * k) + Group(1 - same) * (e**2 - R.cos_phi**2 * k)
    d = 4 * (w1 * h1) * (w2 * h2)
    ddx, ddy = (scaled_offset(R.px, R.tx, m), scaled_offset(R.py, R.ty, m)) if scaled else (g(R.dx), g(R.dy))
    rho2 = ddx**2 + ddy**2
    q = 0
    for (w, h, angle, wr, hr) in ((w1, h1, R.pa, R.pw, R.ph), (w2, h2, R.ta, R.tw, R.th)):
        u = ddx * sp.cos(angle) + ddy * sp.sin(angle)
        v = -ddx * sp.sin(angle) + ddy * sp.cos(angle)
        # h^2 u^2 + w^2 v^2 = w^2 rho^2 + (h^2 - w^2) u^2 = h^2 rho^2 + (w^2 - h^2) v^2: the form with terms >= 0
        taller = Above0(hr - wr)
        tall_form, wide_form = w**2 * rho2 + Group(g(hr - wr) * (h + w)) * u**2, h**2 * rho2 + Group(g(wr - hr) * (w + h)) * v**2
        q += Select(hr > wr, tall_form, wide_form) if scaled else taller * tall_form + Group(1 - taller) * wide_form
    log_half = log_term(n, d, (w1, h1, w2, h2), hand) / 2
    if parts is not None:
        parts.update(n=n, d=d, centre=3 * q / (n + d), log=log_half)
    if hand:
        HAND_RULES[_LOG_RULE] = log_rule(n, d, (R.pw, R.ph, R.tw, R.th))
    return 3 * q / (n + d) + log_half


def definition():
    """B_D from the matrices, as the paper writes it."""
    sp_, st = R.covariance(R.pw, R.ph, R.pa, sp.Rational(1, 12)), R.covariance(R.tw, R.th, R.ta, sp.Rational(1, 12))
    s = (sp_ + st) / 2
    d = R.delta()
    return (d.T * s.inv() * d)[0] / 8 + sp.log(s.det() / sp.sqrt(sp_.det() * st.det())) / 2


M = Detach(TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th)))  # the largest side: a constant in the gradient
B_D = closed_form(M, hand=True)

# centre offsets beyond ~2^512 times the largest side m (open since note 50, fixed 2026-12-07): the squared offset over m^2 overflowed
# in the centre term 3 q/(N + D), where q's choice of form by a 0/1 step gave 0 * inf: B_D NaN, mode 'hellinger' NaN value
# and gradients, mode 'bd' NaN value and size and angle gradients (offset 1e155, sides ~2; sides 1e-5 from offsets
# ~1e150).  B_D is at least 1/8 |Delta|^2 / lambda_max(Sigma) >= 3/2 (|Delta|/m)^2 (Sigma's eigenvalues at most m^2/12;
# the log term >= 0), so where max(|dx|, |dy|) > 2^500 m it is beyond 2^1000: there the rare branches evaluate the centre
# term scaled by c^2 = 2^-1200 (T', from the offsets c (p - t)/m, at least 2^-200), B_D = (T'/c)/c + the log term
# (+inf beyond the float range, as the exact value rounds), its gradient ((dT'/ds)/c)/c (HAND_RULES[44]: each division
# by c on its own, no 2^1200 literal) plus the log term's; mode 'hellinger' takes L = 1 exactly (1 - sqrt(1 - e^-B_D) <
# e^-B_D) and gradients 0 (e^-B_D dB_D/(2L): below 2^-1074 for any B_D >= 2^1000, whose derivatives are below ~2^1200),
# NaN where an input is NaN (HAND_RULES[45]; the condition does not see the angles).  The condition sees neither a NaN
# offset (its comparison false: the common branches' NaN) nor B_D, which is NaN there.
_FAR_CENTRE_RULE, _FAR_HELLINGER_RULE = 44, 45
FAR_OFFSET = sp.Integer(2) ** 500
_largest = TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th))
OFFSETS_FAR = TMax(sp.Abs(R.dx), sp.Abs(R.dy)) > FAR_OFFSET * _largest
_far_parts = {}
closed_form(M, hand=True, parts=_far_parts, scaled=True)
CENTRE_FAR = _far_parts["centre"]  # c^2 times B_D's centre term


# every input finite (a NaN or an infinite input makes the sum of the inputs times c NaN or infinite; times c: no
# overflow of the finite ones): elsewhere the far branches give NaN, as the common ones did (an infinite centre)
_INPUTS_FINITE = sp.Abs(sp.Add(*(R.FAR_SCALE * x for x in R.PRED + R.TARGET))) < sp.Integer(2) ** 1000


def _far_centre():
    """(T'/c)/c = B_D's centre term (NaN where an input is not finite), differentiated by HAND_RULES[44] as
    ((dT'/ds)/c)/c."""
    c = R.FAR_SCALE
    # (the derivative a Group of its own: SymPy distributes a number over a sum, and each term times 2^600 twice had
    # overflowed where the sum does not, inf - inf)
    HAND_RULES[_FAR_CENTRE_RULE] = lambda s: Select(_INPUTS_FINITE, Group(Group(Group(sp.diff(CENTRE_FAR, s)) / c) / c),
                                                    sp.nan)
    return HandDiff(Select(_INPUTS_FINITE, Group(Group(CENTRE_FAR / c) / c), sp.nan), sp.Integer(_FAR_CENTRE_RULE))


def far_offset_branches(checks):
    """The far branches (before the common ones, after the degenerate boxes'), both modes; ``checks``: B_D's far form
    proved equal to the matrix definition, and the rule of its centre term to SymPy's derivative."""
    c = R.FAR_SCALE
    bd_far = _far_centre() + _far_parts["log"]
    for sign, dom in R.orientation_domains():
        prove_equal(plain(CENTRE_FAR) / c**2 + plain(log1p(_far_parts["n"] / _far_parts["d"])) / 2, definition(),
                    f"B_D from the offsets times c = 2^-600 (the centre term over c^2) equals the matrix definition "
                    f"(K {sign})", checks, domain=dom, numeric=True)
    for z in (R.px, R.ty, R.pw, R.th, R.pa):
        prove_equal(plain(HAND_RULES[_FAR_CENTRE_RULE](z).args[1]), sp.diff(plain(CENTRE_FAR) / c**2, z),
                    f"d/d{z} of the centre term (T'/c)/c is ((dT'/d{z})/c)/c (HAND_RULES[{_FAR_CENTRE_RULE}])", checks,
                    domain=R.DOMAIN, numeric=True)
    HAND_RULES[_FAR_HELLINGER_RULE] = lambda s: Select(_INPUTS_FINITE, sp.Integer(0), sp.nan)
    one = HandDiff(Select(_INPUTS_FINITE, sp.Integer(1), sp.nan), sp.Integer(_FAR_HELLINGER_RULE))
    return [(sp.And(OFFSETS_FAR, sp.Eq(mode, 1)), bd_far, bd_far,
             "centre offsets beyond 2^500 times the largest side, mode 'bd': the centre term scaled by 2^-1200", True, True),
            (OFFSETS_FAR, one, one, "centre offsets beyond 2^500 times the largest side, mode 'hellinger': 1 "
             "(B_D > 2^1000), gradient 0", True)]


def ultralytics_program(floor=0):
    """ultralytics' probiou (ultralytics/utils/metrics.py, 8.4.190): eps = 1e-7 in both denominators, inside
    the log, the clamp of B_D to [eps, 100] and inside the square root; ``floor`` added to both variances
    (its RotatedBboxLoss passes floor = 0.01); L = 1 - probiou = hd (mode bd: the clamped B_D).  The clamp's
    gradient is passed strictly inside its bounds."""
    eps = sp.Float(1e-7)

    def cov(w, h, angle):
        a, b = w**2 / 12 + floor, h**2 / 12 + floor
        c, s = sp.cos(angle), sp.sin(angle)
        return a * c**2 + b * s**2, a * s**2 + b * c**2, (a - b) * c * s
    a1, b1, c1 = cov(R.pw, R.ph, R.pa)
    a2, b2, c2 = cov(R.tw, R.th, R.ta)
    den = (a1 + a2) * (b1 + b2) - (c1 + c2)**2
    t1 = ((a1 + a2) * (R.py - R.ty)**2 + (b1 + b2) * (R.px - R.tx)**2) / (den + eps) * sp.Rational(1, 4)
    t2 = ((c1 + c2) * (R.tx - R.px) * (R.py - R.ty)) / (den + eps) / 2
    t3 = sp.log(den / (4 * sp.sqrt(Clamp0(a1 * b1 - c1**2) * Clamp0(a2 * b2 - c2**2)) + eps) + eps) / 2
    raw = t1 + t2 + t3
    bd = eps + Clamp0(raw - eps) - Clamp0(raw - 100)
    hd = sp.sqrt(1 - sp.exp(-bd) + eps)
    k = kernel_from_forms(R.ARRAYS, [(sp.Eq(mode, 0), hd, hd, "hd"), (None, bd, bd, "bd")], args=(mode,),
                          invalid=R.INVALID)
    return {"f64": k, "f32": k}


PARAMS = [Param("mode", mode, "hellinger", "'hellinger': L = sqrt(1 - exp(-B_D)) = 1 - ProbIoU (the paper's L1, as "
                "ultralytics trains); 'bd': L = B_D, the Bhattacharyya distance (the paper's L2)", kind="choice",
                choices=MODES)]
CONVENTIONS = ("Identical Gaussians (B_D = 0) give 0 and, for mode 'hellinger', a gradient of 0 by convention "
               "(sqrt(B_D) has no derivative there: H_D grows like |offset|; torch autograd gives NaN). A box "
               "with w = 0 or h = 0 is a degenerate Gaussian with no density: L = 1 ('hellinger') or inf ('bd') "
               "and every gradient NaN (the derivative w.r.t. the vanishing side is infinite). ultralytics' eps "
               "placements and its clamp of B_D to [1e-7, 100] are the variant 'probiou_ultralytics_eps'; its training loss "
               "(RotatedBboxLoss, 8.4.190) also adds floor = 0.01 to both variances: 'probiou_ultralytics_floor'.")
ACCURACY = ("B_D in closed form as sums of squares over N + D (no cancellation for nearly equal boxes, where the "
            "matrix form subtracts nearly equal determinants and takes the log of a ratio near 1): 1/2 log1p(N/D), "
            "each difference of products of sides from differences of the sides, lengths divided by the largest side "
            "first (no overflow or underflow of the fourth powers); H_D = sqrt(-expm1(-B_D)).")


# The float32 kernel's range: B_D < 2^40 and the largest side m in [2^-30, 2^30].  Every length is divided by m, so the
# gradient carries 1/m times B_D's derivative in those units, ~B_D (the offset over m, squared); beyond, float32 lost it:
# sides 1e-12 and 2e-12, 100 apart (B_D ~ 7e27, 1/m ~ 5e11): the size gradients overflowed, NaN (0 * inf in mode
# "hellinger", exact 0; mode "bd" d/dh_p NaN, exact -3.9e35), and from an offset ~1e20 times the sides the offset's square
# overflowed: the value NaN (exact 1).  And the smallest side at least 2^-64 times the largest: below, a side may be
# subnormal (m >= 2^-30), and 1/side overflows (d/dw_p -inf where float32 sides ~1e-41 overlap a box of sides ~1: exact
# -0.58; a probe, 2026-12-07: every pair within the bar down to a ratio of 2^-90, misses only below 2^-99, where a side
# is subnormal).  Mode "hellinger" (L = sqrt(1 - exp(-B_D)), its gradient exp(-B_D) dB_D / 2L) besides needs B_D < 2^6:
# exp(-B_D) is subnormal from B_D ~ 87.3 and 0 from ~103.9, while the gradient's other factor, ~1/side, can be huge
# (one box far smaller than the other, or thin: B_D ~ ln(m/side)) or the gradient normal anyway (m ~ 2^-30): from B_D
# ~ 94 the gradient missed the bar (sides ~1e-30 against 1 offset by a few sides: d/dw_p 2.6 % off; two similar boxes
# of sides ~2e-9 at B_D 94.3: 5.7e-5 of the scale), while at B_D <= 87 every pair of the probe was within 1e-5.  There
# the float64 kernel's forms (Eval64: the inputs widened exactly, each result rounded once); B_D NaN or inf: its
# comparison false, outside.
F32_SIDE = sp.Integer(2) ** 30
F32_BD = sp.Integer(2) ** 40
F32_BD_HELLINGER = sp.Integer(2) ** 6
F32_RATIO = sp.Integer(2) ** 64


def float32_kernel(kernel):
    """``kernel`` with a rare copy, before each branch that is not constant, of that branch where B_D, the largest side
    or the ratio of the smallest to the largest leaves the float32 kernel's range (above), its outputs evaluated in
    float64 together (``Eval64``)."""
    largest = TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th))
    smallest = TMin(TMin(R.pw, R.ph), TMin(R.tw, R.th))
    # (one select of maxima: no chain of comparisons; a zero side is a degenerate box, taken by a constant branch first)
    sides = TMax(TMax(largest / F32_SIDE, 1 / (F32_SIDE * largest)), largest / (F32_RATIO * smallest))

    def outside(branch):
        limit = F32_BD if branch.condition == sp.Eq(mode, 1) else F32_BD_HELLINGER
        assert branch.condition in (None, sp.Eq(mode, 1)), branch.label
        return Select(bd_sym < limit, sides, sp.Integer(2)) > 1
    return R.float64_where(kernel, outside)


def derive():
    checks = []
    m_free = sp.Symbol("m", positive=True)
    prove_equal(plain(closed_form(m_free)), definition(), "B_D in closed form, every length divided by any m > 0, equals "
                "1/8 Delta^T Sigma^-1 Delta + 1/2 ln(det Sigma/sqrt(det Sigma_p det Sigma_t)) (so it does not "
                "depend on m, which is held fixed in the gradient)", checks, domain={**R.DOMAIN, m_free: (sp.Rational(1, 2), 3)},
                numeric=True)
    parts = {}
    closed_form(m_free, parts=parts)
    n_m, d_m = parts["n"], parts["d"]
    rule = log_rule(n_m, d_m, (R.pw, R.ph, R.tw, R.th))
    for z in (R.pw, R.ph, R.tw, R.th, R.pa, R.px):
        prove_equal(plain(rule(z)), sp.diff(plain(log1p(n_m / d_m)), z), f"d/d{z} log1p(N/D) = (N' - N (ln D)')/(N + D) "
                    "(HAND_RULES[23]: no D^2, which underflows for a box far smaller than the other)", checks,
                    domain={**R.DOMAIN, m_free: (sp.Rational(1, 2), 3)}, numeric=True)
    hd = sp.sqrt(-expm1(-B_D))
    k = kernel_from_forms(
        R.ARRAYS,
        [(sp.And(R.DEGENERATE, sp.Eq(mode, 0)), sp.Integer(1), sp.nan,
          "a degenerate box (w h = 0), mode 'hellinger': 1, gradient NaN"),
         (R.DEGENERATE, sp.oo, sp.nan, "a degenerate box, mode 'bd': inf, gradient NaN"),
         *far_offset_branches(checks),
         (sp.Eq(mode, 1), B_D, B_D, "mode 'bd': L = B_D"),
         (sp.Eq(bd_sym, 0), sp.Integer(0), sp.Integer(0), "identical Gaussians: 0, gradient 0 by convention"),
         (None, hd, hd, "mode 'hellinger': L = sqrt(-expm1(-B_D))")],
        args=(mode,), prelude=((bd_sym, B_D),), invalid=R.INVALID, checks=checks, numeric_proof=True,
        domain=R.DOMAIN)
    # the float32 kernel without the far branches: from float32 inputs the offset over the largest side stays below
    # ~2^300, its squares (in the float64 range branch) far inside float64's range
    k32 = dataclasses.replace(k, branches=tuple(b for b in k.branches if not b.label.startswith("centre offsets beyond")))
    n_, d_, bd_ = sp.symbols("N D B_D")
    steps = [
        Step("With $s = 1/12$ (the covariance of the uniform distribution on the box), the Bhattacharyya distance "
             "of the two Gaussians, $\\Sigma = (\\Sigma_p + \\Sigma_t)/2$:", "B_D",
             "\\frac{1}{8} \\Delta^\\top \\Sigma^{-1} \\Delta + \\frac{1}{2} \\ln \\frac{\\det \\Sigma}"
             "{\\sqrt{\\det \\Sigma_p \\det \\Sigma_t}}"),
        Step("In closed form (proved equal at 60 digits), sums of squares with no cancellation, every length "
             "divided by the largest side first (B_D does not change):", bd_,
             "\\frac{3 \\sum_i (h_i^2 u_i^2 + w_i^2 v_i^2)}{N + D} + \\frac{1}{2} \\operatorname{log1p}"
             "\\frac{N}{D}"),
        Step("", n_, "(w_p h_p - w_t h_t)^2 + \\cos^2\\varphi\\,(w_t h_p - w_p h_t)^2 + \\sin^2\\varphi\\,"
             "(w_p w_t - h_p h_t)^2, \\qquad D = 4 w_p h_p w_t h_t"),
        Step("The loss: the Hellinger distance $1 - \\mathrm{ProbIoU}$ (mode 'hellinger', evaluated as "
             "$\\sqrt{-\\operatorname{expm1}(-B_D)}$), or $B_D$ itself (mode 'bd', the paper's "
             "$L_2 = -\\ln(1 - H_D^2)$):", "L", "H_D = \\sqrt{1 - e^{-B_D}}"),
    ]
    return R.rotated_spec(
        NAME, "ProbIoU loss", "L = sqrt(1 - exp(-B_D)) (mode='hellinger', = 1 - ProbIoU) or B_D (mode='bd'), "
        "B_D = 1/8 Delta^T Sigma^-1 Delta + 1/2 ln(det Sigma/sqrt(det Sigma_p det Sigma_t)), Sigma = (Sigma_p + "
        "Sigma_t)/2, each box the Gaussian N((cx, cy), R(angle) diag(w^2/12, h^2/12) R(angle)^T).",
        ["J. M. Llerena et al., Gaussian Bounding Boxes and Probabilistic Intersection-over-Union for Object "
         "Detection, arXiv:2106.06072"], PARAMS, {"f64": R.with_far_angles(k), "f32": float32_kernel(k32)}, steps,
        [R.rotation_plot("ProbIoU loss", note="ProbIoU sees a square as a disc."),
         R.slide_plot("ProbIoU loss", note="The Hellinger distance approaches 1 with a Gaussian tail, far more "
                      "slowly than 1 - IoU, which is 1 as soon as the boxes stop overlapping.")],
        CONVENTIONS, ACCURACY, checks,
        variants=[Variant("probiou_ultralytics_eps", "ultralytics' probiou: eps = 1e-7 in the denominators, the log "
                          "and the square root, B_D clamped to [1e-7, 100]", program=ultralytics_program()),
                  Variant("probiou_ultralytics_floor", "ultralytics' RotatedBboxLoss: probiou with eps = 1e-7 and 0.01 "
                          "added to both variances (floor=0.01)", program=ultralytics_program(sp.Rational(1, 100)))])
