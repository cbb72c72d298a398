"""One chunk of a sweep, as a worker runs it: its inputs, the results under test, the
reference, the errors, and the chunk's summary (a small JSON-able dict, never arrays).

A task is a plain dict (picklable, sent to a process or a dask worker):

- ``loss``, ``params`` (the user's), ``dtype`` ("float32" or "float64"), ``top_k`` (worst
  points kept per component), ``oracle`` (re-check points with mpmath), ``recheck_top`` (the
  worst points per component the oracle re-checks), ``recheck_cap`` (near-boundary points it
  re-checks, worst first);
- ``impl`` (None: refloss's own kernel of ``dtype``; else a ``module:function`` string or a
  callable), ``impl_fingerprint`` (its code's hash, :mod:`refloss.sweep._fingerprint`: a worker's set-up is
  reused only for the same code), ``impl_params``, ``framework``;
- the chunk: ``{"kind": "bits", "lo", "hi", "target"}`` (float32 bit patterns lo..hi-1, all
  finite) or ``{"kind": "samples", "space", "seed", "index", "n"}``; and its ``id``.

Everything the summary holds is reproducible from the task alone (seeded draws, no clock),
so a chunk computed twice, here or on a cluster, gives the same summary.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from .. import _measures
from .._cpu import read_only
from .._loss import loss_named
from .._numba_options import SERIAL_BELOW
from .._reference import REFERENCES
from . import _spaces

# the drivers run serially below SERIAL_BELOW elements: a chunk is evaluated in blocks of this
# size, on the calling thread only (no Numba thread pool: a process or dask thread is one core,
# and concurrent parallel launches from dask's threads are not safe with every threading layer)
BLOCK = min(8192, SERIAL_BELOW - 1)
# float64 ULPs within which the float64 kernel's result may sit on the other side of a float32
# rounding boundary than the exact result (the kernels are within 4 ULP64: refloss verify)
HAIR = 8.0
FAMILIES = ("elementwise", "classification", "box", "rotated")
BOXES = ("box", "rotated")  # the box measure (refloss._measures.box_errors)

_SETUPS: dict = {}


class Setup:
    """What a worker needs for every chunk of one sweep (built once per process)."""

    def __init__(self, task: dict):
        self.loss = loss = loss_named(task["loss"])
        self.info = info = loss.info
        self.family = info.family
        self.params = dict(task["params"])
        values = loss._param_values(self.params)
        self.full_params = dict(zip((p.name for p in info.params), values))
        self.dtype = np.dtype(task["dtype"])
        self.single = self.dtype == np.float32
        self.drivers = loss._module("cpu")
        self.args = {prec: loss.kernel_args(self.params, prec) for prec in ("f64", "f32")}
        self.columns, self.groups = columns(info)
        self.impl = _load_impl(task.get("impl"), task.get("impl_params") or {})
        self.framework = task.get("framework", "auto")
        self.oracle = None
        if task.get("oracle", True):
            from .._families import oracle_function

            self.oracle = oracle_function(REFERENCES[loss.name].oracle)
        self.bar = bars(loss.name, task["dtype"])
        # a float64 sweep (of refloss's own kernel or of an implementation): the double-double twin is the reference
        # (:func:`reference`), where one is generated (box, rotated-box, element-wise and classification losses); the
        # float64 kernel would not do for an implementation: one that returns the kernel's own results would measure
        # 0 everywhere, and the oracle, which re-checks the worst points, would see none
        self.reference = reference_module(self.drivers) if not self.single else None


def reference_module(drivers):
    """The double-double reference module (refloss/_generated/<loss>_ref.py, codegen's reference_module) of a
    loss's CPU drivers, or None (a row loss, softmax cross-entropy or DFL, a box coding, or a refloss.design loss:
    none generated)."""
    import importlib

    name = drivers.__name__
    if not (name.startswith("refloss._generated.") and name.endswith("_cpu")):
        return None
    try:
        return importlib.import_module(name[:-len("_cpu")] + "_ref")
    except ModuleNotFoundError:
        return None


def columns(info) -> tuple:
    """(column names, {group: column indices}): the value, then each gradient coordinate;
    a group is the value or the gradient with respect to one input."""
    cols, groups = ["value"], {"value": [0]}
    for name, w in zip(info.inputs, info.widths):
        if name not in info.grad_inputs:
            continue
        idx = []
        for k in range(w):
            idx.append(len(cols))
            cols.append(f"d_{name}" + (f"[{k}]" if w > 1 else ""))
        groups[f"d_{name}"] = idx
    return cols, groups


def bars(name: str, dtype: str) -> tuple:
    """(value bar, gradient bar) in the sweep's ULPs: the loss's bar of refloss/_reference.py
    (box bars, absolute and relative errors, in ULPs of 1 and of the pair's gradient scale)."""
    bar = REFERENCES[name].bar
    v, g = bar.at(dtype)
    if bar.per_epsilon:
        eps = 2.0**-23 if dtype == "float32" else 2.0**-52
        v, g = v / eps, g / eps
    return float(v), float(g)


def _load_impl(spec, impl_params: dict):
    if spec is None:
        return None
    if isinstance(spec, str):
        from .._impl import load_callable

        fn = load_callable(spec)
    else:
        fn = spec
    return partial(fn, **impl_params) if impl_params else fn


def setup(task: dict) -> Setup:
    impl = task.get("impl")
    key = (task["loss"], repr(sorted(task["params"].items())), task["dtype"],
           impl if isinstance(impl, (str, type(None))) else id(impl), task.get("impl_fingerprint"), repr(sorted((task.get("impl_params") or {}).items())),
           task.get("framework", "auto"), task.get("oracle", True))
    s = _SETUPS.get(key)
    if s is None:
        s = _SETUPS[key] = Setup(task)
    return s


# ------------------------------------------------------------------ evaluation


def kernel(s: Setup, inputs: tuple, precision: str, raw: bool = False):
    """refloss's fused value-and-gradient driver of ``precision`` ("f32"/"f64") over the chunk,
    block by block on this thread; the columns as arrays of that precision (``raw``: also the
    gradient arrays, one per input, whose columns those are)."""
    dt = np.float32 if precision == "f32" else np.float64
    flat = [read_only(np.ascontiguousarray(a, dt)) for a in inputs]  # (as the API's calls: no second compile)
    n = len(flat[0])
    out = np.empty(n, dt)
    grads = [np.empty(f.shape, dt) for f in flat]
    fn = getattr(s.drivers, f"value_and_grad_{precision}")
    args, one = s.args[precision], dt(1)
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        fn(*(f[a:b] for f in flat), out[a:b], *(g[a:b] for g in grads), one, *args)
    cols = [out]
    for name, g in zip(s.info.inputs, grads):
        if name in s.info.grad_inputs:
            cols += [g] if g.ndim == 1 else [g[:, k] for k in range(g.shape[1])]
    return (cols, grads) if raw else cols


def implementation(s: Setup, inputs: tuple) -> list:
    """The user's function on the chunk: columns (None where not measured: a NumPy function's
    gradients, which a sweep does not take by finite differences)."""
    from ..testing import _detect, _evaluate

    fw = s.framework
    if fw == "auto":
        fw = _detect(s.impl, tuple(a.astype(np.float64) for a in inputs))
    grad = fw in ("torch", "jax")
    wrt = [s.info.inputs.index(n) for n in s.info.grad_inputs]
    try:
        v, g = _evaluate(s.impl, fw, inputs, s.dtype.name, grad, layouts=s.info.layouts, wrt=wrt)
    except Exception as e:  # noqa: BLE001 - the function under test failed: say so, with what it got
        raise ImplementationError(f"raised {type(e).__name__}: {e}") from e
    n = len(inputs[0])
    v = np.asarray(v, np.float64)
    if v.shape != (n,):
        raise ImplementationError(f"returned shape {v.shape} for {n} points: a sweep needs one loss per element "
                                  "(pass reduction='none', e.g. --impl-param reduction=none)")
    cols = [v]
    for name in s.info.grad_inputs:
        w = s.info.widths[s.info.inputs.index(name)]
        if g is None:
            cols += [None] * w
        else:
            a = np.asarray(g[s.info.grad_inputs.index(name)], np.float64).reshape(n, -1)
            cols += [a[:, k] for k in range(w)]
    return cols


class ImplementationError(Exception):
    """The function under test raised or returned something a sweep cannot measure."""


def box_floors(s: Setup, inputs: tuple, ref_cols: list, ref_grads=None) -> list:
    """Per column, the floor of the ULP measure (refloss._measures.box_errors's scales): 1 for
    the value (its error is absolute), the pair's gradient scale for the gradients.
    ``ref_grads``: the float64 gradient arrays those columns are (one compiled pass for axis-aligned
    boxes with gradients with respect to both, the same numbers)."""
    if (ref_grads is not None and s.family == "box" and len(inputs) == 2 and len(ref_grads) == 2
            and len(ref_cols) == 9 and all(g.shape == (len(inputs[0]), 4) for g in ref_grads)):
        from ._fast import box_scale

        scale = np.empty(len(inputs[0]))
        box_scale(inputs[0], inputs[1], ref_grads[0], ref_grads[1], scale)
        return [np.ones(1)] + [scale] * 8
    grads = np.stack([np.asarray(c, np.float64) for c in ref_cols[1:]], axis=1)
    with np.errstate(invalid="ignore"):
        scale = np.nanmax(np.abs(np.where(np.isfinite(grads), grads, np.nan)), axis=1, initial=0.0)
    p, t = (np.asarray(a, np.float64) for a in inputs[:2])
    if s.family == "rotated":
        size = _measures.rotated_extent(p, t)
    else:
        size = np.maximum(np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0]),
                          np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))
    scale = np.maximum(scale, np.where(size > 0, 1.0 / np.where(size > 0, size, 1.0), 0.0))
    return [np.ones(1)] + [scale] * (len(ref_cols) - 1)


def classification_floors(s: Setup, inputs: tuple) -> list | None:
    """Per column, the floor of the ULP measure at soft targets (refloss/sweep/_floors.py: the loss's floor
    of refloss/_reference.py in float64), 0 at hard targets; None where every target of the chunk is hard."""
    from ._floors import floors

    return floors(REFERENCES[s.loss.name].floor, inputs[0], inputs[1], s.dtype, s.full_params)


def _screen(s: Setup, inputs: tuple, got: list) -> np.ndarray:
    """float64 self-sweeps: per point, the largest relative disagreement of the analytic
    gradient with a central difference of the kernel's own value (a cheap screen for the
    points the oracle should see: a wrong branch, lost digits, a discontinuity)."""
    dt = np.float64
    score = np.zeros(len(inputs[0]))
    col = 1
    for j, (name, w) in enumerate(zip(s.info.inputs, s.info.widths)):
        if name not in s.info.grad_inputs:
            continue
        for k in range(w):
            base = np.asarray(inputs[j], dt)
            if w == 1:
                size = np.abs(base)
            elif s.family == "rotated":  # (cx, cy, w, h, angle): a step of the larger side (angles: of 1)
                size = np.maximum(base[:, 2], base[:, 3]) if k < 4 else np.ones(len(base))
            else:
                size = np.abs(base[:, 2 + (k % 2)] - base[:, k % 2])
            h = np.maximum(size, 1e-30) * 2.0**-17
            plus, minus = [list(inputs), list(inputs)]
            for arr, sign in ((plus, 1), (minus, -1)):
                a = base.copy()
                if w == 1:
                    a = a + sign * h
                else:
                    a[:, k] = a[:, k] + sign * h
                arr[j] = a
            vp, vm = kernel(s, tuple(plus), "f64")[0], kernel(s, tuple(minus), "f64")[0]
            step = (plus[j] - minus[j]) if w == 1 else (plus[j][:, k] - minus[j][:, k])
            with np.errstate(invalid="ignore", divide="ignore"):
                fd = (vp - vm) / step
                g = got[col]
                rel = np.abs(fd - g) / np.maximum(np.maximum(np.abs(fd), np.abs(g)), 1e-300)
            score = np.maximum(score, np.where(np.isnan(rel), np.inf, rel))
            col += 1
    return score


# ------------------------------------------------------------------ ranking


def sign_keys(rows: np.ndarray) -> np.ndarray:
    """0 where the input is negative (-0.0 included), 1 elsewhere: -0.0 sorts before 0.0."""
    return (~np.signbit(rows)).astype(np.int8)


def top_indices(err: np.ndarray, rows, k: int) -> np.ndarray:
    """The k points of largest error (> 0), ties broken by the inputs (ascending, -0.0 before
    0.0): the order :func:`refloss.sweep._merge.key` gives, so that merging chunks' lists is
    exact.  ``rows(indices)``: the flattened inputs of those points, (len, m) float64."""
    from ._fast import kth_largest

    if len(err) == 0 or k <= 0:
        return np.zeros(0, np.int64)
    kth = kth_largest(err, k)  # 0.0: fewer than k positive errors
    if kth > 0:
        above = np.flatnonzero(err > kth)
        ties = np.flatnonzero(err == kth)
        need = k - len(above)
        if len(ties) > 4 * need + 64:  # many equal errors: keep the smallest inputs by the first column
            first = rows(ties)[:, 0]
            cut = np.partition(first, need - 1)[need - 1]
            ties = ties[first <= cut]
        pos = np.concatenate([above, ties])
    else:
        pos = np.flatnonzero(err > 0)
    if not len(pos):
        return pos
    r = rows(pos)
    keys = [sign_keys(r[:, c]) for c in range(r.shape[1] - 1, -1, -1)]
    keys += [r[:, c] for c in range(r.shape[1] - 1, -1, -1)]
    keys.append(-err[pos])
    return pos[np.lexsort(keys)][:k]


# ------------------------------------------------------------------ the chunk


def flat_rows(inputs: tuple):
    """rows(indices) -> the flattened inputs of those points, (len, m) float64."""
    def rows(idx):
        idx = np.asarray(idx, np.int64)
        return np.concatenate([np.asarray(a[idx], np.float64).reshape(len(idx), -1 if len(idx) else max(1, a[0].size))
                               for a in inputs], axis=1)

    return rows


def reference(s: Setup, inputs: tuple) -> tuple:
    """(columns, gradient arrays) as :func:`kernel` with ``raw``, from the double-double reference: value and
    gradients of every point, each the rounding of a ~106-bit result; the box twins' functions (exp, log, atan, pow)
    keep float64's own rounding, a few float64 ulps of theirs, the element-wise and classification twins' exp, expm1, log,
    log1p, powers, tanh, sigmoid, softplus and focal forms are accurate to ~100 bits (the oracle re-checks the worst
    points)."""
    p, t = (np.ascontiguousarray(a, np.float64) for a in inputs)
    w = p.shape[1] if p.ndim == 2 else 1  # (element-wise and classification losses: one number each)
    out = np.empty((len(p), 1 + 2 * w))
    for a in range(0, len(p), BLOCK):
        b = min(len(p), a + BLOCK)
        s.reference.reference(p[a:b], t[a:b], out[a:b], *s.args["f64"])
    grads = [np.ascontiguousarray(out[:, 1:1 + w]), np.ascontiguousarray(out[:, 1 + w:])]
    if p.ndim == 1:
        grads = [g[:, 0] for g in grads]
        return [out[:, 0].copy()] + grads, grads
    return [out[:, 0].copy()] + [g[:, k] for g in grads for k in range(w)], grads


def _exact(s: Setup, inputs: tuple, i: int) -> tuple:
    """(hi, lo) per column at point i from the 50-digit oracle."""
    from ..oracle.rounding import split

    point = tuple(float(a[i]) if np.ndim(a) == 1 else tuple(map(float, a[i])) for a in inputs)
    try:
        values = s.oracle(*point, **s.full_params)
    except TypeError:  # an oracle that does not take every parameter the kernel has
        values = s.oracle(*point, **s.params)
    flat = []
    for v in values:
        flat.extend(v if isinstance(v, (tuple, list)) else [v])
    pairs = [_split(split, v) for v in flat[:len(s.columns)]]
    return np.array([h for h, _ in pairs]), np.array([lo for _, lo in pairs])


def _split(split, v) -> tuple:
    """refloss.oracle.rounding.split, also for numbers far outside float64's range (the oracle's
    exact gradient at a logit of 1e38 is about e**-1e38), which it cannot round: those are
    0 or +-inf in float64 (exactly as in float32), with no remainder to speak of."""
    from mpmath import mp

    if mp.isfinite(v) and v != 0:
        e = int(mp.floor(mp.log(abs(v), 2)))
        if e < -1200:
            return (-0.0 if v < 0 else 0.0), 0.0
        if e > 1100:
            return (-np.inf if v < 0 else np.inf), 0.0
    return split(v)


def _mirror(c, measured, got, ref, floors, vbar, gbar):
    """An earlier column whose results are exactly the negation of column c's, in the results
    under test and in the reference, with the same floor and bar (its errors are c's: the
    measure is symmetric in sign), or None."""
    for d in measured:
        if d >= c:
            return None
        if (d == 0) != (c == 0) or floors[d] is not floors[c]:
            continue
        from ._fast import is_negation

        a, b = got[c], got[d]
        if a.dtype == b.dtype and is_negation(a, b) and is_negation(ref[c], ref[d]):
            return d
    return None


def _group_max(arrays: list) -> np.ndarray:
    """Element-wise maximum of the arrays (the first itself when alone: no copy)."""
    out = arrays[0]
    for a in arrays[1:]:
        out = np.maximum(out, a)
    return out


def run_chunk(task: dict) -> dict:
    """The summary of one chunk (see :mod:`refloss.sweep._merge` for its fields)."""
    s = setup(task)
    labels, codes, inputs = _spaces.inputs(task, s)
    n = len(inputs[0])
    # a float64 self-sweep without a double-double reference: measured only where the oracle looks
    self_f64 = s.impl is None and not s.single and s.reference is None
    got = kernel(s, inputs, "f64" if not s.single else "f32") if s.impl is None else implementation(s, inputs)
    ncol = len(s.columns)
    measured = [c for c in range(ncol) if got[c] is not None]
    # every measured column's errors are written by the pass below (or copied from its mirror);
    # a float64 self-sweep has errors only where the oracle measures
    err = [np.zeros(n) if self_f64 or got[c] is None else np.empty(n) for c in range(ncol)]
    near = np.zeros(n, bool)
    fail = np.zeros(n, bool)
    vbar, gbar = s.bar
    ref = None
    floors = [np.zeros(1)] * ncol
    if not self_f64:
        ref, ref_grads = reference(s, inputs) if s.reference is not None else kernel(s, inputs, "f64", raw=True)
        if s.family in BOXES:
            floors = box_floors(s, inputs, ref, ref_grads)
        elif s.family == "classification":  # soft targets: the oracle's floors (refloss/sweep/_floors.py)
            floors = classification_floors(s, inputs) or floors
        for c in measured:
            twin = _mirror(c, measured, got, ref, floors, vbar, gbar)
            if twin is not None:  # -(another column) in both results: the same errors (d_target = -d_pred)
                err[c] = err[twin]
                continue
            _ulp_errors(got[c], ref[c], floors[c], s.single, err[c], near, vbar if c == 0 else gbar, fail)
    rows = flat_rows(inputs)
    k = int(task.get("top_k", 8))
    groups = {g: [c for c in cols if c in measured] for g, cols in s.groups.items()}
    # the points the oracle sees: the worst of each group (by the float64 kernel, or for a
    # float64 self-sweep by the finite-difference screen, plus an even sample of the chunk)
    recheck = set()
    if self_f64:
        recheck.update(top_indices(_screen(s, inputs, got), rows, k).tolist())
        recheck.update(np.linspace(0, n - 1, min(n, k)).astype(int).tolist() if n else [])
    else:
        r = int(task.get("recheck_top", 2))
        if s.reference is not None and n:  # and an even sample: the oracle looks even where the twin agrees with
            recheck.update(np.linspace(0, n - 1, min(n, r)).astype(int).tolist())  # the kernel everywhere
        seen = {}  # id -> array (kept alive, so that an id is never reused here)
        for cols in groups.values():
            e = _group_max([err[c] for c in cols]) if cols else None
            if e is not None and id(e) not in seen:
                seen[id(e)] = e
                recheck.update(top_indices(e, rows, r).tolist())
    near_idx = np.flatnonzero(near)
    cap = int(task.get("recheck_cap", 2))
    if len(near_idx) and cap > 0:  # the near-boundary points, worst first, up to the cap
        worst = _group_max([err[c][near_idx] for c in measured]) + 1e-300
        recheck.update(near_idx[top_indices(worst, lambda idx: rows(near_idx[idx]), cap)].tolist())
    by_oracle = set()
    delta = 0.0
    if s.oracle is not None:
        if self_f64:
            ref = [np.full(n, np.nan) for _ in range(ncol)]
        for i in sorted(recheck):
            hi, lo = _exact(s, inputs, i)
            fl = [float(f[0] if len(f) == 1 else f[i]) for f in floors]
            if s.family in BOXES and self_f64:  # the gradient scale from the exact gradients
                fl = [float(f[0]) for f in box_floors(s, tuple(np.asarray(a[i:i + 1]) for a in inputs),
                                                       [np.array([h]) for h in hi])]
            bad = False
            for c in measured:
                e = float(_measures.ulp_error(float(got[c][i]), hi[c], lo[c], s.dtype, floor=fl[c] or None))
                if not self_f64 and math.isfinite(e) and math.isfinite(err[c][i]):
                    delta = max(delta, abs(e - err[c][i]))
                err[c][i] = e
                ref[c][i] = hi[c]
                bad |= e > (vbar if c == 0 else gbar)
            fail[i] = bad
            by_oracle.add(i)
    elif self_f64:
        ref = [np.full(n, np.nan) for _ in range(ncol)]
    summary = {"id": task["id"], "points": n, "failures": int(fail.sum()),
               "measured": len(by_oracle) if self_f64 else n, "oracle": len(by_oracle),
               "near_boundary": int(len(near_idx)), "near_rechecked": int(sum(int(i) in by_oracle for i in near_idx)),
               "oracle_delta": delta, "max": {}, "worst": {}}
    tops = {}
    for g, cols in groups.items():
        if not cols:
            summary["max"][g] = None
            continue
        e = _group_max([err[c] for c in cols])
        summary["max"][g] = float(e.max(initial=0.0))
        entries = []
        if id(e) not in tops:
            tops[id(e)] = (e, top_indices(e, rows, k))  # (e kept alive: its id stays its own)
        top = tops[id(e)][1]
        for i, row in zip(top, rows(top)):
            c = max(cols, key=lambda c: err[c][i])
            entries.append({
                "err": float(e[i]), "column": s.columns[c], "key": row.tolist(),
                "inputs": {name: np.asarray(a[i]).tolist() for name, a in zip(s.info.inputs, inputs)},
                "got": float(got[c][i]), "expected": float(ref[c][i]),
                "reference": "oracle" if int(i) in by_oracle else "double-double" if s.reference is not None
                else "float64 kernel",
                "case": labels[codes[i]],
            })
        summary["worst"][g] = entries
    return summary


def _ulp_errors(got, ref, floor, single, err, near, bar, fail):
    from ._fast import ulp_errors

    ulp_errors(got, np.asarray(ref, np.float64), np.asarray(floor, np.float64), single, HAIR, err, near, bar, fail)


def check_task(task: dict) -> None:
    """Raise ValueError for a task a worker could not run (before anything is sent out)."""
    loss = loss_named(task["loss"])
    if loss.info.family not in FAMILIES:
        raise ValueError(f"{loss.name}: refloss sweep covers element-wise, box, rotated-box and classification "
                         f"losses, not the {loss.info.family!r} family")
    loss._param_values(task["params"])
    loss.kernel_args(task["params"], "f64")
