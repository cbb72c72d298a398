"""Huber loss with threshold delta (Huber 1964; PyTorch ``huber_loss``).

Defined by its gradient dL/da = a (a < delta), delta (a >= delta); the result is
delta * smooth_l1(beta=delta), which the derivation proves.
"""
import sympy as sp

from . import smooth_l1
from refloss._derive.core import LossSpec, Param, Plot, Step, prove_equal
from refloss._derive.elementwise import a, integrate_from_zero, kernel

NAME = "huber"
delta = sp.Symbol("delta", positive=True)


def derive() -> LossSpec:
    checks = []
    (anti_in, c0, c0_val, f_in), (anti_out, c1, c1_val, f_out) = integrate_from_zero(
        [(a, None), (delta, delta)], checks
    )
    prove_equal(f_in, a**2 / 2, "inner piece is a^2/2", checks)
    prove_equal(f_out, delta * (a - delta / 2), "outer piece is delta (a - delta/2)", checks)
    sl1_in = a**2 / (2 * smooth_l1.beta)
    sl1_out = a - smooth_l1.beta / 2
    prove_equal(f_in, delta * sl1_in.subs(smooth_l1.beta, delta), "huber = delta * smooth_l1(beta=delta), inner", checks)
    prove_equal(f_out, delta * sl1_out.subs(smooth_l1.beta, delta), "huber = delta * smooth_l1(beta=delta), outer", checks)

    def program(precision):
        return kernel(
            [(a < delta, a * a / 2, a, "quadratic"), (None, delta * (a - delta / 2), delta, "linear")],
            args=(delta,),
        )

    x = sp.Symbol("x", real=True)
    steps = [
        Step("Gradient definition in $a = |x|$:", "\\frac{dL}{da}", sp.Piecewise((a, a < delta), (delta, True))),
        Step("Inner piece with $L(0) = 0$:", "L_{<}(a)", anti_in + c0),
        Step("", c0, c0_val),
        Step("Outer piece, continuous at $a = \\delta$:", "L_{\\ge}(a)", anti_out + c1),
        Step("", c1, c1_val),
        Step("Huber loss:", "L(a)", sp.Piecewise((f_in, a < delta), (f_out, True))),
        Step("It is $\\delta$ times Smooth L1 with $\\beta = \\delta$ (proved piece by piece):",
             "L(a)", sp.Symbol("delta") * sp.Function("\\mathrm{SmoothL1}_{\\beta=\\delta}")(a)),
        Step("Gradients, with $\\operatorname{sign}(0) = 0$:",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Piecewise((x, sp.Abs(x) < delta), (delta * sp.sign(x), True))),
    ]
    return LossSpec(
        name=NAME,
        title="Huber loss",
        formula="L = 0.5 * x**2 if |x| < delta else delta * (|x| - 0.5 * delta), x = pred - target.",
        references=["P. J. Huber, Robust Estimation of a Location Parameter, Ann. Math. Statist. 35 (1964)",
                    "PyTorch torch.nn.functional.huber_loss (delta)"],
        params=[Param("delta", delta, 1.0, "threshold between the quadratic and linear regions",
                      lower=sp.Integer(0), lower_closed=False)],
        constants=[],
        kernels={p: program(p) for p in ("f64", "f32")},
        steps=steps,
        plots=[Plot("Huber", [(f"delta = {d}", {"delta": d}) for d in (0.25, 0.5, 1.0, 2.0)])],
        conventions="At |x| = delta the linear branch is used (PyTorch); the gradient is continuous there.",
        accuracy="The derived expressions, at most three correctly rounded operations after x = pred - target.",
        checks=checks,
        family="elementwise",
    )
