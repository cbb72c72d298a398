"""Built-in battery of (pred, target) box pairs for the IoU-family losses (NumPy only).

Boxes are xyxy rows ``(x1, y1, x2, y2)``.  Every group is ``(name, pred, target)``
with ``pred`` and ``target`` of shape ``(n, 4)`` in the requested dtype
(float32 or float64), finite, with ``x2 >= x1`` and ``y2 >= y1``.

Random coordinates are drawn in float64 and rounded once to the dtype; every
relation a group promises (an exactly shared edge, tied coordinates, ...) is
then imposed *in the dtype* by copying the stored value, so it holds exactly in
the arrays.  The groups outside :data:`KINK_GROUPS` are checked after rounding
to be differentiable points of every loss (no tied coordinates, no zero-width
overlap, no degenerate box), rows that fail are redrawn; those groups are
suitable for finite-difference checks.

Each group draws from its own generator ``default_rng([seed, index])``, so the
float64 and float32 batteries hold the same draws (up to rounding) and changing
``n_random`` leaves the other groups unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GROUPS", "KINK_GROUPS", "box_battery", "box_cases", "box_ties"]

GROUPS = (
    "generic",
    "disjoint_x",
    "disjoint_y",
    "disjoint_xy",
    "contained_pred_in_target",
    "contained_target_in_pred",
    "near_identical",
    "thin_tall",
    "small_far_from_origin",
    "far_apart",
    "identical",
    "edge_touching",
    "corner_touching",
    "tied_coordinates",
    "zero_area",
)

# non-differentiable or degenerate points: finite differences do not apply there
KINK_GROUPS = frozenset({"identical", "edge_touching", "corner_touching", "tied_coordinates", "zero_area"})

_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_SCALE_DECADES = (-6.0, 6.0)  # box sizes 1e-6 .. 1e6
_CHUNK = 64  # rows per draw of a random recipe
_MIN_GROUP = 8  # rows of each structured random group: max(_MIN_GROUP, n_random // 4)


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


# ------------------------------------------------------------------ helpers


def _xyxy(x1, y1, w, h) -> np.ndarray:
    return np.stack([x1, y1, x1 + w, y1 + h], axis=-1)


def _scales(rng, n) -> np.ndarray:
    return 10.0 ** rng.uniform(*_SCALE_DECADES, n)


def _swap_some(rng, pred, target):
    """Exchange pred and target in a random half of the rows (both orders occur)."""
    swap = rng.random(len(pred)) < 0.5
    p, t = pred.copy(), target.copy()
    p[swap], t[swap] = target[swap], pred[swap]
    return p, t


def _mirror_some(rng, pred, target, axis: int):
    """Reflect a random half of the rows in x (axis 0) or y (axis 1) about the pair's centre."""
    flip = rng.random(len(pred)) < 0.5
    lo, hi = axis, axis + 2
    centre = (np.minimum(pred[:, lo], target[:, lo]) + np.maximum(pred[:, hi], target[:, hi])) / 2
    p, t = pred.copy(), target.copy()
    for arr in (p, t):
        new_lo = 2 * centre - arr[:, hi]
        new_hi = 2 * centre - arr[:, lo]
        arr[flip, lo], arr[flip, hi] = new_lo[flip], new_hi[flip]
    return p, t


def box_ties(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Boolean mask of rows that sit on a non-differentiable or degenerate point.

    A row is flagged if any of ``px1 == tx1``, ``px2 == tx2``, ``py1 == ty1``,
    ``py2 == ty2`` (ties of the intersection/enclosing max/min), a zero
    pre-clamp overlap ``min(px2, tx2) == max(px1, tx1)`` (or in y), or a box
    with zero width or height.  Evaluated exactly in the arrays' dtype.
    """
    p, t = np.asarray(pred), np.asarray(target)
    tied = np.zeros(len(p), dtype=bool)
    for k in range(4):
        tied |= p[:, k] == t[:, k]
    for lo, hi in ((0, 2), (1, 3)):
        tied |= np.minimum(p[:, hi], t[:, hi]) == np.maximum(p[:, lo], t[:, lo])
        tied |= (p[:, hi] == p[:, lo]) | (t[:, hi] == t[:, lo])
    return tied


def _draw(make, rng, n: int, dt: np.dtype):
    """``n`` rows of ``make(rng, m) -> (pred, target)`` (float64), rounded to dt.

    Rows that are tied after rounding (:func:`box_ties`) are dropped and more
    are drawn until there are n.  Rows come in chunks of ``_CHUNK`` draws, so the
    first rows do not depend on n.
    """
    preds, targets, have = [], [], 0
    for _ in range(1000):
        p, t = make(rng, _CHUNK)
        p, t = p.astype(dt), t.astype(dt)
        keep = np.isfinite(p).all(1) & np.isfinite(t).all(1) & ~box_ties(p, t)
        preds.append(p[keep])
        targets.append(t[keep])
        have += int(keep.sum())
        if have >= n:
            break
    else:  # pragma: no cover - would need an astronomically unlucky generator
        raise RuntimeError("could not draw enough tie-free box pairs")
    return np.concatenate(preds)[:n], np.concatenate(targets)[:n]


# --------------------------------------------------------- random groups


def _generic(rng, n):
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    wp, hp = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(2))
    wt, ht = (wp * 10.0 ** rng.uniform(-0.3, 0.3, n), hp * 10.0 ** rng.uniform(-0.3, 0.3, n))
    # target start within +-0.4 of the pred's size and size >= 0.5 of it: they overlap
    tx1 = ox + rng.uniform(-0.4, 0.4, n) * wp
    ty1 = oy + rng.uniform(-0.4, 0.4, n) * hp
    return _swap_some(rng, _xyxy(ox, oy, wp, hp), _xyxy(tx1, ty1, wt, ht))


def _disjoint(axes: str):
    def make(rng, n):
        s = _scales(rng, n)
        ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
        wp, hp, wt, ht = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(4))
        gap_x, gap_y = (s * 10.0 ** rng.uniform(-2, 0.3, n) for _ in range(2))
        # default: overlapping ranges (target starts inside the pred's range)
        tx1 = ox + rng.uniform(-0.4, 0.4, n) * np.minimum(wp, wt)
        ty1 = oy + rng.uniform(-0.4, 0.4, n) * np.minimum(hp, ht)
        if "x" in axes:
            tx1 = ox + wp + gap_x
        if "y" in axes:
            ty1 = oy + hp + gap_y
        p, t = _xyxy(ox, oy, wp, hp), _xyxy(tx1, ty1, wt, ht)
        for axis, name in ((0, "x"), (1, "y")):
            if name in axes:
                p, t = _mirror_some(rng, p, t, axis)
        return _swap_some(rng, p, t)

    return make


def _contained(inner_is_pred: bool):
    def make(rng, n):
        s = _scales(rng, n)
        ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
        w, h = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(2))
        ml, mr, mb, mt = (rng.uniform(0.02, 0.45, n) for _ in range(4))  # strict margins
        outer = _xyxy(ox, oy, w, h)
        inner = np.stack([ox + ml * w, oy + mb * h, ox + w - mr * w, oy + h - mt * h], axis=-1)
        return (inner, outer) if inner_is_pred else (outer, inner)

    return make


def _near_identical(dt: np.dtype):
    def make(rng, n):
        s = _scales(rng, n)
        ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
        w, h = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(2))
        pred = _xyxy(ox, oy, w, h).astype(dt)
        size = np.stack([w, h, w, h], axis=-1)
        sign = rng.choice([-1.0, 1.0], (n, 4))
        if dt == np.float64:  # relative 1e-12 .. 1e-9 of the box size
            target = pred + sign * size * 10.0 ** rng.uniform(-12, -9, (n, 4))
        else:  # float32 cannot move by 1e-9: 1 .. 16 ulp of each coordinate instead
            steps = rng.integers(1, 17, (n, 4))
            target = pred.astype(np.float64) + sign * steps * np.spacing(np.abs(pred)).astype(np.float64)
        return pred.astype(np.float64), target

    return make


def _thin_tall(rng, n):
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    # aspect w/h = 10**U(-4, 4) for both boxes; area ~ s**2
    ap, at = 10.0 ** rng.uniform(-4, 4, n), 10.0 ** rng.uniform(-4, 4, n)
    ap[:4] = [1e4, 1e-4, 1e4, 1e-4]  # the extremes, both ways
    at[:4] = [1e-4, 1e4, 1e4, 1e-4]
    wp, hp = s * np.sqrt(ap), s / np.sqrt(ap)
    wt, ht = s * np.sqrt(at), s / np.sqrt(at)
    # centres offset by at most 0.4 of the smaller extent: the boxes overlap (a cross or a stripe)
    cx = ox + rng.uniform(-0.4, 0.4, n) * np.minimum(wp, wt)
    cy = oy + rng.uniform(-0.4, 0.4, n) * np.minimum(hp, ht)
    pred = _xyxy(ox - wp / 2, oy - hp / 2, wp, hp)
    target = _xyxy(cx - wt / 2, cy - ht / 2, wt, ht)
    return pred, target


def _small_far_from_origin(rng, n):
    # half the rows: boxes of size ~1e-6 near coordinate 1; half: unit boxes near 1e6
    small = np.arange(n) % 2 == 0
    s = np.where(small, 1e-6, 1.0) * 10.0 ** rng.uniform(-0.3, 0.3, n)
    base = np.where(small, 1.0, 1e6)
    ox = base * rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    oy = base * rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    wp, hp = (s * 10.0 ** rng.uniform(-0.2, 0.2, n) for _ in range(2))
    wt, ht = wp * 10.0 ** rng.uniform(-0.2, 0.2, n), hp * 10.0 ** rng.uniform(-0.2, 0.2, n)
    tx1 = ox + rng.uniform(-0.4, 0.4, n) * wp
    ty1 = oy + rng.uniform(-0.4, 0.4, n) * hp
    return _swap_some(rng, _xyxy(ox, oy, wp, hp), _xyxy(tx1, ty1, wt, ht))


def _far_apart(rng, n):
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    wp, hp, wt, ht = (s * 10.0 ** rng.uniform(-0.3, 0.3, n) for _ in range(4))
    # gap >= 1e3 box sizes along x, y or the diagonal (direction random)
    gap = s * 10.0 ** rng.uniform(3.5, 4.5, n)
    theta = rng.choice([0.0, 0.5, 1.0], n) * np.pi / 2 + rng.choice([0.0, np.pi], n)
    tx1 = ox + np.cos(theta) * gap
    ty1 = oy + np.sin(theta) * gap
    along_x = np.abs(np.cos(theta)) > 0.5
    along_y = np.abs(np.sin(theta)) > 0.5
    ty1 = np.where(along_x & ~along_y, oy + rng.uniform(-0.4, 0.4, n) * hp, ty1)
    tx1 = np.where(along_y & ~along_x, ox + rng.uniform(-0.4, 0.4, n) * wp, tx1)
    return _xyxy(ox, oy, wp, hp), _xyxy(tx1, ty1, wt, ht)


# ---------------------------------------------------------- kink groups


def _base_pairs(rng, n, dt):
    """Overlapping, tie-free float pairs in dt (the generic recipe) to derive kink rows from."""
    return _draw(_generic, rng, n, dt)


def _identical(rng, n, dt):
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    w, h = (s * 10.0 ** rng.uniform(-2, 2, n) for _ in range(2))
    pred = _xyxy(ox, oy, w, h).astype(dt)
    fixed = np.array([[0, 0, 1, 1], [-1, -1, 1, 1], [0.5, 0.25, 2.0, 3.0],
                      [1e6, 1e6, 1e6 + 1, 1e6 + 1], [1e-6, 1e-6, 2e-6, 3e-6]], dtype=dt)
    pred = np.concatenate([fixed, pred])
    return pred, pred.copy()


def _edge_touching(rng, n, dt):
    """px2 == tx1 exactly (and the mirrored / vertical variants), y ranges overlapping."""
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    wp, hp, wt, ht = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(4))
    pred = _xyxy(ox, oy, wp, hp).astype(dt)
    ty1 = oy + rng.uniform(-0.4, 0.4, n) * np.minimum(hp, ht)
    target = _xyxy(ox + wp, ty1, wt, ht).astype(dt)
    target[:, 0] = pred[:, 2]  # share the edge exactly in dt
    target[:, 2] = np.maximum(target[:, 2], target[:, 0])
    pred, target = _variants(rng, pred, target)
    fixed_p = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 1]], dtype=dt)
    fixed_t = np.array([[1, 0, 2, 1], [0, 1, 1, 2], [2, 0.5, 3, 3]], dtype=dt)
    return np.concatenate([fixed_p, pred]), np.concatenate([fixed_t, target])


def _corner_touching(rng, n, dt):
    """px2 == tx1 and py2 == ty1 exactly (and mirrored variants)."""
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    wp, hp, wt, ht = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(4))
    pred = _xyxy(ox, oy, wp, hp).astype(dt)
    target = _xyxy(ox + wp, oy + hp, wt, ht).astype(dt)
    target[:, 0], target[:, 1] = pred[:, 2], pred[:, 3]
    target[:, 2] = np.maximum(target[:, 2], target[:, 0])
    target[:, 3] = np.maximum(target[:, 3], target[:, 1])
    pred, target = _variants(rng, pred, target)
    fixed_p = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=dt)
    fixed_t = np.array([[1, 1, 2, 2], [1, -1, 3, 0]], dtype=dt)
    return np.concatenate([fixed_p, pred]), np.concatenate([fixed_t, target])


def _variants(rng, pred, target):
    """Exact symmetries of a touching pair: swap x<->y, negate x / y, swap pred and target.

    Negation and transposition are exact in any binary format, so the shared
    edge/corner stays exact.
    """
    p, t = pred.copy(), target.copy()
    n = len(p)
    transpose = rng.random(n) < 0.5
    for arr in (p, t):
        arr[transpose] = arr[transpose][:, [1, 0, 3, 2]]
    for lo, hi in ((0, 2), (1, 3)):
        neg = rng.random(n) < 0.5
        for arr in (p, t):
            a_lo, a_hi = -arr[neg, hi], -arr[neg, lo]
            arr[neg, lo], arr[neg, hi] = a_lo, a_hi
    return _swap_some(rng, p, t)


def _tied_coordinates(rng, n, dt):
    """Overlapping pairs with one or more coordinates copied exactly from pred to target."""
    pred, target = _base_pairs(rng, n, dt)
    patterns = [(0,), (2,), (1,), (3,), (0, 1), (0, 2), (1, 3), (0, 3), (0, 1, 2)]
    target = target.copy()
    for i in range(n):
        for k in patterns[i % len(patterns)]:
            target[i, k] = pred[i, k]
    bad = (target[:, 2] < target[:, 0]) | (target[:, 3] < target[:, 1])
    target[bad] = pred[bad]  # cannot happen for the generic recipe; keeps validity anyway
    fixed_p = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 3, 1]], dtype=dt)
    fixed_t = np.array([[0, 1, 1, 3], [1, 0, 2, 3], [0, 0, 1, 3], [1, 0, 2, 1]], dtype=dt)
    return np.concatenate([fixed_p, pred]), np.concatenate([fixed_t, target])


def _zero_area(rng, n, dt):
    """A degenerate box (w == 0 xor h == 0) against a normal one: inside, crossing, outside."""
    s = _scales(rng, n)
    ox, oy = (rng.uniform(-3, 3, n) * s for _ in range(2))
    w, h = (s * 10.0 ** rng.uniform(-0.5, 0.5, n) for _ in range(2))
    normal = _xyxy(ox, oy, w, h)
    # a segment: position and extent relative to the normal box
    a = ox + rng.uniform(-0.5, 1.5, n) * w
    b = oy + rng.uniform(-0.5, 1.5, n) * h
    length_x = w * 10.0 ** rng.uniform(-1, 0.5, n)
    length_y = h * 10.0 ** rng.uniform(-1, 0.5, n)
    vertical = np.arange(n) % 2 == 0  # w == 0
    seg = np.where(vertical[:, None],
                   np.stack([a, b, a, b + length_y], axis=-1),
                   np.stack([a, b, a + length_x, b], axis=-1))
    normal, seg = normal.astype(dt), seg.astype(dt)
    seg[vertical, 2] = seg[vertical, 0]
    seg[~vertical, 3] = seg[~vertical, 1]
    pred, target = _swap_some(rng, seg, normal)
    fixed_p = np.array([[0.5, 0, 0.5, 1], [0, 0.5, 1, 0.5], [2, 0, 2, 1], [0, 0, 1, 0]], dtype=dt)
    fixed_t = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=dt)
    return np.concatenate([fixed_p, pred]), np.concatenate([fixed_t, target])


# --------------------------------------------------------------- public


def box_cases(dtype, *, n_random: int = 100, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Named groups ``(name, pred (n, 4), target (n, 4))`` of valid boxes in ``dtype``.

    Groups, in the order of :data:`GROUPS` (``s`` = a box scale drawn
    log-uniformly over 1e-6..1e6, positions offset by ``U(-3, 3) s``):

    * ``"generic"`` (``n_random`` rows, omitted if 0): random overlapping pairs,
      sizes ``s 10**U(-0.5, 0.5)``.
    * ``"disjoint_x"``, ``"disjoint_y"``, ``"disjoint_xy"``: separated by a gap
      of ``s 10**U(-2, 0.3)`` along x, y or both (overlapping in the other axis).
    * ``"contained_pred_in_target"``, ``"contained_target_in_pred"``: strictly
      inside, margins 2%..45% of the outer box.
    * ``"near_identical"``: target = pred with every coordinate moved by
      ``+-10**U(-12, -9)`` times the box size (float64) or by 1..16 ulp of the
      coordinate (float32, which cannot resolve 1e-9); 1 - IoU ~ 1e-12..1e-8
      (float64).
    * ``"thin_tall"``: aspect ratios ``10**U(-4, 4)`` for each box (the extremes
      1e4 and 1e-4 included), overlapping (crosses and stripes).
    * ``"small_far_from_origin"``: size ~1e-6 near coordinates +-(0.5..2), and
      size ~1 near +-(0.5..2)e6.
    * ``"far_apart"``: separated by at least 1e3 times the larger box
      dimension (gap ``s 10**U(3.5, 4.5)``, sizes ``<= 2 s``) along x, y or the
      diagonal.
    * ``"identical"``: pred == target exactly.
    * ``"edge_touching"``: an exactly shared edge (px2 == tx1 and its mirrored,
      transposed and swapped variants), overlapping along the edge.
    * ``"corner_touching"``: px2 == tx1 and py2 == ty1 exactly (and variants).
    * ``"tied_coordinates"``: overlapping pairs with 1..3 coordinates equal
      (px1 == tx1, ...).
    * ``"zero_area"``: a box with w == 0 or h == 0 (not both) against a normal
      box, inside, crossing or outside it.

    Structured random groups have ``max(8, n_random // 4)`` random rows (the kink
    groups also a few fixed rows).  Groups outside :data:`KINK_GROUPS` contain no
    ties (see :func:`box_ties`).
    """
    dt = _float_dtype(dtype)
    m = max(_MIN_GROUP, int(n_random) // 4)

    def rng(i):
        return np.random.default_rng([int(seed), i])

    smooth = {
        "generic": lambda r: _draw(_generic, r, int(n_random), dt),
        "disjoint_x": lambda r: _draw(_disjoint("x"), r, m, dt),
        "disjoint_y": lambda r: _draw(_disjoint("y"), r, m, dt),
        "disjoint_xy": lambda r: _draw(_disjoint("xy"), r, m, dt),
        "contained_pred_in_target": lambda r: _draw(_contained(True), r, m, dt),
        "contained_target_in_pred": lambda r: _draw(_contained(False), r, m, dt),
        "near_identical": lambda r: _draw(_near_identical(dt), r, m, dt),
        "thin_tall": lambda r: _draw(_thin_tall, r, m, dt),
        "small_far_from_origin": lambda r: _draw(_small_far_from_origin, r, m, dt),
        "far_apart": lambda r: _draw(_far_apart, r, m, dt),
    }
    kinks = {
        "identical": lambda r: _identical(r, m, dt),
        "edge_touching": lambda r: _edge_touching(r, m, dt),
        "corner_touching": lambda r: _corner_touching(r, m, dt),
        "tied_coordinates": lambda r: _tied_coordinates(r, m, dt),
        "zero_area": lambda r: _zero_area(r, m, dt),
    }
    groups = []
    for i, name in enumerate(GROUPS):
        if name == "generic" and n_random <= 0:
            continue
        pred, target = (smooth.get(name) or kinks[name])(rng(i))
        groups.append((name, np.ascontiguousarray(pred, dtype=dt), np.ascontiguousarray(target, dtype=dt)))
    for name, pred, target in groups:
        assert pred.dtype == dt and target.dtype == dt, name
        assert pred.ndim == 2 and pred.shape[1] == 4 and pred.shape == target.shape and len(pred), name
        assert np.isfinite(pred).all() and np.isfinite(target).all(), name
        for box in (pred, target):
            assert (box[:, 2] >= box[:, 0]).all() and (box[:, 3] >= box[:, 1]).all(), name
        if name not in KINK_GROUPS:
            assert not box_ties(pred, target).any(), name
    return groups


def box_battery(dtype, n_random: int = 100, seed: int = 0):
    """(group name per pair, pred, target): the groups of :func:`box_cases` concatenated."""
    groups = box_cases(dtype, n_random=n_random, seed=seed)
    names = np.concatenate([np.full(len(p), g, dtype=object) for g, p, _ in groups])
    return names, np.concatenate([p for _, p, _ in groups]), np.concatenate([t for _, _, t in groups])
