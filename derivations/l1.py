"""L1 loss |pred - target| (PyTorch ``l1_loss``), for completeness."""
import sympy as sp

from refloss._derive.core import LossSpec, Plot, Step, prove_equal
from refloss._derive.elementwise import a, kernel


NAME = "l1"


def derive() -> LossSpec:
    checks = []
    prove_equal(sp.diff(a, a), 1, "dL/da = 1", checks)
    x = sp.Symbol("x", real=True)
    return LossSpec(
        name=NAME,
        title="L1 loss",
        formula="L = |x|, x = pred - target.",
        references=["PyTorch torch.nn.functional.l1_loss"],
        params=[],
        constants=[],
        kernels={p: kernel([(None, a, sp.Integer(1), "")], args=()) for p in ("f64", "f32")},
        steps=[Step("The loss and its gradient, with $\\operatorname{sign}(0) = 0$ (PyTorch autograd):", "L", sp.Abs(x)),
               Step("", "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}", sp.sign(x))],
        plots=[Plot("L1", [("L1", {})])],
        conventions="The gradient at x = 0 is 0 (sign(0) = 0, as PyTorch autograd).",
        accuracy="Exact up to the rounding of x = pred - target.",
        checks=checks,
        family="elementwise",
    )
