"""Binary cross-entropy on logits (PyTorch ``binary_cross_entropy_with_logits``).

L = -[y ln sigma(x) + (1 - y) ln(1 - sigma(x))] = softplus(x) - x y, evaluated as
max(x, 0) + log1p(exp(-|x|)) - x y: finite for any logit, no log(0).
dL/dx = sigma(x) - y, dL/dy = -x.
"""
import sympy as sp

from . import _logits as C
from refloss._derive.core import LossSpec, Step, prove_equal
from refloss._derive.functions import LogitCE, plain

NAME = "bce_with_logits"


def derive() -> LossSpec:
    checks = []
    x, y = C.x, C.y
    textbook = -(y * sp.log(1 / (1 + sp.exp(-x))) + (1 - y) * sp.log(1 - 1 / (1 + sp.exp(-x))))
    value = LogitCE(x, y)
    prove_equal(plain(value), textbook, "y softplus(-x) + (1 - y) softplus(x) is the cross-entropy", checks,
                domain=C.DOMAIN)
    for arg, name in ((x, "x"), (y, "y")):
        prove_equal(plain(sp.diff(value, arg)), sp.diff(textbook, arg), f"the evaluated dL/d{name} is the derivative",
                    checks, domain=C.DOMAIN)
    k = C.logits_kernel([(None, value, value, "")], args=(), checks=checks)
    return LossSpec(
        name=NAME, title="Binary cross-entropy with logits",
        formula="L = y*softplus(-x) + (1-y)*softplus(x) = -[y ln sigmoid(x) + (1-y) ln(1-sigmoid(x))] for logits x "
        "and (soft) targets y in [0, 1].",
        references=["PyTorch torch.nn.functional.binary_cross_entropy_with_logits"], params=[], constants=[],
        kernels={p: k for p in ("f64", "f32")},
        steps=[Step("Cross-entropy of $p = \\sigma(x)$ for the logit $x$ against the target $y$:", "L",
                    C.doc(textbook)),
               Step("evaluated as a sum of non-negative terms, with softplus(z) = max(z, 0) + log1p(exp(-|z|)) "
                    "(no overflow, no $\\log 0$, no cancellation for confident logits):", "L",
                    C.doc(y * sp.Symbol("\\mathrm{softplus}(-x)") + (1 - y) * sp.Symbol("\\mathrm{softplus}(x)"))),
               Step("Gradients, the first as a difference of two terms of which one vanishes for hard targets:",
                    "\\frac{\\partial L}{\\partial x}",
                    C.doc((1 - y) * sp.Symbol("\\sigma(x)") - y * sp.Symbol("\\sigma(-x)"))),
               Step("", "\\frac{\\partial L}{\\partial y}", C.doc(-x))],
        plots=[C.p_t_plot("BCE", [("BCE", {})], "The loss is -ln p_t, its derivative -1/p_t: steepest for badly "
                          "classified examples (p_t near 0).")],
        conventions="Differentiable everywhere. Targets outside [0, 1] are invalid input.",
        accuracy="softplus as max(x, 0) + log1p(exp(-|x|)); sigmoid as 1/(1 + exp(-x)) for x >= 0 and "
        "exp(x)/(1 + exp(x)) below, so nothing overflows.",
        checks=checks, input_ranges=C.INPUT_RANGES, family="classification")
