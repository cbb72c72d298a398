"""Shared shape of the classification losses on (logits, target(s)), element-wise.

Targets may be soft, in [0, 1].  ``Sigmoid`` and ``Softplus`` (refloss/_derive/functions.py)
are printed in forms that never overflow: logits of any magnitude give finite values.
"""
import math
from typing import NamedTuple

import sympy as sp

from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Plot
from refloss._derive.functions import Group, RealAbs, TwoProd


class Inputs(NamedTuple):
    """The logit x and the target y of a loss, under the input names of its public signature."""

    x: sp.Symbol
    y: sp.Symbol
    ARRAYS: tuple
    INVALID: sp.Basic
    INPUT_RANGES: dict
    DOMAIN: dict

    def doc(self, expr):
        """``expr`` for a doc step: the inputs printed as $x$ (logits) and $y$ (target), as the pages name them."""
        return expr.subs({self.x: sp.Symbol("x", real=True), self.y: sp.Symbol("y", real=True)})

    def kernel(self, branches, args, checks):
        return kernel_from_forms(self.ARRAYS, branches, args, invalid=self.INVALID, checks=checks, domain=self.DOMAIN)


def inputs(target: str) -> Inputs:
    """(logits, ``target``): ``targets`` for bce_with_logits and sigmoid_focal_loss (PyTorch's and
    torchvision's names), ``target`` for qfl_loss and varifocal_loss (DESIGN.md's contract)."""
    x, y = sp.Symbol("logits", real=True), sp.Symbol(target, real=True)
    return Inputs(x, y, (("logits", 1, (x,)), (target, 1, (y,))), sp.Or(y < 0, y > 1), {target: (0.0, 1.0)},
                  {x: (-4, 4), y: (0, 1)})


x, y, ARRAYS, INVALID, INPUT_RANGES, DOMAIN = TARGETS = inputs("targets")
doc = TARGETS.doc
logits_kernel = TARGETS.kernel


def exp_scaled(k, z, factor):
    """``factor * e^(k z)`` for the far tails of the hard targets: k z split error-free (TwoProd),
    e^(k z) rounded once, as the square of e^(k z / 2) with the factor multiplied in between
    (e^(k z) alone is subnormal long before the product is), times |1 + the low word of k z|.
    (|1 + lo| for e^lo: the same where e^(k z / 2) is not 0, |lo| below 2^-42 there; where |k z|
    reaches 2^54 lo may be below -1, and 1 + lo gave the float64 kernels' zeros there the wrong
    sign: QFL's d/dtarget at beta 1e-3, logits from 2^62, a review's finding)"""
    half = sp.exp(TwoProd(k, z, 0) / 2)
    return Group(Group(factor * half) * RealAbs(1 + TwoProd(k, z, 1))) * half


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


#: the tiny-target branch of the float64 kernels (QFL, sigmoid focal loss): soft targets below 2^-64 at logits
#: below -64, where e^x < 2^-92
TINY_TARGET, TINY_LOGIT = sp.Integer(2)**-64, sp.Integer(-64)


def tiny_target_parts(x, y, exact: bool):
    """(ln y, q, rho, c, L) for the tiny-target forms: q = e^x/y, rho = (1 - y) q, c = 1 + e^x and L = ln(c)/y, the
    softplus(x)/y that CE/y = -x + L holds (CE = -x y + ln c).  ``exact``: c and L as defined (for the proofs);
    else the kernels' forms, c = 1 and L = q, which drop factors 1 + O(e^x) (below 2^-92 at logits below -64:
    ln(1 + e)/e = 1 - e/2 + ...), q as e^(x - ln y) (exp of one argument: e^x/y with e^x subnormal, logits below
    -708, kept few digits), all in double-double with ~100-bit exp and log (EvalAccurate)."""
    lny = sp.log(y)
    q = sp.exp(Group(x - lny))
    rho = q * (1 - y)
    if exact:
        c = 1 + sp.exp(x)
        return lny, q, rho, c, sp.log(c) / y
    return lny, q, rho, sp.Integer(1), q


def signed_exp(a, b):
    """sign(b) e^(a + ln|b|): a product e^a b whose factor e^a may underflow (or overflow) where the product does
    not, rounded once: the power |D|^beta or (1 - p_t)^gamma of a tiny target taken as e^(beta ln|D|) times what
    multiplies it (m^gamma of m ~ 1e-170 underflowed before |x| ~ 1e20 multiplied it).  As the square of
    e^(s/2), s = a + ln|b|: refloss/_dd_functions.py's exp takes float64's exp of the high word alone beyond
    |s| = 708 (a result near the subnormal range kept the low word's error, 13 ULP64 at 1e-308), and e^(s/2) is
    normal wherever e^s is a float."""
    half = sp.exp(Group((a + sp.log(RealAbs(b))) / 2))
    return Group(sp.sign(b) * half) * half  # (Group: SymPy would make e^(s/2) e^(s/2) e^s again)
