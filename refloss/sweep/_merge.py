"""Chunk summaries and their reduction (no NumPy needed).

A summary (``refloss.sweep._chunk.run_chunk``) holds:

- ``points`` (evaluated), ``measured`` (points with an error: all of them, except in a float64
  sweep of refloss's own kernel, where only the oracle measures), ``failures`` (points over
  the loss's bar), ``oracle`` (points re-checked with the 50-digit oracle), ``near_boundary``
  and ``near_rechecked`` (float32: points whose float64 reference lies within a hair of a
  rounding boundary, and how many of them the oracle re-checked), ``oracle_delta`` (the
  largest change the oracle made to an error measured against the float64 kernel);
- ``max``: per component ("value", "d_<input>"), the largest error (None: not measured);
- ``worst``: per component, up to ``top_k`` entries, largest error first.

:func:`merge` is exact and order-independent: integer sums, maxima, and the top-k of the
union under :func:`key` (error, then the inputs, then their signs: a total order), so any
grouping of chunks gives the same result, bit for bit.
"""
from __future__ import annotations

import json
import math

COUNTS = ("points", "measured", "failures", "oracle", "near_boundary", "near_rechecked")


def key(entry: dict) -> tuple:
    """Sort key of a worst entry: largest error first, then the inputs ascending, -0.0 before 0.0."""
    return (-entry["err"], tuple(entry["key"]), tuple(0 if math.copysign(1.0, v) < 0 else 1 for v in entry["key"]))


def empty() -> dict:
    return {**{c: 0 for c in COUNTS}, "oracle_delta": 0.0, "max": {}, "worst": {}, "chunks": 0}


def merge(total: dict, part: dict, top_k: int) -> dict:
    """``total`` with the summary ``part`` folded in (a new dict)."""
    out = {c: total.get(c, 0) + part.get(c, 0) for c in COUNTS}
    out["oracle_delta"] = max(total.get("oracle_delta", 0.0), part.get("oracle_delta", 0.0))
    out["chunks"] = total.get("chunks", 0) + part.get("chunks", 1)
    out["max"], out["worst"] = {}, {}
    for g in list(total.get("max", {})) + [g for g in part.get("max", {}) if g not in total.get("max", {})]:
        a, b = total.get("max", {}).get(g), part.get("max", {}).get(g)
        out["max"][g] = b if a is None else (a if b is None else max(a, b))
        out["worst"][g] = sorted(total.get("worst", {}).get(g, []) + part.get("worst", {}).get(g, []), key=key)[:top_k]
    return out


def merge_all(parts, top_k: int) -> dict:
    total = empty()
    for p in parts:
        total = merge(total, p, top_k)
    return total


def _encode(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj):
    if isinstance(obj, str) and obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def dumps(obj, **kw) -> str:
    """JSON with non-finite numbers as the strings "inf", "-inf", "nan" (strict JSON)."""
    return json.dumps(_encode(obj), allow_nan=False, **kw)


def loads(text: str):
    return _decode(json.loads(text))
