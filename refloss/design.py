"""Derive your own element-wise loss from its gradient: ``refloss.design.from_gradient``.

The method refloss uses for Smooth L1, Huber, Balanced L1 and Focal-L1, as a tool: define the
gradient g(a) = dL/da piecewise in the absolute residual a = |pred - target|, and SymPy
integrates it with L(0) = 0 and continuity at every breakpoint, checks the claims, and
generates the loss (value and gradient, float64 and float32, Numba CPU kernels), its
derivation page and its figure -- through the same code path as the project's own losses
(``refloss._derive.gradient``).  See docs/design.md.

>>> import numpy as np, sympy as sp
>>> from refloss.design import from_gradient
>>> a = sp.Symbol("a", nonnegative=True)
>>> beta = sp.Symbol("beta", positive=True)
>>> d = from_gradient("my_smooth_l1", [(a < beta, a / beta), (None, 1)], a, {beta: 1.0})
>>> d.expr
Piecewise((a**2/(2*beta), a < beta), (a - beta/2, True))
>>> float(d.loss(np.array([0.5]), np.array([0.0]), beta=0.5)[0])
0.25

Needs SymPy (``pip install "refloss[derive]"``); the packages :meth:`Design.write` writes need
only refloss (NumPy and Numba).  Importing this module compiles nothing; a design's kernels
compile on first use and are cached on disk (``REFLOSS_DESIGN_CACHE``, default
``~/.cache/refloss/design``).
"""
from __future__ import annotations

try:
    import sympy as sp
except ImportError as _e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError('refloss.design derives losses with SymPy, which is not installed: '
                      'pip install "refloss[derive]"') from _e

import builtins
import hashlib
import importlib.util
import keyword
import math
import os
import sys
import tempfile
from pathlib import Path

from ._derive.codegen import _doc, banner, cpu_module, info_block, scalar_module
from ._derive.core import SYMPY_PIN, DerivationError, Param
from ._derive.docs import figure_name, figures, markdown
from ._derive.elementwise import a as _a
from ._derive.gradient import RESERVED as _RESERVED, default_plot, integrate_gradient

__all__ = ["from_gradient", "Design", "DerivationError"]

_REGENERATE = "run `python -m derivations`"
_MARKER = "regenerate it with refloss.design (Design.write)"  # in the banner of every file a design writes


def from_gradient(name: str, pieces, variable, params: dict, *, c1: bool = False, domains: dict | None = None,
                  title: str | None = None) -> "Design":
    """A loss L(pred, target) = L(a), a = |pred - target|, from its gradient g(a) = dL/da.

    Parameters
    ----------
    name : str
        The loss's name: a Python identifier (it names the package :meth:`Design.write` writes);
        not a keyword, a refloss loss's name, nor the name of a module it would shadow.
    pieces : list
        ``[(condition, gradient), ...]`` in ``variable``: ``variable < k`` or ``variable <= k``
        with breakpoints k (numbers or expressions of the parameters) in increasing order, the
        last condition ``None`` ("otherwise").  A piece may carry an evaluation form as a third
        element, ``(condition, gradient, form)``: the expression the kernel computes for the
        loss on that piece (chosen for accuracy; it may be a ``sympy.Piecewise`` of several
        forms, e.g. one for small and one for large residuals, and may use the integration
        constants ``C_k``), proved equal to the integrated piece.  Without one, the kernel
        computes SymPy's antiderivative plus its integration constant.
    variable : sympy.Symbol
        The absolute residual, declared ``nonnegative=True`` (or ``positive=True``): a ValueError otherwise.
    params : dict
        ``{symbol: default}`` of the parameters; a parameter's domain follows from the symbol's
        assumptions (``positive=True``: 0 < p; ``nonnegative``, ``negative``, ``nonpositive``)
        unless ``domains`` gives it.
    c1 : bool
        Claim that the gradient is continuous at every breakpoint (the loss is C^1): generation
        stops if it is not.  Either way ``Design.smooth`` and the page say where it is.
    domains : dict, optional
        ``{symbol: sympy.Interval}``: explicit parameter domains, e.g. ``sp.Interval(sp.exp(-1), 1)``; a
        float bound is read as the rational of its shortest decimal (0.5 -> 1/2), as in ``pieces``.
    title : str, optional
        The page's title.

    Raises
    ------
    DerivationError
        A claim does not hold: breakpoints not increasing, an evaluation form not equal to its
        piece, the gradient not continuous where ``c1=True`` claims it, ...
    ValueError, TypeError
        Malformed pieces, names or parameters: a parameter named like a keyword, a builtin or a
        name the generated code uses, a non-finite default, a gradient with Abs, Min, Max or an
        inner Piecewise (split it into pieces at the kink).  Strings in ``pieces`` are read with
        the variable's and the parameters' names; Python floats become the rational of their
        shortest decimal (0.1 -> 1/10).
    """
    _check_name(name)
    if not isinstance(params, dict):
        raise TypeError(f"params: must be a dict {{symbol: default}}, got {type(params).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: must be a str, got {type(title).__name__}")
    if isinstance(variable, sp.Symbol) and not variable.is_nonnegative:
        # (the pieces are built in the caller's symbol before they are read: Abs(z) is z, and sqrt(z**2) z, only for a
        # nonnegative z; for any other symbol such a gradient was refused as hiding a kink, or kept as written)
        raise ValueError(f"variable: the absolute residual must be declared nonnegative, e.g. "
                         f"sympy.Symbol({variable.name!r}, nonnegative=True); got {variable.name} without that "
                         "assumption")
    domains = dict(domains or {})
    unknown = set(domains) - set(params)
    if unknown:
        raise ValueError(f"domains: {sorted(map(str, unknown))} are not parameters")
    plist = [_param(sym, default, domains.get(sym)) for sym, default in params.items()]
    g = integrate_gradient(_pieces(pieces, variable, list(params)), variable, plist, c1=c1)
    defaults = {p.name: p.default for p in plist}
    spec = g.spec(
        name,
        title=title or name,
        references=["Designed with refloss.design.from_gradient (docs/design.md in refloss)"],
        plots=[default_plot(title or name, plist, g.breakpoints, defaults)],
    )
    return Design(name, variable, g, spec)


# names of refloss's own losses and of packages a written design would shadow (with its folder on the path)
_SHADOWED = frozenset({"refloss", "numpy", "numba", "sympy", "mpmath", "scipy", "torch", "torchvision", "jax",
                       "jaxlib", "tensorflow", "pytest", "hypothesis", "matplotlib", "pandas", "derivations"})
# parameter names the generated modules use themselves (integrate_gradient's RESERVED, and the imports, helpers and
# names of the package, its LossInfo and calls); with builtins and keywords these would clash in the generated source
_GENERATED_NAMES = _RESERVED | frozenset({
    "BLOCK", "CPU_OPTIONS", "LOSSES", "LossInfo", "MeanWeight", "ModuleLoss", "Param", "ROW_CHUNK", "SERIAL_BELOW",
    "Variant", "constants", "info", "loss", "m", "np", "numba", "numpy", "reference_f64", "refloss", "sel", "value",
    "value_and_grad", "value_and_grad_f32", "value_and_grad_f64", "value_f32", "value_f64"})


def _check_name(name) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ValueError(f"name: must be a Python identifier, not a keyword, not starting with '_', got {name!r}")
    if name in sys.stdlib_module_names or name in _SHADOWED:
        raise ValueError(f"name: {name!r} would shadow the module of that name when the written package is "
                         "imported; choose another name")
    from ._generated._index import LOSSES
    from . import ALL_LOSSES

    if name in LOSSES or name in ALL_LOSSES:
        raise ValueError(f"name: {name!r} is the name of refloss's own loss refloss.{name}; a design of that "
                         "name would be confused with it (e.g. in check_loss's report): choose another, e.g. "
                         f"'my_{name}'")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    origin = getattr(found, "origin", None)
    if origin and os.path.isfile(origin) and not _written_by_refloss(Path(origin)):
        raise ValueError(f"name: {name!r} is an importable module ({origin}); the package Design.write writes "
                         "would shadow it or be shadowed by it: choose another name")


def _check_param_name(n: str) -> None:
    if n.startswith("_"):  # (the generated code's own names start with _: _t0, _sel, the drivers' _b, _lo, ...)
        raise ValueError(f"params: the name {n!r} is reserved (a name starting with '_': the generated code's "
                         f"own); rename the symbol, e.g. sympy.Symbol({n.lstrip('_') or 'p'!r}, ...)")
    if keyword.iskeyword(n) or keyword.issoftkeyword(n) or n in _BUILTINS or n in _GENERATED_NAMES:
        what = ("a Python keyword" if keyword.iskeyword(n) or keyword.issoftkeyword(n)
                else "a Python builtin" if n in _BUILTINS else "a name the generated code uses")
        raise ValueError(f"params: the name {n!r} is reserved ({what}: the generated kernels take the parameters "
                         f"as arguments of that name); rename the symbol, e.g. sympy.Symbol({n + '_'!r}, ...)")


_BUILTINS = frozenset(dir(builtins))
# functions that make a gradient non-smooth inside a piece: the kernels branch on the pieces' conditions only
_KINKS = (sp.Abs, sp.Min, sp.Max, sp.Piecewise, sp.Heaviside, sp.sign, sp.floor, sp.ceiling)


def _pieces(pieces, variable, symbols) -> list:
    """``pieces`` with strings parsed in the design's own symbols, Python floats made exact rationals, and
    gradients that hide a kink (Abs, Min, Max, an inner Piecewise, ...) refused."""
    if not isinstance(pieces, (list, tuple)):
        return pieces  # integrate_gradient says what is wrong
    names = {s.name: s for s in symbols if isinstance(s, sp.Symbol)}
    if isinstance(variable, sp.Symbol):
        names[variable.name] = variable
    out = []
    for k, piece in enumerate(pieces):
        if not isinstance(piece, (tuple, list)) or len(piece) not in (2, 3):
            out.append(piece)  # integrate_gradient says what is wrong
            continue
        local = dict(names)
        local.update({f"C_{j}": sp.Symbol(f"C_{j}") for j in range(len(pieces))} if len(piece) == 3 else {})
        row = [None if piece[0] is None else _expr(piece[0], local, f"pieces[{k}]: the condition")]
        row.append(_expr(piece[1], local, f"pieces[{k}]: the gradient"))
        if len(piece) == 3:
            row.append(None if piece[2] is None else _expr(piece[2], local, f"pieces[{k}]: the evaluation form"))
        kinks = sorted({type(f).__name__ for f in sp.preorder_traversal(row[1]) if isinstance(f, _KINKS)})
        if kinks:
            raise ValueError(f"pieces[{k}]: the gradient {sp.sstr(row[1])} uses {', '.join(kinks)}, which hides a "
                             "kink (or jump) inside the piece; split the gradient into pieces at the kink (a piece "
                             "each side), each with a plain expression")
        out.append(tuple(row))
    return out


def _expr(e, local: dict, what: str):
    """``e`` as a SymPy object: a string parsed with the design's symbols (so 'beta' is the parameter, not
    SymPy's beta function), Python floats replaced by the rational of their shortest decimal (0.1 -> 1/10,
    which rounds back to the same float)."""
    try:
        e = sp.sympify(e, locals={**_undeclared(e, local), **local}) if isinstance(e, str) else sp.sympify(e)
    except (sp.SympifyError, SyntaxError, TypeError, AttributeError) as err:
        raise ValueError(f"{what}: cannot read {e!r} as a SymPy expression ({err})") from None
    return _exact(e)


def _undeclared(text: str, local: dict) -> dict:
    """``{name: Symbol(name)}`` for the names in ``text`` that are not declared and that SymPy would read as one of
    its functions or objects though not called ('beta', 'gamma', 'zeta', 'N', 'Q', ...): read as symbols,
    integrate_gradient names them as unknown ('declare them in params') as it does any other undeclared name;
    sympify gave "'<' not supported between instances of 'Symbol' and 'FunctionClass'" for an undeclared 'beta'."""
    import io
    import tokenize

    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type != tokenize.NL]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return {}  # (sympify says what is wrong)
    out = {}
    for k, t in enumerate(tokens):
        if t.type != tokenize.NAME or t.string in local or keyword.iskeyword(t.string):
            continue
        if (k and tokens[k - 1].string == ".") or (k + 1 < len(tokens) and tokens[k + 1].string in ("(", ".")):
            continue  # an attribute, a call (the function meant) or an object whose attribute is taken (S.Half)
        obj = getattr(sp, t.string, None)
        if obj is not None and not isinstance(obj, sp.Basic):  # (pi, E, I, oo: numbers, kept)
            out[t.string] = sp.Symbol(t.string)
    return out


def _exact(e):
    """``e`` with its SymPy Floats replaced by the rational of their shortest decimal (0.5 -> 1/2, 0.1 -> 1/10)."""
    floats = {f: sp.Rational(repr(float(f))) for f in e.atoms(sp.Float) if math.isfinite(float(f))}
    return e.xreplace(floats) if floats else e


def _written_by_refloss(path: Path) -> bool:
    """Whether ``path`` is a file refloss.design wrote (its banner)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(2000)
    except OSError:
        return False
    return _MARKER in head


def _param(sym, default, domain) -> Param:
    if not isinstance(sym, sp.Symbol):
        raise TypeError(f"params: keys must be SymPy symbols, got {sym!r}")
    _check_param_name(sym.name)
    try:
        value = float(default)
    except (TypeError, ValueError):
        raise TypeError(f"params: the default of {sym.name} must be a real number, got {default!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"params: the default of {sym.name} must be finite, got {default!r}; give a finite "
                         "value inside its domain (calls may pass others)")
    lower = upper = None
    lower_closed = upper_closed = True
    if domain is None:
        if sym.is_positive or sym.is_nonnegative:
            lower, lower_closed = sp.Integer(0), not sym.is_positive
        if sym.is_negative or sym.is_nonpositive:
            upper, upper_closed = sp.Integer(0), not sym.is_negative
    elif isinstance(domain, sp.Interval):
        symbolic = [b for b in (domain.start, domain.end) if b.free_symbols]
        if symbolic:  # (float() of it raised "Cannot convert expression to float", which named neither)
            raise ValueError(
                f"domains: the domain of {sym.name} must have numeric bounds, got {domain} (its bound "
                f"{symbolic[0]} depends on {', '.join(sorted(map(str, symbolic[0].free_symbols)))}): a parameter's "
                "domain cannot depend on another parameter; give numbers (e.g. sp.Interval(0, 10)), and state the "
                "relation where the loss is called")
        # (a float bound exact as the rational of its decimal, as in pieces: Interval(0.5, 2) kept 0.5 as a 15-digit
        # Float, and the parameters sampled from it carried that precision into the 60-digit reference, which then
        # differed from a correct kernel in the 18th digit)
        if domain.start != -sp.oo:
            lower, lower_closed = _exact(domain.start), not domain.left_open
        if domain.end != sp.oo:
            upper, upper_closed = _exact(domain.end), not domain.right_open
    else:
        raise TypeError(f"domains: the domain of {sym.name} must be a sympy.Interval, got {domain!r}")
    p = Param(sym.name, sym, value, "a parameter of the gradient definition", lower=lower, lower_closed=lower_closed,
              upper=upper, upper_closed=upper_closed)
    # compared as the calls compare (refloss._param.Param.admits: the bounds as floats): a SymPy Integer or Rational
    # bound never equals a Python float in SymPy 1.14 (0.0 == Integer(0) is False), so a default on a closed bound
    # was refused although calls take that value
    lo, hi = (None if b is None else float(b) for b in (lower, upper))
    lo_ok = lo is None or value > lo or (lower_closed and value == lo)
    hi_ok = hi is None or value < hi or (upper_closed and value == hi)
    if not (lo_ok and hi_ok):
        raise ValueError(f"params: the default {sym.name} = {value!r} is outside its domain {p.rule()}")
    return p


class Design:
    """A loss derived from its gradient by :func:`from_gradient`.

    ``expr`` (L as a Piecewise in the variable), ``gradient`` (the definition), ``constants``
    (the integration constants and their values), ``smooth`` (per breakpoint: is the gradient
    continuous there), ``checks`` (the claims checked, with how), ``spec`` (the LossSpec);
    ``page()`` (the derivation page, Markdown), ``write(folder)`` (an importable package, the
    page and its figure), ``loss`` (the compiled loss, called like refloss's own losses; CPU).
    """

    def __init__(self, name: str, variable, derivation, spec):
        self.name = name
        self.variable = variable
        self.spec = spec
        self._g = derivation
        self._back = {_a: variable} if variable != _a else {}
        self._loss = None

    # -- the derivation ----------------------------------------------------------------------
    @property
    def expr(self) -> sp.Piecewise:
        return self._g.expr.xreplace(self._back)

    @property
    def gradient(self) -> sp.Piecewise:
        return self._g.gradient.xreplace(self._back)

    @property
    def constants(self) -> dict:
        return {c: v.xreplace(self._back) for c, v in self._g.integration_constants.items()}

    @property
    def smooth(self) -> dict:
        """``{breakpoint: whether the gradient is continuous there}``."""
        return dict(zip(self._g.breakpoints, self._g.smooth))

    @property
    def checks(self) -> list:
        """``[(claim, method), ...]``: every claim checked while deriving."""
        return list(self.spec.checks)

    def __repr__(self) -> str:
        return f"<Design {self.name}: L = {sp.sstr(self.expr)}>"

    # -- generated files ---------------------------------------------------------------------
    @property
    def source(self) -> str:
        return f"refloss.design.from_gradient({self.name!r})"

    def _python_files(self) -> dict:
        spec, source = self.spec, self.source
        scalar = scalar_module(spec, source).replace(
            "its entry in refloss/_generated/_index.py", "its LossInfo in the package's __init__.py")
        return {f"{self.name}/__init__.py": _package_init(spec, source),
                f"{self.name}/_scalar.py": scalar,
                f"{self.name}/_cpu.py": cpu_module(spec, source)}

    def page(self) -> str:
        """The derivation page (Markdown; its figures are written next to it by :meth:`write`)."""
        return _banner(markdown(self.spec, self.source, image_dir=".", qualified=f"{self.name}.loss",
                                generator="`refloss.design.from_gradient`"))

    def files(self) -> dict:
        """``{relative path: text}`` of everything :meth:`write` writes."""
        out = {path: _banner(text) for path, text in self._python_files().items()}
        out[f"{self.name}.md"] = self.page()
        for k, svg in enumerate(figures(self.spec, scalar_module(self.spec, self.source))):
            out[figure_name(self.spec, k)] = svg
        return out

    def write(self, folder, *, overwrite: bool = False) -> list:
        """Write the package ``<folder>/<name>/`` (``import <name>; <name>.loss(pred, target)``
        with ``folder`` on the path; needs refloss, not SymPy), the page ``<name>.md`` and its
        figure ``<name>.svg``; returns the paths written.

        Files refloss.design wrote before (its banner) are replaced; any other file in the way
        (a hand-written ``<name>/__init__.py``, say) is an error unless ``overwrite=True``."""
        folder = Path(folder)
        files = sorted(self.files().items())
        if not overwrite:
            page = folder / f"{self.name}.md"  # a figure (no banner) is ours where the page beside it is
            theirs = [folder / rel for rel, text in files if (folder / rel).exists()
                      and not _written_by_refloss(page if rel.endswith(".svg") else folder / rel)
                      and (folder / rel).read_bytes() != text.encode()]
            if theirs:
                raise FileExistsError(
                    f"write: {', '.join(map(str, theirs))} exist and were not written by refloss.design; "
                    "write to another folder, rename the design, or pass overwrite=True to replace them")
        return [_write(folder / rel, text) for rel, text in files]

    # -- the compiled loss -------------------------------------------------------------------
    @property
    def loss(self):
        """The compiled loss, a :class:`refloss._loss.Loss`: ``loss(pred, target, **params,
        reduction=..., dtype=..., validate=...)`` and ``loss.value_and_grad(...)``, CPU only.
        Its package is written to a cache folder (named by a hash of its sources) and imported
        from there; its kernels compile on first call."""
        if self._loss is None:
            files = {rel.partition("/")[2]: _banner(text) for rel, text in self._python_files().items()}
            digest = hashlib.sha256("\0".join(f"{k}\0{v}" for k, v in sorted(files.items())).encode()).hexdigest()
            modname = f"_refloss_design_{self.name}_{digest[:16]}"
            if modname not in sys.modules:
                root = _cache_root() / modname
                for rel, text in files.items():
                    _write(root / rel, text)
                spec = importlib.util.spec_from_file_location(modname, root / "__init__.py",
                                                              submodule_search_locations=[str(root)])
                module = importlib.util.module_from_spec(spec)
                sys.modules[modname] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[modname]
                    raise
            self._loss = sys.modules[modname].loss
        return self._loss


def _package_init(spec, source: str) -> str:
    pnames = "".join(f", {p.name}={p.default!r}" for p in spec.params)
    return "\n".join([
        banner(source),
        "# ruff: noqa",
        f'"""{_doc(spec.title)}: a loss designed with refloss.design from its gradient.',
        "",
        spec.formula,
        "",
        f"    import {spec.name}",
        f"    {spec.name}.loss(pred, target{pnames}, reduction=\"none\")",
        f"    value, (d_pred, d_target) = {spec.name}.loss.value_and_grad(pred, target{pnames})",
        "",
        "CPU only (Numba: compiled on first use, cached on disk).  Needs refloss (NumPy, Numba), not",
        f'SymPy.  The derivation and the claims checked: {spec.name}.md."""',
        "from refloss._info import LossInfo, MeanWeight, Variant",
        "from refloss._loss import ModuleLoss",
        "from refloss._param import Param",
        "",
        "LOSSES = {}",
        "",
        "",
        info_block(spec, source).rstrip("\n"),
        "",
        f"info = LOSSES[{spec.name!r}]",
        f"loss = ModuleLoss(info, __name__ + '._scalar', __name__ + '._cpu', page={spec.name + '.md'!r})",
        "value_and_grad = loss.value_and_grad",
        "",
    ])


def _banner(text: str) -> str:
    """The generated file's banner, made to name how a design is regenerated (and the SymPy used)."""
    head, sep, rest = text.partition("\n\n")
    if _REGENERATE not in head:
        raise AssertionError(f"generated text without the expected banner: {head[:200]!r}")
    head = head.replace(_REGENERATE, _MARKER).replace(
        f"with SymPy {SYMPY_PIN}.", f"with SymPy {sp.__version__}.")
    return head + sep + rest


def _cache_root() -> Path:
    root = os.environ.get("REFLOSS_DESIGN_CACHE")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "refloss" / "design")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
    except OSError:  # not writable: a folder for this process
        path = Path(tempfile.mkdtemp(prefix="refloss-design-"))
    return path


def _write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` unless it is there already (an unchanged file keeps its time
    stamp, so Numba's disk cache of it stays valid); atomically, for concurrent processes."""
    if path.exists() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
