"""``refloss sweep``: the largest error of a kernel, or of your implementation, over a whole
input space: every float32 bit pattern, or millions of samples of a named space.

>>> from refloss import sweep
>>> r = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=(0x3F000000, 0x3F000000 + 2**16),
...               workers=1)                                                     # doctest: +SKIP
>>> r.points, r.failures, r.max_ulp["value"] <= 4                                # doctest: +SKIP
(65536, 0, True)

The space is cut into chunks (independent tasks); each returns only a summary (its largest
errors, its counts, its few worst inputs; :mod:`refloss.sweep._merge`), and the summaries
are reduced exactly, in any order.  Chunks run in a local process pool (``workers``), or on a
dask.distributed cluster (``client=`` or ``scheduler="tcp://..."``; dask is imported only
then).  With ``output=`` every finished chunk is appended to ``<output>.chunks.jsonl``, and
a sweep started again with the same arguments resumes from there.

The reference (docs/sweep.md says why it is good enough): for float32 results, refloss's
float64 kernel (within 4 ULP64 of the exact result, ``refloss verify``), so that errors are
exact to ~1e-8 ULP32; the worst points of every chunk, and the points whose float64 result
sits within a hair of a float32 rounding boundary, are re-checked with the 50-digit mpmath
oracle.  For float64 results (refloss's kernel or your implementation), the kernel's double-double
twin (refloss/_generated/<loss>_ref.py) measures every point and the oracle re-checks the worst; for
the losses without a twin, float64 results of refloss's own kernels are measured by the oracle at
the points a finite-difference screen flags and an even sample of every chunk.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _fingerprint, _merge

__all__ = ["run", "run_many", "Result", "SPACES", "DEFAULT_CHUNK_BITS"]

DEFAULT_CHUNK_BITS = 22  # 2**22 float32 patterns per exhaustive chunk
DEFAULT_SAMPLE_CHUNK = 2**18
SCHEMA = "refloss-sweep/1"


def _space_module():
    from . import _spaces as module

    return module


SPACES = ("residuals", "boxes", "rotated", "logits", "soft_logits")


@dataclass
class Result:
    """The outcome of a sweep; :meth:`to_json` is what ``refloss sweep -o`` writes."""

    loss: str
    params: dict
    dtype: str
    impl: str | None
    space: dict
    points: int
    measured: int
    failures: int
    bar: dict
    max_ulp: dict  # component -> largest error in ULPs (None: not measured)
    worst: list  # {component, column, ulp, inputs, got, expected, reference, case}, largest error first
    reference: str
    oracle_points: int
    near_boundary: int
    near_rechecked: int
    oracle_delta: float
    chunks: int
    elapsed_s: float = 0.0
    summary: dict = field(default_factory=dict, repr=False)  # the merged chunk summaries

    @property
    def ok(self) -> bool:
        return self.failures == 0

    @property
    def inputs(self) -> tuple:
        from .._loss import loss_named

        return loss_named(self.loss).inputs

    @property
    def cases(self) -> tuple:
        """The worst inputs (each point once, worst first) as arrays, one per input, ready for
        ``refloss.testing.check_loss(fn, loss, cases=result.cases, dtype=...)``."""
        import numpy as np

        return tuple(np.array(v) for v in self._case_lists().values())

    def _case_lists(self) -> dict:
        names = self.inputs
        seen, out = set(), {n: [] for n in names}
        for e in self.worst:
            k = repr([e["inputs"][n] for n in names])  # (repr tells -0.0 from 0.0)
            if k in seen:
                continue
            seen.add(k)
            for n in names:
                out[n].append(e["inputs"][n])
        return out

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA, "loss": self.loss, "params": self.params, "dtype": self.dtype, "impl": self.impl,
            "space": self.space, "points": self.points, "measured": self.measured, "failures": self.failures,
            "bar": self.bar, "max_ulp": self.max_ulp,
            "worst": self.worst,
            "cases": self._case_lists(), "reference": self.reference, "oracle_points": self.oracle_points,
            "near_boundary": self.near_boundary, "near_rechecked": self.near_rechecked,
            "oracle_delta": self.oracle_delta, "chunks": self.chunks, "elapsed_s": round(self.elapsed_s, 3),
        }

    def write(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_merge.dumps(self.to_json(), indent=1) + "\n")
        return path

    def _float32_parameter_notes(self) -> list:
        """A line for each parameter of a float32 sweep of refloss's kernel that is not a float32 number: the kernel
        computes with it rounded to float32 (docs/accuracy.md, "Parameters in a float32 kernel are float32"), while
        the reference and the oracle take it as given, so that the errors measured include the parameter's rounding
        (QFL at beta = 0.3: 10.4 ULP at hard targets; the same sweep at float32(0.3): 5.29 at most; 1.1: 18)."""
        if self.dtype != "float32" or self.impl:
            return []
        import math

        import numpy as np

        from .._loss import loss_named

        meta = {p.name: p for p in loss_named(self.loss).info.params}
        notes = []
        for name, v in (self.params or {}).items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                continue
            with np.errstate(over="ignore"):  # (beyond float32's range: inf, said so)
                r = float(np.float32(v))
            if r != v:
                # the float32 value to pass instead, where the loss takes it (alpha=1e-300 rounds to 0.0, and
                # 0 < alpha): else the nearest float32 on v's side that it takes (the smallest subnormal, the
                # largest finite float32), else none
                suggest = None
                big = float(np.finfo(np.float32).max)
                for c in (r, math.copysign(2.0**-149, v) if r == 0 else math.copysign(big, v) if math.isinf(r)
                          else None):
                    if c is None or not math.isfinite(c):
                        continue
                    try:
                        meta[name].to_float(c) if name in meta else None
                    except (ValueError, TypeError):
                        continue
                    suggest = c
                    break
                notes.append(f"  note: {name}={v!r} is not a float32 number; the float32 kernel computes with {r!r} "
                             f"and is measured here against the loss at {v!r}"
                             + (f" (--param {name}={suggest!r} measures the kernel alone)" if suggest is not None
                                else f" (no float32 value of {name} that the loss takes is nearer)"))
        return notes

    def _samples_note(self) -> list:
        """A line where a sampled space gave another number of points than asked: the box and rotated spaces draw
        each chunk's share in equal parts per class, each part rounded up (at least 4 pairs a class for boxes, 8 for
        rotated boxes: ten and eleven classes), and drop the pairs that round to convention points.  (The points are
        kept as they are: documented sweeps' figures were drawn so.)"""
        sp = self.space or {}
        if sp.get("kind") != "samples" or self.points == sp.get("samples"):
            return []
        return [f"  note: {self.points} points for samples={sp.get('samples')}: the {sp.get('space')} space draws "
                "each chunk's share in equal parts per class, rounded up, and drops convention points (docs/sweep.md)"]

    def __str__(self) -> str:
        return self.text()

    def text(self, worst: bool = True) -> str:
        """The summary; ``worst``: with the (up to ten) worst points' rows."""
        comp = ", ".join(f"{g} {_fmt(v)}" for g, v in self.max_ulp.items())
        lines = [f"refloss sweep {self.loss}{_fmt_params(self.params)} [{self.dtype}"
                 + (f", {self.impl}" if self.impl else ", refloss kernel") + f"]: {self.points} points"
                 + (f" ({self.measured} measured by the oracle)" if self.measured != self.points else "")
                 + f", {self.failures} over the bar ({_fmt(self.bar['value'])} / {_fmt(self.bar['grad'])} ULP)",
                 f"  max ULP: {comp}"]
        lines[1:1] = self._float32_parameter_notes() + self._samples_note()
        for e in self.worst[:10 if worst else 0]:
            ins = ", ".join(f"{k}={v!r}" for k, v in e["inputs"].items())
            lines.append(f"  {e['column']:<12} {_fmt(e['ulp']):>10} ULP at {ins}: got {e['got']!r}, expected "
                         f"{e['expected']!r} ({e['reference']})")
        lines.append(f"  reference: {self.reference}")
        return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 1e6 else f"{v:.2e}"


def _fmt_params(params: dict) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")" if params else ""


def _reference_text(dtype: str, impl, oracle: bool, reference: bool = False) -> str:
    o = "the 50-digit mpmath oracle" if oracle else "nothing (oracle off: mpmath not installed or oracle=False)"
    if dtype == "float32":
        return ("refloss's float64 kernel (its result's error is ~1e-8 ULP32); the worst points of every chunk and "
                f"the points within a hair of a float32 rounding boundary re-checked with {o}")
    if reference:
        return ("refloss's double-double twin of the float64 kernel (every operation on ~106 bits, functions to a few "
                f"ulps of themselves), every point; the worst points of every chunk re-checked with {o}")
    if impl is not None:
        return f"refloss's float64 kernel (within 4 ULP64) as a screen; the worst points of every chunk measured by {o}"
    return (f"{o} at the points a finite-difference screen flags and an even sample of every chunk (float64 "
            "self-sweep: only those points are measured)")


def _impl_name(impl) -> str | None:
    if impl is None or isinstance(impl, str):
        return impl
    return f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', repr(impl))}"


def plan(loss: str, params: dict, dtype: str, exhaustive: bool, bits, target, samples, space, seed, chunk) -> tuple:
    """(space description, chunk dicts without the common fields); ValueError on a bad request."""
    from .._loss import loss_named
    from ._chunk import FAMILIES

    sp = _space_module()
    family = loss_named(loss).info.family
    if family not in FAMILIES:
        raise ValueError(f"{loss}: refloss sweep covers element-wise, box, rotated-box and classification losses, "
                         f"not the {family!r} family")
    if exhaustive == (samples is not None):
        raise ValueError("give exactly one of exhaustive=True (--exhaustive) or samples=N (--samples N)")
    if chunk is not None:
        chunk = _whole("chunk", chunk, 1)
    if exhaustive:
        if dtype != "float32":
            raise ValueError("--exhaustive walks float32 bit patterns: it needs --dtype float32")
        if family in ("box", "rotated"):
            raise ValueError(f"{loss}: --exhaustive covers element-wise and classification losses (one input "
                             f"varies); sweep box losses with --samples N --space {sp.DEFAULT_SPACE[family]}")
        if bits is not None:
            try:
                lo, hi = bits
            except (TypeError, ValueError):
                raise TypeError(f"bits: give (LO, HI), got {bits!r}") from None
            lo, hi = _whole("bits' LO", lo, 0), _whole("bits' HI", hi, 0)
        else:
            lo, hi = 0, 2**32
        if not (0 <= lo < hi <= 2**32):
            raise ValueError(f"bits: need 0 <= LO < HI <= 2**32, got {lo}:{hi}")
        if sp.finite_count(lo, hi) == 0:
            raise ValueError(f"bits: no finite float32 in {lo:#x}:{hi:#x} (the NaN and infinity patterns "
                             "0x7f800000..0x7fffffff and 0xff800000..0xffffffff are left out)")
        target = _target(loss, target, params)
        size = chunk or 2**DEFAULT_CHUNK_BITS
        chunks = [{"kind": "bits", "lo": a, "hi": b, "target": float(target), "id": f"bits:{a:08x}:{b:08x}"}
                  for a, b in sp.bit_chunks(lo, hi, size)]
        return {"kind": "exhaustive", "bits": [lo, hi], "target": float(target), "chunk": size}, chunks
    if bits is not None:
        raise ValueError("bits (--bits) applies to --exhaustive")
    space = space or sp.DEFAULT_SPACE[family]
    if space not in sp.SPACES:
        raise ValueError(f"space: unknown {space!r}; spaces: {', '.join(sp.SPACES)}")
    if sp.SPACES[space] != family:
        raise ValueError(f"space {space!r} is for {sp.SPACES[space]} losses; {loss} is {family} (space "
                         f"{sp.DEFAULT_SPACE[family]!r})")
    samples = _whole("samples", samples, 1)
    seed = _whole("seed", seed, 0)
    size = chunk or min(samples, DEFAULT_SAMPLE_CHUNK)
    chunks = [{"kind": "samples", "space": space, "seed": int(seed), "index": i, "n": min(size, samples - i * size),
               "id": f"samples:{space}:{seed}:{i}"} for i in range(-(-samples // size))]
    return {"kind": "samples", "space": space, "samples": samples, "seed": int(seed), "chunk": size}, chunks


def _whole(name: str, value, low: int) -> int:
    """``value`` as an int >= ``low`` (an integral float such as 1e6 too); TypeError or ValueError naming it."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: must be a whole number, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"{name}: must be a whole number, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name}: must be at least {low}, got {value}")
    return value


def _target(loss: str, target, params: dict) -> float:
    """The fixed target of an exhaustive sweep, checked: a number finite in float32 (the inputs are float32), and
    within the loss's own rule for a target (bce_with_logits: in [0, 1])."""
    import numbers

    import numpy as np

    if isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise TypeError(f"target: must be a number, got {target!r}")
    t = float(target)
    with np.errstate(over="ignore"):
        finite = math.isfinite(t) and math.isfinite(float(np.float32(t)))
    if not finite:
        raise ValueError(f"target: {target!r} is not a finite float32 number (the sweep's inputs are float32: "
                         f"|target| <= {float(np.finfo(np.float32).max)!r})")
    from .._loss import loss_named

    try:
        loss_named(loss)(0.0, float(np.float32(t)), **params)
    except (ValueError, TypeError) as e:  # (a parameter's own error is reported with the parameters')
        if str(e).startswith("target"):
            raise ValueError(f"target {target!r}: {e}") from None
    return t


def run(loss: str, params: dict | None = None, *, dtype: str = "float32", exhaustive: bool = False, bits=None,
        target: float = 0.0, samples: int | None = None, space: str | None = None, seed: int = 0, impl=None,
        impl_params: dict | None = None, framework: str = "auto", workers: int | None = None, client=None,
        scheduler: str | None = None, chunk: int | None = None, top_k: int = 8, oracle: bool | None = None,
        recheck_top: int = 2, recheck_cap: int = 2, output=None, resume: bool = True, progress=None) -> Result:
    """Sweep ``loss`` (refloss's kernel of ``dtype``, or ``impl``) over a space; see the module
    docstring and docs/sweep.md.

    exhaustive/bits/target: every finite float32 bit pattern in ``bits = (lo, hi)`` (default
    all 2**32) as the residual (element-wise; ``target`` fixed) or the logit (classification,
    at ``target``).  samples/space/seed: ``samples`` points of a named space
    (:data:`SPACES`; default the loss family's).  impl: a function (or ``"module:function"``)
    taking the loss's arrays and returning per-element values; ``impl_params`` are bound to it;
    its gradients are measured when it is a PyTorch or JAX function (autograd).
    workers: processes (default ``os.cpu_count()``; 1: in this process); client/scheduler: a
    dask.distributed Client or a scheduler address instead.  chunk: points per chunk.
    top_k: worst points kept per component; oracle (default: when mpmath is installed): re-check
    with the 50-digit oracle the ``recheck_top`` worst points per component of every chunk and
    up to ``recheck_cap`` of its near-boundary points (float32).
    output: write the result JSON there, and record finished chunks in
    ``<output>.chunks.jsonl`` (``resume``: skip the chunks recorded there).
    progress(done, total, running_max): called after every chunk.
    """
    return run_many([dict(loss=loss, params=params, dtype=dtype, exhaustive=exhaustive, bits=bits, target=target,
                          samples=samples, space=space, seed=seed, impl=impl, impl_params=impl_params,
                          framework=framework, chunk=chunk, top_k=top_k, oracle=oracle, recheck_top=recheck_top,
                          recheck_cap=recheck_cap, output=output, resume=resume)],
                    workers=workers, client=client, scheduler=scheduler, progress=progress)[0]


def run_many(sweeps: list, *, workers: int | None = None, client=None, scheduler: str | None = None,
             progress=None) -> list:
    """Several sweeps at once: ``sweeps`` is a list of dicts of :func:`run`'s keyword arguments
    (``loss`` included; not ``workers``, ``client``, ``scheduler``, ``progress``), and the
    result is their :class:`Result` s, in that order, each exactly what :func:`run` gives alone.

    Their chunks run interleaved, chunk by chunk: sweeps of one sample space, seed, chunk size and
    dtype (a table of losses over the same points) draw each chunk's points once per worker
    instead of once per sweep.  progress(done, total, running_max): over all the sweeps' chunks.
    """
    import inspect

    known = [n for n in inspect.signature(_Pending).parameters]
    for j, kw in enumerate(sweeps):
        if not isinstance(kw, dict) or "loss" not in kw:
            raise ValueError(f"sweeps[{j}]: give a dict of refloss.sweep.run's arguments with a 'loss', got {kw!r}")
        unknown = sorted(set(kw) - set(known))
        if unknown:
            raise ValueError(f"sweeps[{j}]: unknown argument(s) {unknown}; a sweep takes {', '.join(known)} "
                             "(workers, client, scheduler and progress are run_many's own)")
    if workers is not None:
        workers = _whole("workers", workers, 1)
    pending = [_Pending(**dict(kw)) for kw in sweeps]
    tasks = sorted(((i, k, t) for k, p in enumerate(pending) for i, t in enumerate(p.tasks) if t["id"] not in p.done),
                   key=lambda ikt: (ikt[0], ikt[1]))
    owner = [k for _, k, _ in tasks]
    todo = [t for _, _, t in tasks]
    all_chunks = sum(len(p.tasks) for p in pending)
    running = [max([v for v in p.total["max"].values() if v is not None], default=0.0) for p in pending]

    def finished(j, summary):
        p = pending[owner[j]]
        p.finished(summary)
        if progress is not None:
            running[owner[j]] = max([v for v in p.total["max"].values() if v is not None], default=0.0)
            progress(sum(q.total["chunks"] for q in pending), all_chunks, max(running))

    if todo:
        if client is not None or scheduler is not None:
            _run_dask(todo, client, scheduler, finished)
        else:
            _run_local(todo, workers, finished)
    return [p.result() for p in pending]


class _Pending:
    """One sweep of :func:`run_many`: its checked request, its chunk tasks, the chunks already
    done (its results file), and the running reduction of their summaries."""

    def __init__(self, loss: str, params: dict | None = None, *, dtype: str = "float32", exhaustive: bool = False,
                 bits=None, target: float = 0.0, samples: int | None = None, space: str | None = None, seed: int = 0,
                 impl=None, impl_params: dict | None = None, framework: str = "auto", chunk: int | None = None,
                 top_k: int = 8, oracle: bool | None = None, recheck_top: int = 2, recheck_cap: int = 2,
                 output=None, resume: bool = True):
        from ._chunk import check_task

        params = dict(params or {})
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: must be float32 or float64, got {dtype!r}")
        if framework not in ("auto", "numpy", "torch", "jax"):
            raise ValueError(f"framework: must be auto, numpy, torch or jax, got {framework!r}")
        from .._generated._index import LOSSES

        if loss not in LOSSES:
            raise ValueError(f"loss: unknown {loss!r}; known: {', '.join(LOSSES)}")
        if impl is None and framework != "auto":
            raise ValueError(f"framework={framework!r} applies to impl (--impl): refloss's own kernel has no framework")
        if impl is None and impl_params:
            raise ValueError("impl_params (--impl-param) apply to impl (--impl)")
        top_k, recheck_top, recheck_cap = (_whole(n, v, 0) for n, v in (("top_k", top_k), ("recheck_top", recheck_top),
                                                                           ("recheck_cap", recheck_cap)))
        space_desc, chunks = plan(loss, params, dtype, exhaustive, bits, target, samples, space, seed, chunk)
        if oracle is None:
            try:
                import mpmath  # noqa: F401

                oracle = True
            except ImportError:
                oracle = False
        common = {"loss": loss, "params": params, "dtype": dtype, "impl": impl,
                  "impl_params": dict(impl_params or {}), "framework": framework, "top_k": int(top_k),
                  "oracle": bool(oracle), "recheck_top": int(recheck_top), "recheck_cap": int(recheck_cap)}
        check_task(common)
        common["impl_fingerprint"] = _fingerprint.implementation(impl)
        self.tasks = [{**common, **c} for c in chunks]
        self.header = {"schema": SCHEMA, "loss": loss, "params": _normal_params(loss, params), "dtype": dtype, "impl": _impl_name(impl),
                       "impl_params": common["impl_params"], "framework": framework, "space": space_desc,
                       "top_k": int(top_k), "oracle": bool(oracle), "recheck_top": int(recheck_top),
                       "recheck_cap": int(recheck_cap), "kernels": _kernels_hash(loss, dtype),
                       "impl_fingerprint": common["impl_fingerprint"], "sources": _fingerprint.sources()}
        self.top_k, self.output = int(top_k), output
        self.start = time.perf_counter()
        done = {}
        self.sidecar = Path(str(output) + ".chunks.jsonl") if output else None
        if output and Path(output).is_dir():
            raise ValueError(f"output: {output} is a folder; give a file name")
        if output and Path(output).exists() and not Path(output).is_file():
            self.sidecar = None  # a device or a FIFO (-o /dev/null): the result goes there, no checkpoint beside it
        if self.sidecar is not None and self.sidecar.exists() and not self.sidecar.is_file():
            raise ValueError(f"{self.sidecar}: the sweep's checkpoint file is not a regular file (a folder?): remove "
                             "it, or give another output")
        if self.sidecar is not None:
            if resume and impl is not None and self.header["impl_fingerprint"] is None and self.sidecar.exists():
                import warnings

                warnings.warn(f"{self.sidecar}: no fingerprint of impl {self.header['impl']} can be made (a builtin, "
                              "or state that prints with a memory address): the sweep does not resume from the "
                              "chunks recorded there, it starts over", RuntimeWarning, stacklevel=3)
                resume = False
            done = _read_sidecar(self.sidecar, self.header) if resume else {}
            _write_header(self.sidecar, self.header, keep=bool(done))
        wanted = {t["id"] for t in self.tasks}
        self.done = {k: v for k, v in done.items() if k in wanted}
        self.total = _merge.merge_all(self.done.values(), self.top_k)

    def finished(self, summary: dict) -> None:
        if self.sidecar is not None:
            with open(self.sidecar, "a") as f:
                f.write(_merge.dumps(summary) + "\n")
        self.total = _merge.merge(self.total, summary, self.top_k)

    def result(self) -> Result:
        result = _result(self.header, self.total, time.perf_counter() - self.start)
        if self.output:
            result.write(self.output)
        return result


def _normal_params(loss: str, params: dict) -> dict:
    """Every parameter (defaults filled in), each as the loss takes it: a real as a float (beta=1 is beta=1.0), an
    integer parameter as an int, a size as a tuple of floats, numpy scalars as Python numbers, so that a checkpoint
    compares the parameters, not how they were written."""
    import numbers

    import numpy as np

    from .._loss import loss_named

    info = loss_named(loss).info
    out = {}
    for p, v in zip(info.params, loss_named(loss)._param_values(params)):
        if isinstance(v, np.generic):
            v = v.item()  # (numpy scalars, np.True_ among them: JSON would refuse them in the header)
        if p.kind == "real" and isinstance(v, numbers.Real) and not isinstance(v, bool):
            v = float(v)
        elif p.kind == "int" and isinstance(v, float) and v.is_integer():
            v = int(v)
        elif p.kind == "size" and isinstance(v, (tuple, list, np.ndarray)):
            v = tuple(x.item() if isinstance(x, np.generic) else x for x in (v.tolist() if isinstance(v, np.ndarray)
                                                                             else v))
            v = tuple(float(x) if isinstance(x, numbers.Real) and not isinstance(x, bool) else x for x in v)
        out[p.name] = v
    return out


def _result(header: dict, total: dict, elapsed: float) -> Result:
    from .._loss import loss_named
    from ._chunk import bars, reference_module

    loss = loss_named(header["loss"])
    full = dict(zip((p.name for p in loss.params), loss._param_values(header["params"])))
    worst = [{"component": g, "column": e["column"], "ulp": e["err"], "inputs": e["inputs"], "got": e["got"],
              "expected": e["expected"], "reference": e["reference"], "case": e["case"]}
             for g, e in sorted(((g, e) for g, es in total["worst"].items() for e in es),
                                key=lambda ge: (_merge.key(ge[1]), list(total["worst"]).index(ge[0])))]
    vbar, gbar = bars(header["loss"], header["dtype"])
    return Result(
        loss=header["loss"], params=full, dtype=header["dtype"], impl=header["impl"], space=header["space"],
        points=total["points"], measured=total["measured"], failures=total["failures"],
        bar={"value": vbar, "grad": gbar}, max_ulp=dict(total["max"]), worst=worst,
        reference=_reference_text(header["dtype"], header["impl"], header["oracle"],
                                  header["dtype"] == "float64" and reference_module(loss._module("cpu")) is not None),
        oracle_points=total["oracle"], near_boundary=total["near_boundary"], near_rechecked=total["near_rechecked"],
        oracle_delta=total["oracle_delta"], chunks=total["chunks"], elapsed_s=elapsed, summary=total)


def _kernels_hash(loss: str, dtype: str | None = None) -> str:
    """sha256 (16 hex digits) of the loss's generated scalar kernels: a sweep resumes only from
    chunks measured with the same kernels (a kernel regenerated since would otherwise be
    reported with the old kernel's errors); for a float64 sweep of refloss's kernel, also of its
    double-double reference where it has one."""
    spec = importlib.util.find_spec(f"refloss._generated.{loss}")
    if spec is None or spec.origin is None:
        return "none"
    data = Path(spec.origin).read_bytes()
    ref = importlib.util.find_spec(f"refloss._generated.{loss}_ref") if dtype == "float64" else None
    if ref is not None and ref.origin is not None:
        data += Path(ref.origin).read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _read_sidecar(path: Path, header: dict) -> dict:
    """{chunk id: summary} recorded in the sidecar of an earlier run of the same sweep (a line
    that is not a whole chunk summary, such as a last line cut short by the interruption, is
    ignored: that chunk runs again); ValueError if it is another sweep's, or its header is unreadable."""
    if not path.exists():
        return {}
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        text = None
    lines = text.splitlines() if text is not None else [""]
    if not lines:
        return {}
    try:
        first = _merge.loads(lines[0])
    except (json.JSONDecodeError, ValueError):
        first = None
    if not isinstance(first, dict) or not isinstance(first.get("sweep"), dict):
        raise ValueError(f"{path}: unreadable (its first line is not a sweep's header: cut short, or not written by "
                         "refloss sweep): remove it, or pass resume=False (--no-resume) to start over")
    if first.get("sweep") != json.loads(_merge.dumps(header)):
        theirs = first.get("sweep") if isinstance(first, dict) and isinstance(first.get("sweep"), dict) else None
        ours = json.loads(_merge.dumps(header))
        differ = sorted(k for k in set(ours) | set(theirs or {}) if (theirs or {}).get(k) != ours.get(k))
        raise ValueError(f"{path} records another sweep (other loss, parameters, space or options, or "
                         "kernels regenerated since, or another implementation or refloss version"
                         + (f"; differs in: {', '.join(differ)}" if theirs is not None else "")
                         + "): remove it, or pass resume=False (--no-resume) to start over")
    done = {}
    for line in lines[1:]:
        try:
            s = _merge.loads(line)
        except (json.JSONDecodeError, ValueError):
            continue  # cut short
        if _is_summary(s):
            done[s["id"]] = s
    return done


def _is_summary(s) -> bool:
    """A whole chunk summary (refloss.sweep._merge's fields, of their types), not a fragment or another record."""
    def count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def entry(e):
        return (isinstance(e, dict) and number(e.get("err")) and isinstance(e.get("key"), list)
                and all(number(v) for v in e["key"]) and isinstance(e.get("inputs"), dict)
                and {"column", "got", "expected", "reference", "case"} <= set(e))

    return (isinstance(s, dict) and isinstance(s.get("id"), str) and all(count(s.get(c)) for c in _merge.COUNTS)
            and number(s.get("oracle_delta")) and isinstance(s.get("max"), dict)
            and all(v is None or number(v) for v in s["max"].values()) and isinstance(s.get("worst"), dict)
            and all(isinstance(es, list) and all(entry(e) for e in es) for es in s["worst"].values()))


def _write_header(path: Path, header: dict, keep: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep:
        with open(path, "rb+") as f:  # a last line cut short: cut it off (the next chunk's line starts a line)
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        return
    path.write_text(_merge.dumps({"sweep": header}) + "\n")


def _worker_init(parent: int | None = None, every: float = 1.0):
    """A worker process is one core: the drivers run serially in blocks anyway.  ``parent``: the sweep's process;
    a thread checks every ``every`` seconds that it is still this worker's parent and ends the worker when not (the
    sweep killed with SIGKILL: its workers would otherwise wait on its queue for ever, orphaned)."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    if parent is not None:
        import threading

        def watch():
            while True:
                time.sleep(every)
                if os.getppid() != parent:
                    os._exit(1)

        threading.Thread(target=watch, name="refloss-sweep-parent", daemon=True).start()


def _run_local(tasks, workers, finished) -> None:
    from ._chunk import run_chunk

    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers <= 1 or len(tasks) == 1:
        for j, t in enumerate(tasks):
            finished(j, run_chunk(t))
        return
    import multiprocessing
    import pickle
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    impl = tasks[0].get("impl")
    if impl is not None and not isinstance(impl, str):
        try:
            pickle.dumps(impl)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"impl cannot be sent to worker processes ({e}): define it at module level, give "
                             "'module:function', or pass workers=1") from None
    # spawn, not fork: this process may hold Numba's threads
    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    try:
        # at most 2 tasks per worker in flight: an interrupted sweep has little work in the air
        pending, queue, index = set(), list(range(len(tasks)))[::-1], {}
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                j = queue.pop()
                fut = pool.submit(run_chunk, tasks[j])
                index[fut] = j
                pending.add(fut)
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(ready, key=index.get):
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise RuntimeError(
                        "a sweep worker process died before it finished its chunk. The workers start with "
                        "'spawn' and import the script that calls refloss.sweep.run: put that call under "
                        "`if __name__ == \"__main__\":`, or pass workers=1 (or the machine ran out of "
                        "memory: fewer workers)") from None
                finished(index.pop(fut), result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(tasks, client, scheduler, finished) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError("a dask cluster needs dask.distributed: pip install 'dask[distributed]'") from None
    from ._chunk import run_chunk

    own = client is None
    if own:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as e:  # (no scheduler there: one line, not dask's traceback)
            raise ValueError(f"scheduler {scheduler!r}: cannot connect ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'no answer'})") from None
    futures = [client.submit(run_chunk, t, key=f"refloss-sweep-{j}-{t['id']}-{os.getpid()}-{time.time_ns()}",
                             pure=False) for j, t in enumerate(tasks)]
    index = {f.key: j for j, f in enumerate(futures)}
    try:
        for fut in as_completed(futures):
            finished(index[fut.key], fut.result())
    finally:
        client.cancel(futures)
        if own:
            client.close()


def print_progress(total_chunks: int, file=None):
    """A progress callback for the command line: a tqdm bar on a terminal when tqdm is
    installed, else a line every ~5% of the chunks (and at the end)."""
    file = file or sys.stderr
    bar = None
    try:
        if file.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total_chunks, unit="chunk", file=file, leave=False)
    except ImportError:
        pass
    step = max(1, total_chunks // 20)

    def progress(done, total, running_max):
        if bar is not None:
            bar.n = done
            bar.set_postfix_str(f"max {_fmt(running_max)} ULP")
            bar.refresh()
            if done >= total:
                bar.close()
        elif done % step == 0 or done >= total:
            print(f"  chunks {done}/{total}, max {_fmt(running_max)} ULP", file=file, flush=True)

    return progress
