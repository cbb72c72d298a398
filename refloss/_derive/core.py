"""The data a derivation exports, and the checks every derivation runs.

A derivation script builds a :class:`LossSpec`: the parameters and their domains,
constants that follow from the parameters, the evaluation program of the kernel
(a prelude of assignments and a list of branches, each giving the value and one
gradient per input), and the documentation steps.  The code generator turns the
program into scalar Python functions (compiled by Numba for the CPU and CUDA);
the doc writer turns the steps into Markdown.

Every claim is checked with :func:`prove_zero`: SymPy simplification first and, if
that cannot decide, evaluation at random points with 60 significant digits.  A
failed check raises :class:`DerivationError`, so a wrong derivation stops
``python -m derivations``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import sympy as sp

from refloss._info import Properties

SYMPY_PIN = "1.14.0"


class DerivationError(AssertionError):
    """A claim a derivation makes does not hold."""


@dataclass(frozen=True)
class Param:
    """A user-facing parameter of a loss with its domain ``lower <=/< p <=/< upper``."""

    name: str
    symbol: sp.Symbol
    default: float
    doc: str
    lower: sp.Expr | None = None
    lower_closed: bool = True
    upper: sp.Expr | None = None
    upper_closed: bool = True
    kind: str = "real"  # "real"; "bool" (passed to kernels as 0.0/1.0); "optional" (None -> none_value); "int";
    # "choice" (one of ``choices``, passed to kernels as its index 0.0, 1.0, ...); "size" (a required
    # (width, height) pair, both > 0, passed to kernels as width^2 + height^2; figures use none_value)
    none_value: float = 0.0
    choices: tuple = ()

    @property
    def row_upper(self) -> bool:
        """Whether the upper bound is the rows' last index C - 1 (``upper`` = ROW_WIDTH - 1, a row loss's
        parameter in bins: checked where a call knows its rows, ``LossInfo.row_params``)."""
        return self.upper is not None and sp.sympify(self.upper).has(ROW_WIDTH)

    def rule(self) -> str:
        """The domain as text, e.g. ``beta >= 0`` or ``1/e <= beta <= 1``."""
        if self.kind == "bool":
            return f"{self.name} is True or False"
        if self.kind == "choice":
            return f"{self.name} is one of {', '.join(map(repr, self.choices))}"
        if self.kind == "size":
            return f"{self.name} is (width, height) with width > 0 and height > 0"
        lo = hi = ""
        if self.lower is not None:
            lo = f"{sp.sstr(self.lower)} {'<=' if self.lower_closed else '<'} "
        if self.upper is not None:
            bound = "C - 1" if self.row_upper else sp.sstr(self.upper)  # (the rows' last index: n_bins - 1, classes - 1)
            hi = f" {'<=' if self.upper_closed else '<'} {bound}"
        rule = f"{lo}{self.name}{hi}"
        if self.kind == "optional":
            return f"{self.name} is None or " + (rule if lo or hi else "a real number")
        if self.kind == "int":
            return f"{self.name} is an integer, {rule}"
        return rule


@dataclass(frozen=True)
class Constant:
    """A kernel argument that follows from the parameters (computed once per call)."""

    symbol: sp.Symbol
    expr: sp.Expr
    doc: str


@dataclass(frozen=True)
class Branch:
    """One region of the evaluation program; ``condition=None`` is the final else."""

    condition: sp.Basic | None
    outputs: dict  # "value" and "d_<input>" -> expression
    label: str = ""
    # taken by few inputs (operands beyond a range, overflow): the CPU block loops' vectorised form leaves such an
    # element to the scalar kernel (flagged, then computed again alone), so that LLVM does not weigh the branch's
    # statements on every element of the loop (an if-converted loop evaluates every branch)
    rare: bool = False
    # a rare branch printed with libm's exp, log, log1p, expm1, pow, sin and cos: the scalar kernel computes its elements
    # one at a time, where libm's calls are faster than the printed forms, which are made for vector loops (QFL's soft
    # targets beyond beta's range took twice their time with them); its results are libm's
    libm: bool = False
    # a common branch that many a block of inputs holds few or none of (QFL's soft targets among the background's
    # 0s): the CPU block function gets a second main loop in which it is rare, which a block takes where a counting
    # pass finds it and the rare branches hold fewer than 1/16 of its elements (codegen's SPARSE_BELOW; the same
    # bits either way: a rare branch's elements get the scalar kernel's, which the kernel's own loop gives too)
    sparse: bool = False

    def __post_init__(self):
        if self.libm and not self.rare:
            raise ValueError(f"branch {self.label!r}: libm's functions in a common branch keep its loop scalar "
                             "(libm=True needs rare=True)")
        if self.sparse and self.rare:
            raise ValueError(f"branch {self.label!r}: a rare branch has one form already (sparse=True is for a "
                             "common branch)")


@dataclass(frozen=True)
class RowStep:
    """One quantity of a row kernel (an input of variable width C, the last axis), computed
    before the outputs: ``op`` "max" or "sum" reduces ``expr`` (in the element symbols and the
    earlier steps) over the row's elements j ("sum" compensated, see :func:`row_function`), "count"
    sums integer terms (exact below 2^24 in float32, so added plainly); "let" is a row scalar of
    earlier steps only.
    The code generator emits one loop over the row for each run of reductions that do not
    depend on each other, then the "let"s they allow, then one loop for the outputs."""

    symbol: sp.Symbol
    op: str  # "max", "sum", "count" or "let"
    expr: sp.Expr


# the index j of a row kernel's element (0, 1, ..., C - 1), as a float of the kernel's precision
ROW_INDEX = sp.Symbol("jf", real=True, nonnegative=True)
# the width C of a row kernel's rows, a float of the kernel's precision (also in ``invalid``)
ROW_WIDTH = sp.Symbol("C_row", positive=True)


@dataclass(frozen=True)
class Kernel:
    """The evaluation program of one loss at one precision.

    ``arrays`` are the array inputs as ``(name, width, symbols)``: width 1 for an
    element-wise input, 4 for an xyxy box whose coordinates are ``symbols``.  The
    scalar kernel takes the symbols of all arrays in order, then ``args``.

    Width None is a row of variable width C (the last axis; every row input has the same C),
    with one symbol: its element j.  Such a kernel has ``row`` steps (:class:`RowStep`) and one
    branch whose outputs are per element j: "value" is the term the value sums over j, and
    ``d_<symbol>`` the gradient's element j; its scalar kernels take whole rows (1-D arrays),
    write the gradient rows and return the value.  A row kernel may also take inputs of width 1,
    one number per row (e.g. a continuous target): their symbol is that number in every step and
    output, and their ``d_<symbol>`` is a per-element term summed over j, like the value.
    :data:`ROW_INDEX` is the element's index j (as a float of the kernel's precision).
    ``support`` ``(lower, count)``: the value's terms (and the one-number-per-row gradients') vanish outside
    the ``count`` elements from ``floor(lower)`` (DFL's two bins): the value's loop visits those alone, and adds
    the same non-zero terms in the same order as a loop over the whole row would.
    ``invalid`` (optional) is a condition on the inputs that makes an element invalid
    (e.g. x2 < x1); the drivers count such elements together with non-finite ones.
    ``wide`` names gradient outputs whose float32 kernel falls back to float64 where their terms
    cancel: in a branch where such an output is a sum, the float32 kernel evaluates its terms,
    keeps their float32 sum where its magnitude is more than half the sum of theirs (``wide_margin``; or, with
    ``wide_scale``, where the sum of theirs is below wide_scale times the largest gradient output), and elsewhere
    (where they cancel, or all underflowed to 0, or are not finite) evaluates the output in float64 (inputs and arguments widened exactly, every operation in
    float64, the result rounded to float32 once).  For a difference of transcendental terms that
    crosses zero: float32 loses every digit near the root, float64 keeps 29 bits more than float32
    shows, and the rest of the inputs keep float32's speed.  In a float64 kernel the same outputs are
    evaluated in double-double arithmetic there (refloss/_derive/double_double.py); a branch's wide
    outputs are evaluated in one program where any of them needs it.
    ``double`` names gradient outputs whose float32 kernel evaluates them in float64 in every
    branch (inputs and arguments widened exactly, the result rounded to float32 once): outputs
    whose float32 forms raise a rounded sigmoid to a power, so that its rounding error is
    multiplied by the exponent, and whose terms may also cancel.  They cost float64's speed for
    that output and no float32 digit.
    ``reciprocal``: the gradient program multiplies by the reciprocal of each denominator it
    divides by more than once (one division, then products: a GIoU gradient divides 72 times an
    element otherwise, and divisions bound its speed), where that reciprocal and its powers are
    normal numbers (the denominator's magnitude within 2^(-e/k)..2^(e/k), e = 1021 in float64, 125
    in float32, k the highest power it is raised to); elsewhere (a denominator tiny, huge, zero or
    NaN) the gradients are the quotients as written.  One rounding more a quotient; the value
    program is not changed.
    """

    arrays: tuple  # ((name, width, (symbols...)), ...)
    args: tuple  # symbols passed after the inputs (params and constants), in order
    prelude: tuple  # ((symbol, expression), ...) evaluated before the branches
    branches: tuple  # (Branch, ...)
    invalid: sp.Basic | None = None
    value_names: tuple = ("value",)  # several for a vector function (e.g. a decoded box)
    grad_arrays: tuple | None = None  # the arrays to differentiate (None: all)
    row: tuple = ()  # (RowStep, ...) of a kernel on rows of variable width (width None)
    # (lower, count) of a row kernel: the value's terms and the one-number-per-row inputs' gradient terms are 0
    # at every element j outside floor(lower) <= j < floor(lower) + count (lower a row scalar): their sums
    # visit those elements only (the derivation proves the zeros)
    support: tuple = ()
    wide: tuple = ()  # gradient outputs evaluated one precision up (float64; double-double) where their terms cancel
    wide_margin: float = 0.5  # ... where |sum| <= wide_margin * (sum of |terms|)
    wide_scale: float | None = None  # ... and (not None) sum of |terms| >= wide_scale * the largest gradient component
    double: tuple = ()  # gradient outputs the float32 kernel evaluates in float64 everywhere
    reciprocal: bool = False  # gradients multiply by reciprocals of repeated denominators (where safe)
    libm: bool = False  # exp, log, log1p as libm calls (LossSpec.libm), not refloss/_derive/expo.py's forms
    # the CPU block functions' loop over their flagged elements (a rare branch, a guard's float64 decision, a wide
    # output's fallback: the scalar kernel again; not a reciprocal kernel's out-of-range quotients, which stay written
    # in) as a function of its own, called, not written into the block function: a large kernel whose main loop LLVM
    # compiled slower with
    # the rarely run statements beside it (Inner-IoU's float32 gradients 0.81-0.83x the time on two threads); for
    # others it was the reverse (balanced L1's, focal-EIoU's float32 1.06-1.09x), so it is the derivation's choice
    flagged_apart: bool = False
    # a condition on the parameters alone (kernel args; yolo_decode's Eq(scaled_wh, 1), its size form): the CPU block
    # functions' main loop printed twice, "if cond: <loop> else: <loop>", so that in each copy LLVM folds the branches
    # on it (a condition of the loop's chain, which LLVM's own loop unswitching left in a large loop: its if-converted
    # loop computed both size forms for every element); the same statements, so the same bits; the derivation's
    # choice (the block function's code doubles, and its compile time)
    unswitch: object = None

    @property
    def is_row(self) -> bool:
        return any(w is None for _, w, _ in self.arrays)

    @property
    def inputs(self) -> tuple:
        return tuple(s for _, _, syms in self.arrays for s in syms)

    @property
    def differentiated(self) -> tuple:
        """(name, width, symbols) of the arrays that get a gradient output."""
        return tuple(a for a in self.arrays if self.grad_arrays is None or a[0] in self.grad_arrays)

    @property
    def output_names(self) -> tuple:
        return self.value_names + tuple(f"d_{s.name}" for _, _, syms in self.differentiated for s in syms)


@dataclass(frozen=True)
class Step:
    """One step of a derivation page: prose, then optionally a displayed equation (each side a
    SymPy expression or LaTeX text)."""

    text: str
    lhs: sp.Basic | str | None = None
    rhs: sp.Basic | str | None = None


@dataclass
class Plot:
    """A figure of loss and gradient against x = pred - target for several params: two panels,
    ``value_title`` and ``grad_title`` their y-axis labels, each with its legend."""

    title: str
    # [(label, {param: value}) or (label, callable x -> (value, gradient)), ...]; a third item
    # "dashed" draws the curve as a grey reference (e.g. another loss, for comparison)
    curves: list
    x_range: tuple = (-3.0, 3.0)
    caption: str = ""
    xlabel: str = "x = pred - target"
    grad_title: str = "gradient dL/dpred"
    value_title: str = "loss"


@dataclass(frozen=True)
class Variant:
    """A variant of the loss that peers implement, for diagnoses (see ``refloss._info.Variant``):
    this loss with other ``params``, another refloss ``loss``, or a formula given as its own
    kernel ``program`` (same inputs and arguments as the loss; generated next to it)."""

    code: str
    text: str
    params: dict | None = None
    loss: str | None = None
    program: dict | None = None  # {"f64": Kernel, "f32": Kernel}


@dataclass
class LossSpec:
    """Everything ``python -m derivations`` needs to generate code and docs for a loss.

    ``family`` says which battery, error measure and bar check it (``refloss._info.FAMILIES``);
    ``kind`` is "loss", "metric" or "coding" (a vector function with a hand-written API);
    ``layouts`` gives box inputs' coordinate layout ("xyxy", "xywh"); element-wise kinks come
    from the kernel's branch conditions."""

    name: str
    title: str
    formula: str  # one-paragraph plain-text formula for docstrings
    references: list  # ["Girshick, Fast R-CNN, arXiv:1504.08083", ...]
    params: list  # [Param, ...]
    constants: list  # [Constant, ...]
    kernels: dict  # {"f64": Kernel, "f32": Kernel}
    steps: list  # [Step, ...]
    plots: list = field(default_factory=list)
    conventions: str = ""
    accuracy: str = ""
    checks: list = field(default_factory=list)  # [(claim, method), ...] filled by prove_*
    input_ranges: dict = field(default_factory=dict)  # {array name: (lo, hi)}: values outside are invalid
    family: str = ""
    kind: str = "loss"
    layouts: dict = field(default_factory=dict)  # {array name: "xyxy" | "xywh"}
    variants: list = field(default_factory=list)  # [Variant, ...]
    mean_weight: tuple | None = None  # (metric, exponent param, differentiate param, shared params)
    # element-wise: |x| where the loss is not smooth, as expressions of the parameters (None: read
    # from the kernel's branch conditions); a loss defined by its gradient states its breakpoints
    kinks: tuple | None = None
    # row inputs that may be given as integer class indices instead (refloss._info.LossInfo.indices)
    indices: tuple = ()
    # {"f64": Kernel, "f32": Kernel} of a row loss for its ``indices`` given as class indices: that input one number
    # a row (the index, as a float), no gradient for it; the modules' ``*_index_<p>`` functions and drivers, which
    # the API calls instead of building one-hot rows (each output what the one-hot rows give)
    index_kernels: dict = field(default_factory=dict)
    properties: Properties = Properties()  # what the formula guarantees (refloss._info.Properties)
    # exp, log and log1p as libm calls: for a loss whose float32 maxima docs/exhaustive.md states over all
    # inputs, until it is swept again with refloss/_derive/expo.py's forms (vectorisable, within 1 ulp)
    libm: bool = False

    def __post_init__(self):
        if self.libm:
            self.kernels = {p: replace(k, libm=True) for p, k in self.kernels.items()}
            self.index_kernels = {p: replace(k, libm=True) for p, k in self.index_kernels.items()}
            self.variants = [replace(v, program={p: replace(k, libm=True) for p, k in v.program.items()})
                             if v.program else v for v in self.variants]


def _random_points(symbols, domain, rng, n):
    pts = []
    for _ in range(n):
        pt = {}
        for s in symbols:
            lo, hi = domain.get(s, (sp.Rational(1, 10), 3))
            frac = sp.Rational(rng.randint(1, 10**6), 10**6 + 1)
            pt[s] = lo + (hi - lo) * frac
        pts.append(pt)
    return pts


def _evaluator(expr, symbols):
    """pt -> expr at the rational point pt, to 60 digits: mpmath through lambdify (fast), or
    SymPy's subs and N where lambdify cannot translate the expression."""
    try:
        import mpmath

        f = sp.lambdify(symbols, expr, "mpmath")

        def evaluate(pt):
            try:
                with mpmath.workdps(80):
                    v = f(*[mpmath.mpf(int(pt[s].p)) / int(pt[s].q) for s in symbols])
            except Exception:  # noqa: BLE001 - a function lambdify translated but mpmath rejects
                v = None
            return sp.Float(v, 60) if isinstance(v, (mpmath.mpf, int, float)) else sp.N(expr.subs(pt), 60)

        return evaluate
    except Exception:  # noqa: BLE001 - lambdify does not know every function: fall back to SymPy
        return lambda pt: sp.N(expr.subs(pt), 60)


def _rational(value) -> sp.Rational:
    """A rational within 1e-40 of a real number expression (a sampled point must be exact)."""
    return sp.Rational(str(sp.N(value, 45)))


def _sample(expr, domain, within, n):
    """(symbols, points): n random rational points of ``expr``'s free symbols (see prove_zero)."""
    rng = random.Random(1234)
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    points = _random_points(symbols, domain or {}, rng, n)
    for k, pt in enumerate(points):
        for s, (lo, hi) in (within or {}).items():
            if s in pt:  # between bounds that depend on the other symbols
                lo_v = _rational(sp.sympify(lo).xreplace(pt))
                if hi is None and k % 2:  # (unbounded: every other point far beyond lo, 10 to 10^6 times its scale)
                    far = sp.Integer(10) ** rng.randint(1, 6) * sp.Rational(rng.randint(10**5, 10**6), 10**5)
                    pt[s] = lo_v + max(abs(lo_v), sp.Integer(1)) * far
                    continue
                hi_v = lo_v + 10 if hi is None else _rational(sp.sympify(hi).xreplace(pt))
                pt[s] = lo_v + (hi_v - lo_v) * sp.Rational(rng.randint(1, 10**6), 10**6 + 1)
    return symbols, points


_OPAQUE = (sp.Min, sp.Max, sp.Heaviside, sp.atan2, sp.Abs)


def _opaque(expr):
    """``expr`` with each min, max, step, atan2 and abs replaced by a symbol of its own (the same
    symbol for equal subexpressions)."""
    names = {}
    return expr.replace(lambda e: isinstance(e, _OPAQUE),
                        lambda e: names.setdefault(e, sp.Dummy(f"m{len(names)}", real=True)))


def simplifies_to_zero(expr) -> bool:
    """Whether SymPy's ``simplify`` shows ``expr == 0`` (also after rewriting into logarithms).

    First with every min, max, step, atan2 and abs taken as an opaque real symbol: zero for every
    value of those symbols is zero for the functions' values, and ``simplify`` is spared their
    case analysis (which grows fast with the number of nested min/max of a box loss)."""
    if sp.simplify(_opaque(expr)) == 0:
        return True
    simplified = sp.simplify(expr)
    if simplified != 0:
        simplified = sp.simplify(sp.expand_log(simplified.rewrite(sp.log), force=True))
    return simplified == 0


def prove_zero(expr, claim: str, spec_checks: list | None = None, *, domain=None, n=12, numeric=False, within=None):
    """Prove ``expr == 0`` on the domain; record the claim; raise if it does not hold.

    ``domain`` maps a symbol to a (lo, hi) interval of rationals used for the
    numerical fallback (default (1/10, 3) for every free symbol).  ``within`` maps a symbol
    to bounds ``(lo, hi)`` that are expressions of the other symbols (``hi`` None: unbounded,
    half the points in (lo, lo + 10), half 10 to 10^7 times max(|lo|, 1) beyond lo: a form that
    differs from the loss only far out -- a min, a step, exp(a - 200) -- was accepted),
    e.g. a residual sampled inside the piece of a loss where a claim is made.
    ``numeric=True`` goes straight to the numerical check (for compositions too large for
    ``sympy.simplify`` to finish).
    """
    expr = sp.sympify(expr)
    method = "sympy.simplify"
    if numeric or not simplifies_to_zero(expr):
        method = f"numerically at {n} random points, 60 digits"
        symbols, points = _sample(expr, domain, within, n)
        evaluate = _evaluator(expr, symbols)
        for pt in points:
            val = evaluate(pt)
            if not val.is_number or abs(val) > sp.Float(10) ** -45:
                raise DerivationError(f"{claim}: not zero at {pt} (value {val})")
    if spec_checks is not None:
        spec_checks.append((claim, method))
    return method


def prove_equal(a, b, claim: str, spec_checks: list | None = None, **kw):
    """Prove ``a == b`` (see :func:`prove_zero`)."""
    return prove_zero(sp.sympify(a) - sp.sympify(b), claim, spec_checks, **kw)


def prove_positive(expr, claim: str, spec_checks: list | None = None, *, domain=None, n=12):
    """Prove ``expr > 0`` on the domain: from SymPy's assumptions, else numerically at ``n``
    random points (see :func:`prove_zero`); record the claim; raise if it does not hold."""
    expr = sp.simplify(sp.sympify(expr))
    if expr.is_positive:
        method = "exact arithmetic" if expr.is_number else "SymPy assumptions"
    elif expr.is_positive is False:
        raise DerivationError(f"{claim}: false ({sp.sstr(expr)} is not positive)")
    else:
        method = f"numerically at {n} random points, 60 digits"
        symbols, points = _sample(expr, domain, None, n)
        evaluate = _evaluator(expr, symbols)
        for pt in points:
            val = evaluate(pt)
            if not (val.is_number and val.is_real and val > 0):
                raise DerivationError(f"{claim}: not positive at {pt} (value {val})")
    if spec_checks is not None:
        spec_checks.append((claim, method))
    return method


def prove_true(statement: bool, claim: str, spec_checks: list | None = None):
    """Record a claim decided in plain Python (e.g. a numeric bound)."""
    if not statement:
        raise DerivationError(claim)
    if spec_checks is not None:
        spec_checks.append((claim, "exact arithmetic"))


def precision_bits(precision: str) -> int:
    """Significand bits of the kernel precision ("f64" -> 53, "f32" -> 24)."""
    return {"f64": 53, "f32": 24}[precision]


def expand_row(steps, elements: dict, exprs, plain_fn=lambda e: e) -> list:
    """``exprs`` (per-element expressions of a row kernel) at a fixed width: ``elements`` maps
    each element symbol to its C symbols (z -> (z0, z1, z2)); every row step is replaced by its
    value over those C elements ("max": Max, "sum": the C terms added, "let": its expression),
    and each expression becomes the list of its C instances.  ``plain_fn`` (e.g.
    ``functions.plain``) is applied to every term, for proofs."""
    width = len(next(iter(elements.values())))
    values = {}

    def at(expr, j):
        return plain_fn(expr.xreplace(values).xreplace({s: syms[j] for s, syms in elements.items()}))

    for st in steps:
        if st.op == "max":
            values[st.symbol] = sp.Max(*(at(st.expr, j) for j in range(width)))
        elif st.op in ("sum", "count"):
            values[st.symbol] = sp.Add(*(at(st.expr, j) for j in range(width)))
        else:
            values[st.symbol] = plain_fn(st.expr.xreplace(values))
    return [[at(e, j) for j in range(width)] for e in exprs]
