"""Built-in battery of (pred, target) pairs of rotated boxes (NumPy only).

Boxes are rows ``(cx, cy, w, h, angle)``, the angle in radians, ``w, h >= 0``.  Every group is
``(name, pred, target)`` with ``pred`` and ``target`` of shape ``(n, 5)`` in the requested dtype
(float32 or float64).  Pairs are drawn in float64 and rounded once to the dtype; a relation a
group promises (identical boxes, a zero side) is imposed in the dtype by copying or setting the
stored value.  Each group draws from its own generator ``default_rng([seed, index])``.

The groups cover what a rotated-box loss must get right: generic pairs, nearly identical boxes
(the distances cancel there), angle differences alone (tiny, a right angle, near pi, large
angles), a box and its w/h swap turned by pi/2 (the same Gaussian), squares (no angle
dependence), thin boxes, far-apart boxes, small boxes far from the origin, tiny and huge boxes.
:data:`KINK_GROUPS` are the points where a loss follows a convention (identical boxes, zero
sides).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["GROUPS", "KINK_GROUPS", "rotated_battery", "rotated_cases"]

GROUPS = ("generic", "near_identical", "angle_only", "swapped", "square", "thin", "far_apart",
          "small_far_from_origin", "tiny", "huge", "large_angles", "identical", "zero_side")
KINK_GROUPS = frozenset({"identical", "zero_side"})
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _generic(rng, n):
    def box():
        return np.column_stack([rng.normal(0, 2, n), rng.normal(0, 2, n), np.exp(rng.uniform(-1.5, 1.5, n)),
                                np.exp(rng.uniform(-1.5, 1.5, n)), rng.uniform(-math.pi, math.pi, n)])
    return box(), box()


def _perturbed(rng, pred, rel):
    """pred with every coordinate moved by about ``rel`` times the box's size (angles by ``rel`` radians)."""
    size = np.maximum(pred[:, 2], pred[:, 3])[:, None]
    rel = np.broadcast_to(np.asarray(rel, np.float64).reshape(-1, 1), (len(pred), 1))
    t = pred.copy()
    t[:, :4] += rng.normal(0, 1, (len(t), 4)) * rel * size
    t[:, 4] += rng.normal(0, 1, len(t)) * rel[:, 0]
    t[:, 2:4] = np.abs(t[:, 2:4])
    return t


def _near_identical(rng, n):
    p, _ = _generic(rng, n)
    rel = 10.0 ** rng.uniform(-12, -2, n)[:, None]
    return p, _perturbed(rng, p, rel)


def _angle_only(rng, n):
    p, _ = _generic(rng, n)
    t = p.copy()
    d = rng.choice([1e-12, 1e-7, 1e-3, 0.3, math.pi / 2, math.pi / 2 + 1e-6, math.pi - 1e-6, math.pi, 2.0, 1e3], n)
    t[:, 4] = p[:, 4] - d
    return p, t


def _swapped(rng, n):
    p, _ = _generic(rng, n)
    t = p[:, [0, 1, 3, 2, 4]].copy()
    t[:, 4] += math.pi / 2 * rng.choice([-1.0, 1.0], n)
    rel = np.where(rng.uniform(size=n) < 0.5, 0.0, 10.0 ** rng.uniform(-9, -3, n))[:, None]
    return p, _perturbed(rng, t, rel)


def _square(rng, n):
    p, t = _generic(rng, n)
    p[:, 3] = p[:, 2]
    t[: n // 2, 3] = t[: n // 2, 2]
    return p, t


def _thin(rng, n):
    p, t = _generic(rng, n)
    p[:, 3] = p[:, 2] * 10.0 ** rng.uniform(-5, -2, n)
    t[:, 2] = t[:, 3] * 10.0 ** rng.uniform(-5, -2, n)
    t[: n // 2, :2] = p[: n // 2, :2] + rng.normal(0, 0.01, (n // 2, 2))  # crossing near the centre
    return p, t


def _far_apart(rng, n):
    p, t = _generic(rng, n)
    t[:, :2] = p[:, :2] + rng.normal(0, 1, (n, 2)) * 10.0 ** rng.uniform(1, 4, (n, 1))
    return p, t


def _small_far_from_origin(rng, n):
    p, _ = _generic(rng, n)
    shift = rng.choice([-1.0, 1.0], (n, 2)) * 10.0 ** rng.uniform(3, 6, (n, 2))
    p[:, :2] += shift
    t = _perturbed(rng, p, 10.0 ** rng.uniform(-6, 0, n)[:, None])
    return p, t


def _scaled(decades):
    def make(rng, n):
        p, t = _generic(rng, n)
        k = 10.0 ** rng.uniform(*decades, n)[:, None]
        p[:, :4] *= k
        t[:, :4] *= k
        return p, t
    return make


def _large_angles(rng, n):
    p, t = _near_identical(rng, n)
    turns = rng.choice([-1.0, 1.0], (n, 1)) * 10.0 ** rng.uniform(1, 5, (n, 1))
    p[:, 4:] += turns
    t[:, 4:] += turns + rng.choice([0.0, 0.7], (n, 1))
    return p, t


def _identical(rng, n):
    p, _ = _generic(rng, n)
    p[: n // 4, :2] += 1e6
    p[n // 4: n // 2, 4] += 1e3
    return p, p.copy()


def _zero_side(rng, n):
    p, t = _generic(rng, n)
    k = np.arange(n)
    p[k % 4 == 0, 2] = 0.0
    t[k % 4 == 1, 3] = 0.0
    p[k % 4 == 2, 2:4] = 0.0
    t[k % 4 == 3] = p[k % 4 == 3]
    p[k % 4 == 3, 3] = 0.0
    t[k % 4 == 3, 3] = 0.0
    return p, t


_RECIPES = {"generic": _generic, "near_identical": _near_identical, "angle_only": _angle_only, "swapped": _swapped,
            "square": _square, "thin": _thin, "far_apart": _far_apart,
            "small_far_from_origin": _small_far_from_origin, "tiny": _scaled((-8, -4)), "huge": _scaled((4, 8)),
            "large_angles": _large_angles, "identical": _identical, "zero_side": _zero_side}


def rotated_cases(dtype, *, n_random: int = 64, seed: int = 0) -> list:
    """[(group, pred, target)] in ``dtype``: ``n_random`` generic pairs, max(8, n_random // 4) per other group."""
    dt = np.dtype(dtype)
    if dt not in _DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    out = []
    for k, name in enumerate(GROUPS):
        rng = np.random.default_rng([seed, k])
        n = n_random if name == "generic" else max(8, n_random // 4)
        p, t = _RECIPES[name](rng, n)
        p, t = p.astype(dt), t.astype(dt)
        if name == "identical":
            t = p.copy()
        elif name == "zero_side":  # rounding keeps the zeros; the identical degenerate rows stay identical
            t[np.arange(n) % 4 == 3] = p[np.arange(n) % 4 == 3]
        out.append((name, p, t))
    return out


def rotated_battery(dtype, n_random: int = 64, seed: int = 0):
    """(names, pred, target): :func:`rotated_cases` stacked, ``names[i]`` the group of row i."""
    groups = rotated_cases(dtype, n_random=n_random, seed=seed)
    names = np.concatenate([np.full(len(p), g) for g, p, _ in groups])
    return names, np.concatenate([p for _, p, _ in groups]), np.concatenate([t for _, _, t in groups])
