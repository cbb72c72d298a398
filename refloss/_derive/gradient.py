"""Losses defined by their gradient: the one code path of the project's Smooth L1, Huber,
Balanced L1 and Focal-L1 derivations and of :func:`refloss.design.from_gradient`.

The method: the gradient g(a) = dL/da is defined piecewise in the absolute residual
a = |pred - target| >= 0, the pieces separated by breakpoints 0 < k_1 < k_2 < ... (expressions
of the parameters).  Every piece is integrated with SymPy; the first constant follows from
L(0) = 0, each later one from continuity of L at the breakpoint where its piece begins.

:func:`integrate_gradient` does that and checks, recording each claim:

- the breakpoints increase (from SymPy's assumptions on the parameters, else numerically);
- on every piece, d/da of the integrated loss equals the gradient definition;
- L is continuous at every breakpoint;
- the gradient is continuous there (the loss is C^1) where claimed (``c1=True``); otherwise
  whether it is, found and recorded either way;
- every evaluation form given for a piece (the expression the kernel computes, chosen for
  accuracy: it may use kernel constants, prelude symbols and be a Piecewise of several
  forms) equals the integrated piece.

The :class:`GradientLoss` it returns builds the rest: the doc steps of the method, the default
kernel program (one branch per piece and evaluation form; integration constants become kernel
constants computed once per call in 40-digit decimal arithmetic), and the
:class:`~refloss._derive.core.LossSpec` (:meth:`GradientLoss.spec`), which also checks that the
kernel programs, whether default or the derivation's own (per precision, e.g. a truncated series),
compute the derived loss and gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.core.relational import GreaterThan, LessThan, StrictGreaterThan, StrictLessThan

from .core import (Constant, DerivationError, LossSpec, Plot, Step, _evaluator, _random_points, _rational,
                   precision_bits, prove_positive, prove_zero, simplifies_to_zero)
from .elementwise import a, integrate_from_zero, kernel, pred, target

__all__ = ["Piece", "GradientLoss", "integrate_gradient"]

# names a parameter or constant cannot take: the kernels' own variables and the loss call's keywords
RESERVED = frozenset({"x", "a", "sgn", "pred", "target", "out", "i", "n", "v", "bad", "divisor", "d_pred",
                      "d_target", "g_pred", "g_target", "ctx", "math", "Decimal", "localcontext", "njit",
                      "prange", "reduction", "dtype", "device", "validate", "prec", "last", "got", "MAX_EMAX",
                      "MIN_EMIN", "DivisionByZero", "InvalidOperation", "Overflow"})


@dataclass(frozen=True)
class Piece:
    """One piece of the gradient definition and its integral."""

    index: int
    condition: sp.Basic | None  # a < k or a <= k; None: the last piece ("otherwise")
    start: sp.Expr  # where it begins: 0, or the previous piece's breakpoint
    end: sp.Expr | None  # its breakpoint k (None for the last piece)
    gradient: sp.Expr  # g(a), the definition
    antiderivative: sp.Expr
    constant: sp.Symbol  # C_<index>
    constant_value: sp.Expr
    loss: sp.Expr  # antiderivative + constant value, simplified
    form: sp.Expr | None = None  # the evaluation form (proved equal to ``loss``); may be a Piecewise


def _parse_condition(cond, k: int, last: bool):
    """(breakpoint, closed) of ``a < k`` (closed False) or ``a <= k`` (True); (None, None) for None."""
    if cond is None:
        if not last:
            raise ValueError(f"piece {k}: only the last condition may be None (otherwise)")
        return None, None
    if last and cond is not None:
        raise ValueError(f"piece {k}: the last condition must be None (otherwise), got {cond}; add a last piece "
                         "(None, gradient) for the residuals beyond the last breakpoint")
    if cond in (sp.true, sp.false, True, False):
        raise ValueError(f"piece {k}: the condition is always {bool(cond)} (check the symbol's assumptions)")
    if not isinstance(cond, (StrictLessThan, LessThan, StrictGreaterThan, GreaterThan)):
        raise ValueError(f"piece {k}: a condition must be 'variable < breakpoint' or 'variable <= breakpoint', "
                         f"got {cond}")
    if cond.lts == a and a not in cond.gts.free_symbols:
        return cond.gts, isinstance(cond, (LessThan, GreaterThan))
    raise ValueError(f"piece {k}: a condition must bound the variable from above by an expression of the "
                     f"parameters ('variable < breakpoint' or 'variable <= breakpoint'), got {cond}")


def _sampling_domain(params) -> dict:
    """Where the proofs' numerical fallback samples each parameter: inside its domain."""
    out = {}
    for p in params:
        lo, hi = p.lower, p.upper
        if lo is not None and hi is not None:
            out[p.symbol] = (lo + (hi - lo) / 100, hi - (hi - lo) / 100)
        elif lo is not None:
            out[p.symbol] = (lo + sp.Rational(1, 10), lo + 3)
        elif hi is not None:
            out[p.symbol] = (hi - 3, hi - sp.Rational(1, 10))
        else:
            out[p.symbol] = (-3, 3)
    return out


def _edge_domains(params, domain: dict) -> list:
    """Sampling domains near the edges of the parameters' domains (each parameter without a domain of the caller's:
    just above its lower bound, or far above it; likewise below an upper bound), for claims that must hold for every
    admitted value and were shown numerically in the middle of the domains only."""
    near, far = {}, {}
    for p in params:
        if p.symbol in domain:
            continue
        lo, hi = p.lower, p.upper
        if lo is not None and hi is not None:
            span = hi - lo
            near[p.symbol], far[p.symbol] = (lo + span / 10**6, lo + span / 10**3), (hi - span / 10**3, hi - span / 10**6)
        elif lo is not None:
            near[p.symbol], far[p.symbol] = (lo + sp.Rational(1, 10**6), lo + sp.Rational(1, 10**3)), (lo + 10**3, lo + 10**6)
        elif hi is not None:
            near[p.symbol], far[p.symbol] = (hi - sp.Rational(1, 10**3), hi - sp.Rational(1, 10**6)), (hi - 10**6, hi - 10**3)
    return [d for d in (near, far) if d]


def _substitute(expr, defs: dict, keep=frozenset()):
    """``expr`` with the definitions substituted until none is left (except those in ``keep``)."""
    defs = {s: e for s, e in defs.items() if s not in keep}
    for _ in range(len(defs) + 1):
        new = expr.xreplace(defs)
        if new == expr:
            return expr
        expr = new
    raise DerivationError(f"the definitions {defs} refer to each other in a cycle")


def _forms(form) -> list:
    """[(expression, condition or None)] of an evaluation form (a Piecewise gives several)."""
    if not isinstance(form, sp.Piecewise):
        return [(form, None)]
    out = [(e, None if c == sp.true else c) for e, c in form.args]
    if out[-1][1] is not None:
        raise ValueError(f"an evaluation form given as a Piecewise must end with (expression, True): {form}")
    return out


def _zero_at_zero(expr) -> bool:
    """Whether each term of the sum ``expr`` is 0 where a = 0 (so that the printed sum is exactly 0 there)."""
    return all(_finite_at_zero(t) and sp.sympify(t).subs(a, 0) == 0 for t in sp.Add.make_args(sp.sympify(expr)))


def _finite_at_zero(expr) -> bool:
    """Whether ``expr`` (of a and the parameters) is finite where a = 0, as written (0 log 0 is not)."""
    try:
        at = sp.sympify(expr).subs(a, 0)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return not at.has(sp.nan, sp.zoo, sp.oo, -sp.oo) and at.is_finite is not False


def _decimal_printable(expr) -> bool:
    """Whether the 40-digit decimal printer (kernel constants) can compute ``expr``."""
    allowed = (sp.Symbol, sp.Rational, sp.Add, sp.Mul, sp.Pow, sp.exp, sp.log, sp.core.numbers.Exp1)
    return all(isinstance(node, allowed) for node in sp.preorder_traversal(expr))


@dataclass
class GradientLoss:
    """A loss integrated from its piecewise gradient definition (see the module docstring)."""

    pieces: tuple
    params: list  # [core.Param, ...]
    constants: list  # the derivation's own kernel constants [core.Constant, ...] (definitions)
    definitions: dict  # other symbols evaluation forms use (e.g. a kernel's prelude): symbol -> expression
    c1_claimed: bool
    smooth: tuple  # per breakpoint: whether the gradient is continuous there
    checks: list
    domain: dict = field(default_factory=dict)

    # -- the derived loss --------------------------------------------------------------------
    @property
    def breakpoints(self) -> tuple:
        return tuple(p.end for p in self.pieces[:-1])

    @property
    def expr(self) -> sp.Piecewise:
        """L(a) as a Piecewise in the toolkit's ``a``."""
        return sp.Piecewise(*[(p.loss, p.condition if p.condition is not None else True) for p in self.pieces])

    @property
    def gradient(self) -> sp.Piecewise:
        """dL/da as a Piecewise: the definition."""
        return sp.Piecewise(*[(p.gradient, p.condition if p.condition is not None else True) for p in self.pieces])

    @property
    def integration_constants(self) -> dict:
        return {p.constant: p.constant_value for p in self.pieces}

    def expand(self, expr):
        """``expr`` with every definition, kernel constant and integration constant substituted."""
        defs = {**self.definitions, **{c.symbol: c.expr for c in self.constants}, **self.integration_constants}
        return _substitute(sp.sympify(expr), defs)

    def within(self, piece: Piece) -> dict:
        """``prove_zero``'s ``within``: a sampled inside the piece."""
        return {a: (piece.start, piece.end)}

    # -- doc steps ---------------------------------------------------------------------------
    def interval(self, piece: Piece) -> str:
        """The piece's interval in LaTeX, e.g. ``0 \\le a < \\beta``."""
        le, lt = "\\le", "<"
        if piece.index == 0:
            left = f"0 {le} a"
        else:
            prev = self.pieces[piece.index - 1]
            left = f"{sp.latex(prev.end)} {lt if prev.condition.rel_op == '<=' else le} a"
        if piece.end is None:
            return left
        return f"{left} {le if piece.condition.rel_op == '<=' else lt} {sp.latex(piece.end)}"

    def definition_step(self, text: str | None = None) -> Step:
        return Step(text or "The gradient definition in the absolute residual $a = |x|$, "
                    "$x = \\mathrm{pred} - \\mathrm{target}$:", "\\frac{dL}{da}", self.gradient)

    def integration_steps(self, show=None) -> list:
        """Each piece integrated, and its constant from L(0) = 0 or continuity (``show``: how the
        constant's value is displayed, e.g. rewritten with a parameter)."""
        steps = []
        for p in self.pieces:
            why = ("$L(0) = 0$ fixes the constant" if p.index == 0
                   else f"continuity at $a = {sp.latex(p.start)}$ fixes the constant")
            text = (f"Integrate on ${self.interval(p)}$; {why}:" if len(self.pieces) > 1
                    else f"Integrate; {why}:")
            steps += [Step(text, f"L_{{{p.index}}}(a)", p.antiderivative + p.constant),
                      Step("", p.constant, show(p.constant_value) if show else p.constant_value)]
        return steps

    def loss_step(self, text: str | None = None, expr=None) -> Step:
        return Step(text or "The loss:", "L(a)", self.expr if expr is None else expr)

    def smoothness_step(self) -> Step | None:
        """What the checks found at the breakpoints (None without breakpoints)."""
        if not self.breakpoints:
            return None
        where = ", ".join(f"$a = {sp.latex(k)}$" for k in self.breakpoints)
        if all(self.smooth):
            return Step(f"The gradient is continuous at {where}: the loss is $C^1$.")
        jumps = ", ".join(f"$a = {sp.latex(k)}$" for k, s in zip(self.breakpoints, self.smooth) if not s)
        return Step(f"The loss is continuous at {where}, but its gradient jumps at {jumps}: it is not $C^1$ there.")

    def form_steps(self) -> list:
        """The evaluation forms given, each proved equal to its piece."""
        return [Step(f"**Evaluation form** of $L_{{{p.index}}}$ (proved equal to it):", f"L_{{{p.index}}}(a)", p.form)
                for p in self.pieces if p.form is not None]

    def input_gradient_step(self) -> Step:
        xs = sp.Symbol("x", real=True)
        def term(g):  # g(|x|) sign(x), with |x| sign(x) written x
            return sp.expand(g.subs(a, sp.Abs(xs)) * sp.sign(xs)).subs(sp.Abs(xs) * sp.sign(xs), xs)

        rhs = sp.Piecewise(*[(term(p.gradient), p.condition.subs(a, sp.Abs(xs)) if p.condition is not None else True)
                             for p in self.pieces])
        return Step("Gradients with respect to the inputs, with $\\operatorname{sign}(0) = 0$ (PyTorch autograd):",
                    "\\frac{\\partial L}{\\partial \\mathrm{pred}} = -\\frac{\\partial L}{\\partial \\mathrm{target}}",
                    rhs)

    def steps(self) -> list:
        """The default derivation page: definition, integration, loss, smoothness, forms, gradients."""
        smooth = self.smoothness_step()
        return ([self.definition_step()] + self.integration_steps() + [self.loss_step()]
                + ([smooth] if smooth else []) + self.form_steps() + [self.input_gradient_step()])

    # -- kernel ------------------------------------------------------------------------------
    def kernel_constants(self) -> list:
        """The integration constants the default kernel takes as arguments: those that are not
        zero, not replaced by an evaluation form, and computable in decimal arithmetic."""
        out = []
        for p in self.pieces:
            used = p.form is None or p.constant in p.form.free_symbols
            if used and p.constant_value != 0 and _decimal_printable(p.constant_value):
                out.append(Constant(p.constant, p.constant_value, f"integration constant of piece {p.index}"))
        return out

    def kernel(self, labels=None):
        """The default kernel program: one branch per piece (and per part of a Piecewise evaluation
        form); the value is the evaluation form or, without one, antiderivative + C_k; the
        gradient is the definition."""
        consts = {c.symbol for c in self.kernel_constants()}
        inline = {p.constant: p.constant_value for p in self.pieces if p.constant not in consts}
        branches = []
        for p in self.pieces:
            label = labels[p.index] if labels else f"piece {p.index}"
            if p.form is not None:
                forms = _forms(p.form)
            elif p.constant in consts:
                forms = [(p.antiderivative + p.constant, None)]
            else:
                forms = [(p.loss, None)]
            for j, (value, cond) in enumerate(forms):
                if cond is None:
                    full = p.condition
                else:
                    full = cond if p.condition is None else sp.And(p.condition, cond)
                sub_label = label if len(forms) == 1 else f"{label}, form {j}"
                branches.append((full, value.xreplace(inline), p.gradient, sub_label))
        if not all(_zero_at_zero(v) and _finite_at_zero(g) for c, v, g, _ in branches[:1]):
            # a = 0 (pred = target) first where the first piece's value is not 0 there term by term, as printed, or its
            # gradient not finite (a log(a), a gradient 1/sqrt(a), log(a^2 + k^2) - log(k^2)): L(0) = 0 by construction
            # and the gradient g(0) sign(0) = 0, as everywhere (the forms as written gave NaN at pred = target, a mean's
            # d_target NaN with it, and -3.7e-9 in float32 for a sum of logs: a probe, 2026-12-07)
            branches.insert(0, (sp.Eq(a, 0), sp.Integer(0), sp.Integer(0), "a = 0: L(0) = 0, gradient 0"))
        used = set().union(*(v.free_symbols for _, v, _, _ in branches))
        args = tuple(p.symbol for p in self.params) + tuple(c.symbol for c in self.kernel_constants() if c.symbol in used)
        return kernel(branches, args=args)

    def check_kernels(self, kernels: dict, constants: list, checks: list, n_params: int = 2) -> None:
        """Each kernel program (per precision) computes the derived loss and gradient: run with
        60-digit arithmetic at points inside every piece and at the breakpoints, on both sides of
        x = 0, for the defaults and ``n_params`` random parameter points, it agrees to a relative
        2^-p (p the precision's significand bits: below one rounding; a deliberate approximation
        such as a truncated series must stay below it)."""
        import random

        defs = {c.symbol: c.expr for c in constants}
        syms = [a] + [p.symbol for p in self.params]
        derived = [(_evaluator(self.expand(p.loss), syms), _evaluator(self.expand(p.gradient), syms))
                    for p in self.pieces]
        points = [{p.symbol: sp.Rational(str(p.default)) for p in self.params}]
        points += _random_points([p.symbol for p in self.params], {**_sampling_domain(self.params), **self.domain},
                                 random.Random(4321), n_params)
        for prec, kern in kernels.items():
            tol = sp.Rational(1, 2 ** precision_bits(prec))
            n = 0
            for pt in points:
                # (numerically, evalf's subs: an exact xreplace simplified log((W + eps)^W / eps^W) at random rationals
                # W, eps and never returned -- the Wing loss's constant)
                values = {s: sp.N(_substitute(s, defs), 60, subs=pt) for s in kern.args}
                for a_val in self._kernel_points(pt):
                    piece = self._piece_at(a_val, pt)
                    want_v, want_g = (f({a: a_val, **pt}) for f in derived[piece.index])
                    for sign in (1, -1):
                        inputs = {pred: a_val, target: sp.Integer(0)} if sign > 0 else {pred: sp.Integer(0), target: a_val}
                        got = _run(kern, {**values, **inputs})
                        for out, want in (("value", want_v), ("d_pred", sign * want_g), ("d_target", -sign * want_g)):
                            if abs(got[out] - want) > tol * abs(want) + sp.Float(10) ** -50:
                                raise DerivationError(
                                    f"{prec} kernel program: {out} at a = {sp.N(a_val, 17)} ({'x > 0' if sign > 0 else 'x < 0'}), "
                                    f"params {pt}: {sp.N(got[out], 17)} but the derived loss gives {sp.N(want, 17)} "
                                    f"(piece {piece.index})")
                        n += 1
            checks.append((f"the {prec} kernel program computes the derived loss and gradient at {n} points "
                           f"(60 digits; relative difference below 2^-{precision_bits(prec)})",
                           "numerically, 60 digits"))

    def _piece_at(self, a_val, pt) -> Piece:
        """The piece whose condition holds first at a = a_val (the kernels' branch order)."""
        for p in self.pieces:
            if p.condition is None or bool(p.condition.xreplace({a: a_val}).xreplace(pt)):
                return p
        raise AssertionError("the last piece has no condition")

    def _kernel_points(self, pt) -> list:
        """Rational residuals a inside every piece and at each breakpoint, for the parameters ``pt``."""
        out = []
        for p in self.pieces:
            start = _rational(self.expand(p.start).xreplace(pt))
            if p.end is not None:
                end = _rational(self.expand(p.end).xreplace(pt))
                out += [start + (end - start) * f for f in (sp.Rational(1, 10**6), sp.Rational(1, 8),
                                                            sp.Rational(1, 2), sp.Rational(7, 8))]
                out.append(end)
            else:
                scale = max(start, sp.Integer(1))
                out += [start + scale * f for f in (sp.Rational(1, 10**6), sp.Rational(1, 2), 2, 16)]
        return out

    # -- the spec ----------------------------------------------------------------------------
    def spec(self, name: str, *, title: str, formula: str | None = None, kernels: dict | None = None,
             constants: list | None = None, steps: list | None = None, plots: list | None = None,
             references: list = (), conventions: str | None = None, accuracy: str | None = None,
             variants: list = (), labels=None, libm: bool = True) -> LossSpec:
        """The LossSpec of this loss (family "elementwise", kinks at the breakpoints).

        ``kernels``: ``{"f64": Kernel, "f32": Kernel}`` of the derivation's own evaluation program
        with its ``constants``; default: :meth:`kernel` (with ``labels`` for its pieces) and the
        integration constants it takes.  Either way the programs are checked against the derived
        loss (:meth:`check_kernels`).  The defaults of the other fields describe the method.
        ``libm=False``: the kernels print exp, log and log1p as refloss/_derive/expo.py's forms (the loss's
        exhaustive float32 rows swept with them), not libm's calls, so that the CPU loops vectorise."""
        if kernels is None:
            program = self.kernel(labels)
            kernels = {"f64": program, "f32": program}
            constants = list(self.constants) + [c for c in self.kernel_constants() if c.symbol in program.args]
        constants = list(self.constants if constants is None else constants)
        checks = list(self.checks)
        self.check_kernels(kernels, constants, checks)
        return LossSpec(
            name=name,
            title=title,
            formula=formula or self.formula(),
            references=list(references),
            params=list(self.params),
            constants=constants,
            kernels=kernels,
            steps=self.steps() if steps is None else steps,
            plots=list(plots or []),
            conventions=conventions or self.conventions(),
            accuracy=accuracy or self.accuracy(),
            checks=checks,
            family="elementwise",
            # every element-wise loss's float32 maxima are stated over all inputs (docs/exhaustive.md): libm's exp and
            # log where its rows were swept with them (libm=False: refloss/_derive/expo.py's forms, swept with those)
            libm=libm,
            variants=list(variants),
            kinks=self.breakpoints,
        )

    def formula(self) -> str:
        if len(self.pieces) == 1:
            return f"L = {sp.sstr(self.pieces[0].loss)}, with a = |pred - target|."
        parts = []
        for p in self.pieces:
            where = "otherwise" if p.condition is None else f"if {sp.sstr(p.condition)}"
            parts.append(f"{sp.sstr(p.loss)} {where}")
        return "L = " + "; ".join(parts) + ", with a = |pred - target|."

    def conventions(self) -> str:
        text = ("At a breakpoint k the piece whose condition holds is used (a < k: the next piece; a <= k: "
                "this one). At x = 0 the gradient is g(0) * sign(0) = 0 (sign(0) = 0, as PyTorch autograd).")
        if not self.breakpoints:
            return text
        if all(self.smooth):
            return text + " The gradient is continuous at every breakpoint."
        jumps = ", ".join(sp.sstr(k) for k, s in zip(self.breakpoints, self.smooth) if not s)
        return text + f" The gradient jumps at a = {jumps}: there it is the one-sided derivative of the piece used."

    def accuracy(self) -> str:
        return ("Each piece is evaluated as its evaluation form (proved equal to the integrated piece) or, "
                "without one, as SymPy's antiderivative plus its integration constant (a kernel constant, "
                "computed once per call with 40-digit decimal arithmetic). No error bound is claimed: "
                "where accuracy matters, compare with an oracle (refloss.testing.check_loss).")


def _run(kern, values: dict) -> dict:
    """The kernel program's outputs at 60 digits: the prelude, then the first branch whose condition holds."""
    vals = dict(values)
    for sym, expr in kern.prelude:
        vals[sym] = sp.N(expr.xreplace(vals), 60)
    for b in kern.branches:
        if b.condition is None:
            taken = True
        else:
            taken = b.condition.xreplace(vals)
            if taken not in (sp.true, sp.false):
                raise DerivationError(f"kernel branch condition {b.condition} undecided at {vals}")
        if taken == sp.true or taken is True:
            return {o: sp.N(e.xreplace(vals), 60) for o, e in b.outputs.items()}
    raise DerivationError(f"no kernel branch is taken at {vals} (the last branch needs condition None)")


def integrate_gradient(pieces, variable, params, *, constants=(), definitions=None, c1: bool = False,
                       checks: list | None = None, domain: dict | None = None) -> GradientLoss:
    """Integrate a piecewise gradient definition; check and record the claims (module docstring).

    ``pieces``: ``[(condition, gradient), ...]`` or ``(condition, gradient, evaluation_form)``, in
    ``variable`` (the absolute residual); conditions ``variable < k`` or ``variable <= k`` with
    increasing breakpoints k, the last condition None ("otherwise").  ``params``: core.Param list
    (domains: their bounds).  ``constants``: core.Constant list the gradients and evaluation forms
    may use; ``definitions``: other symbols the evaluation forms use (symbol -> expression).
    ``c1``: claim the gradient continuous at every breakpoint.  ``domain``: overrides of the
    sampling intervals of the numerical fallback (symbol -> (lo, hi)).
    """
    checks = [] if checks is None else checks
    params = list(params)
    constants = list(constants)
    definitions = dict(definitions or {})
    if not isinstance(variable, sp.Symbol):
        raise TypeError(f"variable: must be a SymPy Symbol (the absolute residual), got {variable!r}")
    if not pieces:
        raise ValueError("pieces: at least one (condition, gradient) is needed; the last condition None")
    to_a = {variable: a} if variable != a else {}
    names = [p.name for p in params] + [c.symbol.name for c in constants]
    for n in names:
        if n in RESERVED or not n.isidentifier() or n.startswith("_") or n.startswith("C_"):
            raise ValueError(f"params: the name {n!r} is reserved or not a plain identifier; rename the symbol")
    if len(set(names)) != len(names):
        raise ValueError(f"params: names must be unique, got {names}")
    known = {p.symbol for p in params} | {c.symbol for c in constants} | set(definitions) | {a}
    rows = []
    for k, piece in enumerate(pieces):
        if not isinstance(piece, (tuple, list)) or len(piece) not in (2, 3):
            raise ValueError(f"pieces[{k}]: must be (condition, gradient) or (condition, gradient, evaluation_form), "
                             f"got {piece!r}")
        cond, grad = piece[0], piece[1]
        form = piece[2] if len(piece) == 3 else None
        cond = None if cond is None else sp.sympify(cond).xreplace(to_a)
        grad = sp.sympify(grad).xreplace(to_a)
        end, closed = _parse_condition(cond, k, k == len(pieces) - 1)
        unknown = (grad.free_symbols | (end.free_symbols if end is not None else set())) - known
        if unknown:
            raise ValueError(f"pieces[{k}]: unknown symbols {sorted(map(str, unknown))}; declare them in params")
        if form is not None:
            form = sp.sympify(form).xreplace(to_a)
            c_syms = {sp.Symbol(f"C_{j}") for j in range(len(pieces))}
            unknown = form.free_symbols - known - c_syms
            if unknown:
                raise ValueError(f"pieces[{k}]: the evaluation form uses unknown symbols {sorted(map(str, unknown))}")
        if end is not None:
            cond = sp.Le(a, end) if closed else sp.Lt(a, end)
        rows.append((cond, end, grad, form))

    dom = {**_sampling_domain(params), **(domain or {})}
    defs = {**definitions, **{c.symbol: c.expr for c in constants}}
    previous = sp.Integer(0)
    for _, end, _, _ in rows[:-1]:
        try:
            gap = _substitute(end - previous, defs)
            method = prove_positive(gap, f"breakpoints in increasing order: {sp.sstr(previous)} < {sp.sstr(end)}",
                                    checks, domain=dom)
            if method.startswith("numerically"):  # (also near the domains' edges: k and k + w - 1/1000 passed
                for edge in _edge_domains(params, domain or {}):  # at w in (0.1, 3.1), and failed at w = 0.0005)
                    prove_positive(gap, f"breakpoints in increasing order: {sp.sstr(previous)} < {sp.sstr(end)}",
                                   domain={**dom, **edge})
        except DerivationError as e:
            raise DerivationError(f"{e}. The breakpoints must increase for every admitted parameter value: write a "
                                  "later one as an earlier one plus a positive parameter (e.g. k and k + w)") from None
        previous = end

    # antiderivatives SymPy cannot find are taken from the evaluation forms (then checked by differentiation;
    # the last part of a Piecewise form, which holds on the whole piece; not one written with C_k)
    fallbacks = [None if form is None else _substitute(_forms(form)[-1][0], defs) for _, _, _, form in rows]
    fallbacks = [f if f is None or not any(s.name.startswith("C_") for s in f.free_symbols) else None
                 for f in fallbacks]
    starts = [None] + [end for _, end, _, _ in rows[:-1]]
    integrated = integrate_from_zero([(g, s) for (_, _, g, _), s in zip(rows, starts)], checks,
                                     antiderivatives=fallbacks, domain=dom)
    out = []
    for k, ((cond, end, g, form), (anti, c, c_val, f)) in enumerate(zip(rows, integrated)):
        out.append(Piece(k, cond, starts[k] if k else sp.Integer(0), end, g, anti, c, c_val, f, form))
    result = GradientLoss(tuple(out), params, constants, definitions, c1, (), checks, dict(domain or {}))

    smooth = []
    for left, right in zip(out, out[1:]):
        k = left.end
        jump = result.expand(left.gradient.subs(a, k) - right.gradient.subs(a, k))
        if c1:
            try:
                prove_zero(jump, f"C^1 at a = {sp.sstr(k)}: the gradient is continuous there", checks, domain=dom)
            except DerivationError as e:
                raise DerivationError(f"{e}. C^1 is claimed (c1=True), but the gradient jumps at a = {sp.sstr(k)}: "
                                      f"{sp.sstr(left.gradient.subs(a, k))} on the left, "
                                      f"{sp.sstr(right.gradient.subs(a, k))} on the right") from None
            smooth.append(True)
            continue
        try:
            method = prove_zero(jump, "", None, domain=dom)
            checks.append((f"the gradient is continuous at a = {sp.sstr(k)} (C^1 not claimed)", method))
            smooth.append(True)
        except DerivationError:
            checks.append((f"the gradient jumps at a = {sp.sstr(k)}: the loss is not C^1 there (C^1 not claimed)",
                           "numerically, 60 digits"))
            smooth.append(False)
    result.smooth = tuple(smooth)

    # evaluation forms: first with the symbols the derivation is written in kept (cheap), then expanded
    primitive = set().union(*(p.gradient.free_symbols | p.loss.free_symbols for p in out))
    for p in out:
        if p.form is None:
            continue
        parts = _forms(p.form)
        for j, (e, cond) in enumerate(parts):
            what = (f"evaluation form of piece {p.index}" if len(parts) == 1
                    else f"evaluation form of piece {p.index} ({'otherwise' if cond is None else sp.sstr(cond)})")
            claim = f"{what} equals the integrated piece"
            all_defs = {**defs, **result.integration_constants}
            diff = _substitute(e, all_defs, keep=primitive) - _substitute(p.loss, all_defs, keep=primitive)
            if simplifies_to_zero(diff):
                checks.append((claim, "sympy.simplify"))
            else:
                prove_zero(result.expand(e) - result.expand(p.loss), claim, checks, domain=dom,
                           within=result.within(p))
    return result


def default_plot(title: str, params, breakpoints, defaults: dict) -> Plot:
    """A figure of the loss at its defaults, over three times its largest breakpoint."""
    ks = [float(sp.N(k.xreplace({p.symbol: sp.Float(defaults[p.name]) for p in params}))) for k in breakpoints]
    half = 3 * max(ks) if ks and max(ks) > 0 else 3.0
    label = ", ".join(f"{n} = {v:g}" for n, v in defaults.items()) or "L"
    return Plot(title, [(label, dict(defaults))], x_range=(-half, half))
