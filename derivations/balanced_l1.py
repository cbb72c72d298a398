"""Balanced L1 for general beta (Pang et al., Libra R-CNN, arXiv:1904.02701).

Defined by its gradient in a = |x|:

    dL/da = alpha * ln(1 + b a / beta)   (a < beta),      gamma   (a >= beta),

with b fixed by gradient continuity at a = beta: alpha ln(1 + b) = gamma.
Integrating with L(0) = 0 and continuity at beta gives, with u = b a / beta,

    L = (alpha beta / b) ((1 + u) ln(1 + u) - u)   (a < beta),
    L = gamma a + gamma beta / b - alpha beta       (a >= beta),

which obeys L_beta(a) = beta L_1(a / beta).  The form copied across libraries,
alpha/b (b a + 1) ln(b a / beta + 1) - alpha a and gamma a + gamma/b - alpha beta,
is the beta = 1 case with beta put back in the wrong places: this file proves
that its gradient jumps at a = beta, its slope at 0 is alpha (1/beta - 1), and
that it is negative near 0 for beta > 1.

The integration, its claims (continuity, C^1, the evaluation forms) and the check of the kernel
program come from the shared path of losses defined by their gradient (refloss._derive.gradient,
also behind refloss.design.from_gradient); the kernel program (a series per precision) is this
file's own.
"""
import math

import sympy as sp
from sympy.codegen.cfunctions import log1p

from refloss._derive.core import (Constant, LossSpec, Param, Plot, Step, Variant, precision_bits, prove_equal, prove_true,
                                  prove_zero)
from refloss._derive.elementwise import a, kernel
from refloss._derive.functions import Group, TwoProd, TwoSum, plain
from refloss._derive.gradient import integrate_gradient

NAME = "balanced_l1"
beta = sp.Symbol("beta", positive=True)
alpha = sp.Symbol("alpha", positive=True)
gamma = sp.Symbol("gamma", positive=True)
b = sp.Symbol("b", positive=True)
# kernel constants (computed once per call from the parameters)
c_u = sp.Symbol("c_u", positive=True)  # b / beta
k_2 = sp.Symbol("k_2", positive=True)  # 2 alpha beta / b
c_lin = sp.Symbol("c_lin", real=True)  # gamma beta / b - alpha beta
l_cu = sp.Symbol("l_cu", real=True)  # alpha ln(c_u), finite where c_u overflows
u = sp.Symbol("u", nonnegative=True)  # b a / beta
z = sp.Symbol("z", nonnegative=True)  # u / (2 + u), in [0, 1)

PARAMS = [
    Param("beta", beta, 1.0, "width of the logarithmic region", lower=sp.Integer(0), lower_closed=False),
    Param("alpha", alpha, 0.5, "gradient scale of the logarithmic region", lower=sp.Integer(0), lower_closed=False),
    Param("gamma", gamma, 1.5, "gradient of the linear region", lower=sp.Integer(0), lower_closed=False),
]
CONSTANTS = [
    Constant(b, sp.exp(gamma / alpha) - 1, "gradient continuity"),
    Constant(c_u, b / beta, "u = c_u * a"),
    Constant(k_2, 2 * alpha * beta / b, "weight of atanh(z) - z"),
    Constant(c_lin, gamma * beta / b - alpha * beta, "constant of the linear piece"),
    # alpha ln(b / beta) without forming b, which overflows for gamma/alpha above ~709.8 (nor gamma/alpha)
    Constant(l_cu, gamma + alpha * sp.log(1 - sp.exp(-gamma / alpha)) - alpha * sp.log(beta), "alpha ln(c_u)"),
]

# above U_BIG, (1 + 1/u) ln(1 + u) - 1 = ln(u) - 1 and log1p(u) = ln(u) to the precision (the claims
# below): the branches for u = c_u a beyond it, where c_u (or u) may be inf
U_BIG = {"f64": sp.Integer(2) ** 60, "f32": sp.Integer(2) ** 30}
F_MAX = {"f64": sp.Float(1.7976931348623157e308, 30), "f32": sp.Float(3.4028234663852886e38, 30)}
TINY = {"f64": sp.Integer(2) ** -1022, "f32": sp.Integer(2) ** -126}  # the smallest normal numbers

Z_SERIES = sp.Rational(1, 2)  # below this z the series for atanh(z) - z is used
# float32 only: its pairs' series for z <= Z_SERIES_F32 (more terms), as the log form
# l + l/u - 1 (l = log1p u) would amplify log1p's rounding up to 2.5-fold just above z = 1/2
Z_SERIES_F32 = sp.Rational(3, 4)
# the error-free forms split operands up to this size (Veltkamp's split of x computes 4097 x in float32, which
# overflows above ~2^115, (2^27 + 1) x in float64, above ~2^996); beyond it the plain forms are used
SPLIT_MAX_F32 = sp.Integer(2) ** 100
SPLIT_MAX_F64 = sp.Integer(2) ** 900  # (float64's log form only: its series stays plain)


def series_terms(precision: str, z_max=Z_SERIES) -> int:
    """Terms N of R(z) = z^3 sum_{k<N} z^(2k)/(2k+3) so that for z <= z_max the
    truncation error is below 2^-(p+2) relative to the series (whose sum is >= 1/3)."""
    target = sp.Rational(1, 2 ** (precision_bits(precision) + 2)) / 3
    n = 1
    while z_max ** (2 * n) / ((2 * n + 3) * (1 - z_max**2)) > target:
        n += 1
    return n


def _f32_forms(n_terms: int, exact_quotient: bool = False):
    """float32 evaluation forms of the inner piece (the log form also float64's above z = 1/2), L = alpha a f(u) with
    f(u) = (1 + 1/u) ln(1+u) - 1 = z (1 + (1+z) z S(z^2)) (z = u/(2+u), S(w) = sum w^k/(2k+3)),
    carried as a float32 pair (high, low) where a rounding would count: u = c_u a and alpha a
    error-free (TwoProd), z = u/(2+u) with its division's residual, and the last product
    error-free.  ``exact_quotient``: the log form also takes q = l/u's rounding error, (l - q u)/u with q u
    error-free (float64's log form, used from z = 1/2 where its terms cancel 2.5-fold).  Returns (series form with
    n_terms terms, log form l + l/u - 1, l = log1p u)."""
    u_h, u_l = TwoProd(a, c_u, 0), TwoProd(a, c_u, 1)
    a_h, a_l = TwoProd(alpha, a, 0), TwoProd(alpha, a, 1)

    def times_alpha_a(f_h, f_l):
        l_h, l_l = TwoProd(a_h, f_h, 0), TwoProd(a_h, f_h, 1)
        return l_h + Group(l_l + Group(a_h * f_l + a_l * f_h))

    # series: z = z_h + z_l, z_l from the exact residual u - z_h (2 + u)
    d_h, d_l = TwoSum(2, u_h, 0), Group(TwoSum(2, u_h, 1) + u_l)
    z_h = Group(u_h / d_h)
    r_h, r_l = TwoProd(z_h, d_h, 0), TwoProd(z_h, d_h, 1)
    z_l = Group(Group(Group(u_h - r_h) - r_l) + Group(u_l - z_h * d_l)) / d_h
    w = sp.Symbol("w")
    poly = sp.horner(sum(w**k / (2 * k + 3) for k in range(n_terms)), w)
    cc = Group(Group(1 + z_h) * Group(z_h * poly.subs(w, z_h * z_h)))  # (1+z) z S(z^2) <= 0.53 (z <= 3/4)
    g = Group(z_h * cc)
    series = times_alpha_a(TwoSum(z_h, g, 0), Group(TwoSum(z_h, g, 1) + z_l * Group(1 + cc)))
    # log: l = log1p(u_h) + u_l/(1 + u_h); l - 1 is exact for l <= 2
    l_h = log1p(u_h)
    l_l = u_l / Group(1 + u_h)
    q = l_h / u_h
    low = Group(l_l + Group(l_l - q * u_l) / u_h)
    if exact_quotient:  # l_h - q u_h: q u_h error-free, and l_h - its high word exact (Sterbenz)
        low = Group(low + Group(Group(l_h - TwoProd(q, u_h, 0)) - TwoProd(q, u_h, 1)) / u_h)
    logf = times_alpha_a(TwoSum(l_h - 1, q, 0), Group(TwoSum(l_h - 1, q, 1) + low))
    return series, logf


def _copied_form_plot(beta_value: float, x_range: tuple) -> Plot:
    """The derived loss against the widely copied (b|x|+1) form at one beta."""
    al, ga = 0.5, 1.5
    bb = math.expm1(ga / al)

    def derived(x):
        a_ = abs(x)
        if a_ >= beta_value:
            return ga * a_ + ga * beta_value / bb - al * beta_value, math.copysign(ga, x)
        u_ = bb * a_ / beta_value
        return al * beta_value / bb * ((1 + u_) * math.log1p(u_) - u_), math.copysign(al * math.log1p(u_), x)

    def copied(x):
        a_ = abs(x)
        if a_ >= beta_value:
            return ga * a_ + ga / bb - al * beta_value, math.copysign(ga, x)
        v = al / bb * (bb * a_ + 1) * math.log1p(bb * a_ / beta_value) - al * a_
        g = al * math.log1p(bb * a_ / beta_value) + al / bb * (bb * a_ + 1) * (bb / beta_value) / (bb * a_ / beta_value + 1) - al
        return v, math.copysign(g, x)

    negative = ""
    if beta_value > 1:  # where the copied form dips below 0, on a grid finer than the figure's
        grid = [k * beta_value / 20000 for k in range(1, 20001)]
        low = min(grid, key=lambda a_: copied(a_)[0])
        negative = (f" (so the loss is negative for |x| < {max(a_ for a_ in grid if copied(a_)[0] < 0):.2g}, down to "
                    f"{copied(low)[0]:.2g} at |x| = {low:.2g}: too little to see at this scale)")
    return Plot(f"beta = {beta_value:g}: derived vs copied form", [("derived (refloss)", derived), ("copied (b|x|+1) form", copied)],
                x_range=x_range,
                caption=f"At beta = {beta_value:g} the copied form (red) keeps a continuous value but its gradient jumps at "
                        f"|x| = beta and its slope at 0 is alpha (1/beta - 1) = {al * (1 / beta_value - 1):.3g} instead of "
                        f"0{negative}.")


def derive() -> LossSpec:
    checks = []
    dom = {alpha: (sp.Rational(1, 10), 2), gamma: (sp.Rational(1, 10), 3), beta: (sp.Rational(1, 20), 4),
           a: (sp.Rational(1, 100), 3)}
    b_val = sp.solve(sp.Eq(alpha * sp.log(1 + b), gamma), b)[0]
    prove_equal(b_val, sp.exp(gamma / alpha) - 1, "gradient continuity alpha ln(1+b) = gamma gives b = e^(gamma/alpha) - 1", checks)

    # Evaluation form.  (1+u) ln(1+u) - u cancels for small u (it is ~u^2/2); with
    # z = u/(2+u), ln(1+u) = 2 atanh(z) and the identity
    #     (1+u) ln(1+u) - u = u z + 2 (1+u) R(z),   R(z) = atanh(z) - z >= 0,
    # is a sum of non-negative terms.  Moreover (alpha beta/b) u z = alpha a z, so
    #     L = alpha a z + k_2 (1+u) R(z),   k_2 = 2 alpha beta / b.
    # R is a series below Z_SERIES and log1p(u)/2 - z above it (the kernel program, per precision).
    R_exact = sp.atanh(z) - z
    eval_in = alpha * a * z + k_2 * (1 + u) * R_exact
    g_in = alpha * sp.log(1 + b * a / beta)
    g = integrate_gradient([(a < beta, g_in, eval_in), (None, gamma, gamma * a + c_lin)], a, PARAMS,
                           constants=CONSTANTS, definitions={z: u / (2 + u), u: c_u * a}, c1=True, checks=checks,
                           domain=dom)
    (anti_in, c0, c0_val, f_in), (anti_out, c1, c1_val, f_out) = (
        (p.antiderivative, p.constant, p.constant_value, p.loss) for p in g.pieces)
    f_in, f_out, c1_val = (e.subs(gamma, alpha * sp.log(1 + b)) for e in (f_in, f_out, c1_val))
    closed_in = alpha * beta / b * ((1 + u) * sp.log(1 + u) - u)
    prove_equal(f_in, closed_in.subs(u, b * a / beta), "inner piece is (alpha beta/b)((1+u)ln(1+u) - u), u = b a/beta", checks, domain=dom)
    closed_out = gamma * a + gamma * beta / b - alpha * beta
    prove_equal(f_out, closed_out.subs(gamma, alpha * sp.log(1 + b)), "outer piece is gamma a + gamma beta/b - alpha beta", checks, domain=dom)
    prove_zero(sp.limit(f_in, a, 0, "+"), "L(0) = 0", checks)

    # Scaling law: L_beta(a) = beta L_1(a / beta), on both pieces.
    for name, piece in (("inner", closed_in.subs(u, b * a / beta)), ("outer", closed_out)):
        prove_equal(piece, beta * piece.subs(beta, 1).subs(a, a / beta), f"scaling law L_beta(a) = beta L_1(a/beta) ({name})", checks, domain=dom)

    # The widely copied form (mmdetection and others) and what is wrong with it for beta != 1.
    mm_in = alpha / b * (b * a + 1) * sp.log(b * a / beta + 1) - alpha * a
    mm_out = gamma * a + gamma / b - alpha * beta
    prove_zero((mm_in - closed_in.subs(u, b * a / beta)).subs(beta, 1), "copied form equals the derived one at beta = 1 (inner)", checks, domain=dom)
    prove_zero((mm_out - closed_out).subs(beta, 1), "copied form equals the derived one at beta = 1 (outer)", checks, domain=dom)
    mm_jump = sp.diff(mm_in, a).subs(a, beta).subs(gamma, alpha * sp.log(1 + b))
    mm_slope0 = sp.limit(sp.diff(mm_in, a), a, 0, "+")
    prove_equal(mm_slope0, alpha * (1 / beta - 1), "copied form: slope at a = 0 is alpha (1/beta - 1)", checks)
    prove_zero((mm_in - mm_out).subs(a, beta).subs(gamma, alpha * sp.log(1 + b)), "copied form: value continuous at a = beta for every beta", checks, domain=dom)
    jump_011 = sp.N(mm_jump.subs({alpha: sp.Rational(1, 2), b: sp.exp(3) - 1, beta: sp.Rational(11, 100)}), 20)
    prove_true(abs(jump_011 - sp.Float("1.7014")) < 1e-3, f"copied form at beta=0.11, alpha=0.5, gamma=1.5: slope {jump_011:.4f} at a = beta^- vs gamma = 1.5", checks)

    identity = (u * z + 2 * (1 + u) * R_exact - ((1 + u) * sp.log(1 + u) - u)).subs(z, u / (2 + u))
    prove_zero(identity, "(1+u)ln(1+u) - u = u z + 2(1+u)(atanh z - z), z = u/(2+u)", checks, domain={u: (sp.Rational(1, 100), 20)})
    consts = {c_u: b / beta, k_2: 2 * alpha * beta / b, c_lin: gamma * beta / b - alpha * beta}
    prove_equal((k_2 * z).subs(z, u / (2 + u)).subs(u, c_u * a).subs(consts), 2 * alpha * a / (2 + b * a / beta),
                "k_2 z = 2 alpha a / (2 + u): the series branch needs no k_2 (which overflows for subnormal b)", checks,
                domain=dom)
    prove_equal((alpha * log1p(u)).subs(u, c_u * a).subs(consts), g_in, "gradient evaluated as alpha log1p(c_u a)", checks, domain=dom)

    def program(precision):
        n = series_terms(precision)
        w = sp.Symbol("w")
        poly = sp.horner(sum(w**k / (2 * k + 3) for k in range(n)), w)
        r_series = z**3 * poly.subs(w, z * z)
        sg = alpha * log1p(u)
        # a = 0 (or NaN) is left to a branch after the common ones (u = 0 * inf = NaN where c_u overflows), a rare
        # one: among the first, that cheap branch made LLVM's cost model keep the CPU loops scalar
        pos = a > 0
        zero = (sp.Eq(a, 0), sp.Integer(0), sp.Integer(0), "a = 0 (u = 0 * inf = NaN where c_u overflows)", True)
        # k_2 z = 2 alpha a / (2 + u) (k_2 c_u = 2 alpha): no k_2 here, which overflows where b is
        # subnormal (gamma/alpha below ~2.2e-308; float32 ~1e-38) while z^3 underflows: inf * 0
        series = (z <= Z_SERIES, alpha * a * z + 2 * alpha * a * (1 + u) / (2 + u) * r_series / z, sg,
                  f"log, series for atanh(z) - z ({n} terms)")
        log_form = (u <= U_BIG[precision], alpha * a * z + k_2 * (1 + u) * (log1p(u) / 2 - z), sg,
                    "log, atanh(z) - z = log1p(u)/2 - z")
        # u > U_BIG for huge |x|/beta (and float32's plain forms, for operands beyond the pairs' split range): rare,
        # left to the scalar kernel by the vectorised CPU loops (see Branch)
        huge = [(u <= F_MAX[precision], alpha * a * (sp.log(u) - 1), alpha * sp.log(u),
                 "log, u > U_BIG: L = alpha a (ln u - 1)", True),
                (None, a * (l_cu + alpha * (sp.log(a) - 1)), l_cu + alpha * sp.log(a),
                 "log, c_u a overflows: alpha ln u = l_cu + alpha ln a", True)]
        linear = (a >= beta, gamma * a + c_lin, gamma, "linear")
        # the plain forms chain the roundings of u, z and the series, or amplify log1p's just above z = 1/2 (where
        # log1p(u)/2 - z cancels 11-fold): float32 7.49 ULP exhaustive at beta = 1/9, float64 6.58 at beta = 0.11
        # (against the oracle, `refloss sweep --dtype float64` with the double-double reference) and up to 3.6 in the
        # series; these forms carry the roundings that count as pairs.  float32: one series (the terms up to
        # z = 3/4) for every z below 3/4: a second, shorter one below z = 1/2 made the vectorised loop evaluate both
        # (19.1 against 25.4 ms at N = 10^6); float64: the series below z = 1/2 (62 terms would reach 3/4), the log
        # form (2.5-fold there) with q = l/u's rounding error too.  The plain forms are left rare (split range).
        if precision == "f32":
            n2, z_max, split, tag = series_terms(precision, Z_SERIES_F32), Z_SERIES_F32, SPLIT_MAX_F32, "float32 pairs"
            mid, logf = _f32_forms(n2)
        else:
            n2, z_max, split, tag = n, Z_SERIES, SPLIT_MAX_F64, "float64 pairs"
            mid, logf = _f32_forms(n2)[0], _f32_forms(1, exact_quotient=True)[1]
        fits = sp.And(pos, a <= split, c_u <= split, alpha <= split)
        # u = c_u a subnormal and alpha > 1: alpha log1p(u) = alpha u, but u's rounding is a subnormal one (an absolute
        # 2^-150 in float32), which alpha magnifies, whether alpha u is normal or not (float32 4,540 ULP at alpha =
        # 236,777, x ~ 1e-33; 4,070 at alpha = 9,393, alpha u itself subnormal): there the gradient is (alpha c_u) a,
        # one rounding of the product of the constant and a (log1p(u) = u to the precision there).  alpha <= 1 keeps
        # alpha log1p(u): its rounding is then no larger than u's own
        tiny = TINY[precision]
        scaled = Group(alpha * c_u)
        subnormal_u = (sp.And(u < tiny, alpha > 1, scaled <= F_MAX[precision], fits), mid, scaled * a,
                       f"log, u subnormal and alpha > 1: gradient (alpha c_u) a, {tag}", True)
        branches = [
            linear,
            subnormal_u,
            (sp.And(z <= z_max, fits), mid, sg, f"log, series ({n2} terms), {tag}"),
            (sp.And(u <= U_BIG[precision], fits), logf, sg, f"log, l + l/u - 1 with l = log1p(u), {tag}"),
            zero, (*series, True), (*log_form, True), *huge,
        ]
        # the inner piece's value, about alpha b a^2 / (2 beta) for small a, doubles the relative rounding error of
        # a = |pred - target| (float64 4.06 ULP at beta = 1, (pred, target) = (-9.2117, -9.3252)): its value is
        # corrected by g(a) a_lo, a_lo the subtraction's rounding error (0 where target is 0)
        inner = [b_[3] for b_ in branches if b_[3].startswith("log,") and "u > U_BIG" not in b_[3]
                 and "overflows" not in b_[3]]
        return kernel(
            branches,
            args=(beta, alpha, gamma, c_u, k_2, c_lin, l_cu),
            prelude=((u, c_u * a), (z, u / (2 + u))),
            corrected=inner,
        )

    # the large-u branches: L = (alpha beta/b)((1+u) ln(1+u) - u) = alpha a ((1 + 1/u) ln(1+u) - 1), and
    # (1 + 1/u) ln(1+u) - 1 - (ln u - 1) = ln(1 + 1/u) + ln(1+u)/u <= (1 + ln(1+u))/u, below 2^-(p+2) of ln u - 1
    # for u > U_BIG (it decreases with u); likewise log1p(u) - ln u = ln(1 + 1/u) <= 1/u
    prove_equal((alpha * a * ((1 + 1 / u) * sp.log(1 + u) - 1)).subs(a, u * beta / b),
                alpha * beta / b * ((1 + u) * sp.log(1 + u) - u), "inner piece is alpha a ((1 + 1/u) ln(1+u) - 1), u = b a / beta", checks,
        domain={**dom, u: (sp.Rational(1, 10), 50), b: (1, 20)})
    for prec, big in U_BIG.items():
        bound = (1 + sp.log(1 + big)) / big / (sp.log(big) - 1)
        prove_true(bool(bound < sp.Rational(1, 2 ** (precision_bits(prec) + 2))),
                   f"{prec}: for u > {big}, ln(u) - 1 is (1 + 1/u) ln(1+u) - 1 and ln(u) is log1p(u) within "
                   f"{sp.N(bound, 3)} relative", checks)
    for prec, tiny in TINY.items():  # the subnormal-u branch's gradient (alpha c_u) a = alpha u
        prove_true(bool(tiny / 2 < sp.Rational(1, 2 ** (precision_bits(prec) + 2))),
                   f"{prec}: for u < {tiny}, log1p(u) is u within u/2 relative, below 2^-(p+2): alpha log1p(u) = "
                   "(alpha c_u) a to the precision", checks)
    prove_equal(alpha * sp.log(b * a / beta), (l_cu + alpha * sp.log(a)).subs(
        l_cu, gamma + alpha * sp.log(1 - sp.exp(-gamma / alpha)) - alpha * sp.log(beta)).subs(gamma, alpha * sp.log(1 + b)),
        "alpha ln(u) = l_cu + alpha ln(a), l_cu = gamma + alpha ln(1 - e^(-gamma/alpha)) - alpha ln(beta)", checks,
        domain=dom)

    # the copied form as a kernel of its own, for diagnoses (b = c_u beta); written as copied
    copied_in = (alpha / (c_u * beta) * (c_u * beta * a + 1) * log1p(c_u * a) - alpha * a)
    copied_out = gamma * a + gamma / (c_u * beta) - alpha * beta
    prove_equal(copied_in.subs(consts), mm_in, "copied form as evaluated (inner)", checks, domain=dom)
    prove_equal(copied_out.subs(consts), mm_out, "copied form as evaluated (outer)", checks, domain=dom)
    copied = kernel([(a < beta, copied_in, sp.diff(copied_in, a), "copied form, inner"),
                     (None, copied_out, gamma, "copied form, outer")], args=(beta, alpha, gamma, c_u, k_2, c_lin, l_cu))

    f_u = (1 + 1 / u) * sp.log(1 + u) - 1
    series_f, log_f = _f32_forms(3)
    ex = {c_u: u / a}
    prove_equal(plain(log_f).subs(ex), alpha * a * f_u, "float32 log form: alpha a (l + l/u - 1), l = ln(1+u), "
                "with the error terms 0", checks, domain={alpha: (sp.Rational(1, 10), 2), a: (sp.Rational(1, 100), 3),
                                                          u: (sp.Rational(1, 10), 50)})
    prove_equal(plain(_f32_forms(1, exact_quotient=True)[1]).subs(ex), alpha * a * f_u, "float64 log form (the "
                "float32 one with q = l/u's rounding error added): alpha a (l + l/u - 1) with the error terms 0", checks,
                domain={alpha: (sp.Rational(1, 10), 2), a: (sp.Rational(1, 100), 3), u: (sp.Rational(1, 10), 50)})
    prove_equal(plain(series_f).subs(ex), (alpha * a * z * (1 + (1 + z) * z * (sp.Rational(1, 3) + z**2 / 5 + z**4 / 7))).subs(z, u / (2 + u)),
                "float32 series form: alpha a z (1 + (1+z) z S(z^2)) with the error terms 0", checks,
                domain={alpha: (sp.Rational(1, 10), 2), a: (sp.Rational(1, 100), 3), u: (sp.Rational(1, 10), 50)})
    zz = sp.Symbol("zz", positive=True)
    prove_equal((zz * (1 + (1 + zz) * (sp.atanh(zz) - zz) / zz**2)).subs(zz, u / (2 + u)), f_u,
                "f(u) = (1 + 1/u) ln(1+u) - 1 = z (1 + (1+z) R(z)/z^2), z = u/(2+u)", checks,
                domain={u: (sp.Rational(1, 100), 20)})
    for prec in ("f64", "f32"):
        n = series_terms(prec)
        tail = Z_SERIES ** (2 * n) / ((2 * n + 3) * (1 - Z_SERIES**2)) * 3
        prove_true(tail <= sp.Rational(1, 2 ** (precision_bits(prec) + 2)),
                   f"{prec}: {n} series terms, relative truncation error <= {sp.N(tail, 3)} for z <= {Z_SERIES}", checks)
    n2 = series_terms("f32", Z_SERIES_F32)
    tail = Z_SERIES_F32 ** (2 * n2) / ((2 * n2 + 3) * (1 - Z_SERIES_F32**2)) * 3
    prove_true(tail <= sp.Rational(1, 2 ** (precision_bits("f32") + 2)),
               f"f32: {n2} series terms, relative truncation error <= {sp.N(tail, 3)} for z <= {Z_SERIES_F32}", checks)

    x = sp.Symbol("x", real=True)
    steps = [
        g.definition_step("The gradient definition in $a = |x|$ (Libra R-CNN, eq. 7), with $b$ from gradient continuity "
                          "$\\alpha \\ln(1+b) = \\gamma$ at $a = \\beta$:"),
        Step("", b, b_val),
        *g.integration_steps(show=lambda e: sp.simplify(e.subs(alpha * sp.log(1 + b), gamma))),
        Step("Balanced L1 for any $\\beta$, with $u = b a/\\beta$:", "L(a)",
             sp.Piecewise((closed_in, a < beta), (closed_out, True))),
        Step("It obeys the scaling law $L_\\beta(a) = \\beta\\,L_1(a/\\beta)$ and is $C^1$ at $a=\\beta$. "
             "The form copied across libraries, written for $\\beta = 1$ with $\\beta$ re-inserted in some places,",
             "L^{\\mathrm{copied}}(a)", sp.Piecewise((mm_in, a < beta), (mm_out, True))),
        Step("agrees at $\\beta = 1$ only. Its value is continuous for every $\\beta$, but its slope at $0$ is "
             "$\\alpha(1/\\beta - 1)$ instead of $0$ (so it is negative near 0 for $\\beta > 1$), and at $a = \\beta^-$ "
             f"its slope is {sp.N(jump_011, 4)} instead of $\\gamma = 1.5$ for $\\beta = 0.11$, $\\alpha = 0.5$, $\\gamma=1.5$:",
             "\\left.\\frac{dL^{\\mathrm{copied}}}{da}\\right|_{a=\\beta^-}", sp.simplify(mm_jump)),
        Step("**Evaluation form.** $(1+u)\\ln(1+u) - u \\approx u^2/2$ loses all digits for small $u$ if computed as "
             "written. With $z = u/(2+u)$ and $\\ln(1+u) = 2\\operatorname{atanh} z$ it is a sum of non-negative "
             "terms, and $\\frac{\\alpha\\beta}{b} u z = \\alpha a z$:", "L_{0}(a)",
             alpha * a * z + 2 * alpha * beta / b * (1 + u) * (sp.atanh(z) - z)),
        Step(f"$\\operatorname{{atanh}} z - z = z^3 \\sum_k z^{{2k}}/(2k+3)$ is summed for $z \\le {sp.latex(Z_SERIES)}$ "
             f"({series_terms('f64')} terms in float64, {series_terms('f32')} in float32), and evaluated as "
             "$\\operatorname{log1p}(u)/2 - z$ above. The gradient is evaluated as $\\alpha\\,\\operatorname{log1p}(u)$.",
             None),
        Step("**Float32.** There the chain of roundings (of $u = c_u a$, of $z$, of the series, or of "
             "$\\operatorname{log1p}$, amplified 2.5-fold just above $z = 1/2$ by the cancellation in "
             "$(1 + 1/u)\\,l - 1$) cost up to 7.49 ULP. The float32 kernel evaluates "
             "$L = \\alpha a\\, f(u)$, $f(u) = (1 + 1/u)\\ln(1+u) - 1 = z\\,(1 + (1+z)\\,z\\,S(z^2))$, "
             "$S(w) = \\sum_k w^k/(2k+3)$, with float32 pairs (high and low word) where a rounding would count: "
             "$u = c_u a$ and $\\alpha a$ error-free (Veltkamp/Dekker), $z$ with the residual of its division, "
             f"the series up to $z = {sp.latex(Z_SERIES_F32)}$ ({series_terms('f32', Z_SERIES_F32)} terms), "
             "$(l - 1) + l/u$ with $l = \\operatorname{log1p}(u)$ and its low word above, and the "
             "last product error-free. Operands beyond $2^{100}$ (outside the split's range) use the plain forms. "
             "The logarithms are refloss's polynomials (no libm call), so that the CPU loops vectorise; the branches "
             "for $a = 0$, for $u$ beyond $2^{30}$ (float64 $2^{60}$) and float32's plain forms are rare: the "
             "vectorised loops leave those elements to the scalar kernel.",
             None),
        Step("Gradients, with $\\operatorname{sign}(0) = 0$:",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Piecewise((alpha * sp.log(1 + b * sp.Abs(x) / beta) * sp.sign(x), sp.Abs(x) < beta), (gamma * sp.sign(x), True))),
    ]
    return g.spec(
        NAME, libm=False,
        title="Balanced L1 loss",
        formula="L = alpha*beta/b * ((1+u)*ln(1+u) - u) with u = b*|x|/beta if |x| < beta, else "
        "gamma*|x| + gamma*beta/b - alpha*beta; b = exp(gamma/alpha) - 1, x = pred - target. "
        "Correct for every beta (the common (b|x|+1) form is right only at beta = 1).",
        references=["J. Pang et al., Libra R-CNN: Towards Balanced Learning for Object Detection, arXiv:1904.02701"],
        kernels={p: program(p) for p in ("f64", "f32")},
        constants=CONSTANTS,
        steps=steps,
        plots=[Plot("Balanced L1 (alpha = 0.5, gamma = 1.5)",
                    [(f"beta = {bt:.3g}", {"beta": bt, "alpha": 0.5, "gamma": 1.5}) for bt in (1 / 9, 0.5, 1.0, 2.0)]),
               _copied_form_plot(0.11, (-0.3, 0.3)), _copied_form_plot(2.0, (-4.0, 4.0))],
        conventions="At |x| = beta the linear branch is used; the gradient is continuous there (gamma on both sides).",
        accuracy="Inner piece as alpha*a*z + k_2*(1+u)*R(z), a sum of non-negative terms (no cancellation); "
        "float32: alpha*a*f(u) with f = z*(1 + (1+z)*z*S(z^2)) (series up to z = 3/4) or (l - 1) + l/u, carried as "
        "float32 pairs (error-free u = c_u*a, alpha*a and last product; z with its division's residual); "
        "for u = c_u a above 2^60 (float32: 2^30) as alpha*a*(ln u - 1), with alpha ln u = l_cu + alpha ln a where c_u a "
        "overflows (gamma/alpha above ~709.8 + ln beta makes c_u itself inf); constants correctly rounded from "
        "decimal arithmetic at 40 digits or more (exp(gamma/alpha) - 1 loses digits for small gamma/alpha).",
        variants=[Variant("copied_balanced_l1_form", "the copied (b|x|+1) Balanced L1 form, right only at beta = 1",
                          program={"f64": copied, "f32": copied})],
    )
