"""Shared shape of the element-wise losses: L(pred, target) = f(|pred - target|).

A derivation of an element-wise loss works with the absolute residual ``a = |x|``,
``x = pred - target``: it derives f(a) piece by piece and the gradient
g(a) = f'(a).  This module turns those pieces into the kernel program, where
dL/dpred = g(a)·sign(x) and dL/dtarget = -g(a)·sign(x), with sign(0) = 0 (PyTorch
autograd's subgradient of |x| at 0).
"""
from __future__ import annotations

import sympy as sp

from .core import Branch, Kernel, prove_equal

pred, target = sp.symbols("pred target", real=True)
x = sp.Symbol("x", real=True)  # residual pred - target
a = sp.Symbol("a", nonnegative=True)  # |x|
sgn = sp.Symbol("sgn", real=True)  # sign(x), 0 at x = 0

PRELUDE = ((x, pred - target), (a, sp.Abs(x)), (sgn, sp.sign(x)))


def kernel(pieces, args, prelude=()) -> Kernel:
    """Kernel program from ``pieces = [(condition on a or None, f(a), g(a), label)]``.

    ``prelude`` adds assignments after x, a, sgn (e.g. a scaled residual used by
    several branches and their conditions)."""
    branches = tuple(
        Branch(cond, {"value": f, "d_pred": g * sgn, "d_target": -g * sgn}, label)
        for cond, f, g, label in pieces
    )
    arrays = (("pred", 1, (pred,)), ("target", 1, (target,)))
    return Kernel(arrays=arrays, args=tuple(args), prelude=PRELUDE + tuple(prelude), branches=branches)


def check_gradient(f, g, where: str, checks, **kw):
    """f'(a) equals the gradient definition g(a) on one piece."""
    prove_equal(sp.diff(f, a), g, f"d/da of the loss equals the gradient definition ({where})", checks, **kw)


def check_continuity(f_left, f_right, at, what: str, checks, **kw):
    """The two pieces meet at ``a = at`` (value or slope, as ``what`` says)."""
    prove_equal(f_left.subs(a, at), f_right.subs(a, at), f"{what} continuous at a = {sp.sstr(at)}", checks, **kw)


def integrate_from_zero(gradient_pieces, checks):
    """Integrate a piecewise gradient definition with L(0) = 0 and continuity.

    ``gradient_pieces = [(g_0, None), (g_1, k_1), (g_2, k_2), ...]``: g_0 holds on
    [0, k_1), g_1 on [k_1, k_2), ...  Each piece is an antiderivative plus an unknown
    constant; the first constant follows from L(0) = 0, each later one from
    continuity of L at the kink where its piece begins.  Returns
    ``[(antiderivative, constant symbol, constant value, L piece), ...]``.
    """
    out = []
    for k, (g, start) in enumerate(gradient_pieces):
        c = sp.Symbol(f"C_{k}")
        antiderivative = sp.integrate(g, a)
        if k == 0:
            value = sp.solve(sp.Eq(sp.limit(antiderivative + c, a, 0, "+"), 0), c)[0]
        else:
            previous = out[-1][3]
            value = sp.solve(sp.Eq((antiderivative + c).subs(a, start), previous.subs(a, start)), c)[0]
        piece = sp.simplify(antiderivative + value)
        check_gradient(piece, g, f"piece {k}", checks)
        if k:
            check_continuity(out[-1][3], piece, start, "L", checks)
        out.append((antiderivative, c, sp.simplify(value), piece))
    return out
