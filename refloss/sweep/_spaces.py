"""The input spaces of a sweep and how they are cut into chunks (NumPy only).

- Exhaustive (float32): every finite float32 bit pattern in ``[lo, hi)`` as the residual
  ``x = pred - target`` (``pred = x``, ``target`` fixed, 0 by default) of an element-wise
  loss, or as the logit of a classification loss at a fixed target.  The NaN and infinity
  patterns (exponent all ones: ``0x7f800000..0x7fffffff`` and ``0xff800000..0xffffffff``) are
  left out when the chunks are cut.
- Samples from a named space, the batteries' distributions at scale, seeded per chunk
  (``default_rng([seed, chunk])``: a chunk's draws do not depend on the others):

  * ``residuals`` (element-wise): :func:`refloss.cases._random`'s residuals (magnitudes
    ``10**U(-8, 8)``, targets ``U(-10, 10)``) for half the points, the other half within a
    relative ``10**U(-7, -1)`` of the loss's kinks (and of 0), both signs;
  * ``boxes`` (box losses): the recipes of :mod:`refloss.box_cases` (box sizes 1e-6..1e6) in
    equal parts: overlapping, disjoint along x, y or both, nested (either way), near-identical,
    far apart, thin and tall, small boxes far from the origin; rows that round to a tie or a
    degenerate box are dropped (those are the battery's convention points);
  * ``rotated`` (rotated-box losses): the recipes of :mod:`refloss.rotated_cases` but its convention groups
    (identical boxes, zero sides), in equal parts: generic, nearly identical, angle differences alone,
    w/h-swapped, squares, thin, far apart, small boxes far from the origin, tiny, huge, large angles;
  * ``logits`` (classification): logits ``+-10**U(-8, 38.5)`` (to float32's largest finite
    number) at the hard targets 0 and 1 (half each), measured relative to the result itself.
  * ``soft_logits`` (classification): soft targets.  Half the points: targets ``U(0, 1)`` at logits
    as ``logits``' for half of them and ``N(0, 4)`` for the rest; the other half near the optimum,
    where the gradients cancel: logits ``+-10**U(-8, 1.6)`` and the target sigma(x) rounded to the
    dtype, moved by up to 4 of its ulps.  There the gradients are measured, as ``refloss verify``
    measures them, in ULPs of the cancelling terms' magnitude (the loss's floor,
    :mod:`refloss.sweep._floors`); a target that rounds to 0 or 1 is a hard one, measured plainly.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .. import box_cases, cases, rotated_cases

SPACES = {"residuals": "elementwise", "boxes": "box", "rotated": "rotated", "logits": "classification",
          "soft_logits": "classification"}
DEFAULT_SPACE = {"elementwise": "residuals", "box": "boxes", "rotated": "rotated", "classification": "logits"}
# the finite float32 bit patterns: non-negative, then negative numbers
FINITE_BITS = ((0, 0x7F800000), (0x80000000, 0xFF800000))

_BOX_CLASSES = {
    "overlapping": box_cases._generic,
    "disjoint_x": box_cases._disjoint("x"),
    "disjoint_y": box_cases._disjoint("y"),
    "disjoint_xy": box_cases._disjoint("xy"),
    "nested_pred_in_target": box_cases._contained(True),
    "nested_target_in_pred": box_cases._contained(False),
    "near_identical": None,  # depends on the dtype
    "far_apart": box_cases._far_apart,
    "thin_tall": box_cases._thin_tall,
    "small_far_from_origin": box_cases._small_far_from_origin,
}


def bit_chunks(lo: int, hi: int, size: int) -> list:
    """[(a, b)]: the finite float32 bit patterns of [lo, hi) in pieces of at most ``size``,
    aligned to multiples of ``size`` (so that a split of the range gives the same chunks)."""
    out = []
    for f_lo, f_hi in FINITE_BITS:
        a, b = max(lo, f_lo), min(hi, f_hi)
        while a < b:
            end = min(b, (a // size + 1) * size)
            out.append((a, end))
            a = end
    return out


def finite_count(lo: int, hi: int) -> int:
    return sum(max(0, min(hi, b) - max(lo, a)) for a, b in FINITE_BITS)


# the last chunks' points, read-only, by what they depend on: a table of sweeps over one space
# (refloss.sweep.run_many) draws each chunk once per worker process (a lock: dask runs chunks
# in threads)
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def inputs(task: dict, s) -> tuple:
    """(labels, code per point, input arrays in the sweep's dtype) of one chunk, read-only."""
    if task["kind"] != "samples" or task["space"] == "residuals":  # (bit patterns cost nothing to make; residuals
        return _read_only(_draw(task, s))                             # are drawn around the loss's kinks)
    key = (task["space"], task["seed"], task["index"], task["n"], s.dtype.str)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    out = _read_only(_draw(task, s))
    with _LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def _read_only(drawn: tuple) -> tuple:
    labels, codes, arrays = drawn
    for a in (codes, *arrays):
        a.flags.writeable = False
    return labels, codes, arrays


def _draw(task: dict, s) -> tuple:
    dt = s.dtype
    if task["kind"] == "bits":
        x = (np.arange(task["hi"] - task["lo"], dtype=np.uint32) + np.uint32(task["lo"])).view(np.float32)
        t = np.full(len(x), task.get("target", 0.0), np.float32)
        return ["bits"], np.zeros(len(x), np.uint8), (x, t)
    rng = np.random.default_rng([int(task["seed"]), int(task["index"])])
    n = int(task["n"])
    space = task["space"]
    if space == "residuals":
        return _residuals(rng, n, dt, s)
    if space == "boxes":
        return _boxes(rng, n, dt)
    if space == "logits":
        return _logits(rng, n, dt)
    if space == "soft_logits":
        return _soft_logits(rng, n, dt)
    if space == "rotated":
        return _rotated(rng, n, dt)
    raise ValueError(f"unknown space {space!r}")


def _residuals(rng, n, dt, s):
    half = n // 2
    seed = int(rng.integers(2**63))
    p1, t1 = cases._random(dt, half, seed)
    kinks = np.array(s.info.kink_points({p.name: v for p, v in zip(s.info.params, _floats(s))}) + (0.0,))
    m = n - half
    k = kinks[rng.integers(len(kinks), size=m)]
    rel = rng.choice([-1.0, 1.0], m) * 10.0 ** rng.uniform(-7, -1, m)
    mag = np.where(k > 0, k * (1 + rel), np.abs(rel))  # at 0: |x| = 10**U(-7, -1)
    x = (rng.choice([-1.0, 1.0], m) * mag).astype(dt)
    t2 = np.zeros(m, dt)
    codes = np.concatenate([np.zeros(half, np.uint8), np.ones(m, np.uint8)])
    return ["random", "near_kink"], codes, (np.concatenate([p1, x]), np.concatenate([t1, t2]))


def _floats(s):
    from .._validate import param_floats

    return param_floats(s.info.params, s.loss._param_values(s.params))


def _boxes(rng, n, dt):
    names = list(_BOX_CLASSES)
    per = max(4, -(-n // len(names)))  # (thin_tall sets its first four rows)
    preds, targets, codes = [], [], []
    for code, name in enumerate(names):
        make = _BOX_CLASSES[name] or box_cases._near_identical(dt)
        p, t = make(rng, per)
        p, t = p.astype(dt), t.astype(dt)
        keep = np.isfinite(p).all(1) & np.isfinite(t).all(1) & ~box_cases.box_ties(p, t)
        keep &= (p[:, 2] >= p[:, 0]) & (p[:, 3] >= p[:, 1]) & (t[:, 2] >= t[:, 0]) & (t[:, 3] >= t[:, 1])
        preds.append(p[keep])
        targets.append(t[keep])
        codes.append(np.full(int(keep.sum()), code, np.uint8))
    return names, np.concatenate(codes), (np.ascontiguousarray(np.concatenate(preds)),
                                          np.ascontiguousarray(np.concatenate(targets)))


_ROTATED_CLASSES = tuple(g for g in rotated_cases.GROUPS if g not in rotated_cases.KINK_GROUPS)


def _rotated(rng, n, dt):
    per = max(8, -(-n // len(_ROTATED_CLASSES)))
    preds, targets, codes = [], [], []
    for code, name in enumerate(_ROTATED_CLASSES):
        p, t = rotated_cases._RECIPES[name](rng, per)
        p, t = p.astype(dt), t.astype(dt)
        keep = np.isfinite(p).all(1) & np.isfinite(t).all(1) & (p[:, 2:4] > 0).all(1) & (t[:, 2:4] > 0).all(1)
        preds.append(p[keep])
        targets.append(t[keep])
        codes.append(np.full(int(keep.sum()), code, np.uint8))
    return list(_ROTATED_CLASSES), np.concatenate(codes), (np.ascontiguousarray(np.concatenate(preds)),
                                                            np.ascontiguousarray(np.concatenate(targets)))


def _logits(rng, n, dt):
    top = np.log10(float(np.finfo(np.float32).max))
    x = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-8, top, n)
    x = np.clip(x, -float(np.finfo(np.float32).max), float(np.finfo(np.float32).max)).astype(dt)
    y = (rng.random(n) < 0.5).astype(dt)
    return ["hard_target"], np.zeros(n, np.uint8), (x, y)


def _soft_logits(rng, n, dt):
    top = np.log10(float(np.finfo(np.float32).max))
    big = float(np.finfo(np.float32).max)
    m = n // 2
    k = m // 2
    x = np.concatenate([rng.choice([-1.0, 1.0], k) * 10.0 ** rng.uniform(-8, top, k), rng.normal(0.0, 4.0, m - k)])
    x = np.clip(x, -big, big).astype(dt)
    y = rng.random(m).astype(dt)
    # near the optimum: y = sigma(x) in dt, a few of its ulps away
    xo = (rng.choice([-1.0, 1.0], n - m) * 10.0 ** rng.uniform(-8, 1.6, n - m)).astype(dt)
    s = 1.0 / (1.0 + np.exp(-xo.astype(np.float64)))
    yo = s.astype(dt)
    steps = rng.integers(-4, 5, n - m)
    for _ in range(4):  # (nextafter one ulp at a time toward the side of the step)
        go = steps != 0
        yo = np.where(go, np.nextafter(yo, np.where(steps > 0, dt.type(2), dt.type(-1))), yo)
        steps = steps - np.sign(steps)
    yo = np.clip(yo, 0, 1).astype(dt)
    codes = np.concatenate([np.zeros(m, np.uint8), np.ones(n - m, np.uint8)])
    return ["soft_uniform", "near_optimum"], codes, (np.concatenate([x, xo]), np.concatenate([y, yo]))

