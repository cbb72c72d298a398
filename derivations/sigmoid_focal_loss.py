"""Sigmoid focal loss (Lin et al., RetinaNet, arXiv:1708.02002), soft targets allowed.

With p = sigma(x), p_t = p y + (1 - p)(1 - y), alpha_t = alpha y + (1 - alpha)(1 - y):
L = alpha_t (1 - p_t)^gamma CE(x, y), CE = softplus(x) - x y.  1 - p_t is evaluated as
y sigma(-x) + (1 - y) sigma(x), a sum of non-negative terms (no cancellation as p_t -> 1).
alpha = None (or negative, as torchvision) disables the alpha_t weighting.
"""
import sympy as sp

from . import _logits as C
from refloss._derive.core import LossSpec, Param, Step, prove_equal
from refloss._derive.functions import LogitCE, OneMinusPt, PowG, plain

NAME = "sigmoid_focal_loss"
alpha = sp.Symbol("alpha", real=True)
gamma = sp.Symbol("gamma", nonnegative=True)


def derive() -> LossSpec:
    checks = []
    x, y = C.x, C.y
    p = 1 / (1 + sp.exp(-x))
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    ce = LogitCE(x, y)
    m = OneMinusPt(x, y)
    prove_equal(plain(m), 1 - p_t, "1 - p_t = y sigma(-x) + (1 - y) sigma(x)", checks, domain=C.DOMAIN)
    for arg, name in ((x, "x"), (y, "y")):
        prove_equal(plain(sp.diff(m, arg)), sp.diff(1 - p_t, arg), f"the evaluated d(1 - p_t)/d{name} is the derivative",
                    checks, domain=C.DOMAIN)
    weighted = alpha_t * ce * PowG(m, gamma)
    unweighted = ce * PowG(m, gamma)
    k = C.logits_kernel([(alpha < 0, unweighted, unweighted, "alpha None or negative: no alpha_t weighting"),
                         (None, weighted, weighted, "alpha_t weighting")], args=(alpha, gamma), checks=checks)
    return LossSpec(
        name=NAME, title="Sigmoid focal loss",
        formula="L = alpha_t * (1 - p_t)**gamma * CE(x, y), p = sigmoid(x), p_t = p*y + (1-p)*(1-y), "
        "alpha_t = alpha*y + (1-alpha)*(1-y); alpha=None or negative: no alpha_t (as torchvision).",
        references=["T.-Y. Lin et al., Focal Loss for Dense Object Detection, arXiv:1708.02002",
                    "torchvision.ops.sigmoid_focal_loss"],
        params=[Param("alpha", alpha, 0.25, "weight of the positive class; None or negative: no weighting",
                      kind="optional", none_value=-1.0),
                Param("gamma", gamma, 2.0, "focusing exponent; 0 gives (weighted) BCE", lower=sp.Integer(0))],
        constants=[], kernels={pr: k for pr in ("f64", "f32")},
        steps=[Step("Focal loss (eq. 5 of the paper, with soft targets as torchvision) of the logit $x$ against the "
                    "target $y$:", "L",
                    sp.Symbol("\\alpha_t") * (1 - sp.Symbol("p_t")) ** gamma * sp.Symbol("\\mathrm{CE}")),
               Step("", "p_t", C.doc(p_t)), Step("", "\\alpha_t", C.doc(alpha_t)),
               Step("$1 - p_t$ is evaluated as a sum of non-negative terms, with a sigmoid that never overflows:",
                    "1 - p_t", C.doc(y * sp.Symbol("\\sigma(-x)") + (1 - y) * sp.Symbol("\\sigma(x)"))),
               Step("and the cross-entropy as in bce_with_logits. The gradients with respect to logits and targets "
                    "are SymPy derivatives of this form; where 1 - p_t underflows to 0 the factor "
                    "gamma (1 - p_t)^(gamma-1) is taken as 0 (the limit of its product with d(1 - p_t), also 0).")],
        plots=[C.p_t_plot("Focal loss vs BCE", [(f"gamma = {g:g}", {"alpha": -1.0, "gamma": g})
                                                 for g in (0.0, 0.5, 1.0, 2.0, 5.0)],
                           "alpha_t is off (alpha = None), so gamma = 0 is BCE; larger gamma flattens the loss of "
                           "well-classified examples (p_t near 1).")],
        conventions="Differentiable everywhere for gamma >= 1; for 0 < gamma < 1 the gradient is infinite where "
        "1 - p_t = 0 exactly. Targets outside [0, 1] are invalid input.",
        accuracy="1 - p_t without cancellation; cross-entropy and sigmoid without overflow.",
        checks=checks, input_ranges=C.INPUT_RANGES, family="classification")
