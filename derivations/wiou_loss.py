"""Wise-IoU loss (Tong et al., Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing
Mechanism, arXiv:2301.10051) on xyxy boxes: v1 by default, v2 and v3 as options.

v1: L = R_WIoU L_IoU, L_IoU = 1 - IoU, R_WIoU = exp(rho^2/(W_g^2 + H_g^2)*), the star detaching the
enclosing box's squared diagonal: it changes the gradient (the diagonal is a constant in it), not
the value; ``enclosing_grad=True`` differentiates it.  v2 multiplies by (L_IoU*/mean)^gamma, v3 by
r = beta/(delta alpha^(beta - delta)), beta = L_IoU*/mean; both factors are constants in the
gradient (the star).  ``iou_mean``, the running mean of L_IoU the paper's reference code keeps as
hidden training state, is an explicit argument (refloss.wiou_update_mean updates it).
"""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Constant, Param, Step, Variant, prove_equal
from refloss._derive.functions import Detach, Group, PowG, plain
from .iou_loss import EPS
from refloss._info import Properties

NAME = "wiou_loss"
version = sp.Symbol("version", positive=True)
mean = sp.Symbol("iou_mean", positive=True)
gamma = sp.Symbol("gamma", positive=True)
alpha = sp.Symbol("alpha", positive=True)
delta = sp.Symbol("delta", positive=True)
eg = sp.Symbol("enclosing_grad", nonnegative=True)

l_iou = sp.Symbol("l_iou", nonnegative=True)  # L_IoU = 1 - IoU, evaluated once (prelude)
beta = l_iou / mean
# The focusing factor of every version as one product, with per-call constants that switch its parts
# off (exactly: a factor multiplied by a 0/1 gate gave 0 * inf = NaN where the unused part overflows,
# and a sum of gated parts rounded r - 1 + 1 in float32): r = beta^g2 * exp(s3 ln L + c3 - L la3),
# g2 = gamma for v2 (else 0: beta^0 = 1 even where beta overflows), and for v3 (else 0) s3 = 1,
# c3 = delta ln alpha - ln delta - ln m, la3 = ln(alpha)/m, so that
# exp(ln L + c3 - L la3) = beta/(delta alpha^(beta - delta)) without forming beta alpha^(delta - beta)
# (inf * 0 where beta or the power overflows): the logarithms are finite for L > 0 (L = 0 is its own
# branch, where v2, v3 are 0) and the one infinite term L la3 gives the limits 0 (alpha > 1), inf (alpha < 1)
s1, s3, g2, c3, la3 = sp.symbols("s1 s3 g2 c3 la3", real=True)
CONSTANTS = [
    Constant(s1, (2 - version) * (3 - version) / 2, "1 for v1, else 0"),
    Constant(s3, (version - 1) * (version - 2) / 2, "1 for v3, else 0"),
    Constant(g2, (version - 1) * (3 - version) * gamma, "gamma for v2, else 0"),
    Constant(c3, (version - 1) * (version - 2) / 2 * (delta * sp.log(alpha) - sp.log(delta) - sp.log(mean)),
             "delta ln alpha - ln delta - ln iou_mean for v3, else 0"),
    Constant(la3, (version - 1) * (version - 2) / 2 * sp.log(alpha) / mean, "ln(alpha)/iou_mean for v3, else 0"),
]
# (Group: SymPy would turn exp(s3 ln L + ...) into L^s3 exp(...))
factor = PowG(beta, g2) * sp.exp(Group(s3 * sp.log(l_iou) + c3 - l_iou * la3))
c2_diff = eg * B.c2 + (1 - eg) * Detach(B.c2)

PARAMS = [
    EPS,
    Param("version", version, 1, "1, 2 or 3: WIoU v1 (no focusing), v2 (monotonic focusing (L_IoU/iou_mean)^gamma) "
          "or v3 (non-monotonic focusing beta/(delta alpha^(beta - delta)))", lower=sp.Integer(1), upper=sp.Integer(3),
          kind="int"),
    Param("iou_mean", mean, 1.0, "running mean of L_IoU = 1 - IoU (v2, v3): training state made explicit (update it "
          "with refloss.wiou_update_mean; the reference code starts it at 1)", lower=sp.Integer(0), lower_closed=False,
          upper=sp.Integer(1)),
    Param("gamma", gamma, 0.5, "exponent of the v2 focusing factor (the paper: 0.5)", lower=sp.Integer(0),
          lower_closed=False),
    Param("alpha", alpha, 1.9, "alpha of the v3 focusing factor (the paper: 1.9)", lower=sp.Integer(0), lower_closed=False),
    Param("delta", delta, 3.0, "delta of the v3 focusing factor (the paper: 3)", lower=sp.Integer(0), lower_closed=False),
    Param("enclosing_grad", eg, False, "differentiate the enclosing box's squared diagonal in R_WIoU (True), or treat it "
          "as a constant as the paper's * (False)", kind="bool"),
]

CONVENTIONS = (B.CONVENTIONS + " The paper's * (detach) is a constant in the gradient: W_g^2 + H_g^2 in R_WIoU (unless "
               "enclosing_grad=True) and the v2/v3 focusing factors (functions of L_IoU and iou_mean). "
               "iou_mean is an argument, not hidden state: the reference code (Instinct323/wiou) and the peers built "
               "on it keep the running mean in the loss object, updated before the loss of each training batch is "
               "formed, and a run resumed without it starts again at 1. NaN when both boxes are the same point (zero "
               "diagonal, eps = 0).")


def derive():
    checks = []
    v3 = {s3: 1, g2: 0, c3: delta * sp.log(alpha) - sp.log(delta) - sp.log(mean), la3: sp.log(alpha) / mean}
    prove_equal(plain(factor.xreplace(v3)), beta / (delta * alpha ** (beta - delta)),
                "the evaluation form of the factor equals v3's beta/(delta alpha^(beta - delta)) with v3's constants "
                "(L > 0)", checks, domain={l_iou: (sp.Rational(1, 100), 1), mean: (sp.Rational(1, 100), 1),
                                           alpha: (sp.Rational(1, 2), 3), delta: (sp.Rational(1, 2), 4)}, numeric=True)
    prove_equal(plain(factor.xreplace({s3: 0, g2: gamma, c3: 0, la3: 0})), beta**gamma,
                "... and v2's beta^gamma with v2's constants, 1 with v1's", checks,
                domain={l_iou: (sp.Rational(1, 100), 1), mean: (sp.Rational(1, 100), 1), gamma: (sp.Rational(1, 10), 3)},
                numeric=True)
    v1_value = sp.exp(B.rho2 / B.c2) * B.one_minus_iou
    v1_diff = sp.exp(B.rho2 / c2_diff) * (1 - B.iou)
    # l_iou again in the kernel; Group keeps beta = L/mean one quotient (flattened, the gradient formed
    # (num/mean)/den, which overflowed for a tiny mean where beta does not)
    f = factor.xreplace({l_iou: Group(B.one_minus_iou)})
    k = B.box_kernel(
        [(sp.Eq(l_iou, 0), s1 * v1_value, s1 * v1_diff, "L_IoU = 0: v2 and v3 are 0 (beta = 0), v1 is v1"),
         (None, f * v1_value, Detach(f) * v1_diff, "r R_WIoU L_IoU")],
        args=(B.eps, version, mean, gamma, alpha, delta, eg, s1, s3, g2, c3, la3), prelude=((l_iou, B.one_minus_iou),),
        checks=checks, numeric_proof=True)
    Lv1, R, r, b = sp.symbols("L_{v1} R_{WIoU} r beta")
    steps = B.DISTANCE_STEPS + [
        Step("The distance attention, with the enclosing box's squared diagonal detached ($^*$: a constant in the "
             "gradient, as in the paper; `enclosing_grad=True` differentiates it), and WIoU v1:", R,
             "\\exp\\left(\\frac{\\rho^2}{\\left(c_w^2 + c_h^2 + \\epsilon\\right)^*}\\right), \\qquad "
             "L_{v1} = R_{WIoU} \\left(1 - \\mathrm{IoU}\\right)"),
        Step("The outlier degree, from $L_{IoU} = 1 - \\mathrm{IoU}$ and its running mean $\\overline{L_{IoU}}$ "
             "(`iou_mean`, an argument), detached:", b, "\\frac{L_{IoU}^*}{\\overline{L_{IoU}}}"),
        Step("v2 (`version=2`) multiplies $L_{v1}$ by the monotonic focusing factor $\\beta^\\gamma$, v3 (`version=3`) by "
             "the non-monotonic one ($r = 1$ for v1; a constant in the gradient; evaluated as "
             "$\\exp(\\ln L_{IoU} - \\ln \\overline{L_{IoU}} - \\ln\\delta + \\delta\\ln\\alpha - "
             "L_{IoU}\\ln\\alpha/\\overline{L_{IoU}})$, which has the limits 0 and $\\infty$ where $\\beta$ or "
             "$\\alpha^{\\beta - \\delta}$ overflows; all versions are one product $\\beta^{g_2} e^{\\dots}$ whose "
             "unused parts per-call constants set to exactly 1; at $L_{IoU} = 0$ (`l_iou` in the kernel) the v2 and v3 "
             "losses are 0):", r,
             "\\frac{\\beta}{\\delta\\, \\alpha^{\\beta - \\delta}}"),
        Step("The loss:", "L", "r\\, R_{WIoU} \\left(1 - \\mathrm{IoU}\\right)"),
    ]
    return B.box_spec(
        NAME, "Wise-IoU loss", "L = r * exp(rho^2/(cw^2 + ch^2 + eps)*) * (1 - IoU), * detached (a constant in the "
        "gradient): r = 1 (v1), (L_IoU*/iou_mean)^gamma (v2), beta/(delta alpha^(beta - delta)) with "
        "beta = L_IoU*/iou_mean (v3); iou_mean the running mean of L_IoU = 1 - IoU (refloss.wiou_update_mean).",
        ["Z. Tong et al., Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing Mechanism, arXiv:2301.10051"],
        PARAMS, {p: k for p in ("f64", "f32")}, steps,
        [B.slide_plot("Wise-IoU loss", note=SLIDE_NOTE, grad_title="gradient (diagonal constant)")], CONVENTIONS, "",
        checks, constants=CONSTANTS, aspect={"note": ASPECT_NOTE},
        variants=[Variant("wiou_enclosing_grad", "enclosing_grad=True (W_g^2 + H_g^2 differentiated, not detached as "
                          "the paper's *)", params={"enclosing_grad": True})],
                          properties=Properties(true_derivative={"enclosing_grad": True, "version": 1}))


SLIDE_NOTE = ("WIoU v1 is 1 - IoU scaled by exp(rho^2/c^2) (at most e): where the boxes do not overlap 1 - IoU = 1 and "
              "the loss is exp(rho^2/c^2), which keeps a gradient toward the target. The gradient holds the diagonal c "
              "constant (the paper's *), so it is not the derivative of the drawn value there.")
ASPECT_NOTE = "With equal centres R_WIoU = 1 and WIoU v1 equals 1 - IoU (the dashed curve lies on the height 0.5 curve)."
