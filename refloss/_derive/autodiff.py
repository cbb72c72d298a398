"""Kernel programs whose gradients are ``sympy.diff`` of a differentiation form.

Each branch gives an evaluation form of the value (what the kernel computes, chosen for
accuracy) and a differentiation form (the definition, possibly with ``Detach``-ed
factors for peers' backward conventions); the value forms are proved equal to the
differentiation forms with the convention functions replaced by plain SymPy.
"""
from __future__ import annotations

import sympy as sp

from .core import Branch, Kernel, prove_equal
from .functions import plain


def kernel_from_forms(arrays, branches, args, prelude=(), invalid=None, checks=None, domain=None,
                      grad_arrays=None, numeric_proof=False, in_gradients=(), proved=(),
                      reciprocal=False) -> Kernel:
    """``branches = [(condition or None, value form, differentiation form, label[, rare])]`` (rare: see Branch); the
    gradients are taken w.r.t. the symbols of ``grad_arrays`` (default: every array).
    ``numeric_proof=True``: prove the forms equal at 60 digits only (no ``sympy.simplify``).
    ``in_gradients = ((expr, sym), ...)``: after differentiating, ``expr`` (a differentiation
    form) is replaced by ``sym`` (a prelude symbol holding its accurate evaluation form, proved
    equal to it) wherever it appears undifferentiated in the gradients, e.g. the argument of an
    outer function applied to an inner loss.  ``proved = ((expr, equal), ...)``: identities
    proved elsewhere (and recorded there), applied to both forms before the proof, so that
    an accurate evaluation of a subexpression (in the value, or evaluated inside the
    differentiation form, as CIoU's alpha) does not make the proof harder.  A differentiation
    form ``sympy.nan`` makes every gradient of its branch NaN (a point where the loss has a value
    but no derivative); its value form is then not proved against it.  ``reciprocal``: see
    :class:`~refloss._derive.core.Kernel`."""
    inputs = tuple(s for n, _, syms in arrays for s in syms if grad_arrays is None or n in grad_arrays)
    out = []
    for cond, value, diff_form, label, *rare in branches:  # (rare: see Branch)
        if checks is not None and value.is_finite is not False and not value.has(sp.nan) and diff_form is not sp.nan:
            prove_equal(plain(value.xreplace(dict(proved))), plain(diff_form.xreplace(dict(proved))),
                        f"evaluation form equals the definition ({label or 'all'})",
                        checks, domain=domain, numeric=numeric_proof)
        grads = {f"d_{s.name}": (sp.nan if diff_form is sp.nan else sp.diff(diff_form, s).xreplace(dict(in_gradients)))
                 for s in inputs}
        outputs = {"value": value, **grads}
        for sym, expr in prelude:  # reuse the prelude's values inside the branches
            outputs = {k: g.xreplace({expr: sym}) for k, g in outputs.items()}
            cond = cond.xreplace({expr: sym}) if cond is not None else None
        out.append(Branch(cond, outputs, label, *rare))
    return Kernel(arrays=tuple(arrays), args=tuple(args), prelude=tuple(prelude), branches=tuple(out), invalid=invalid,
                  grad_arrays=grad_arrays, reciprocal=reciprocal)
