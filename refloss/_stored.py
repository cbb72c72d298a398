"""Stored reference values: the exact results of ``refloss verify``'s batteries, computed once
with the 50-digit oracle and kept in the package (``refloss/reference_values/<loss>.npz``).

Per loss, parameter set and dtype the file holds the battery's group names and inputs and, per
point and output, the exact result: ``hi``, correctly rounded to float64, and for the float64
rows measured in ULPs also ``lo``, the remainder (as float32: the pair holds about 77 bits,
enough to measure an error to 1e-7 ULP); and where the table names one, the floor of the
error measure (the magnitude of cancelling terms).  ``refloss verify`` compares the
kernels with these in a few seconds; ``refloss verify --live`` recomputes them with mpmath.

Regenerate (after changing an oracle, a battery or the parameter sets of
:mod:`refloss._reference`) with ``python -m refloss._stored [--only LOSS ...]``; the test
suite recomputes them all and compares (``tests/test_stored.py``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._families import FAMILIES, oracle_function
from ._loss import loss_named
from ._reference import REFERENCES

FOLDER = Path(__file__).resolve().parent / "reference_values"
SCHEMA = "refloss-reference-values/1"
N_RANDOM = 200  # random points of verify's batteries (the stored ones)
DTYPES = ("float64", "float32")


class Stale(LookupError):
    """The stored values do not match the table or the battery: regenerate them."""


def _point(inputs, i) -> tuple:
    return tuple(float(a[i]) if a.ndim == 1 else tuple(map(float, a[i])) for a in inputs)


def compute_row(name: str, index: int, dtype: str, n_random: int = N_RANDOM) -> dict:
    """The battery of parameter set ``index`` of ``name`` in ``dtype`` and its exact results
    (needs mpmath)."""
    loss = loss_named(name)
    names, inputs = FAMILIES[loss.info.family].battery(loss, dict(REFERENCES[name].param_sets[index]),
                                                        np.dtype(dtype), n_random)
    return exact_row(name, index, dtype, names, inputs)


def exact_row(name: str, index: int, dtype: str, names, inputs) -> dict:
    """The row of parameter set ``index`` of ``name`` in ``dtype`` for these points (``names``:
    their groups, ``inputs``: one array per input): the exact results (needs mpmath)."""
    from .oracle.rounding import split

    ref = REFERENCES[name]
    params = dict(ref.param_sets[index])
    family = FAMILIES[loss_named(name).info.family]
    oracle = oracle_function(ref.oracle)
    floor = oracle_function(ref.floor) if ref.floor else None
    hi, lo, fl = [], [], []
    for i in range(len(names)):
        values, floors = family.exact(oracle, floor, _point(inputs, i), params, np.dtype(dtype))
        pairs = [split(v) for v in values]
        hi.append([h for h, _ in pairs])
        lo.append([l_ for _, l_ in pairs])
        fl.append(floors if floors is not None else [0.0] * len(values))
    # compactly: lo (as float32: the pair then holds ~77 bits) only where it changes a figure, float64
    # errors in ULPs; floors only where the table has them; inputs in their dtype
    groups, group = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    row = {"groups": groups, "group": group.astype(np.uint8), "hi": np.array(hi)}
    if family.measure == "ulp" and dtype == "float64":
        row["lo"] = np.array(lo).astype(np.float32)
    if floor is not None:
        row["floor"] = np.array(fl)
    row.update({f"in{k}": a for k, a in enumerate(inputs)})
    return row


def _meta(name: str) -> dict:
    ref = REFERENCES[name]
    return {"schema": SCHEMA, "loss": name, "oracle": ref.oracle, "floor": ref.floor, "n_random": N_RANDOM,
            "param_sets": [dict(p) for p in ref.param_sets], "dtypes": list(DTYPES)}


def _tasks(names) -> list:
    return [(n, i, dt) for n in names for i in range(len(REFERENCES[n].param_sets)) for dt in DTYPES]


def compute(names, workers: int | None = None, progress=None) -> dict:
    """{name: {(index, dtype): row}} for these losses, the rows computed in parallel."""
    tasks = _tasks(names)
    out = {n: {} for n in names}
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    # spawn, not fork: the caller may hold threads (Numba's, JAX's in the test suite)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for (n, i, dt), row in zip(tasks, pool.map(compute_row, *zip(*tasks))):
            out[n][(i, dt)] = row
            if progress:
                progress(n, i, dt)
    return out


def write(name: str, rows: dict, folder: Path = FOLDER) -> Path:
    """Write one loss's rows (from :func:`compute`) as ``<folder>/<name>.npz``."""
    arrays = {"meta": np.array(json.dumps(_meta(name), sort_keys=True))}
    for (i, dt), row in sorted(rows.items()):
        arrays.update({f"{i}.{dt}.{k}": v for k, v in row.items()})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    return path


@lru_cache(maxsize=None)
def _load(name: str, folder: Path = FOLDER) -> dict:
    path = folder / f"{name}.npz"
    if not path.exists():
        raise Stale(f"no stored reference values for {name} ({path}): run `python -m refloss._stored --only {name}`")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data.pop("meta")))
    if meta != json.loads(json.dumps(_meta(name), sort_keys=True)):
        raise Stale(f"stored reference values of {name} were made for other parameter sets, oracle or battery size: "
                    f"run `python -m refloss._stored --only {name}`")
    return data


def stored_row(name: str, index: int, dtype: str) -> dict:
    """The stored row (see :func:`compute_row`) of parameter set ``index`` in ``dtype``."""
    data = _load(name)
    prefix = f"{index}.{dtype}."
    return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def inputs_of(row: dict) -> tuple:
    return tuple(row[f"in{k}"] for k in range(sum(1 for key in row if key.startswith("in"))))


def names_of(row: dict) -> np.ndarray:
    """The group name of every point of a row (stored or computed)."""
    return row["groups"].astype(object)[row["group"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m refloss._stored", description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="losses to recompute (default: every row of the table)")
    ap.add_argument("--out", type=Path, default=FOLDER, help="folder to write into (default: the package's)")
    args = ap.parse_args(argv)
    names = args.only or list(REFERENCES)
    unknown = sorted(set(names) - set(REFERENCES))
    if unknown:
        ap.error(f"not in refloss/_reference.py: {unknown}")
    done = []

    def progress(n, i, dt):
        done.append(1)
        print(f"\r{len(done)}/{len(_tasks(names))} rows computed ({n} #{i} {dt})", end="", file=sys.stderr, flush=True)

    rows = compute(names, progress=progress)
    print(file=sys.stderr)
    for n in names:
        print(f"wrote {write(n, rows[n], args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
