"""Smooth L1 for general beta (Girshick, Fast R-CNN, arXiv:1504.08083).

Defined by its gradient: dL/da = a/beta for a = |x| < beta, 1 for a >= beta.
Integrating with L(0) = 0 and continuity at a = beta gives
L = a^2/(2 beta) (a < beta), a - beta/2 (a >= beta); beta -> 0 is L1.
The integration, its claims and the kernel come from the shared path of losses defined by
their gradient (refloss._derive.gradient, also behind refloss.design.from_gradient).
"""
import sympy as sp

from refloss._derive.core import LossSpec, Param, Plot, Step, prove_zero
from refloss._derive.elementwise import a
from refloss._derive.functions import Group
from refloss._derive.gradient import integrate_gradient

NAME = "smooth_l1"
beta = sp.Symbol("beta", positive=True)


def derive() -> LossSpec:
    checks = []
    # Evaluation forms: the derived expressions, (a*a) * 0.5 / beta and a - 0.5*beta.
    # beta = 0 is allowed in the kernel: the condition a < 0 is never true, so the
    # L1 branch is taken and no division by beta happens.
    # Evaluation form of the quadratic piece: a * (a/beta) / 2, evaluated as (a/2) * (a/beta): a/2 is exact
    # (for a normal a) and a/beta is rounded once, so a result in float32's subnormal range is rounded
    # once at the end.  The textbook a*a/(2 beta) rounds a*a first: a*a below 2^-126 keeps few bits, and
    # dividing that by beta < 1 magnified its rounding error (6.75 ULP at beta = 1/9, |x| = 2.7e-21).
    g = integrate_gradient([(a < beta, a / beta, a * Group(a / beta) / 2), (None, 1, a - beta / 2)], a,
                           [Param("beta", beta, 1.0, "width of the quadratic region; 0 gives L1", lower=sp.Integer(0))],
                           c1=True, checks=checks)
    f_out = g.pieces[1].loss
    prove_zero(sp.limit(f_out, beta, 0, "+") - a, "beta -> 0+ gives L1: a - beta/2 -> a", checks)
    prove_zero(sp.limit(sp.diff(g.pieces[0].loss, a), a, 0, "+"), "gradient 0 at x = 0 for beta > 0", checks)

    x = sp.Symbol("x", real=True)
    steps = [
        g.definition_step(),
        *g.integration_steps(),
        g.loss_step("Smooth L1 for general $\\beta$ (PyTorch's `smooth_l1_loss(beta=...)`):"),
        Step("The gradient is continuous at $a = \\beta$ (both sides equal 1), so the loss is $C^1$. "
             "As $\\beta \\to 0^+$ the quadratic region vanishes and the outer piece tends to the L1 loss:",
             "\\lim_{\\beta\\to 0^+} L(a)", sp.limit(f_out, beta, 0, "+")),
        Step("Gradients with respect to the inputs, with $\\operatorname{sign}(0) = 0$ (PyTorch autograd):",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Piecewise((x / beta, sp.Abs(x) < beta), (sp.sign(x), True))),
    ]
    return g.spec(
        NAME,
        title="Smooth L1 loss",
        formula="L = 0.5 * x**2 / beta if |x| < beta else |x| - 0.5 * beta, x = pred - target; beta = 0 gives |x|.",
        references=["R. Girshick, Fast R-CNN, arXiv:1504.08083", "PyTorch torch.nn.functional.smooth_l1_loss (beta)"],
        labels=("quadratic", "linear"),
        steps=steps,
        plots=[Plot("Smooth L1", [(f"beta = {b:.3g}", {"beta": b}) for b in (0.0, 1 / 9, 0.5, 1.0, 2.0)])],
        conventions="At |x| = beta the linear branch is used (PyTorch's |x| < beta test); the gradient is "
        "continuous there. At x = 0 with beta = 0 the gradient is 0 (sign(0) = 0, as PyTorch autograd).",
        accuracy="x = pred - target is rounded once; the quadratic piece is evaluated as (a/2)*(a/beta) (a/2 exact, "
        "a/beta rounded once, then the product: a subnormal result is rounded once, where a*a/(2 beta) rounded a*a "
        "first), the linear piece as a - beta/2; no cancellation except a - beta/2 for a just above beta, where "
        "the result is at least beta/2.",
    )
