"""Shared shape of the element-wise losses: L(pred, target) = f(|pred - target|).

A derivation of an element-wise loss works with the absolute residual ``a = |x|``,
``x = pred - target``: it derives f(a) piece by piece and the gradient
g(a) = f'(a).  This module turns those pieces into the kernel program, where
dL/dpred = g(a)·sign(x) and dL/dtarget = -g(a)·sign(x), with sign(0) = 0 (PyTorch
autograd's subgradient of |x| at 0).
"""
from __future__ import annotations

import sympy as sp

from .core import Branch, DerivationError, Kernel, prove_equal
from .functions import TwoSum

pred, target = sp.symbols("pred target", real=True)
x = sp.Symbol("x", real=True)  # residual pred - target
a = sp.Symbol("a", nonnegative=True)  # |x|
sgn = sp.Symbol("sgn", real=True)  # sign(x), 0 at x = 0

PRELUDE = ((x, pred - target), (a, sp.Abs(x)), (sgn, sp.sign(x)))
a_lo = sp.Symbol("a_lo", real=True)  # the rounding error of a = |pred - target|: |pred - target| - a, exactly
RESIDUAL_ERROR = ((a_lo, sgn * TwoSum(pred, -target, 1)),)


def kernel(pieces, args, prelude=(), corrected=(), corrected_gradient=None) -> Kernel:
    """Kernel program from ``pieces = [(condition on a or None, f(a), g(a), label[, rare])]``
    (``rare``: see :class:`Branch`).

    ``prelude`` adds assignments after x, a, sgn (e.g. a scaled residual used by
    several branches and their conditions).  ``corrected``: the labels of the pieces whose value
    takes the residual's rounding into account, f(a) + g(a) a_lo with a_lo the rounding error of
    a = |pred - target| (Knuth's TwoSum: 0 where the subtraction is exact, e.g. target 0): the
    value at the exact residual to first order, where the rounding of pred - target (half an ulp
    of a) would otherwise cost up to twice the value's condition number in ulps.  Only pieces
    where a is finite (g(a) a_lo is NaN at a = inf); in exact arithmetic (the proofs) a_lo is 0.
    ``corrected_gradient``: {label: g'(a)} for the pieces whose gradient is corrected likewise, g(a) + g'(a) a_lo
    (where the gradient's condition number a g'/g is large; the caller proves g' the derivative of g)."""
    corrected_gradient = corrected_gradient or {}
    unknown = (set(corrected) | set(corrected_gradient)) - {p[3] for p in pieces}
    if unknown:
        raise DerivationError(f"corrected names pieces that do not exist: {sorted(unknown)}")
    if set(corrected_gradient) - set(corrected):
        raise DerivationError("corrected_gradient: only pieces whose value is corrected (their a_lo is computed)")

    def gradient(g, label):
        return g + corrected_gradient[label] * a_lo if label in corrected_gradient else g

    branches = tuple(
        Branch(cond, {"value": f + g * a_lo if label in corrected else f, "d_pred": gradient(g, label) * sgn,
                      "d_target": -gradient(g, label) * sgn}, label, *rest)
        for cond, f, g, label, *rest in pieces
    )
    arrays = (("pred", 1, (pred,)), ("target", 1, (target,)))
    prelude = PRELUDE + (RESIDUAL_ERROR if corrected else ()) + tuple(prelude)
    return Kernel(arrays=arrays, args=tuple(args), prelude=prelude, branches=branches)


def check_gradient(f, g, where: str, checks, **kw):
    """f'(a) equals the gradient definition g(a) on one piece."""
    prove_equal(sp.diff(f, a), g, f"d/da of the loss equals the gradient definition ({where})", checks, **kw)


def check_continuity(f_left, f_right, at, what: str, checks, **kw):
    """The two pieces meet at ``a = at`` (value or slope, as ``what`` says)."""
    prove_equal(_at(f_left, at, "-"), _at(f_right, at, "+"), f"{what} continuous at a = {sp.sstr(at)}", checks, **kw)


def _at(f, point, side: str):
    """f at a = point, or its one-sided limit there where f cannot be evaluated (e.g. a^2 ln a at 0)."""
    value = f.subs(a, point)
    if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        value = sp.limit(f, a, point, side)
    return value


def _integral(g, fallback, k: int):
    """SymPy's antiderivative of g, or ``fallback`` (an evaluation form of the loss piece, whose
    derivative is then checked against g) where SymPy returns no usable real expression."""
    anti = sp.integrate(g, a)
    if not anti.has(sp.Integral, sp.I, sp.exp_polar):
        return anti
    if fallback is None:
        raise DerivationError(f"piece {k}: SymPy cannot integrate the gradient {sp.sstr(g)} (it gives "
                              f"{sp.sstr(anti)}); give the loss piece as an evaluation form, whose derivative "
                              "is then checked against the gradient")
    return fallback


def _solve(solve, k: int, g, antiderivative, at):
    """``solve()``: the integration constant's equation solved, or a DerivationError that says what to do where SymPy
    cannot take the integral's limit (a NotImplementedError from deep inside sp.limit: the integral of a^p for a real
    p is a Piecewise on p = -1, whose limit at 0 depends on the sign of p + 1)."""
    try:
        return solve()
    except NotImplementedError as err:
        unsigned = sorted(s.name for s in antiderivative.free_symbols
                          if s != a and s.is_nonnegative is None and s.is_nonpositive is None)
        hint = (f"the limit may depend on the sign of an expression in {', '.join(unsigned)}, whose symbol"
                f"{'s carry' if len(unsigned) > 1 else ' carries'} no sign assumption. Declare one (e.g. "
                f"sympy.Symbol({unsigned[0]!r}, positive=True); a range in domains= alone is not used by SymPy's "
                "integration), or write the gradient so that its integral is finite there for every value the "
                "parameters may take" if unsigned else
                "write the gradient so that SymPy can take the integral's limit there (or split the piece)")
        raise DerivationError(f"piece {k}: SymPy cannot take the limit at a = {sp.sstr(at)} of the integral "
                              f"{sp.sstr(antiderivative)} of the gradient {sp.sstr(g)} (SymPy: {err}); "
                              f"{hint}") from None


def integrate_from_zero(gradient_pieces, checks, *, antiderivatives=None, domain=None):
    """Integrate a piecewise gradient definition with L(0) = 0 and continuity.

    ``gradient_pieces = [(g_0, None), (g_1, k_1), (g_2, k_2), ...]``: g_0 holds on
    [0, k_1), g_1 on [k_1, k_2), ...  Each piece is an antiderivative plus an unknown
    constant; the first constant follows from L(0) = 0, each later one from
    continuity of L at the kink where its piece begins.  ``antiderivatives`` (optional, one
    per piece, None where absent) are used where SymPy cannot integrate a piece; ``domain``
    is passed to the checks (whose numerical fallback samples a inside each piece).  Returns
    ``[(antiderivative, constant symbol, constant value, L piece), ...]``.
    """
    out = []
    starts = [sp.Integer(0)] + [start for _, start in gradient_pieces[1:]]
    for k, (g, start) in enumerate(gradient_pieces):
        c = sp.Symbol(f"C_{k}")
        antiderivative = _integral(g, (antiderivatives or [None] * len(gradient_pieces))[k], k)
        if k == 0:
            solved = _solve(lambda: sp.solve(sp.Eq(sp.limit(antiderivative + c, a, 0, "+"), 0), c), k, g,
                            antiderivative, 0)
            if not solved:  # (a gradient such as 1/a: its integral ln a has no finite value at 0)
                raise DerivationError(f"piece 0: the integral {sp.sstr(antiderivative)} of the gradient {sp.sstr(g)} "
                                      "has no finite limit at 0, so L(0) = 0 fixes no constant (a gradient must be "
                                      "integrable from 0)")
            value = solved[0]
        else:
            previous = out[-1][3]
            solved = _solve(lambda: sp.solve(sp.Eq(_at(antiderivative + c, start, "+"), _at(previous, start, "-")), c),
                            k, g, antiderivative, start)
            if not solved:
                raise DerivationError(f"piece {k}: no constant makes L continuous at {sp.sstr(start)} (the integral "
                                      f"{sp.sstr(antiderivative)} has no finite value there)")
            value = solved[0]
        piece = sp.simplify(antiderivative + value)
        within = {a: (starts[k], starts[k + 1] if k + 1 < len(starts) else None)}
        check_gradient(piece, g, f"piece {k}", checks, domain=domain, within=within)
        if k:
            check_continuity(out[-1][3], piece, start, "L", checks, domain=domain)
        out.append((antiderivative, c, sp.simplify(value), piece))
    return out
