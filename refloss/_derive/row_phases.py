"""A row kernel's statements in phases, for the CPU row drivers (issue 16).

A row kernel (:func:`refloss._derive.codegen.row_function`) runs loops over a row's elements and,
between two of them, the row's own steps: softmax cross-entropy's and DFL's log of the row's sum, once a
row, is a chain of some thirty dependent operations in float32 (two divisions among them) and a call of
libm's log1p in float64.  Run row after row, each row waits on that chain (perf: 40 % of the float32
softmax kernel's samples at 8 classes).  The drivers instead run a chunk of rows phase by phase: the
kernel's statements up to that segment for every row of the chunk, then the segment for every row (a
loop over rows, without a dependence from one to the next), then the rest.  Before the segment, each of the
row's loops (a maximum, an exp, a sum: each a chain of dependent operations in index order, waiting on the
loop before) is a phase of its own too, where that carries nothing the driver cannot keep (:func:`split`;
the value kernels' exp and sums share their one work row, and stay one phase), so that the next row's chain
overlaps the last one's: the float32
DFL row 0.90x the time, softmax cross-entropy's 0.88x (docs/performance.md).  Each row runs the kernel's
own statements in the kernel's order, so the results are the same bits; what one phase computes and a
later one reads is kept in an array a chunk (:class:`Phases`' ``stores`` and ``loads``).

The source is split by its own syntax tree (Python's ``ast``), and the phases are the kernel's own
lines (re-indented), not a re-printed tree: the generated files do not depend on how a Python version
prints a tree.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

# a segment between two loops is worth a phase of its own from this many statements, or with a call of libm
HEAVY_STATEMENTS = 8


@dataclass(frozen=True)
class Phases:
    """``params``: the kernel's parameters; ``parts``: the lines of each phase (one part where the kernel
    has no heavy segment, else a part for each loop before it but where :func:`split` keeps a loop with the
    one before, one for the segment and one after), at the kernel body's indentation (4 spaces), the
    ``return`` line left out; ``result``: the name the kernel returns;
    ``stores[k]``: the names part k keeps for the parts after it; ``loads[k]``: the names part k reads
    from the parts before it."""

    params: tuple
    parts: tuple
    result: str
    stores: tuple
    loads: tuple


def _names(nodes, load: bool) -> set:
    """The names the nodes read (``load``; an augmented assignment's target too) or write."""
    out = set()
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load if load else (ast.Store, ast.Del)):
                out.add(n.id)
            if load and isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                out.add(n.target.id)
    return out


def _upward(stmts, defined=frozenset()) -> tuple:
    """(the names the statements read before they write them, the names they surely write), in order;
    a loop's body as if run once, an ``if``'s names written only where both arms write them."""
    defined, up = set(defined), set()
    for st in stmts:
        if isinstance(st, ast.For):
            up |= _names([st.iter], True) - defined
            inner, _ = _upward(st.body, defined | _names([st.target], False))
            up |= inner  # (the body may not run, over a row of no elements: neither its names nor the loop's
            # variable are surely written after it)
        elif isinstance(st, ast.If):
            up |= _names([st.test], True) - defined
            a_up, a_def = _upward(st.body, defined)
            b_up, b_def = _upward(st.orelse, defined)
            up |= a_up | b_up
            defined |= a_def & b_def
        elif isinstance(st, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return, ast.AnnAssign)):
            up |= _names([st], True) - defined
            defined |= _names([st], False)
        else:
            raise ValueError(f"a row kernel's statement the phases do not handle: {ast.dump(st)[:80]}")
    return up, defined


def _is_constant(value) -> bool:
    """A literal, or a cast of one (``0.0``, ``_f32(0.0)``, ``-_f32(math.inf)``)."""
    if isinstance(value, ast.UnaryOp):
        return _is_constant(value.operand)
    if isinstance(value, ast.Constant):
        return True
    if isinstance(value, ast.Attribute):
        return isinstance(value.value, ast.Name) and value.value.id == "math"
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and len(value.args) == 1
            and not value.keywords and _is_constant(value.args[0]))


def _heavy(stmts) -> bool:
    calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "math" for st in stmts for n in ast.walk(st))
    return calls or len(stmts) >= HEAVY_STATEMENTS


def _flow(parts, params) -> tuple:
    """(loads, stores, unsure) of the parts, run one after another: ``loads[j]``, the names part j reads
    before it writes them and an earlier part writes; each kept by the last part before j that writes it
    (``stores``); ``unsure``, those written by more than one part whose last writer may not write them (in
    a loop's body or one arm of an ``if``): the kept value would be stale where it does not."""
    written = [_names(p, False) for p in parts]
    surely = [_upward(p)[1] for p in parts]
    loads, stores, unsure = [], [set() for _ in parts], set()
    for j, part in enumerate(parts):
        here = set()
        for n in _upward(part)[0] - set(params):
            writers = [k for k in range(j) if n in written[k]]
            if writers:
                here.add(n)
                stores[writers[-1]].add(n)
                if len(writers) > 1 and n not in surely[writers[-1]]:
                    unsure.add(n)
        loads.append(tuple(sorted(here)))
    return tuple(loads), tuple(tuple(sorted(st)) for st in stores), unsure


def _problem(parts, params, carried_ok, shared) -> str | None:
    """Why the parts cannot be phases, or None."""
    loads, _, unsure = _flow(parts, params)
    bad = sorted(n for names in loads for n in names if not carried_ok(n))
    if bad:
        return f"a row kernel's phases would carry {bad}, whose type the driver does not know"
    if unsure:
        return f"a row kernel's phases would carry {sorted(unsure)}, written in more than one phase, not surely"
    crossing = sorted(n for n in shared if sum(n in _names(p, True) | _names(p, False) for p in parts) > 1)
    if crossing:
        return f"a row kernel's phases would share the one row {crossing} between rows"
    return None


def split(source: str, carried_ok, shared=frozenset()) -> Phases:
    """The phases of the row kernel ``source`` (one function, ending in ``return <name>``).  The middle
    phase is the first segment between two loops that is heavy (:data:`HEAVY_STATEMENTS`, or a call of
    ``math``): its leading run of simple assignments, less the constant initialisations that only later
    statements read (they move to the last phase, so that no accumulator crosses a phase); the rest of
    the segment goes to the last phase.  The statements before the middle phase are a phase a loop (each
    loop with the statements before it), wherever that carries nothing more than ``carried_ok`` allows:
    a row's loops run one after another in the kernel, each waiting on the one before (a maximum, an
    exp, a sum: latency chains), and run for a chunk of rows the next row's chain overlaps the last's.
    ``carried_ok(name)``: whether a name may cross a phase (the caller knows their types); ``shared``:
    arrays that are one row for every row of a chunk (the value kernel's ``work``), which no two phases may
    both use.  A kernel whose middle phase would carry any other name or share such a row raises
    ValueError."""
    fn = ast.parse(source).body[0]
    lines = source.splitlines()
    body = fn.body
    last = body[-1]
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)):
        raise ValueError("a row kernel ends in `return <name>`")
    params = tuple(a.arg for a in fn.args.args)
    # (what the phases cannot carry: a parameter assigned, whose new value would not reach the later phases and
    # would be assigned again a row; a loop's `else`, which the liveness below does not read)
    if _names(body, False) & set(params):
        raise ValueError(f"a row kernel assigns its parameters {sorted(_names(body, False) & set(params))}")
    if any(isinstance(n, (ast.For, ast.While)) and n.orelse for n in ast.walk(fn)):
        raise ValueError("a row kernel's loop has an `else`")

    def text(stmts) -> list:
        return [ln for st in stmts for ln in lines[st.lineno - 1:st.end_lineno]]

    loops = [k for k, st in enumerate(body) if isinstance(st, ast.For)]
    middle = None
    for k1, k2 in zip(loops, loops[1:]):
        if _heavy(body[k1 + 1:k2]):
            middle = (k1 + 1, k2)
            break
    if middle is None:
        return Phases(params, (text(body[:-1]),), last.value.id, ((),), ((),))
    start, stop = middle
    run, moved, k = [], [], start
    while (k < stop and isinstance(body[k], ast.Assign) and len(body[k].targets) == 1
           and isinstance(body[k].targets[0], ast.Name)):
        run.append(body[k])
        k += 1
    for st in list(run):
        others = [s for s in run if s is not st]
        if _is_constant(st.value) and st.targets[0].id not in _names(others, True) | _names(others, False):
            run.remove(st)
            moved.append(st)
    tail = [run, moved + body[k:-1] + [last]]

    def cut(ends) -> list:
        bounds = [0] + ends + [start]
        return [body[a:b] for a, b in zip(bounds, bounds[1:])] + tail

    problem = _problem(cut([]), params, carried_ok, shared)
    if problem:
        raise ValueError(problem)
    ends = []
    for end in (j + 1 for j in loops if j + 1 < start):  # (after each loop before the middle but the last)
        if _problem(cut(ends + [end]), params, carried_ok, shared) is None:
            ends.append(end)
    parts = cut(ends)
    loads, stores, _ = _flow(parts, params)
    return Phases(params, tuple(text(p) for p in parts[:-1]) + (text(parts[-1][:-1]),), last.value.id, stores,
                  loads)
