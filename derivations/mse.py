"""Squared error (pred - target)^2 (PyTorch ``mse_loss``), for completeness."""
import sympy as sp

from refloss._derive.core import LossSpec, Plot, Step, prove_equal
from refloss._derive.elementwise import a, kernel

NAME = "mse"


def derive() -> LossSpec:
    checks = []
    prove_equal(sp.diff(a**2, a), 2 * a, "dL/da = 2a", checks)
    x = sp.Symbol("x", real=True)
    return LossSpec(
        name=NAME,
        title="Squared error (MSE)",
        formula="L = x**2, x = pred - target (PyTorch mse_loss; no 1/2 factor).",
        references=["PyTorch torch.nn.functional.mse_loss"],
        params=[],
        constants=[],
        kernels={p: kernel([(None, a * a, 2 * a, "")], args=()) for p in ("f64", "f32")},
        steps=[Step("The loss and its gradient:", "L", x**2),
               Step("", "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}", 2 * x)],
        plots=[Plot("MSE", [("MSE", {})], x_range=(-2.0, 2.0))],
        conventions="Differentiable everywhere.",
        accuracy="x*x and 2x: one rounding after x = pred - target.",
        checks=checks,
        family="elementwise",
    )
