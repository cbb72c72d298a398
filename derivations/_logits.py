"""Shared shape of the classification losses on (logits, targets), element-wise.

Targets may be soft, in [0, 1].  ``Sigmoid`` and ``Softplus`` (refloss/_derive/functions.py)
are printed in forms that never overflow: logits of any magnitude give finite values.
"""
import math

import sympy as sp

from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Plot

x = sp.Symbol("logits", real=True)
y = sp.Symbol("targets", real=True)
ARRAYS = (("logits", 1, (x,)), ("targets", 1, (y,)))
INVALID = sp.Or(y < 0, y > 1)
INPUT_RANGES = {"targets": (0.0, 1.0)}
DOMAIN = {x: (-4, 4), y: (0, 1)}


def doc(expr):
    """``expr`` for a doc step: the inputs printed as $x$ (logits) and $y$ (targets), as the pages name them."""
    return expr.subs({x: sp.Symbol("x", real=True), y: sp.Symbol("y", real=True)})


def logits_kernel(branches, args, checks):
    return kernel_from_forms(ARRAYS, branches, args, invalid=INVALID, checks=checks, domain=DOMAIN)


def p_t_path(target: float):
    """p_t in (0, 1) -> (logit giving that p_t for this hard target, tangent d logit/d p_t)."""
    def path(pt):
        logit = math.log(pt / (1 - pt))
        sign = 1.0 if target == 1.0 else -1.0
        return (sign * logit, target), (sign / (pt * (1 - pt)), 0.0)
    return path


def p_t_plot(title: str, curves, note: str = "") -> Plot:
    """Loss and its derivative against p_t for a hard target 1; ``note`` ends the caption."""
    return Plot(title, [(label, {"params": params, "path": p_t_path(1.0)}) for label, params in curves],
                x_range=(0.02, 0.98), xlabel="p_t (probability of the true class)", grad_title="derivative dL/dp_t",
                caption=f"Hard target 1, p_t = sigmoid(logit). {note}".rstrip())
