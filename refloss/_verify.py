"""``refloss verify``: every kernel against its exact reference values and finite differences.

One loop: for each row of the table (:mod:`refloss._reference`: loss, parameter set), backend
(CPU; CUDA when a GPU or the simulator is present) and dtype, the battery's inputs are
evaluated by the kernel and compared with the exact results, stored in the package
(:mod:`refloss._stored`, made once by the 50-digit oracle) or recomputed with mpmath
(``live=True``).  The error is measured by the loss's family (:mod:`refloss._families`): ULPs
of the correctly rounded result, or for boxes the value's absolute and the gradient's relative
error; float64 element-wise gradients are also compared with extrapolated central differences
of the kernel's own value away from kinks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _stored
from ._families import FAMILIES
from ._loss import loss_named
from ._reference import REFERENCES


@dataclass
class Row:
    loss: str
    params: dict
    backend: str
    dtype: str
    points: int
    value_err: float
    grad_err: float
    worst: str
    fd_rel: float | None = None
    measure: str = "ulp"  # "ulp", or "abs/rel" (boxes: value absolute, gradient relative error)
    bar: tuple = (4.0, 4.0)  # (value, gradient) in the measure's units
    fd_bar: float | None = None
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        fd_ok = self.fd_rel is None or self.fd_bar is None or self.fd_rel <= self.fd_bar
        return self.value_err <= self.bar[0] and self.grad_err <= self.bar[1] and fd_ok


def names() -> tuple:
    """The losses ``verify`` checks, in the index's order (every row of the table)."""
    from ._generated._index import LOSSES

    return tuple(n for n in LOSSES if n in REFERENCES)


def backends() -> list:
    """"cpu", plus "cuda" when a GPU or the CUDA simulator is available."""
    out = ["cpu"]
    try:
        from numba import cuda

        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or cuda.is_available():
            out.append("cuda")
    except Exception:  # noqa: BLE001 - numba-cuda not installed, or no driver
        pass
    return out


def reference(name: str, index: int, dtype: str, n_random: int = _stored.N_RANDOM, live: bool = False) -> dict:
    """The row of exact results (names, inputs, hi, lo, floor) of parameter set ``index``:
    stored, or computed with the oracle when ``live`` or for another battery size."""
    if live or n_random != _stored.N_RANDOM:
        return _stored.compute_row(name, index, dtype, n_random)
    return _stored.stored_row(name, index, dtype)


def check(name: str, index: int, dtype: str, backend: str = "cpu", n_random: int = _stored.N_RANDOM,
          live: bool = False) -> tuple:
    """(Row, per-point value errors, per-point gradient errors, group names, inputs, got) of one
    row of the table on one backend and dtype."""
    ref = REFERENCES[name]
    params = dict(ref.param_sets[index])
    loss = loss_named(name)
    family = FAMILIES[loss.info.family]
    exact = reference(name, index, dtype, n_random, live)
    names_, inputs = _stored.names_of(exact), _stored.inputs_of(exact)
    got = family.call(loss, inputs, params, np.dtype(dtype), backend)
    hi = exact["hi"]
    lo = exact["lo"].astype(np.float64) if "lo" in exact else np.zeros_like(hi)
    verr, gerr = family.errors(loss, got, hi, lo, exact.get("floor"), inputs, dtype)
    notes = []
    skip = family.excluded.get(dtype, {})
    if skip:
        keep = np.array([n not in skip for n in names_])
        notes = [f"{g} not measured in {dtype}: {why}" for g, why in skip.items()]
        verr, gerr = verr[keep], gerr[keep]
        names_, inputs, got = names_[keep], tuple(a[keep] for a in inputs), got[keep]
    bar = ref.bar.at(dtype)
    i = int(np.argmax(np.maximum(verr / bar[0], gerr / bar[1]))) if len(verr) else 0
    worst = family.describe(loss, names_, inputs, i) + f": errors (value, grad) = ({verr[i]:.3g}, {gerr[i]:.3g})" \
        if len(verr) else "-"
    fd = None
    if ref.bar.fd is not None and dtype == "float64" and backend == "cpu":
        fd = family.fd_error(loss, params, names_, inputs, got)
    row = Row(name, params, backend, dtype, len(verr), float(verr.max(initial=0.0)), float(gerr.max(initial=0.0)),
              worst, fd, family.measure, bar, ref.bar.fd, notes)
    return row, verr, gerr, names_, inputs, got


def cached(name: str) -> bool:
    """Whether the kernels of ``name`` seem to be in Numba's disk cache already (an index file
    of its float64 value-and-gradient kernel exists, in the generated folder's __pycache__ or under
    NUMBA_CACHE_DIR): then checking it compiles nothing and is quicker in this process."""
    from ._numba_options import CACHE

    if not CACHE:
        return False
    where = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(where) if where else Path(__file__).resolve().parent / "_generated" / "__pycache__"
    pattern = f"{name}_cpu._value_and_grad_*f64-*.nbi"  # (its block function)
    return any(folder.rglob(pattern) if where else folder.glob(pattern))


def _rows_of(name, dtypes, devices, n_random, live) -> list:
    """Every row of one loss (a unit of work for a worker process)."""
    return [check(name, index, dtype, backend, n_random, live)[0]
            for index in range(len(REFERENCES[name].param_sets))
            for backend in devices or backends() for dtype in dtypes]


def run(losses=None, dtypes=("float64", "float32"), devices=None, n_random: int = _stored.N_RANDOM, live=False,
        progress=None, starting=None, workers: int = 1) -> list:
    """Every row of the table (or of ``losses``) on every backend and dtype, in table order.

    ``workers`` > 1 checks the losses in that many processes (a first run is dominated by
    compiling the kernels, one process per core compiles them in parallel; each process caches
    what it compiles on disk).  ``starting(name)`` is called before a loss is checked (in
    order; with workers, when it is handed out), ``progress(row)`` after each row."""
    names_ = list(losses or names())
    if workers <= 1 or len(names_) <= 1:
        results = []
        for name in names_:
            if starting:
                starting(name)
            results.append(_rows_of(name, dtypes, devices, n_random, live))
            for row in results[-1] if progress else ():
                progress(row)
        return [row for rows in results for row in rows]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may have started Numba's threads
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_rows_of, name, dtypes, devices, n_random, live) for name in names_]
        rows = []
        for name, future in zip(names_, futures):
            if starting:
                starting(name)
            rows += future.result()
            for row in future.result() if progress else ():
                progress(row)
    return rows


def format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "-"


def format_table(rows) -> str:
    w_loss = max([4] + [len(r.loss) for r in rows])
    w_par = max([6] + [len(format_params(r.params)) for r in rows])
    head = (f"{'loss':<{w_loss}} {'params':<{w_par}} {'backend':<7} {'dtype':<7} {'points':>6} {'measure':<7} "
            f"{'value err':>9} {'grad err':>9} {'fd rel':>9}  result")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.measure == "ulp":
            v, g = f"{r.value_err:>9.2f}", f"{r.grad_err:>9.2f}"
        else:
            v, g = f"{r.value_err:>9.1e}", f"{r.grad_err:>9.1e}"
        fd = "-" if r.fd_rel is None else f"{r.fd_rel:.1e}"
        lines.append(f"{r.loss:<{w_loss}} {format_params(r.params):<{w_par}} {r.backend:<7} {r.dtype:<7} "
                     f"{r.points:>6} {r.measure:<7} {v} {g} {fd:>9}  {'pass' if r.ok else 'FAIL'}")
    bad = [r for r in rows if not r.ok]
    lines.append("")
    lines.append("measure ulp: errors in units in the last place of the correctly rounded 50-digit result (classification "
                 "gradients: of max(|exact|, magnitude of the terms that cancel near sigma(x) = y));")
    lines.append("measure abs/rel (boxes): the value's absolute error and the gradient's error relative to the pair's "
                 "largest exact component; fd rel: float64 gradients against extrapolated central differences.")
    bars = {}
    for r in rows:
        bars.setdefault((r.measure, r.bar, r.fd_bar), []).append(r.loss)
    for (measure, bar, fd_bar), losses in bars.items():
        lines.append(f"bar {bar[0]:.3g} / {bar[1]:.3g} ({measure}" + (f", fd {fd_bar:g}" if fd_bar else "") + "): "
                     + ", ".join(dict.fromkeys(losses)))
    for note in dict.fromkeys(n for r in rows for n in r.notes):
        lines.append(f"note: {note}")
    for r in bad:
        lines.append(f"FAIL {r.loss} ({format_params(r.params)}, {r.backend}, {r.dtype}): worst at {r.worst}")
    lines.append(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    return "\n".join(lines)
