"""The built-in input batteries of every loss, as check_loss and the golden vectors use them.

``battery(loss, cases, params)`` returns ``(names, inputs, convention)``: the case (group)
name of every point, the input arrays in float64 (rows of 4 for boxes), and a boolean mask of
the points whose value or gradient depends on a convention rather than on the mathematics
alone (a kink, |x| = 0, tied or touching box edges, a degenerate box): there the
one-sided derivative refloss picks is documented in docs/derivations, and another
implementation may legitimately pick the other side.
"""
from __future__ import annotations

import numpy as np

from . import _registry

__all__ = ["battery", "CASE_SETS"]

CASE_SETS = ("standard", "edge", "all")
# logits beyond this are left out of the "standard" classification battery (|x| <= 30 keeps
# exp(-|x|) well inside float32's range: the float32 textbook formula is fair there)
_STANDARD_LOGIT_BOUND = 30.0
# element-wise differences beyond this are left out (a float32 peer cannot hold 1e8 + 0.37)
_ELEMENTWISE_BOUND = 1e4


def _elementwise_params(loss: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if k in ("beta", "delta") and isinstance(v, (int, float))}


def kinks(loss: str, params: dict) -> tuple:
    """|x| where the element-wise loss ``loss`` is not smooth (besides 0), for these params."""
    from . import _verify

    return _verify.kinks(loss, _elementwise_params(loss, params))


def battery(loss: str, cases: str = "standard", params: dict | None = None, n_random: int = 60):
    """(names, inputs, convention) of ``loss``'s built-in battery; see the module docstring.

    cases: "standard" (points where every correct implementation agrees), "edge" (the
    convention-dependent points only) or "all".
    """
    from . import _verify, box_cases
    from . import cases as _cases

    if cases not in CASE_SETS:
        raise ValueError(f"cases: must be one of {', '.join(map(repr, CASE_SETS))} or a tuple of arrays, got {cases!r}")
    params = params or {}
    if loss in _registry.BOX_LOSSES + _registry.METRICS + _registry.YOLO_LOSSES:
        groups = box_cases.box_cases(np.float64, n_random=max(n_random * 2 // 3, 8))
        names = np.concatenate([np.full(len(p), n, dtype=object) for n, p, _ in groups])
        inputs = (np.concatenate([g[1] for g in groups]), np.concatenate([g[2] for g in groups]))
        if loss in _registry.XYWH_LOSSES:  # boxes as (cx, cy, w, h)
            inputs = tuple(np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
                           for b in inputs)
        convention = np.array([n in box_cases.KINK_GROUPS for n in names])
    elif loss in _registry.CLASSIFICATION_LOSSES:
        names, x, y = _verify.logits_cases("float64", n_random)
        inputs = (x, y)
        convention = np.zeros(len(x), bool)
        if cases == "standard":
            keep = np.abs(x) <= _STANDARD_LOGIT_BOUND
            names, inputs, convention = names[keep], (x[keep], y[keep]), convention[keep]
    else:
        names, p, t = _verify.battery(loss, _elementwise_params(loss, params), np.float64, n_random)
        keep = np.abs(p - t) <= _ELEMENTWISE_BOUND
        names, p, t = names[keep], p[keep], t[keep]
        x = np.abs(p - t)
        at = np.array(kinks(loss, params) + (0.0,))
        convention = (x[:, None] == at[None, :]).any(axis=1)
        inputs = (p, t)
    if cases == "standard":
        keep = ~convention & np.array([n not in _cases.KINK_GROUPS or n == "kink" for n in names])
    elif cases == "edge":
        keep = convention.copy()
    else:
        keep = np.ones(len(names), bool)
    return names[keep], tuple(a[keep] for a in inputs), convention[keep]
