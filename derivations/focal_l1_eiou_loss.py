"""Focal-L1 applied to the EIoU loss: Focal-EIoU as the first version of the paper combined
them (Zhang et al., arXiv:2101.08158 v1), L = L_f(L_EIoU).

The Focal-L1 profile L_f (derivations/focal_l1.py, alpha = e beta, 1/e <= beta <= 1) takes
the EIoU loss value as its argument x >= 0; the gradient is the chain rule
L_f'(L_EIoU) * grad L_EIoU, with L_f'(x) = -alpha x ln(beta x) for x <= 1 and -alpha ln(beta)
beyond.  The paper's v2 replaced this by the IoU^gamma weight (focal_eiou_loss), noting that
near x = 0 both L_EIoU and L_f' are small and their product starves the gradient of the
high-quality boxes; v1 is offered so that its users can reproduce it.
"""
import sympy as sp

from . import _boxes as B
from . import eiou_loss as E
from . import focal_l1 as F
from refloss._derive.core import Step, Variant, prove_equal
from refloss._derive.functions import HAND_RULES, Eval64, HandDiff, RealAbs, TMax, TMin
from .iou_loss import EPS

NAME = "focal_l1_eiou_loss"
x_e = sp.Symbol("x_e", nonnegative=True)  # the EIoU loss value, computed once
# what the figures show (beta = 0.8, the default)
SLIDE_NOTE = ("Focal-L1 of the EIoU loss keeps a non-zero derivative where the boxes do not overlap "
              "($L_{\\mathrm{EIoU}} > 0$ there), while 1 - IoU is flat; as the boxes come to coincide (dy = 0, "
              "x -> 0) its gradient falls to 0 with $L_{\\mathrm{EIoU}}$, the starving of high-quality boxes that "
              "the paper's v2 replaced.")
ASPECT_NOTE = ("The curves have the shape of the EIoU loss's, flattened near 0: at height 1 the gradient passes "
               "through 0 continuously at width 1 (identical boxes), where the derivative of 1 - IoU jumps; it bends "
               "where $L_{\\mathrm{EIoU}} = 1$ (near widths 0.4 and 2.6 for height 1), from the logarithmic to the "
               "linear branch.")


# L_f'(x) at the EIoU value, evaluated in float64 in the float32 kernel where |ln(beta x)| < 1/8: at beta = 1 it
# is -alpha x ln(x), 0 at x = 1, and float32's ln of a rounded x near 1 lost its digits (4e-3 of the gradient
# scale at x = 0.99994; found by the 10^9-point sweep).  Elsewhere x's few ulps of error are at most 80 ulps of
# ln(beta x) (never at the default beta = 0.8: |ln(beta x)| >= 0.22 for x <= 1)
# ln(min(x, 1)): the branch is taken on float32's x, the float64 slope at an x of the linear branch (where float32's
# rounded x <= 1 but x > 1) is the log branch's at x = 1, -alpha x ln(beta), the linear slope up to ~1e-7 (beta = 1:
# 0, as the linear branch; ln(x) > 0 had given 2.3e-5 where the gradient is 0, found by the sweep of the fix)
slope = Eval64(-4 * F.q * x_e * (F.ln_b + sp.log(TMin(x_e, 1))),
               TMax(RealAbs(F.ln_b + sp.log(x_e)) - sp.Rational(1, 8), x_e - 1))  # (x > 1: the linear branch)
_RULE = 18  # (keys 1-4 are _boxes', 15 inner_iou_loss's, 16, 19 alpha_iou_loss's, 17 obb_angle_loss's, 20-22 shape's)
HAND_RULES[_RULE] = lambda s: slope * sp.diff(B.stabilised_quotients(E.diff_form), s)


def _focal(x, log_x):
    """L_f(x) for 0 < x <= 1 and x > 1, in the constants of focal_l1 (ln(beta x) = ln_b + ln x)."""
    return F.q * x * x * (1 - 2 * (F.ln_b + log_x)), F.s * x + F.c_lin


def derive():
    checks = []
    inner_v, outer_v = _focal(E.value, sp.log(E.value))
    inner_d, outer_d = _focal(E.diff_form, sp.log(E.diff_form))
    a = sp.Symbol("a", positive=True)
    prove_equal(slope.args[0].subs(x_e, a).replace(TMin, lambda u, v: u), sp.diff(_focal(a, sp.log(a))[0], a),
                "the hand rule's slope -4 q x (ln_b + ln x) is d/dx of q x^2 (1 - 2 (ln_b + ln x))", checks)
    inner_d = HandDiff(inner_d, sp.Integer(_RULE))
    k = B.box_kernel(
        [(sp.Eq(x_e, 0), sp.Integer(0), sp.Integer(0),
          "identical boxes: L_EIoU = 0, the limit of x^2 ln x is 0, and so is the gradient"),
         (x_e <= 1, inner_v, inner_d, "logarithmic: L_EIoU <= 1"),
         (None, outer_v, outer_d, "linear: L_EIoU > 1")],
        args=(B.eps, F.ln_b, F.q, F.s, F.c_lin), prelude=((x_e, E.value),), checks=checks,
        numeric_proof=True,  # simplify does not finish on the composition; eiou_loss proves its own forms
        in_gradients=((E.diff_form, x_e),))  # L_f'(x) at the accurate x (1 - IoU not by subtraction)
    x = sp.Symbol("x", nonnegative=True)
    return B.box_spec(
        NAME, "Focal-L1 EIoU loss (Focal-EIoU v1)",
        "L = L_f(L_EIoU): Focal-L1 with x = the EIoU loss, alpha = e*beta: alpha*x**2*(1 - 2*ln(beta*x))/4 for "
        "x <= 1, else -alpha*ln(beta)*x + alpha*(2*ln(beta) + 1)/4; 1/e <= beta <= 1. The first version of "
        "Focal-EIoU; the paper's v2 (focal_eiou_loss) weights by IoU^gamma instead.",
        ["Y.-F. Zhang et al., Focal and Efficient IOU Loss for Accurate Bounding Box Regression, arXiv:2101.08158 (v1)"],
        [EPS, F.PARAM], {p: k for p in ("f64", "f32")},
        E.doc_steps("L_{\\mathrm{EIoU}}") + [
            Step("With the EIoU loss as the argument $x$ of Focal-L1 ([focal_l1](focal_l1.md), $\\alpha = e\\beta$; "
                 "`x_e` in the kernel branches below):", "L_f(x)", sp.Piecewise(
                     (F.alpha * x**2 * (1 - 2 * sp.log(F.beta * x)) / 4, x <= 1),
                     (-F.alpha * sp.log(F.beta) * x + F.alpha * (2 * sp.log(F.beta) + 1) / 4, True))),
            Step("", "L", "L_f(L_{\\mathrm{EIoU}})"),
            Step("and its gradient by the chain rule, with $L_f'(x) = -\\alpha x \\ln(\\beta x)$ for $x \\le 1$ and "
                 "$-\\alpha \\ln \\beta$ beyond:", "\\nabla L", "L_f'(L_{\\mathrm{EIoU}})\\, \\nabla L_{\\mathrm{EIoU}}")],
        [B.slide_plot("Focal-L1 EIoU loss", note=SLIDE_NOTE)],
        B.CONVENTIONS + " At L_EIoU = 0 (identical boxes) value and gradient are 0; at L_EIoU = 1 the logarithmic "
        "branch is used (Focal-L1's convention; the gradient is continuous there).",
        "ln(beta x) = ln(beta) + ln(x), both non-positive for x <= 1; constants correctly rounded.", checks,
        constants=F.CONSTANTS, aspect={"note": ASPECT_NOTE},
        variants=[Variant("focal_eiou_v1_v2", "the paper's v2, the IoU^0.5-weighted EIoU loss", loss="focal_eiou_loss")])
