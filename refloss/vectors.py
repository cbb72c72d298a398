"""Golden vectors: a loss's battery with refloss's values and gradients, in a file any language reads.

>>> import refloss.vectors as rv
>>> data = rv.golden_vectors("smooth_l1", beta=1 / 9)
>>> data["meta"]["schema"], data["meta"]["loss"], len(data["value"]) == data["meta"]["points"]
('refloss-golden-vectors/1', 'smooth_l1', True)

A port (C++, Rust, JS, ...) tests itself against refloss without Python: read the inputs,
evaluate, and compare with ``value`` and ``grad`` at the tolerances in ``meta``.  The schema
(documented in docs/golden-vectors.md) holds, per point: the case name, whether the point is
convention-dependent (a kink, a tie, a degenerate box: skip or check separately), every input,
the value and the gradient with respect to every input.  Reference values are refloss's
float64 kernels evaluated at the stored inputs (within 4 ULP of a 50-digit oracle for the
element-wise losses, 1e-14 / 1e-13 for the box losses: ``refloss verify``, docs/accuracy.md),
whatever ``dtype`` the inputs were rounded to; float32 vectors carry the float32 tolerances.

The command ``refloss vectors LOSS [--param k=v ...] --format json|npz|csv -o FILE`` writes them.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from . import _battery

__all__ = ["SCHEMA", "FORMATS", "golden_vectors", "write_vectors", "read_vectors"]

SCHEMA = "refloss-golden-vectors/1"
FORMATS = ("json", "npz", "csv")


def golden_vectors(loss: str, *, dtype="float64", cases: str = "all", n_random: int = 60, **params) -> dict:
    """The battery of ``loss`` (``cases``: "standard", "edge" or "all") with refloss's values and
    gradients: ``{"meta": {...}, "case": [...], "convention": bool array, "inputs": {name: array},
    "value": array, "grad": {name: array}}`` (arrays are NumPy float64; inputs are rounded to
    ``dtype`` first)."""
    from ._version import __version__
    from .testing import TOLERANCES, reference_loss

    ref = reference_loss(loss)
    dt = np.dtype(dtype).name
    if dt not in TOLERANCES:
        raise ValueError(f"dtype: must be float64 or float32, got {dt}")
    names, inputs, convention = _battery.battery(ref, cases, params, n_random)
    inputs = tuple(a.astype(dt).astype(np.float64) for a in inputs)
    value, grads = ref.value_and_grad(*inputs, **params)
    vtol, gtol = TOLERANCES[dt]
    meta = {
        "schema": SCHEMA,
        "refloss_version": __version__,
        "loss": ref.name,
        "title": ref.info.title,
        "formula": ref.info.formula,
        "params": {p.name: params.get(p.name, p.default) for p in ref.params},
        "dtype": dt,
        "cases": cases,
        "points": int(len(names)),
        "inputs": [{"name": n, "width": _width(a)} for n, a in zip(ref.inputs, inputs)],
        "value_width": _width(np.asarray(value)),
        "grad": list(ref.grad_inputs),
        "reference": "refloss float64 kernels at the stored inputs (docs/accuracy.md for their error)",
        "tolerance": {
            "value_rtol": vtol,
            "value_rule": "|got - value| <= value_rtol * max(1, |value|)",
            "grad_rtol": gtol,
            "grad_rule": "|got - grad| <= grad_rtol * max(1e-3, largest |component| of that input's gradient at the point)",
        },
    }
    return {"meta": meta, "case": [str(n) for n in names], "convention": np.asarray(convention, bool),
            "inputs": dict(zip(ref.inputs, inputs)), "value": np.asarray(value, np.float64),
            "grad": {n: np.asarray(g, np.float64) for n, g in zip(ref.grad_inputs, grads)}}


def _width(a) -> int:
    return 1 if a.ndim == 1 else int(a.shape[1])


def _fmt(path, fmt):
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"format: must be one of {', '.join(FORMATS)} (or a file ending in one), got {fmt!r}")
    return fmt


def _num(x: float):
    """A float as JSON: the shortest round-tripping decimal, or "nan" / "inf" / "-inf"."""
    x = float(x)
    return x if math.isfinite(x) else ("nan" if x != x else ("inf" if x > 0 else "-inf"))


def _nums(a) -> list:
    return [_nums(r) for r in a] if np.ndim(a) > 1 else [_num(x) for x in np.ravel(a)]


def _columns(data) -> list:
    """(column name, float64 column) of the CSV / the flat view: inputs, value, gradients."""
    cols = []
    for prefix, arrays in (("", data["inputs"]), (None, None), ("d_", data["grad"])):
        if prefix is None:
            v = data["value"]
            cols += [("value", v)] if v.ndim == 1 else [(f"value[{k}]", v[:, k]) for k in range(v.shape[1])]
            continue
        for name, a in arrays.items():
            if a.ndim == 1:
                cols.append((prefix + name, a))
            else:
                cols += [(f"{prefix}{name}[{k}]", a[:, k]) for k in range(a.shape[1])]
    return cols


def write_vectors(data: dict, path, fmt: str | None = None) -> Path:
    """Write golden vectors (from :func:`golden_vectors`) as json, npz or csv (``fmt`` or the suffix)."""
    path = Path(path)
    fmt = _fmt(path, fmt)
    if fmt == "json":
        doc = {"meta": data["meta"], "case": list(data["case"]), "convention": [bool(c) for c in data["convention"]],
               "inputs": {n: _nums(a) for n, a in data["inputs"].items()}, "value": _nums(data["value"]),
               "grad": {n: _nums(a) for n, a in data["grad"].items()}}
        # one line per key: the metadata readable at the top, each array on a line of its own
        body = ",\n".join(f" {json.dumps(k)}: " + (json.dumps(v, indent=None) if k != "meta" else json.dumps(v, indent=2))
                          for k, v in doc.items())
        path.write_text("{\n" + body + "\n}\n")
    elif fmt == "npz":
        arrays = {f"input_{n}": a for n, a in data["inputs"].items()}
        arrays.update({f"grad_{n}": a for n, a in data["grad"].items()})
        np.savez(path, meta=np.array(json.dumps(data["meta"])), case=np.array(data["case"], dtype=str),
                 convention=data["convention"], value=data["value"], **arrays)
    else:
        buf = io.StringIO()
        for key, val in data["meta"].items():
            buf.write(f"# {key}: {json.dumps(val)}\n")
        w = csv.writer(buf, lineterminator="\n")
        cols = _columns(data)
        w.writerow(["case", "convention"] + [c for c, _ in cols])
        for i, case in enumerate(data["case"]):
            w.writerow([case, int(data["convention"][i])] + [repr(_num(a[i])) if not isinstance(_num(a[i]), str)
                                                              else _num(a[i]) for _, a in cols])
        path.write_text(buf.getvalue())
    return path


def _floats(x) -> np.ndarray:
    return np.array(x if not isinstance(x, list) else [_floats(v) if isinstance(v, list) else float(v) for v in x],
                    dtype=np.float64)


def read_vectors(path, fmt: str | None = None) -> dict:
    """Read golden vectors written by :func:`write_vectors` back into the same dict."""
    path = Path(path)
    fmt = _fmt(path, fmt)
    if fmt == "json":
        doc = json.loads(path.read_text())
        data = {"meta": doc["meta"], "case": doc["case"], "convention": np.array(doc["convention"], bool),
                "inputs": {n: _floats(a) for n, a in doc["inputs"].items()}, "value": _floats(doc["value"]),
                "grad": {n: _floats(a) for n, a in doc["grad"].items()}}
    elif fmt == "npz":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            names = [i["name"] for i in meta["inputs"]]
            data = {"meta": meta, "case": [str(c) for c in z["case"]], "convention": z["convention"].astype(bool),
                    "inputs": {n: z[f"input_{n}"] for n in names}, "value": z["value"],
                    "grad": {n: z[f"grad_{n}"] for n in meta.get("grad", names)}}
    else:
        lines = path.read_text().splitlines()
        meta = {}
        while lines and lines[0].startswith("# "):
            key, _, val = lines.pop(0)[2:].partition(": ")
            meta[key] = json.loads(val)
        rows = list(csv.reader(lines))
        header, rows = rows[0], rows[1:]
        table = {h: [r[j] for r in rows] for j, h in enumerate(header)}

        def gather(prefix, name, width):
            if width == 1:
                return np.array(table[prefix + name], dtype=np.float64)
            return np.stack([np.array(table[f"{prefix}{name}[{k}]"], dtype=np.float64) for k in range(width)], axis=1)

        ins = [(i["name"], i["width"]) for i in meta["inputs"]]
        grad = meta.get("grad", [n for n, _ in ins])
        data = {"meta": meta, "case": table["case"], "convention": np.array(table["convention"], int).astype(bool),
                "inputs": {n: gather("", n, w) for n, w in ins}, "value": gather("", "value", meta.get("value_width", 1)),
                "grad": {n: gather("d_", n, w) for n, w in ins if n in grad}}
    if data["meta"].get("schema") != SCHEMA:
        raise ValueError(f"{path}: not refloss golden vectors (schema {data['meta'].get('schema')!r}, want {SCHEMA!r})")
    return data
