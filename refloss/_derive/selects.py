"""Branch-free selections in a generated CPU function: :func:`selects`.

A conditional expression ``a if c else b`` becomes, in Numba's IR, a branch: three blocks and a
variable assigned in two of them.  Numba rebuilds SSA form for each such variable with a pass over
every block of the function, so a function's compile time grows with (conditional expressions) x
(blocks): Alpha-IoU's float64 gradient block, with 856 of them (the kernel written into its loop
twice), took 41 s to compile, of which most went to Numba's SSA and liveness passes.

:func:`selects` rewrites each conditional expression whose two arms are cheap and cannot fault
(arithmetic, comparisons, ``min``, ``max``, ``abs``, ``math.copysign``, the dtype casts, and
selections themselves) into ``_sel(c, a, b)``, a Numba intrinsic (:mod:`refloss._select`) that
evaluates both arms and emits one LLVM ``select``: no block, no variable assigned twice.  The value
is the one the branch gives, bit for bit (both arms are plain floating-point expressions, and the
kernels compile with ``error_model="numpy"``: a division by zero in the arm not taken gives an
unused inf, not an exception).  An arm with any other call (``math.pow``, ``math.log``...) or an
array element keeps its branch: evaluating it on every element would cost time.  Alpha-IoU's
gradient block then compiled in 17 s.

The rest of the source is kept character for character: only the conditional expressions' text
is replaced (grouping parentheses around one are dropped with it).
"""
from __future__ import annotations

import ast

# calls an arm may make and still be evaluated unconditionally: cheap, and no fault for any argument
CHEAP_CALLS = frozenset({"min", "max", "abs", "math.copysign", "_f32", "_f64", "_i32", "_i64", "_sel"})
_CHEAP_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd, ast.Not, ast.BitAnd, ast.BitOr)
_LEAVES = (ast.Name, ast.Constant, ast.Load, ast.cmpop, ast.expr_context)


def _cheap(node: ast.AST) -> bool:
    """Whether evaluating ``node`` unconditionally costs little and cannot fault."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if ast.unparse(n.func) not in CHEAP_CALLS or n.keywords:
                return False
        elif isinstance(n, ast.Attribute):
            if ast.unparse(n) != "math.copysign":
                return False
        elif isinstance(n, (ast.BinOp, ast.UnaryOp)):
            if not isinstance(n.op, _CHEAP_OPS):
                return False
        elif not isinstance(n, (*_LEAVES, *_CHEAP_OPS, ast.Compare, ast.IfExp)):
            return False  # subscripts, boolean operators (short-circuit), anything else
    return True


def _safe_in_python(node: ast.AST) -> bool:
    """Whether evaluating ``node`` in Python cannot raise either: no division (a Python float divided by zero
    raises ZeroDivisionError) and no integer cast (``_i64`` of an infinity or NaN raises)."""
    return not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
                   or isinstance(n, ast.Call) and ast.unparse(n.func) in ("_i32", "_i64") for n in ast.walk(node))


def selects(source: str, python: bool = False) -> str:
    """``source`` (Python code) with each conditional expression of cheap arms written ``_sel(c, a, b)``.

    ``python``: the source also runs in Python (a scalar kernel: the CUDA simulator and plain Python callers
    run it), where ``_sel`` is a function whose arms are evaluated before the call: only arms that cannot
    raise in Python either are converted (:func:`_safe_in_python`)."""
    tree = ast.parse(source)
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)

    def span(node) -> tuple:
        return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset

    def render(node) -> str:
        """The text of ``node`` with its conditional expressions rewritten (innermost first)."""
        if isinstance(node, ast.IfExp):
            test, body, orelse = render(node.test), render(node.body), render(node.orelse)
            node.converted = _cheap(node.body) and _cheap(node.orelse) and (
                not python or (_safe_in_python(node.body) and _safe_in_python(node.orelse)))
            if node.converted:
                return f"_sel({test}, {body}, {orelse})"
        start, end = span(node)
        pieces, pos = [], start
        # (a def's decorators precede its span: their text is copied with what comes before it)
        children = sorted((c for c in ast.iter_child_nodes(node) if hasattr(c, "lineno") and span(c)[0] >= start),
                          key=span)
        for child in children:
            a, b = span(child)
            inner = render(child)
            if isinstance(child, ast.IfExp) and child.converted and _grouping(a, b):
                a, b = a - 1, b + 1  # (x if c else y) -> _sel(c, x, y)
            pieces += [source[pos:a], inner]
            pos = b
        return "".join(pieces) + source[pos:end]

    def _grouping(a: int, b: int) -> bool:
        """Whether the text [a, b) is enclosed in parentheses of its own (not a call's)."""
        if a == 0 or b >= len(source) or source[a - 1] != "(" or source[b] != ")":
            return False
        before = source[:a - 1].rstrip()
        return not before or not (before[-1].isalnum() or before[-1] in "_)]")

    for node in ast.walk(tree):
        node.converted = False
    out, pos = [], 0
    for stmt in tree.body:
        a, b = span(stmt)
        out += [source[pos:a], render(stmt)]
        pos = b
    return "".join(out) + source[pos:]
