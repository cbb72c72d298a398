"""Huber loss with threshold delta (Huber 1964; PyTorch ``huber_loss``).

Defined by its gradient dL/da = a (a < delta), delta (a >= delta); the result is
delta * smooth_l1(beta=delta), which the derivation proves.  The integration, its claims and
the kernel come from the shared path of losses defined by their gradient
(refloss._derive.gradient, also behind refloss.design.from_gradient).
"""
import sympy as sp

from . import smooth_l1
from refloss._derive.core import LossSpec, Param, Plot, Step, prove_equal
from refloss._derive.elementwise import a
from refloss._derive.gradient import integrate_gradient

NAME = "huber"
delta = sp.Symbol("delta", positive=True)


def derive() -> LossSpec:
    checks = []
    g = integrate_gradient([(a < delta, a, a * a / 2), (None, delta, delta * (a - delta / 2))], a,
                           [Param("delta", delta, 1.0, "threshold between the quadratic and linear regions",
                                  lower=sp.Integer(0), lower_closed=False)],
                           c1=True, checks=checks)
    f_in, f_out = g.pieces[0].loss, g.pieces[1].loss
    sl1_in = a**2 / (2 * smooth_l1.beta)
    sl1_out = a - smooth_l1.beta / 2
    prove_equal(f_in, delta * sl1_in.subs(smooth_l1.beta, delta), "huber = delta * smooth_l1(beta=delta), inner", checks)
    prove_equal(f_out, delta * sl1_out.subs(smooth_l1.beta, delta), "huber = delta * smooth_l1(beta=delta), outer", checks)

    x = sp.Symbol("x", real=True)
    steps = [
        g.definition_step(),
        *g.integration_steps(),
        g.loss_step("Huber loss:"),
        Step("It is $\\delta$ times Smooth L1 with $\\beta = \\delta$ (proved piece by piece):",
             "L(a)", sp.Symbol("delta") * sp.Function("\\mathrm{SmoothL1}_{\\beta=\\delta}")(a)),
        Step("Gradients, with $\\operatorname{sign}(0) = 0$:",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Piecewise((x, sp.Abs(x) < delta), (delta * sp.sign(x), True))),
    ]
    return g.spec(
        NAME,
        title="Huber loss",
        formula="L = 0.5 * x**2 if |x| < delta else delta * (|x| - 0.5 * delta), x = pred - target.",
        references=["P. J. Huber, Robust Estimation of a Location Parameter, Ann. Math. Statist. 35 (1964)",
                    "PyTorch torch.nn.functional.huber_loss (delta)"],
        labels=("quadratic", "linear"),
        steps=steps,
        plots=[Plot("Huber", [(f"delta = {d}", {"delta": d}) for d in (0.25, 0.5, 1.0, 2.0)])],
        conventions="At |x| = delta the linear branch is used (PyTorch); the gradient is continuous there.",
        accuracy="The derived expressions, at most three correctly rounded operations after x = pred - target.",
    )
