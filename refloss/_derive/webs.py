"""One name for each independent value of a generated function: :func:`unique_names`.

Numba rebuilds SSA form for every local variable assigned more than once, with a pass over the
whole function for each such name.  Generated functions reuse names where the values are
independent: the block loops' second loop (over the elements whose reciprocals were unsafe)
repeats the kernel's temporaries, and a kernel's branches each assign the same temporaries.
GIoU's gradient block had 174 such names, and rebuilding SSA form took 1.9 s of its 6.9 s
compile (Numba 0.6x, ``pipeline_times`` of the compiled function).

A *web* is a definition together with the uses it reaches, merged with every other definition
that reaches one of those uses (the standard unit of register renaming).  Webs of one name are
independent values: renaming each web but the first (``_t17`` -> ``_t17_w1``) changes no
computed value and leaves several definitions only to the names whose values really meet (the
outputs after a kernel's branches, a loop's accumulator).

Only straight-line code, ``if``, ``for`` and ``while`` are analysed (what the generator writes);
a function with anything else (``break``, ``try``, a comprehension, a nested function...) is
returned unchanged.  A read that some path reaches with its name unassigned is an error: the
generator's bodies are written into loops that read their outputs after them.
"""
from __future__ import annotations

import ast

# statements and expressions the analysis understands; any other node leaves the source as it is
_STATEMENTS = (ast.Assign, ast.AugAssign, ast.Expr, ast.Return, ast.If, ast.For, ast.While, ast.Pass)
_UNSUPPORTED = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
                ast.Break, ast.Continue, ast.Try, ast.With, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                ast.Global, ast.Nonlocal, ast.Delete, ast.AnnAssign, ast.Yield, ast.YieldFrom, ast.Await)


class _Unsupported(Exception):
    pass


class _Webs:
    def __init__(self, fn: ast.FunctionDef):
        self.parent: dict = {}  # union-find over definitions: (id of the defining node, name)
        self.defs: dict = {}  # definition -> the Name node written (None: a parameter)
        self.uses: dict = {}  # id of a Name node read -> (the node, a definition reaching it)
        self.locals = {a.arg for a in fn.args.args}
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.locals.add(node.id)
        state = {name: _UNDEFINED for name in self.locals}
        for a in fn.args.args:
            d = (id(a), a.arg)
            self.parent[d] = d
            self.defs[d] = None
            state[a.arg] = frozenset([d])
        self.block(fn.body, state)

    def find(self, d):
        while self.parent[d] != d:
            self.parent[d] = self.parent[self.parent[d]]
            d = self.parent[d]
        return d

    def union(self, defs) -> None:
        roots = [self.find(d) for d in defs]
        for r in roots[1:]:
            self.parent[r] = roots[0]

    def define(self, node: ast.Name, state: dict) -> tuple:
        d = (id(node), node.id)
        if d not in self.parent:
            self.parent[d] = d
            self.defs[d] = node
        state[node.id] = frozenset([d])
        return d

    def read(self, expr, state: dict) -> None:
        for node in ast.walk(expr):
            if isinstance(node, _UNSUPPORTED):
                raise _Unsupported(type(node).__name__)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.locals:
                reaching = _defined(state, node)
                self.union(reaching)
                self.uses[id(node)] = (node, next(iter(reaching)))

    def target(self, target, state: dict) -> None:
        if isinstance(target, ast.Name):
            self.define(target, state)
        elif isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
            for t in target.elts:
                self.define(t, state)
        elif isinstance(target, (ast.Subscript, ast.Attribute)):
            self.read(target, state)  # (a store into an array: its names are read)
        else:
            raise _Unsupported(type(target).__name__)

    def block(self, body: list, state: dict) -> dict:
        for stmt in body:
            if not isinstance(stmt, _STATEMENTS):
                raise _Unsupported(type(stmt).__name__)
            if isinstance(stmt, ast.Assign):
                self.read(stmt.value, state)
                for t in stmt.targets:
                    self.target(t, state)
            elif isinstance(stmt, ast.AugAssign):
                self.read(stmt.value, state)
                if isinstance(stmt.target, ast.Name):  # x += e reads x: its new definition joins x's web
                    node = stmt.target
                    reaching = _defined(state, node)
                    d = self.define(node, state)
                    self.union([d, *reaching])
                else:
                    self.read(stmt.target, state)
            elif isinstance(stmt, (ast.Expr, ast.Return)):
                if stmt.value is not None:
                    self.read(stmt.value, state)
            elif isinstance(stmt, ast.If):
                self.read(stmt.test, state)
                state = _merge(self.block(stmt.body, dict(state)), self.block(stmt.orelse, dict(state)))
            elif isinstance(stmt, (ast.For, ast.While)):
                state = self.loop(stmt, state)
        return state

    def loop(self, stmt, state: dict) -> dict:
        if isinstance(stmt, ast.For):
            self.read(stmt.iter, state)
        entry, head = state, state
        for _ in range(1000):  # to the fixed point: what the end of the body carries to its start
            inside = dict(head)
            if isinstance(stmt, ast.While):
                self.read(stmt.test, inside)
            else:
                self.target(stmt.target, inside)
            end = self.block(stmt.body, inside)
            new = _merge(entry, end)
            if new == head:
                break
            head = new
        after = dict(head)
        if isinstance(stmt, ast.While):
            self.read(stmt.test, after)
        return self.block(stmt.orelse, after) if stmt.orelse else after


_UNDEFINED = frozenset([None])  # the state of a local before its first definition


def _defined(state: dict, node: ast.Name) -> frozenset:
    """The definitions of ``node``'s name that reach it; an error where on some path none does (a
    generated body written into a loop reads its outputs and ``_ok`` whichever branch it took: a name
    assigned in some branches only would read a stale or undefined value)."""
    reaching = state[node.id]
    if None in reaching:
        raise ValueError(f"line {node.lineno}: {node.id} may be read before it is assigned")
    return reaching


def _merge(a: dict, b: dict) -> dict:
    return {k: a.get(k, frozenset()) | b.get(k, frozenset()) for k in a.keys() | b.keys()}


def unique_names(source: str, keep=()) -> str:
    """``source`` (one ``def``) with each web of a local name but the first renamed ``<name>_w<k>``;
    the names in ``keep`` (e.g. the outputs a caller reads by name) are never renamed."""
    tree = ast.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        raise ValueError("unique_names takes the source of one function")
    fn = tree.body[0]
    try:
        webs = _Webs(fn)
    except _Unsupported:
        return source
    # the webs of each name, in the order of their first definition in the text
    first: dict = {}
    for d, node in webs.defs.items():
        pos = (0, 0) if node is None else (node.lineno, node.col_offset)
        root = webs.find(d)
        first[root] = min(first.get(root, pos), pos)
    by_name: dict = {}
    for root in sorted(first, key=first.get):
        by_name.setdefault(root[1], []).append(root)
    taken = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {a.arg for a in fn.args.args}
    new_name = {}
    for name, roots in by_name.items():
        if name in keep:
            continue
        k = 0
        for root in roots[1:]:
            k += 1
            while f"{name}_w{k}" in taken:
                k += 1
            new_name[root] = f"{name}_w{k}"
            taken.add(new_name[root])
    if not new_name:
        return source
    edits = []  # (line, start, end, text)
    for d, node in webs.defs.items():
        if node is not None and webs.find(d) in new_name:
            edits.append((node.lineno, node.col_offset, node.end_col_offset, new_name[webs.find(d)]))
    for node, d in webs.uses.values():
        if webs.find(d) in new_name:
            edits.append((node.lineno, node.col_offset, node.end_col_offset, new_name[webs.find(d)]))
    lines = source.split("\n")
    for line, start, end, text in sorted(set(edits), reverse=True):
        s = lines[line - 1]
        lines[line - 1] = s[:start] + text + s[end:]
    return "\n".join(lines)
