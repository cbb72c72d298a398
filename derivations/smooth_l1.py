"""Smooth L1 for general beta (Girshick, Fast R-CNN, arXiv:1504.08083).

Defined by its gradient: dL/da = a/beta for a = |x| < beta, 1 for a >= beta.
Integrating with L(0) = 0 and continuity at a = beta gives
L = a^2/(2 beta) (a < beta), a - beta/2 (a >= beta); beta -> 0 is L1.
"""
import sympy as sp

from refloss._derive.core import LossSpec, Param, Plot, Step, prove_equal, prove_zero
from refloss._derive.elementwise import a, integrate_from_zero, kernel

NAME = "smooth_l1"
beta = sp.Symbol("beta", positive=True)


def derive() -> LossSpec:
    checks = []
    g_in, g_out = a / beta, sp.Integer(1)
    (anti_in, c0, c0_val, f_in), (anti_out, c1, c1_val, f_out) = integrate_from_zero(
        [(g_in, None), (g_out, beta)], checks
    )
    prove_equal(f_in, a**2 / (2 * beta), "inner piece is a^2/(2 beta)", checks)
    prove_equal(f_out, a - beta / 2, "outer piece is a - beta/2", checks)
    prove_zero(sp.diff(f_in, a).subs(a, beta) - sp.diff(f_out, a).subs(a, beta), "C^1 at a = beta", checks)
    prove_zero(sp.limit(f_out, beta, 0, "+") - a, "beta -> 0+ gives L1: a - beta/2 -> a", checks)
    prove_zero(sp.limit(sp.diff(f_in, a), a, 0, "+"), "gradient 0 at x = 0 for beta > 0", checks)

    # Evaluation form: the derived expressions, (a*a) * 0.5 / beta and a - 0.5*beta.
    # beta = 0 is allowed in the kernel: the condition a < 0 is never true, so the
    # L1 branch is taken and no division by beta happens.
    def program(precision):
        return kernel(
            [(a < beta, a * a / (2 * beta), a / beta, "quadratic"), (None, a - beta / 2, sp.Integer(1), "linear")],
            args=(beta,),
        )

    x = sp.Symbol("x", real=True)
    steps = [
        Step("The gradient definition with respect to the absolute residual $a = |x|$, $x = \\mathrm{pred} - \\mathrm{target}$:",
             "\\frac{dL}{da}", sp.Piecewise((g_in, a < beta), (g_out, True))),
        Step("Integrate the inner piece; the constant follows from $L(0) = 0$:", "L_{<}(a)", anti_in + c0),
        Step("", c0, c0_val),
        Step("Integrate the outer piece; the constant follows from continuity at $a = \\beta$:", "L_{\\ge}(a)", anti_out + c1),
        Step("", c1, c1_val),
        Step("Smooth L1 for general $\\beta$ (PyTorch's `smooth_l1_loss(beta=...)`):", "L(a)",
             sp.Piecewise((f_in, a < beta), (f_out, True))),
        Step("The gradient is continuous at $a = \\beta$ (both sides equal 1), so the loss is $C^1$. "
             "As $\\beta \\to 0^+$ the quadratic region vanishes and the outer piece tends to the L1 loss:",
             "\\lim_{\\beta\\to 0^+} L(a)", sp.limit(f_out, beta, 0, "+")),
        Step("Gradients with respect to the inputs, with $\\operatorname{sign}(0) = 0$ (PyTorch autograd):",
             "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
             sp.Piecewise((x / beta, sp.Abs(x) < beta), (sp.sign(x), True))),
    ]
    return LossSpec(
        name=NAME,
        title="Smooth L1 loss",
        formula="L = 0.5 * x**2 / beta if |x| < beta else |x| - 0.5 * beta, x = pred - target; beta = 0 gives |x|.",
        references=["R. Girshick, Fast R-CNN, arXiv:1504.08083", "PyTorch torch.nn.functional.smooth_l1_loss (beta)"],
        params=[Param("beta", beta, 1.0, "width of the quadratic region; 0 gives L1", lower=sp.Integer(0))],
        constants=[],
        kernels={p: program(p) for p in ("f64", "f32")},
        steps=steps,
        plots=[Plot("Smooth L1", [(f"beta = {b:.3g}", {"beta": b}) for b in (0.0, 1 / 9, 0.5, 1.0, 2.0)])],
        conventions="At |x| = beta the linear branch is used (PyTorch's |x| < beta test); the gradient is "
        "continuous there. At x = 0 with beta = 0 the gradient is 0 (sign(0) = 0, as PyTorch autograd).",
        accuracy="Both branches are the derived expressions: x = pred - target is rounded once, then at most "
        "three correctly rounded operations; no cancellation except a - beta/2 for a just above beta, where "
        "the result is at least beta/2.",
        checks=checks,
        family="elementwise",
    )
