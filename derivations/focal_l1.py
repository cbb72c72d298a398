"""Focal-L1 loss (Zhang et al., Focal and Efficient IOU Loss, arXiv:2101.08158).

Designed from its gradient in a = |x|:

    g(a) = -alpha a ln(beta a)   (0 < a <= 1),      -alpha ln(beta)   (a > 1).

The gradient's peak, at a* = 1/(e beta), is alpha/(e beta); fixing it to 1 gives
alpha = e beta.  g >= 0 on (0, 1] needs beta <= 1 and the peak lies in (0, 1] iff
beta >= 1/e, so beta is admissible in [1/e, 1].  Integrating with L(0) = 0 and
continuity at a = 1:

    L = alpha a^2 (1 - 2 ln(beta a)) / 4   (a <= 1),    -alpha ln(beta) a + C   (a > 1),
    C = alpha (2 ln beta + 1) / 4.

The integration, its claims (continuity, C^1, the evaluation forms) and the check of the kernel
program come from the shared path of losses defined by their gradient (refloss._derive.gradient,
also behind refloss.design.from_gradient); the kernel program is this file's own.
"""
import sympy as sp

from refloss._derive.core import Constant, LossSpec, Param, Plot, Step, prove_equal, prove_true, prove_zero
from refloss._derive.elementwise import a, a_lo, kernel
from refloss._derive.functions import Group, TwoProd, TwoSum, plain
from refloss._derive.gradient import integrate_gradient

NAME = "focal_l1"
beta = sp.Symbol("beta", positive=True)
alpha = sp.Symbol("alpha", positive=True)
ln_b = sp.Symbol("ln_b", nonpositive=True)  # ln(beta)
q = sp.Symbol("q", positive=True)  # alpha / 4
s = sp.Symbol("s", nonnegative=True)  # -alpha ln(beta), the gradient for a > 1
c_lin = sp.Symbol("c_lin", real=True)  # C
c_v = sp.Symbol("c_v", positive=True)  # 1 - 2 ln(beta) >= 1

# beta and the constants it fixes (shared with focal_l1_eiou_loss, Focal-L1 applied to the EIoU loss)
PARAM = Param("beta", beta, 0.8, "shape of the gradient curve; alpha = e*beta", lower=sp.exp(-1), upper=sp.Integer(1))
CONSTANTS = [
    Constant(alpha, sp.E * beta, "alpha = e beta (gradient peak 1)"),
    Constant(ln_b, sp.log(beta), "ln(beta)"),
    Constant(q, sp.E * beta / 4, "alpha / 4"),
    Constant(s, -sp.E * beta * sp.log(beta), "gradient for a > 1"),
    Constant(c_lin, sp.E * beta * (2 * sp.log(beta) + 1) / 4, "C"),
    Constant(c_v, 1 - 2 * sp.log(beta), "1 - 2 ln(beta), rounded once"),
]


def derive() -> LossSpec:
    checks = []
    dom = {beta: (sp.exp(-1) + sp.Rational(1, 100), 1), alpha: (sp.Rational(1, 2), 3), a: (sp.Rational(1, 100), 1)}
    g_in = -alpha * a * sp.log(beta * a)
    g_out = -alpha * sp.log(beta)
    peak_at = sp.solve(sp.Eq(sp.diff(g_in, a), 0), a)[0]
    prove_equal(peak_at, 1 / (sp.E * beta), "the gradient's peak is at a* = 1/(e beta)", checks)
    peak = sp.simplify(g_in.subs(a, peak_at))
    prove_equal(peak, alpha / (sp.E * beta), "peak value alpha/(e beta)", checks)
    alpha_val = sp.solve(sp.Eq(peak, 1), alpha)[0]
    prove_equal(alpha_val, sp.E * beta, "peak = 1 gives alpha = e beta", checks)
    prove_zero(peak_at.subs(beta, sp.exp(-1)) - 1, "a* = 1 at beta = 1/e", checks)
    prove_true(bool(sp.diff(peak_at, beta).is_negative), "a* decreases with beta, so a* <= 1 iff beta >= 1/e", checks)
    prove_true(bool(g_out.subs(beta, 1) == 0 and sp.diff(g_out, beta).is_negative),
               "the outer gradient -alpha ln(beta) is 0 at beta = 1 and decreases with beta: g >= 0 iff beta <= 1", checks)
    prove_zero(sp.limit(g_in, a, 0, "+"), "g(0+) = 0", checks)

    # Evaluation forms: ln(beta a) = ln_b + ln(a), two non-positive terms (a <= 1, beta <= 1),
    # so 1 - 2 ln(beta a) >= 1 and -ln(beta a) >= 0 are sums without cancellation.
    # The factor a is applied last, to a product formed without it (Group keeps SymPy from merging
    # a*a into a**2): a*a, or alpha*a, below 2^-126 (|x| < 1.1e-19, or < 4e-39) is subnormal and keeps few
    # bits, which the factor 1 - 2 ln(beta a) (up to ~200) then magnified: 72 ULP in float32 values at
    # |x| ~ 1e-22 and 49 ULP in gradients at |x| ~ 6e-44 with a*a*q*(...) and a*alpha*(...).  This way a
    # subnormal result is rounded once, at the end.
    # 1 - 2 ln(beta a) as c_v - 2 ln(a), c_v = 1 - 2 ln(beta) >= 1 a constant: one addition of
    # non-negative terms (the exhaustive float32 check gave 4.66 ULP with 1 - 2 ln_b - 2 ln a, two).
    ev_val = a * Group(q * a * (c_v - 2 * sp.log(a)))
    ev_grad = -a * Group(alpha * (ln_b + sp.log(a)))
    g = integrate_gradient([(a <= 1, g_in, ev_val), (None, g_out, s * a + c_lin)], a, [PARAM], constants=CONSTANTS,
                           c1=True, checks=checks, domain=dom)
    f_in, c1_val = g.pieces[0].loss, g.pieces[1].constant_value
    prove_equal(f_in, alpha * a**2 * (1 - 2 * sp.log(beta * a)) / 4, "inner piece alpha a^2 (1 - 2 ln(beta a))/4", checks, domain=dom)
    prove_equal(c1_val, alpha * (2 * sp.log(beta) + 1) / 4, "C = alpha (2 ln beta + 1)/4", checks, domain=dom)
    consts = {alpha: sp.E * beta, ln_b: sp.log(beta), c_v: 1 - 2 * sp.log(beta), q: sp.E * beta / 4}
    prove_equal(ev_grad.subs(consts), g_in.subs(alpha, sp.E * beta), "evaluation form of the inner gradient", checks, domain=dom)
    prove_zero(sp.limit(f_in, a, 0, "+"), "L(0+) = 0: a^2 ln(a) -> 0, so a = 0 is its own branch with value 0", checks)

    # float32 (and float64, below): the value above is a product of five correctly rounded results (ln a, c_v - 2 ln a,
    # a q and two products) and q's rounding, all of one sign: up to 4.66 ULP (exhaustive).  There
    # a q = m + m_l, c_v - 2 ln a = t + t_l and m t = P + P_l are error-free (TwoProd, TwoSum), and
    # a*(P + (P_l + (m_l t + m t_l))) leaves ln a, the constants and the last two roundings.
    m_h, m_l = TwoProd(a, q, 0), TwoProd(a, q, 1)
    t_h, t_l = TwoSum(c_v, -2 * sp.log(a), 0), TwoSum(c_v, -2 * sp.log(a), 1)
    p_h, p_l = TwoProd(m_h, t_h, 0), TwoProd(m_h, t_h, 1)
    ev_val_f32 = a * Group(p_h + Group(p_l + Group(m_l * t_h + m_h * t_l)))
    prove_equal(plain(ev_val_f32), plain(ev_val), "float32 value: with its error terms 0 (exact arithmetic) the "
                "evaluation form above", checks, domain=dom)

    # float64 as float32: with the plain form its value reached 4.11 ULP at (pred, target) = (-0.031083873,
    # -0.031083825), beta = 0.5, against the oracle (`refloss sweep --dtype float64`, double-double reference).
    # The value of the inner piece is also corrected by g(a) a_lo for the rounding of a = |pred - target|, which
    # its condition number (about 2) would double (a_lo = 0 where the subtraction is exact, e.g. target 0).
    inner = "logarithmic (a q, the log factor and their product error-free)"
    # The gradient -alpha a ln(beta a) has the condition number 1 + 1/ln(beta a) in a, unbounded as beta a -> 1
    # (beta near 1, a near 1): the rounding of a = |pred - target| cost float32 92 ULP at beta = 0.99959,
    # (pred, target) = (-0.99735, 0.00063) and 11 at beta = 0.976.  It is corrected by g'(a) a_lo, g'(a) =
    # -alpha (ln(beta) + ln(a) + 1), whose evaluation needs no care (it is a_lo's factor; 0 at target 0).  g' jumps
    # at the kink a = 1 (-alpha (ln(beta) + 1) inside, 0 outside), so a residual that rounds to a = 1 takes the side of
    # the exact one, a + a_lo: the linear piece where a_lo > 0 (inside, the correction had taken float32 to 2.5e6
    # ULP at beta = 0.99999982, (pred, target) = (-1.00016, -0.00016)).  Elsewhere a and a + a_lo are on one side.
    d_ev_grad = -Group(alpha * (ln_b + sp.log(a))) - alpha
    prove_equal(d_ev_grad.subs(consts), sp.diff(g_in.subs(alpha, sp.E * beta), a), "g'(a) = -alpha (ln(beta a) + 1), "
                "the gradient's correction factor", checks, domain=dom)

    def program(precision):
        return kernel(
            [
                (sp.Eq(a, 0), sp.Integer(0), sp.Integer(0), "a = 0: the limit (a^2 ln a would be 0 * -inf)"),
                (sp.Or(a < 1, sp.And(sp.Eq(a, 1), a_lo <= 0)), ev_val_f32, ev_grad, inner),
                (None, s * a + c_lin, s, "linear"),
            ],
            args=(alpha, ln_b, q, s, c_lin, c_v),
            corrected=[inner],
            corrected_gradient={inner: d_ev_grad},
        )

    x = sp.Symbol("x", real=True)
    steps = [
        g.definition_step("The designed gradient in $a = |x|$ (Zhang et al., eq. 8):"),
        Step("Its maximum on $(0, \\infty)$ is where $g'(a) = -\\alpha(\\ln(\\beta a) + 1) = 0$:", "a^*", peak_at),
        Step("", "g(a^*)", peak),
        Step("Fixing the peak to 1 gives the constraint between $\\alpha$ and $\\beta$:", alpha, alpha_val),
        Step("$g \\ge 0$ on $(0, 1]$ requires $\\beta \\le 1$, and the peak lies in $(0, 1]$ iff $\\beta \\ge 1/e$: "
             "the admissible range is $1/e \\le \\beta \\le 1$ (the paper uses $\\beta = 0.8$)."),
        *g.integration_steps(),
        g.loss_step("Focal-L1 loss (C^1; the gradient is continuous at $a = 1$):"),
        Step("**Evaluation form**: $\\ln(\\beta a) = \\ln\\beta + \\ln a$, two non-positive terms for $a \\le 1$, "
             "so neither value nor gradient cancels; $a = 0$ is a branch of its own (value and gradient 0).",
             "L_{0}(a)", ev_val),
        Step("**Float32.** There the value above is a product of five correctly rounded results and $q$'s "
             "rounding, all of one sign (up to 4.66 ULP over every float32 residual). The float32 kernel forms "
             "$a q = m + m_l$, $c_v - 2\\ln a = t + t_l$ and $m t = P + P_l$ error-free (Veltkamp/Dekker's product "
             "from split halves, Knuth's TwoSum) and computes $a\\,(P + (P_l + (m_l t + m t_l)))$.", None),
        Step("Gradients, with $\\operatorname{sign}(0) = 0$:",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Function("g")(sp.Abs(x)) * sp.sign(x)),
    ]
    return g.spec(
        NAME,
        title="Focal-L1 loss",
        formula="With a = |pred - target| and alpha = e*beta: L = alpha*a**2*(1 - 2*ln(beta*a))/4 for a <= 1, "
        "else -alpha*ln(beta)*a + C with C = alpha*(2*ln(beta) + 1)/4; 1/e <= beta <= 1.",
        references=["Y.-F. Zhang et al., Focal and Efficient IOU Loss for Accurate Bounding Box Regression, arXiv:2101.08158"],
        kernels={p: program(p) for p in ("f64", "f32")},
        constants=CONSTANTS,
        steps=steps,
        plots=[Plot("Focal-L1", [(f"beta = {bt:.3g}", {"beta": bt}) for bt in (0.3679, 0.5, 0.8, 1.0)], x_range=(-2.0, 2.0))],
        conventions="At a = 1 the logarithmic branch is used (the paper's 0 < x <= 1); the gradient is continuous. "
        "At x = 0 value and gradient are 0.",
        accuracy="ln(beta a) = ln(beta) + ln(a) with both terms non-positive; the factor a is applied last "
        "(a*((a*q)*(c_v - 2 ln a)) with c_v = 1 - 2 ln(beta), and a*(alpha*(ln_b + ln a))), so a subnormal result "
        "is rounded once; float32: a*q, c_v - 2 ln a and their product error-free (TwoProd, TwoSum), "
        "so besides ln a and the constants only the value's last two operations round; "
        "constants correctly rounded. Value and gradient are corrected for the rounding of a = |pred - target| "
        "(f + g a_lo, g + g' a_lo, a_lo its exact error): the gradient's condition number 1 + 1/ln(beta a) is "
        "unbounded as beta a -> 1 (float32 92 ULP at beta = 0.99959 before).",
    )
