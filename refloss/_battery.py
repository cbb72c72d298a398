"""The built-in input batteries of every loss, as check_loss and the golden vectors use them.

``battery(loss, cases, params)`` returns ``(names, inputs, convention)``: the case (group)
name of every point, the input arrays in float64 (rows of 4 for boxes), and a boolean mask of
the points whose value or gradient depends on a convention rather than on the mathematics
alone (a kink, |x| = 0, tied or touching box edges, a degenerate box): there the
one-sided derivative refloss picks is documented in docs/derivations, and another
implementation may legitimately pick the other side.

The battery follows the loss's family (its index entry, :mod:`refloss._info`): element-wise
residuals with the loss's own kinks, box pairs (converted to the loss's layout), or logits.
"""
from __future__ import annotations

import numpy as np

from . import box_cases, cases as _cases, logit_cases, rotated_cases, yolo_cases
from ._validate import param_floats

__all__ = ["battery", "kinks", "CASE_SETS"]

CASE_SETS = ("standard", "edge", "all")
# logits beyond this are left out of the "standard" classification battery (|x| <= 30 keeps
# exp(-|x|) well inside float32's range: the float32 textbook formula is fair there)
_STANDARD_LOGIT_BOUND = 30.0
# element-wise differences beyond this are left out (a float32 peer cannot hold 1e8 + 0.37)
_ELEMENTWISE_BOUND = 1e4


def kinks(loss, params: dict) -> tuple:
    """|x| where the element-wise loss (a refloss Loss) is not smooth besides 0, for these
    parameters (defaults for the rest); () for other families."""
    values = loss._param_values({k: v for k, v in params.items() if k in {p.name for p in loss.params}})
    return loss.info.kink_points(dict(zip((p.name for p in loss.params), param_floats(loss.params, values))))


def battery(loss, cases: str = "standard", params: dict | None = None, n_random: int = 60):
    """(names, inputs, convention) of the battery of ``loss`` (a refloss Loss); see the module
    docstring.

    cases: "standard" (points where every correct implementation agrees), "edge" (the
    convention-dependent points only) or "all".
    """
    if cases not in CASE_SETS:
        raise ValueError(f"cases: must be one of {', '.join(map(repr, CASE_SETS))} or a tuple of arrays, got {cases!r}")
    params = params or {}
    info = loss.info
    if info.family in ("box", "yolo"):
        names, pred, target = box_cases.box_battery(np.float64, n_random=max(n_random * 2 // 3, 8))
        inputs = (pred, target)
        if "xywh" in info.layouts:  # boxes as (cx, cy, w, h)
            inputs = tuple(np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1) for b in inputs)
        convention = np.array([n in box_cases.KINK_GROUPS for n in names])
    elif info.family == "classification":
        names, x, y = logit_cases.logits_cases("float64", n_random)
        dense = logit_cases.confident_cases("float64")  # dense where textbook forms lose digits
        names, x, y = (np.concatenate([a, b]) for a, b in zip((names, x, y), dense))
        inputs = (x, y)
        convention = np.zeros(len(x), bool)
        if cases == "standard":
            keep = np.abs(x) <= _STANDARD_LOGIT_BOUND
            names, inputs, convention = names[keep], (x[keep], y[keep]), convention[keep]
    elif info.family == "softmax":  # rows of 5 classes
        names, x, y = logit_cases.softmax_cases("float64", n_random)
        inputs, convention = (x, y), np.zeros(len(x), bool)
    elif info.family == "distribution":  # rows of 8 bins, one target each
        names, x, y = logit_cases.dfl_cases("float64", n_random)
        inputs = (x, y)
        # targets at a bin (a kink in the target): dL/dtarget is a one-sided derivative there
        convention = y == np.round(y)
    elif info.family == "elementwise":
        at = kinks(loss, params)
        names, p, t = _cases.elementwise_battery(np.float64, at, n_random)
        large = _cases.large_target_cases(np.float64)  # large magnitudes, where expanded forms lose digits
        names, p, t = (np.concatenate([a, b]) for a, b in zip((names, p, t), large))
        keep = np.abs(p - t) <= _ELEMENTWISE_BOUND
        names, p, t = names[keep], p[keep], t[keep]
        x = np.abs(p - t)
        convention = (x[:, None] == np.array(at + (0.0,))[None, :]).any(axis=1)
        inputs = (p, t)
    elif info.family == "rotated":
        names, pred, target = rotated_cases.rotated_battery(np.float64, n_random=max(n_random, 16))
        inputs = (pred, target)
        convention = np.array([n in rotated_cases.KINK_GROUPS for n in names])
    elif info.family == "coding":  # t, anchors, grid (the cotangent of the verify battery is not an input here)
        names, t, anchors, grid, _ = yolo_cases.decode_cases(np.float64, n_random)
        inputs, convention = (t, anchors, grid), np.zeros(len(t), bool)
    else:
        raise ValueError(f"{loss.name}: no check_loss battery for the {info.family!r} family")
    if cases == "standard":
        keep = ~convention & np.array([n not in _cases.KINK_GROUPS or n == "kink" for n in names])
    elif cases == "edge":
        keep = convention.copy()
    else:
        keep = np.ones(len(names), bool)
    return names[keep], tuple(a[keep] for a in inputs), convention[keep]
