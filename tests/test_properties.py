"""Properties of every loss, checked by Hypothesis on drawn inputs (issue 12).

Every test is parametrised over ``rl.ALL_LOSSES`` but the row losses (a new loss is covered with no edit) and
decides what applies from the loss's family (``loss.info.family``).  One example draws one
batch of inputs (mostly 8 x 8 = 64 pairs) and checks every property of its test on it:

- test_exact_relations: translation of both inputs leaves value and gradients unchanged bit
  for bit (a dyadic grid makes every coordinate difference exact); boxes scaled by 2^j keep
  their values, and their gradients scale by 2^-j, bit for bit; swapping pred and target keeps
  the value and swaps the gradients; pred = target gives 0 (metrics: 1) and a zero gradient;
- test_bounds_and_finite_gradients: each loss >= 0, each metric <= 1, the ranges derived per
  loss (Properties.value_range, from its derivation); NaN only where the docs say; gradients finite where the value is; the
  same with parameters anywhere in their documented domain;
- test_gradient_matches_finite_differences: value_and_grad against Richardson-extrapolated
  finite differences (``refloss._fd.gradient``) away from kinks and ties;
- test_input_forms: odd input forms equal a contiguous float64 copy, broadcasting, scalars and
  empty arrays equal explicit copies, bad input raises a clear TypeError/ValueError, non-finite
  input names its first index;
- test_cuda_equals_cpu: the CUDA kernels (Numba's simulator in CI) equal the CPU kernels.

Example counts come from the Hypothesis profile (tests/conftest.py: "ci" 2,000, "long"
100,000; the CUDA test a tenth).  Known failures found by these properties are pinned by
xfail(strict=True) tests at the end and left out of their property only where they occur
(KNOWN).  docs/testing.md lists every property with its counts and what a run found.
"""
from __future__ import annotations

import functools
import math
import os
import traceback
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refloss as rl
from refloss import _fd
from refloss._battery import kinks as kink_points
from refloss._reference import REFERENCES

# the losses on rows of variable width (softmax_cross_entropy: the class axis) are not drawn here: no
# strategy below makes rows; tests/test_softmax_cross_entropy.py checks them
LOSSES = tuple(n for n in rl.ALL_LOSSES if None not in rl.loss_named(n).info.widths)
EXAMPLES = settings.default.max_examples  # of the profile loaded (conftest.py)
N = 8  # values (boxes) drawn per input and example: N x N pairs are evaluated


def _fn(name):
    return getattr(rl, name)


def _family(name) -> str:
    return _fn(name).info.family


def _kind(name) -> str:
    return _fn(name).info.kind


def _props(name):
    """What the loss's derivation says its formula guarantees (refloss._info.Properties)."""
    return _fn(name).info.properties


def _only(families):
    return [n for n in LOSSES if _family(n) in families]


def _pairs(a, b):
    """All len(a) x len(b) ordered pairs of the rows of a and b, as two contiguous arrays."""
    return np.repeat(a, len(b), axis=0), np.tile(b, (len(a),) + (1,) * (a.ndim - 1))


# Strategies are built once and reused: Hypothesis validates a strategy object on its first draw,
# and validating fresh strategy objects in every example cost more than the checks themselves.
@functools.lru_cache(maxsize=None)
def _ints(lo, hi):
    return st.integers(lo, hi)


@functools.lru_cache(maxsize=None)
def _choice(*options):
    return st.sampled_from(options)


@functools.lru_cache(maxsize=None)
def _bytes(size):
    return st.binary(min_size=size, max_size=size)




# ------------------------------------------------------------------ parameters


def _param_strategy(p, wide=False):
    """A parameter drawn from its documented domain (``Param``): bools, None for optional ones,
    one of its strings for a choice, a (width, height) pair for a size, reals inside the bounds.  Unbounded sides are capped at 2^4 (``wide``: 2^20); an open lower
    bound is kept 2^-4 away, a closed one is drawn itself or 2^-30 above (``wide``: any float
    of the domain, subnormals included).  A parameter unbounded on both sides
    (sigmoid_focal_loss's alpha: "None or negative: no weighting") is drawn in [-1, 1]: a weight
    above 1 gives the negative class a negative weight, and the loss may then be negative."""
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "int":  # e.g. wiou_loss's version: the integers of its (bounded) range
        return st.integers(int(math.ceil(p.lower)), int(math.floor(p.upper)))
    if p.kind == "choice":  # e.g. alpha_iou_loss's form: one of its strings
        return _choice(*p.choices)
    if p.kind == "size":  # e.g. mpdiou_loss's image_size: (width, height), both > 0
        side = st.floats(2.0**-4, 2.0**20 if wide else 2.0**12)
        return st.tuples(side, side)
    lo, hi = p.lower, p.upper
    if lo is None and hi is None:
        lo, hi = -1.0, 1.0
    cap = 2.0**20 if wide else 2.0**4
    if hi is None:
        hi = lo + cap if lo is not None else cap
    if lo is None:
        lo = -cap
    exclude_min = p.lower is not None and not p.lower_closed
    exclude_max = p.upper is not None and not p.upper_closed
    if wide:
        real = st.floats(lo, hi, exclude_min=exclude_min, exclude_max=exclude_max, allow_nan=False)
    elif exclude_min:
        real = st.floats(lo + 2.0**-4, hi, exclude_max=exclude_max)
    else:  # the closed bound itself (eps = 0: the exact formula) or at least 2^-30 above it
        real = st.just(float(lo)) | st.floats(lo + 2.0**-30, hi, exclude_max=exclude_max)
    return st.none() | real if p.kind == "optional" else real


@functools.lru_cache(maxsize=None)
def params_for(name, wide=False, **fixed):
    """Keyword parameters of ``name`` drawn from their domains; ``fixed`` ones as given."""
    fn = _fn(name)
    return st.fixed_dictionaries({p.name: st.just(fixed[p.name]) if p.name in fixed else _param_strategy(p, wide)
                                  for p in fn.params})


# ------------------------------------------------------------------ inputs

# The numbers of a batch and its structure (scale, spread, sizes) come from one Hypothesis
# choice, a byte string read by NumPy as uint32 (``_blob``; the structure decoded by ``_span``):
# drawing 64 numbers one by one (hnp.arrays) cost ~5 ms an example here, and each further draw
# ~0.2 ms, too much for 2,000 examples of ~100 tests.  Hypothesis still explores, replays and shrinks the bytes
# (towards zeros: every value maps 0 to 0).  Most inputs are dyadic, integers times 2^k:
# element-wise differences of integers below 2^27 (and shifts below 2^28) are exact in float64,
# and so are all sums of up to four box coordinates below 2^14, so the exact relations can be
# demanded bit for bit.


def _blob(draw, count):
    """``count`` uint32 values (as int64) from one drawn byte string."""
    raw = draw(_bytes(4 * count))
    return np.frombuffer(raw, dtype="<u4").astype(np.int64)


def _zigzag(u, radius):
    """uint32 values onto [-radius, radius] as 0, -1, 1, -2, 2, ...: zero bytes give 0."""
    v = u % (2 * radius + 1)
    return np.where(v % 2 == 1, -((v + 1) // 2), v // 2)


@functools.lru_cache(maxsize=None)
def _simplest_first(lo, hi):
    """The integers of [lo, hi] ordered from the simplest: 0, -1, 1, -2, 2, ... where the range
    holds 0, else lo, lo + 1, ... (the order in which Hypothesis shrinks integers)."""
    values = range(lo, hi + 1)
    return tuple(sorted(values, key=lambda z: (abs(z), z > 0))) if lo <= 0 <= hi else tuple(values)


def _span(u, lo, hi):
    """A uint32 value onto [lo, hi], 0 onto the simplest integer (_simplest_first)."""
    order = _simplest_first(lo, hi) if hi - lo < 4096 else None
    v = int(u) % (hi - lo + 1)
    if order is not None:
        return order[v]
    if lo <= 0 <= hi:  # wide ranges (shifts): the same zigzag, computed
        z = -((v + 1) // 2) if v % 2 else v // 2
        return z if lo <= z <= hi else (lo + v if lo + v <= hi else hi)
    return lo + v


class _Picks:
    """The discrete choices of one example (shapes, forms, reductions, dtypes, shifts), decoded in
    order from one drawn byte string, four bytes a choice.  One Hypothesis draw instead of one
    per choice: each draw costs ~0.2 ms of Hypothesis bookkeeping, and an example of
    test_input_forms made about thirty of them, more than its checks cost.  Hypothesis still
    replays and shrinks the bytes; zero bytes decode to the first option, the integer nearest 0
    (or the lower bound), False and the empty set, so a shrunk failure shows the simplest
    choices.  Past the end of the bytes every choice is that simplest one."""

    SIZE = 4 * 48

    def __init__(self, raw: bytes):
        self._u = np.frombuffer(raw, dtype="<u4").tolist()
        self._i = 0

    def _next(self) -> int:
        i = self._i
        self._i += 1
        return self._u[i] if i < len(self._u) else 0

    def int(self, lo: int, hi: int) -> int:
        return _span(self._next(), lo, hi)

    def choice(self, *options):
        return options[self._next() % len(options)]

    def bool(self) -> bool:
        return self._next() % 2 == 1

    def subset(self, options, max_size):
        """Up to ``max_size`` of ``options`` (a bit mask; the first set bits kept), in their order."""
        mask = self._next()
        return {o for i, o in enumerate(options) if mask >> i & 1 and bin(mask & ((1 << i) - 1)).count("1") < max_size}

    def broadcastable_shapes(self, count=2, max_dims=3, max_side=4):
        """``count`` shapes that broadcast together (0 to ``max_dims`` dimensions, sides 0 to
        ``max_side``, each input taking the trailing dimensions of a full shape with some set to
        1) and the shape they broadcast to."""
        full = [self.int(0, max_side) for _ in range(self.int(0, max_dims))]
        shapes = []
        for _ in range(count):
            d = self.int(0, len(full))
            shapes.append(tuple(1 if self.bool() else n for n in full[len(full) - d:]))
        return shapes, np.broadcast_shapes(*shapes)


def _picks(data, label="choices"):
    """A _Picks of the example (one draw)."""
    return _Picks(data.draw(_bytes(_Picks.SIZE), label))


@functools.lru_cache(maxsize=None)
@st.composite
def elementwise_dyadic(draw, n=N):
    """n predictions and n targets within +-2^e units of 2^k; all n x n pairs."""
    u = _blob(draw, 2 + 2 * n)
    k, e = _span(u[0], -40, 12), _span(u[1], 0, 26)
    a, b = _zigzag(u[2:], 2**e).reshape(2, n)
    p, t = _pairs(np.ldexp(a.astype(np.float64), k), np.ldexp(b.astype(np.float64), k))
    return (p, t), k


@functools.lru_cache(maxsize=None)
@st.composite
def box_dyadic(draw, n=N, min_size=0):
    """n boxes on a grid of 2^k: corners within +-2^e units, sides min_size to 2^s units; all
    n x n ordered pairs (the n diagonal pairs are identical boxes).  Small spreads give nested
    and overlapping boxes with many tied coordinates, large ones disjoint boxes."""
    head = _blob(draw, 3 + 4 * n)
    k, e, s = _span(head[0], -40, 40), _span(head[1], 0, 12), _span(head[2], 0, 12)
    u = head[3:].reshape(n, 4)
    xy = _zigzag(u[:, :2], 2**e)
    wh = min_size + u[:, 2:] % (2**s + 1 - min(min_size, 2**s))
    boxes = np.ldexp(np.concatenate([xy, xy + wh], axis=1).astype(np.float64), k)
    return _pairs(boxes, boxes), k


@functools.lru_cache(maxsize=None)
@st.composite
def xywh_dyadic(draw, n=N):
    """YOLOv1 (x, y, w, h) boxes: centres within +-2^e, sizes 0 to 2^s units of 2^k; all n x n pairs."""
    head = _blob(draw, 3 + 4 * n)
    k, e, s = _span(head[0], -30, 30), _span(head[1], 0, 20), _span(head[2], 0, 20)
    u = head[3:].reshape(n, 4)
    boxes = np.ldexp(np.concatenate([_zigzag(u[:, :2], 2**e), u[:, 2:] % (2**s + 1)], axis=1).astype(np.float64), k)
    return _pairs(boxes, boxes), k


@functools.lru_cache(maxsize=None)
@st.composite
def rotated_dyadic(draw, n=N, min_size=0, k_span=(-40, 40)):
    """n rotated boxes (cx, cy, w, h, angle): centres within +-2^e units of 2^k, sides min_size to 2^s units, angles
    j/16 radians (|j| <= 128: every angle difference exact); all n x n ordered pairs (the diagonal identical)."""
    head = _blob(draw, 3 + 5 * n)
    k, e, s = _span(head[0], *k_span), _span(head[1], 0, 12), _span(head[2], 0, 12)
    u = head[3:].reshape(n, 5)
    xy = _zigzag(u[:, :2], 2**e)
    wh = min_size + u[:, 2:4] % (2**s + 1 - min(min_size, 2**s))
    lengths = np.ldexp(np.concatenate([xy, wh], axis=1).astype(np.float64), k)
    boxes = np.concatenate([lengths, _zigzag(u[:, 4:], 128) / 16.0], axis=1)
    return _pairs(boxes, boxes), k


@functools.lru_cache(maxsize=None)
@st.composite
def logits_targets(draw, n=N, bound=1e4, interior=False):
    """Logits within +-2^e (at most ``bound``: 1e4 is the README's float64 range) on a grid of
    2^-j, and targets in [0, 1] on a grid of 2^-m (m = 0: hard targets; ``interior``: within
    [2^-10, 1 - 2^-10]); all n x n pairs."""
    head = _blob(draw, 3 + 2 * n)
    e, j, m = _span(head[0], 0, 14), _span(head[1], 0, 20), (_span(head[2], 1, 10) if interior else _span(head[2], 0, 20))
    u = head[3:].reshape(2, n)
    x = np.clip(np.ldexp(_zigzag(u[0], 2 ** (e + j)).astype(np.float64), -j), -bound, bound)
    y = ((1 + u[1] % (2**m - 1)) if interior else u[1] % (2**m + 1)).astype(np.float64) / 2.0**m
    return _pairs(x, y)


@functools.lru_cache(maxsize=None)
def exact_inputs(name):
    """Dyadic inputs for the family of ``name`` (element-wise, box, yolo): ((p, t), k)."""
    return {"elementwise": elementwise_dyadic(), "box": box_dyadic(), "yolo": xywh_dyadic(),
            "rotated": rotated_dyadic()}[_family(name)]


@functools.lru_cache(maxsize=None)
def any_inputs(name, n=N):
    """Valid inputs of any kind for ``name``: (p, t) of n x n pairs."""
    fam = _family(name)
    if fam == "classification":
        return logits_targets(n)
    strat = {"elementwise": elementwise_dyadic(n), "box": box_dyadic(n), "yolo": xywh_dyadic(n),
             "rotated": rotated_dyadic(n)}[fam]
    return strat.map(lambda r: r[0])


# ------------------------------------------------------------------ helpers


def _eq(a, b) -> bool:
    """Bit for bit (NaN equal to NaN, 0.0 to -0.0), and the same shape."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _worst(got, want, *inputs):
    """Where two arrays differ most: a line for the failure message."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    with np.errstate(invalid="ignore"):
        d = np.where(np.isnan(got) & np.isnan(want), 0.0, np.abs(got - want))
    d = np.where(np.isnan(d), np.inf, d)
    i = np.unravel_index(int(np.argmax(d)), d.shape) if d.size else ()
    row = i[:1] if i else ()
    where = ", ".join(f"{(np.asarray(x)[row] if np.ndim(x) and row and row[0] < len(x) else np.asarray(x)).tolist()!r}"
                      for x in inputs)
    return f"at {i}: got {got[i]!r}, expected {want[i]!r} (inputs {where})"


def _assert_same(got, want, what, *inputs):
    assert _eq(got, want), f"{what}: {_worst(got, want, *inputs)}"


# ------------------------------------------------------------------ known failures

# Each known failure is pinned by a concrete xfail(strict=True) test at the end of this file
# (it flips to a failure once fixed), and the one property it breaks leaves out exactly the
# inputs concerned, so the property keeps checking everything else.  When a fix lands: remove
# the xfail and the entry here.


def _zero_union(p, t):
    """Both boxes have zero area, so the union is 0 (exact for the dyadic inputs)."""
    return (((p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])) == 0) & (((t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])) == 0)


def _shape_iou_undefined(p, t, params):
    """Shape-IoU's conventions: the shape weights 2 w^s/(w^s + h^s) of a point target are 0/0 for scale > 0, and
    |w_p - w_t|/max(w_p, w_t) is 0/0 for two zero-width boxes (heights likewise), whatever eps is."""
    wp, hp, wt, ht = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    return ((wt == 0) & (ht == 0) & (params.get("scale", 0.0) != 0)) | ((wp == 0) & (wt == 0)) | ((hp == 0) & (ht == 0))


# box losses documented NaN at other inputs too: where(p, t, params) -> mask
UNDEFINED_ALSO = {"shape_iou_loss": _shape_iou_undefined}


def _undefined(name, p, t, params):
    """Where a box loss is documented NaN: zero union with eps = 0 (nowhere for a loss defined at zero union,
    Properties.defined_at_zero_union: NWD, a distance between Gaussians), and UNDEFINED_ALSO."""
    also = UNDEFINED_ALSO[name](p, t, params) if name in UNDEFINED_ALSO else np.zeros(len(p), bool)
    if _props(name).defined_at_zero_union:
        return also
    return (_zero_union(p, t) & (params.get("eps", 0.0) == 0)) | also


# (properties, losses, where(p, t, params) -> mask of the pairs left out, the pinning test)
KNOWN = []  # none at present


def _known(prop, name, p, t, params):
    """Boolean mask of the pairs a known failure leaves out of ``prop`` (all False if none)."""
    mask = np.zeros(len(p), bool)
    for props, losses, where, _ in KNOWN:
        if prop in props and name in losses:
            mask |= where(p, t, params)
    return mask


# ================================================================== bounds: ranges

# [lo, hi] of each loss: Properties.value_range, stated in its derivation from its formula (e.g. GIoU
# loss in [0, 2]); else losses >= 0, metrics <= 1.  An upper bound that is strict for pairs with a
# positive union (Properties.strict_upper: GIoU's (C - U)/C = 1 - U/C < 1 and DIoU's rho^2/c^2 < 1):
# on the grid, in units of the grid, U >= 1 and C <= 2^28, and c^2 - rho^2 is a positive multiple of
# 1/4 with c^2 <= 2^29: both margins are above 2^-31, far above float64's rounding, so the computed
# values stay below the bound.


def _range(name) -> tuple:
    if _props(name).value_range is not None:
        return _props(name).value_range
    return (-math.inf, 1.0) if _kind(name) == "metric" else (0.0, math.inf)


def _documented_infinite_gradient(name, p, t, params):
    """Where the docs say the gradient is infinite or undefined although the value is finite:
    YOLOv1 at a size of 0 (d sqrt(w)/dw); sigmoid focal loss with 0 < gamma < 1 where 1 - p_t = 0
    exactly (a hard target and a logit whose sigmoid rounds to it: |x| > 36); box losses at zero
    union with eps > 0, where the exact gradient is of order side/eps (GIoU of collinear
    segments, whose enclosing box has area 0) and exceeds float64's range once side/eps does."""
    fam = _family(name)
    if fam == "box":
        eps = params.get("eps", 0.0)
        side = np.abs(np.concatenate([p, t], axis=1)).max(axis=1, initial=0.0) + 1.0
        with np.errstate(divide="ignore", over="ignore"):
            return _zero_union(p, t) & (eps > 0) & (side / eps > np.finfo(np.float64).max / 64)
    if fam == "yolo":
        return (p[:, 2:] == 0).any(axis=1) | (t[:, 2:] == 0).any(axis=1)
    if fam == "rotated":
        return _rotated_no_derivative(name, p, t, params)
    if fam == "classification" and 0 < params.get("gamma", 1.0) < 1:
        return ((t == 0) | (t == 1)) & (np.abs(p) > 36)
    return np.zeros(len(p), bool)


def _rotated_undefined(name, p, t, params):
    """Where a rotated loss's value is NaN by its docs: obb_angle_loss at a point target (w_t + eps = h_t + eps = 0,
    w_t/h_t undefined); the Gaussian losses nowhere (a degenerate Gaussian has a value)."""
    if name != "obb_angle_loss":
        return np.zeros(len(p), bool)
    eps = params.get("eps", 0.0)
    return (t[:, 2] + eps == 0) & (t[:, 3] + eps == 0)


def _rotated_no_derivative(name, p, t, params=None):
    """Where a rotated loss has no derivative (docs: NaN gradients): ProbIoU and KLD at a zero side (a degenerate
    Gaussian); GWD where F = sqrt(cos^2 G^2 + sin^2 H^2) = 0, G = w_p w_t + h_p h_t, H = w_p h_t + h_p w_t (a point
    box, or two zero-width boxes at right angles: on the grid's angles j/16, sin(phi) = 0 only at phi = 0 and cos(phi)
    is never 0); obb_angle_loss where its value is undefined too (_rotated_undefined)."""
    if name == "obb_angle_loss":  # (and where d/dw_t = -L 2q/(lam (w_t + eps)) exceeds float64, w_t + eps subnormal)
        eps, lam = (params or {}).get("eps", 0.0), (params or {}).get("lam", 3.0)
        w, h = t[:, 2] + eps, t[:, 3] + eps
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = (np.log(w) - np.log(h)) / lam
            bound = np.exp(-q * q) * 2 * np.abs(q) / lam / np.minimum(w, h)
        return _rotated_undefined(name, p, t, params or {}) | (bound > np.finfo(np.float64).max / 64)
    if name != "gwd_loss":
        return (p[:, 2:4] == 0).any(axis=1) | (t[:, 2:4] == 0).any(axis=1)
    g = p[:, 2] * t[:, 2] + p[:, 3] * t[:, 3]
    h = p[:, 2] * t[:, 3] + p[:, 3] * t[:, 2]
    return (g == 0) & ((h == 0) | (p[:, 4] == t[:, 4]))


def _rotated_scale(p, t):
    from refloss._measures import rotated_extent

    return rotated_extent(p, t)


# ================================================================== exact relations


def _box_scale(p, t):
    """Per pair: the larger side of the enclosing box (the natural length of the gradients)."""
    return np.maximum(np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0]),
                      np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))


def _check_translation(fn, fam, p, t, params, v, gp, gt, k, picks):
    """L(p + c, t + c) = L(p, t) bit for bit, gradients too (element-wise: a shift of both inputs;
    boxes: a shift (cx, cy) of both boxes; YOLOv1: of both centres).  On the dyadic grid the
    shifted coordinates and all their differences are exact, so any difference is a kernel that
    does not compute from coordinate differences alone."""
    if fam == "elementwise":
        shift = np.ldexp(float(picks.int(-2**27, 2**27)), k)
    else:
        cx, cy = (np.ldexp(float(picks.int(-2**13, 2**13)), k) for _ in range(2))
        shift = np.array([cx, cy, cx, cy]) if fam == "box" else np.array([cx, cy, 0.0, 0.0])
        if fam == "rotated":
            shift = np.array([cx, cy, 0.0, 0.0, 0.0])
    v2, (gp2, gt2) = fn.value_and_grad(p + shift, t + shift, **params)
    _assert_same(v2, v, "translation: value", p, t)
    _assert_same(gp2, gp, "translation: d/dpred", p, t)
    _assert_same(gt2, gt, "translation: d/dtarget", p, t)


def _nwd_normal_decay(p, t, params, j):
    """NWD pairs whose intermediates exp(-W2/C), decay = exp(-W2/C)/C and decay/W2 are normal
    float64 at both scales (1 and 2^j; with a margin of 2^24): where one is subnormal the gradient
    has lost bits on the way and is not exactly homogeneous (the value is 1 there, the gradient
    below ~1e-290)."""
    d = np.stack([p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2], p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3],
                  (p[:, 2] - p[:, 0]) - (t[:, 2] - t[:, 0]), (p[:, 3] - p[:, 1]) - (t[:, 3] - t[:, 1])]) / 2
    w2 = np.sqrt((d * d).sum(axis=0) + params.get("eps", 0.0))
    up = 2.0 ** max(j, 0)  # the larger of the two scales
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        smallest = np.exp(-w2 / params["c"]) / (params["c"] * up) / np.where(w2 > 0, w2 * up, 1.0)
    return (w2 / params["c"] < 700) & (smallest > 2.0**-998)


# where a loss's gradient is exactly homogeneous under scaling, if not everywhere: (p, t, params, j) -> mask
SCALING_EXACT_WHERE = {"nwd_loss": _nwd_normal_decay}


def _scaled_lengths(fn, params, j):
    """``params`` with its lengths (Properties.length_params: parameters in the boxes' units, such as NWD's c;
    and 'size' pairs, MPDIoU's image_size) multiplied by 2^j, exactly: only then are the boxes' scaled values
    unchanged."""
    out = dict(params)
    for prm in fn.params:
        if prm.kind == "size":
            out[prm.name] = tuple(np.ldexp(v, j) for v in params[prm.name])
        elif prm.name in fn.info.properties.length_params:
            out[prm.name] = np.ldexp(params[prm.name], j)
    return out


def _check_scaling(fn, p, t, params, picks):
    """Boxes scaled by s = 2^j (exact): the value is unchanged and the gradients are divided by s,
    bit for bit, with eps = 0 (the scale-invariant formula; eps is an area and breaks it) and
    the other parameters as drawn.  Exponents keep every area and squared distance inside
    float64's normal range; gradient components below it lose bits when scaled and are not
    compared, nor are those computed from a subnormal intermediate (SCALING_EXACT_WHERE: NWD).  Parameters that are lengths (MPDIoU's image_size, NWD's c) are
    scaled with the boxes.  darknet=True's dv/dw omits the factor 1/(w^2 + h^2) (the DIoU
    paper's shortcut): its gradient is not homogeneous, only its value is checked."""
    params = dict(params, eps=0.0) if "eps" in params else params
    j = picks.int(1, 60) * (-1 if picks.bool() else 1)
    v, (gp, gt) = fn.value_and_grad(p, t, **params)
    # rotated boxes: the lengths scale, the angle (last coordinate) and its gradient do not
    lengths = np.arange(p.shape[1]) < (4 if p.shape[1] == 5 else p.shape[1])
    v2, (gp2, gt2) = fn.value_and_grad(np.where(lengths, np.ldexp(p, j), p), np.where(lengths, np.ldexp(t, j), t),
                                       **_scaled_lengths(fn, params, j))
    _assert_same(v2, v, "scaling: value", p, t)
    if not params.get("darknet"):
        where = SCALING_EXACT_WHERE.get(fn.__name__)
        exact = where(p, t, params, j)[:, None] if where else True
        for g2, g, what in ((gp2, gp, "d/dpred"), (gt2, gt, "d/dtarget")):
            want = np.where(lengths, np.ldexp(g, -j), g)
            normal = exact & ~(np.minimum(np.abs(g), np.abs(want)) < np.finfo(np.float64).tiny)  # (NaN kept)
            _assert_same(np.where(normal, g2, 0.0), np.where(normal, want, 0.0), f"scaling: {what}", p, t)


def _check_symmetry(fn, name, fam, p, t, params, v, gp, gt):
    """L(t, p) = L(p, t); the gradients swap: d/dpred at (t, p) is d/dtarget at (p, t).
    Element-wise (functions of |p - t|) and YOLOv1 (squares of differences): bit for bit, and
    element-wise d/dtarget = -d/dpred exactly.  Boxes: the kernels may round re-associated sums
    in another order (eps > 0), so values agree within twice the documented value bar (1e-14,
    relative above 1: Wise-IoU's focusing factors, with parameters drawn from their domains,
    reach values of 32, where float64's spacing is 7e-15) and gradients within twice the gradient bar (1e-13 of the pair's largest component, at least
    1/(enclosing size)): each is within its bar of the exact, symmetric result.  darknet=True
    changes the pred side only: its gradients are not symmetric by design.  Losses symmetric only for
    some parameters, or never (Properties.symmetric_when: Shape-IoU with scale > 0, KLD, obb_angle_loss),
    are left out there."""
    if not fn.info.properties.symmetric(params):
        return
    v2, (gp2, gt2) = fn.value_and_grad(t, p, **params)
    if fam not in ("box", "rotated"):
        _assert_same(v2, v, "symmetry: value", p, t)
        _assert_same(gp2, gt, "symmetry: d/dpred(t, p) vs d/dtarget(p, t)", p, t)
        _assert_same(gt2, gp, "symmetry: d/dtarget(t, p) vs d/dpred(p, t)", p, t)
        if fam == "elementwise":
            _assert_same(gt, -gp, "d/dtarget vs -d/dpred", p, t)
        return
    bar = REFERENCES[name].bar
    with np.errstate(invalid="ignore"):
        verr = np.where((v == v2) | (np.isnan(v) & np.isnan(v2)), 0.0, np.abs(v2 - v))
    bad = ~(verr <= 2 * bar.value * np.fmax(1.0, np.abs(v)))  # NaN on one side only fails too
    assert not bad.any(), f"symmetry: value: {_worst(v2[bad], v[bad], p[bad], t[bad])}"
    if params.get("darknet"):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.maximum(np.fmax(np.nanmax(np.abs(gp), axis=1, initial=0), np.nanmax(np.abs(gt), axis=1, initial=0)),
                           1 / (_rotated_scale(p, t) if fam == "rotated" else _box_scale(p, t)))
    for a, b, what in ((gp2, gt, "d/dpred(t, p) vs d/dtarget(p, t)"), (gt2, gp, "d/dtarget(t, p) vs d/dpred(p, t)")):
        with np.errstate(invalid="ignore"):
            diff = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
            err = np.where(diff == 0, 0.0, diff / scale[:, None]).max(axis=1)
        bad = ~(err <= 2 * bar.grad)
        assert not bad.any(), f"symmetry: {what}: {err[bad].max():.3g} of the scale; " \
                              f"{_worst(a[bad], b[bad], p[bad], t[bad])}"


def _check_zero(fn, name, fam, p, params):
    """L(b, b) = 0 (metrics: 1).  Element-wise (x = 0: the sign(0) = 0 convention where the
    loss has a kink there) and YOLOv1 (sizes > 0; at 0 its derivative is documented infinite):
    the gradient is exactly 0.  Boxes: every coordinate is tied, and the documented convention
    (a tie splits the gradient 0.5/0.5, as torch autograd) makes the exact gradient 0 (the
    halves of the intersection and of the enclosing box cancel); the kernels round the
    O(1/side) terms that cancel, so |d/dx| <= 32 eps / w and |d/dy| <= 32 eps / h (w, h: the
    box's sides; eps = 2^-52), and exactly 0 where the loss's conventions say so
    (Focal-L1-EIoU: value and gradient 0 at L_EIoU = 0; NWD: 0 at every pair of equal boxes).
    Zero-area boxes: NaN (zero union, documented), but for Properties.defined_at_zero_union.  eps = 0 (with eps > 0 the value is eps / (A + eps), not 0)."""
    if "eps" in params:
        params = dict(params, eps=0.0)
    if fam == "rotated":
        return _check_zero_rotated(fn, name, p, params)
    if fam == "yolo":
        p = p[(p[:, 2:] > 0).all(axis=1)]
    v, (gp, gt) = fn.value_and_grad(p, p.copy(), **params)
    want = 1.0 if _kind(name) == "metric" else 0.0
    if fam != "box":
        _assert_same(v, np.full_like(v, want), "pred = target: value", p)
        _assert_same(gp, np.zeros_like(gp), "pred = target: d/dpred", p)
        _assert_same(gt, np.zeros_like(gt), "pred = target: d/dtarget", p)
        return
    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    area = (w * h > 0) | _props(name).defined_at_zero_union
    keep = area | ~_known("nan at zero union", name, p, p, params)
    _assert_same(np.isnan(v)[keep], ~area[keep], "pred = target: NaN exactly for zero-area boxes", p[keep])
    _assert_same(v[area], np.full(area.sum(), want), "pred = target: value", p[area])
    bound = 32 * 2.0**-52 / np.stack([w, h, w, h], axis=1)[area]
    if "value and gradient are 0" in fn.info.conventions or _props(name).defined_at_zero_union:
        bound = np.zeros_like(bound)
    for g, what in ((gp, "d/dpred"), (gt, "d/dtarget")):
        bad = ~(np.abs(g[area]) <= bound)
        assert not bad.any(), f"pred = target: {what}: {_worst(g[area][bad], 0 * bound[bad], p[area][bad])}"


def _check_zero_rotated(fn, name, p, params):
    """Rotated boxes, L(b, b): the loss at distance 0 (ProbIoU 0, KLD and GWD (tau - 1)/tau) with a gradient of exactly 0
    (every term of the closed forms is 0 there, and the conventions give 0 where sqrt has no derivative); where the
    docs say there is no derivative (_rotated_no_derivative) NaN gradients, and for ProbIoU and KLD the value of a
    degenerate Gaussian (1; ProbIoU's 'bd' inf)."""
    v, (gp, gt) = fn.value_and_grad(p, p.copy(), **params)
    none = _rotated_no_derivative(name, p, p, params)
    tau = params.get("tau", 1.0)
    want = np.full(len(p), 0.0 if name in ("probiou_loss", "obb_angle_loss") else (tau - 1) / tau)  # one rounding
    if name == "obb_angle_loss":
        want[none] = np.nan
    elif name != "gwd_loss":
        want[none] = np.inf if params.get("mode") == "bd" else 1.0
    _assert_same(v, want, "pred = target: value", p)
    for g, what in ((gp, "d/dpred"), (gt, "d/dtarget")):
        _assert_same(np.isnan(g).any(axis=1), none, f"pred = target: {what} NaN exactly where documented", p)
        _assert_same(g[~none], np.zeros_like(g[~none]), f"pred = target: {what}", p[~none])


@pytest.mark.parametrize("name", _only(("elementwise", "box", "yolo", "rotated")))
@given(data=st.data())
def test_exact_relations(name, data):
    """Translation invariance, power-of-two scaling (boxes), symmetry under swapping pred and
    target, and the zero at pred = target, on one batch of dyadic inputs with parameters drawn
    from their domains (see the _check_* functions for each property and its tolerance)."""
    fn = _fn(name)
    fam = _family(name)
    (p, t), k = data.draw(exact_inputs(name), "inputs")
    params = data.draw(params_for(name), "params")
    picks = _picks(data)
    v, (gp, gt) = fn.value_and_grad(p, t, **params)
    _check_translation(fn, fam, p, t, params, v, gp, gt, k, picks)
    if fam in ("box", "rotated") and _props(name).scale_invariant:  # not GWD: W^2 is a squared length
        _check_scaling(fn, p, t, params, picks)
    _check_symmetry(fn, name, fam, p, t, params, v, gp, gt)
    _check_zero(fn, name, fam, p[::N], params)  # the N distinct values (boxes) of the batch


# ================================================================== bounds and finite gradients


def _check_bounds(fn, name, fam, p, t, params, dtype):
    """Every value lies in the loss's range (_range: Properties.value_range, else losses >= 0, metrics <= 1), in
    float64 and float32.  Boxes: NaN exactly where the union is 0 with eps = 0 (the documented
    undefined case) and nowhere else; the other families: never NaN (YOLOv1: sizes >= 0 are
    valid input).  Element-wise differences up to 2^39 (float32: 2^19) and logits up to 1e4
    (float32: 80, the README's ranges)."""
    if dtype is np.float32 and fam == "classification":
        p = np.clip(p, -80, 80)
    if dtype is np.float32 and fam == "elementwise":
        p, t = p / 2.0**20, t / 2.0**20  # keep squares inside float32's range
    v = np.asarray(fn(p, t, dtype=dtype, **params), np.float64)
    p, t = p.astype(dtype).astype(np.float64), t.astype(dtype).astype(np.float64)  # what the kernel saw
    keep = ~_known("value", name, p, t, params)
    if fam == "box":
        undefined = _undefined(name, p, t, params)
        keep &= ~(undefined & _known("nan at zero union", name, p, t, params))
        _assert_same(np.isnan(v)[keep], undefined[keep], "NaN exactly where the union is 0 (eps = 0)", p[keep], t[keep])
    elif fam == "rotated":
        undefined = _rotated_undefined(name, p, t, params)
        _assert_same(np.isnan(v)[keep], undefined[keep], "NaN exactly where the docs say", p[keep], t[keep])
    else:
        assert not np.isnan(v[keep]).any(), f"NaN: {_worst(v[keep], np.zeros_like(v[keep]), p[keep], t[keep])}"
    lo, hi = _range(name)
    ok = keep & ~np.isnan(v)
    out = ok & ~((v >= lo) & (v <= hi))
    assert not out.any(), f"outside [{lo}, {hi}]: {_worst(v[out], np.clip(v[out], lo, hi), p[out], t[out])}"
    if _props(name).strict_upper and dtype is np.float64:
        ok &= ~_zero_union(p, t)
        assert np.all(v[ok] < hi), f"value {hi} reached: {_worst(v[ok], np.minimum(v[ok], hi / 2), p[ok], t[ok])}"


def _check_finite_gradients(fn, name, p, t, params):
    """Where a value is finite its gradient is finite: boxes with zero area, ties and touching
    boxes included (the value is NaN only at zero union, eps = 0; log_iou_loss is +inf at
    IoU = 0), logits up to 1e4 with hard and soft targets; except the documented infinite
    derivatives (_documented_infinite_gradient)."""
    v, grads = fn.value_and_grad(p, t, **params)
    ok = np.isfinite(v) & ~_known("gradient finite", name, p, t, params)
    ok &= ~_documented_infinite_gradient(name, p, t, params)
    for g, what in zip(grads, fn.inputs):
        bad = ok & ~np.isfinite(g).reshape(len(g), -1).all(axis=1)
        assert not bad.any(), f"d/d{what} not finite with {params}: {_worst(g[bad], np.zeros_like(g[bad]), p[bad], t[bad])}"


def _check_wide_parameters(fn, name, fam, p, t, params):
    """Parameters anywhere in their documented domain (``Param``: subnormal positive values, up
    to 2^20, the closed ends): no exception, values never NaN for valid inputs except where the
    docs say (boxes: zero union with eps = 0), values within the loss's range, gradients finite
    where the value is (as _check_finite_gradients)."""
    if _known("call", name, p, t, params).any():
        return
    v = fn(p, t, **params)
    ok = ~_known("value", name, p, t, params)
    if fam == "box":
        ok &= ~_undefined(name, p, t, params)
    elif fam == "rotated":
        ok &= ~_rotated_undefined(name, p, t, params)
    assert not np.isnan(v[ok]).any(), f"NaN value with {params}: {_worst(v[ok], 0 * v[ok], p[ok], t[ok])}"
    lo, hi = _range(name)
    out = ok & ~((v >= lo) & (v <= hi))
    assert not out.any(), f"outside [{lo}, {hi}] with {params}: {_worst(v[out], np.clip(v[out], lo, hi), p[out], t[out])}"
    _check_finite_gradients(fn, name, p, t, params)


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_bounds_and_finite_gradients(name, data):
    """On one batch: the bounds (typical parameters, float64 or float32), finite gradients where
    the value is finite (float64), and both again with parameters drawn anywhere in their
    domain (see the _check_* functions)."""
    fn = _fn(name)
    fam = _family(name)
    p, t = data.draw(any_inputs(name), "inputs")
    params = data.draw(params_for(name), "params")
    dtype = data.draw(_choice(np.float64, np.float32), "dtype")
    _check_bounds(fn, name, fam, p, t, params, dtype)
    _check_finite_gradients(fn, name, p, t, params)
    _check_wide_parameters(fn, name, fam, p, t, data.draw(params_for(name, wide=True), "parameters (whole domain)"))


# ================================================================== finite differences

def _siou_smooth(p, t, steps, params):
    """Pairs away from SIoU's kinks (by 16 steps): the shape cost's |w_p - w_t|, |h_p - h_t| (and
    its max(w_p, w_t)) and the angle cost's |dx|, |dy| at 0."""
    wp, hp, wt, ht = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    dx, dy = p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2], p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]
    return np.all(np.abs([wp - wt, hp - ht, dx, dy]) > 16 * steps, axis=0)


def _qfl_smooth(x, y, steps, params):
    """Points away from QFL's kink at y = sigmoid(x) (|y - sigma|^beta: a kink for beta = 1, an
    infinite derivative for beta < 1): |y - sigma| > 0.01, far beyond sigma's change over a step, and
    above 20 beta steps, so that |y - sigma|^beta changes by little over a step (sigma' <= 1/4) for large
    beta (the `full` profile drew beta = 5, 6 and 12 at |y - sigma| ~ 0.01..0.03, where the central
    differences did not converge)."""
    d = np.abs(y - 1 / (1 + np.exp(-x)))
    return (d > 0.01) & (d > 20 * params.get("beta", 2.0) * steps)


def _inner_smooth(p, t, steps, params):
    """Pairs whose auxiliary boxes (scaled by the ratio about their centres) have their four x and four y
    coordinates apart by 16 steps times max(1, ratio) (a coordinate's step moves an auxiliary one by at most
    (1 + ratio)/2 of it): the kinks are where auxiliary coordinates meet."""
    r = params.get("ratio", 0.75)
    keep = np.ones(len(p), bool)
    for c in ((0, 2), (1, 3)):
        aux = []
        for b in (p, t):
            centre, half = (b[:, c[0]] + b[:, c[1]]) / 2, (b[:, c[1]] - b[:, c[0]]) * r / 2
            aux += [centre - half, centre + half]
        xs = np.stack(aux, axis=1)
        d = np.abs(xs[:, :, None] - xs[:, None, :]) + np.diag(np.full(4, np.inf))
        keep &= d.min(axis=(1, 2)) > 16 * steps * max(1.0, r)
    return keep


def _alpha_smooth(p, t, steps, params):
    """Alpha-IoU's powers P^alpha have a cusp where their base is 0 (alpha < 1, or alpha-CIoU's (beta v)^alpha ~
    |D|^(4 alpha) for alpha <= 1/4): pairs whose centres are 16 steps apart (forms 'diou', 'ciou') and, for
    'ciou', whose aspect ratios differ (|w_t h_p - h_t w_p| above 16 steps times the sizes)."""
    form = params.get("form", "iou")
    keep = np.ones(len(p), bool)
    if form in ("diou", "ciou"):
        dx, dy = p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2], p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]
        keep &= np.abs(dx) + np.abs(dy) > 16 * steps
    if form == "ciou":
        wp, hp, wt, ht = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        keep &= np.abs(wt * hp - ht * wp) > 16 * steps * (wp + hp + wt + ht)
    return keep


# kinks inside the regions the finite-difference test draws from, per loss: (a, b, steps, params) -> pairs to keep
FD_SMOOTH = {"siou_loss": _siou_smooth, "qfl_loss": _qfl_smooth, "inner_iou_loss": _inner_smooth,
             "alpha_iou_loss": _alpha_smooth}


def _fd_check(fn, params, inputs, steps, scale, what, floor=0.0):
    """Analytic gradients vs ``_fd.gradient`` (Richardson-extrapolated central differences of the
    kernel's own value, with its error estimate ``est``).  The extrapolated difference's truncation
    error is O(h^4), a factor (h/size)^2 ~ 1e-6 below the correction |d(h/2) - d(h)| that ``est``
    contains; its rounding error is 3 delta / h for values rounded by delta, which ``est`` bounds
    by 64 eps |f| / h, and for values computed from larger terms that cancel (box losses: sums
    of O(1) ratios, at most 4; cross-entropy: terms of size |x|) the same with |f| raised to
    ``floor``.  So |g - fd| <= 2 est + 64 eps floor / h.  ``est`` is inf where no difference
    can be taken (a non-finite value: log_iou_loss at IoU = 0) and large where a step crosses a
    kink; it depends on values only, never on the gradient under test.  So that the check keeps
    its teeth, at least half of the coordinates with a finite estimate must have a tolerance
    below 1e-4 of their ``scale`` (the gradient's natural size; most are below 1e-8: a wrong
    term in a gradient is far larger)."""
    _, grads = fn.value_and_grad(*inputs, **params)
    tight = total = 0
    for k, g in enumerate(grads):
        fd, est = _fd.gradient(lambda *a: fn(*a, **params), inputs, k, steps)
        sc = scale if np.ndim(g) == 1 else scale[:, None]
        noise = _fd.NOISE_EPS * 2.0**-52 * np.asarray(floor, np.float64) / steps
        tol = 2 * est + (noise if np.ndim(g) == 1 else noise[:, None])
        checked = np.isfinite(est)
        with np.errstate(invalid="ignore"):
            bad = checked & ~(np.abs(g - fd) <= tol)
        if bad.any():
            rows = bad if bad.ndim == 1 else bad.any(axis=1)
            i = np.argmax(np.where(bad, np.abs(g - fd) / np.where(checked, tol, 1), -1))
            i = np.unravel_index(i, bad.shape)
            raise AssertionError(f"{what} d/d{fn.inputs[k]}{list(i[1:])} at {[x[i[0]].tolist() for x in inputs]}: "
                                 f"analytic {g[i]!r}, finite differences {fd[i]!r} +- {tol[i]:.3g} "
                                 f"({int(rows.sum())} points fail)")
        tight += int(np.sum(tol[checked] <= 1e-4 * np.broadcast_to(sc, tol.shape)[checked]))
        total += int(checked.sum())
    assert tight >= total / 2, f"{what}: finite differences too coarse ({tight} of {total} coordinates within 1e-4)"


def _elementwise_fd_points(name, params, x, t):
    keep = np.ones(x.shape, bool)
    ks = kink_points(_fn(name), params) + (0.0,)
    a = np.abs(x)
    for kk in ks:  # at least 1% of |x| or of the kink away from it (the step is 0.1% of |x|)
        keep &= np.abs(a - kk) > 1e-2 * max(kk, 0) + 1e-2 * a * (kk == 0)
    # rounding pred +- h perturbs the step by ~eps |pred|: keep where that is far below the step
    keep &= 2.2e-16 * np.maximum(np.abs(t + x), np.abs(t)) < 1e-10 * 1e-3 * a
    return keep


@functools.lru_cache(maxsize=None)
@st.composite
def _fd_residuals(draw, n=N):
    """n residuals x with |x| = 10^(-6 .. 6) (log-uniform) and random signs, n targets in [-4, 4]."""
    u = _blob(draw, 3 * n).reshape(3, n)
    mag = 10.0 ** (-6 + 12 * (u[0] / 2.0**32))
    sign = np.where(u[1] % 2 == 1, -1.0, 1.0)
    return mag * sign, (u[2] % 2**23 - 2**22) / 2.0**20


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_gradient_matches_finite_differences(name, data):
    """value_and_grad's gradients vs finite differences of the value (see _fd_check), at drawn
    points away from kinks and ties, parameters drawn (with the parameters under which the gradient is the
    value's derivative, Properties.true_derivative: defaults such as CIoU's constant alpha, darknet's dv and
    the Focal-EIoU and Varifocal weights held constant make it something else, by design):
    element-wise |x| at least 1% from 0 and each kink, step 0.1% of |x|; boxes (generic
    overlapping, nested and disjoint pairs) whose four x and four y coordinates are all
    distinct, step 0.1% of the smallest gap; logits up to 40, targets inside (0, 1), step 0.1%
    of the distance of the target to {0, 1}; YOLOv1 sizes > 0, pairs not identical, step 0.1%
    of the smallest size; away from the kinks of FD_SMOOTH."""
    fn = _fn(name)
    fam = _family(name)
    params = data.draw(params_for(name, **_props(name).true_derivative), "params")
    if fam == "elementwise":
        x0, t0 = data.draw(_fd_residuals(), "residuals, targets")
        x, t = _pairs(x0, t0)
        keep = _elementwise_fd_points(name, params, x, t)
        t = t[keep]
        p = t + x[keep]
        if not p.size:
            return
        x = p - t  # the difference the kernel sees
        v, (g, _) = fn.value_and_grad(p, t, **params)
        scale = np.maximum(np.abs(g), np.abs(v / x))  # |L(x)/x|: where L is flat (Focal-L1, beta = 1, |x| > 1)
        _fd_check(fn, params, (p, t), 1e-3 * np.abs(x), scale, "element-wise")
    elif fam == "box":
        (p, t), _ = data.draw(box_dyadic(min_size=1), "inputs")
        gaps = []
        for c in ((0, 2), (1, 3)):
            xs = np.concatenate([p[:, c], t[:, c]], axis=1)
            d = np.abs(xs[:, :, None] - xs[:, None, :]) + np.diag(np.full(4, np.inf))
            gaps.append(d.min(axis=(1, 2)))
        gap = np.minimum(*gaps)
        keep = gap > 0
        # a parameter at which the value jumps as the IoU crosses it (Properties.gate: CIoU's alpha = 0 unless
        # IoU > alpha_gate): pairs whose IoU lies within 5% of it have no derivative a finite difference could see
        gate = params.get(_props(name).gate)
        if gate is not None:  # e.g. a point box inside one twice its size, IoU 1e-9 at eps = alpha_gate = 1e-9
            keep &= np.abs(rl.iou(p, t, eps=params.get("eps", 0.0)) - gate) > 0.05 * abs(gate)
        if name in FD_SMOOTH:
            keep &= FD_SMOOTH[name](p, t, 1e-3 * gap, params)
        if not keep.any():
            return
        p, t, gap = p[keep], t[keep], gap[keep]
        _, (gp, gt) = fn.value_and_grad(p, t, **params)
        scale = np.maximum(np.maximum(np.abs(gp).max(axis=1), np.abs(gt).max(axis=1)), 1 / _box_scale(p, t))
        _fd_check(fn, params, (p, t), 1e-3 * gap, scale, "boxes", floor=4.0)
    elif fam == "classification":
        x, y = data.draw(logits_targets(bound=40.0, interior=True), "inputs")
        if name in FD_SMOOTH:
            keep = FD_SMOOTH[name](x, y, 1e-3 * np.minimum(y, 1 - y), params)
            x, y = x[keep], y[keep]
            if not x.size:
                return
        v, (gx, gy) = fn.value_and_grad(x, y, **params)
        scale = np.maximum(np.maximum(np.abs(gx), np.abs(gy)), np.abs(v))  # gradients vanish where sigmoid(x) = y
        # the values' rounding: cross-entropy terms of size |x| + 1, times the focal weight where the
        # loss has one (L / CE: tiny for large gamma, where (|x| + 1) alone would make every tolerance
        # coarse), plus the weight's own rounding (about gamma + 1 ULPs of L)
        ce = rl.bce_with_logits(x, y)
        weight = np.minimum(1.0, np.abs(v) / ce)
        floor = (np.abs(x) + 1) * weight + (params.get("gamma", 0.0) + 1) * np.abs(v)
        _fd_check(fn, params, (x, y), 1e-3 * np.minimum(y, 1 - y), scale, "logits", floor=floor)
    elif fam == "rotated":  # sides 1 to 2^12 units of 1, angles j/16: pairs at a positive distance
        (p, t), _ = data.draw(rotated_dyadic(min_size=1, k_span=(0, 0)), "inputs")
        v = fn(p, t, **params)
        tau = params.get("tau", 1.0)
        keep = v != (0.0 if name == "probiou_loss" else (tau - 1) / tau)  # the minimum: sqrt's kink
        p, t = p[keep], t[keep]
        if not p.size:
            return
        _, (gp, gt) = fn.value_and_grad(p, t, **params)
        scale = np.maximum(np.maximum(np.abs(gp).max(axis=1), np.abs(gt).max(axis=1)), 1 / _rotated_scale(p, t))
        _fd_check(fn, params, (p, t), np.full(len(p), 1e-3), scale, "rotated boxes", floor=4.0)
    else:  # yolo: (x, y, w, h) with w, h > 0
        (p, t), _ = data.draw(xywh_dyadic(), "inputs")
        keep = (p[:, 2:] > 0).all(axis=1) & (t[:, 2:] > 0).all(axis=1) & (p != t).any(axis=1)  # identical: zero test
        p, t = p[keep], t[keep]
        if not p.size:
            return
        _, (gp, gt) = fn.value_and_grad(p, t, **params)
        scale = np.maximum(np.maximum(np.abs(gp).max(axis=1), np.abs(gt).max(axis=1)), 1e-300)
        steps = 1e-3 * np.minimum(p[:, 2:].min(axis=1), t[:, 2:].min(axis=1))
        _fd_check(fn, params, (p, t), steps, scale, "xywh")


# ================================================================== CUDA simulator


@contextmanager
def _simulator_blocks(threads=16):
    """Numba's simulator runs every thread of a block as a Python thread (~1 ms each): with the
    default 256-thread blocks a call costs ~0.3 s whatever its size.  The kernels are
    grid-stride loops, correct for any launch configuration, so the simulator runs small
    blocks here; on a real GPU (REFLOSS_TEST_REAL_GPU=1) the default is kept."""
    from refloss import _cuda

    old = _cuda.THREADS
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        _cuda.THREADS = threads
    try:
        yield
    finally:
        _cuda.THREADS = old


CUDA_EXAMPLES = max(10, EXAMPLES // 10)


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=CUDA_EXAMPLES)
@given(data=st.data())
def test_cuda_equals_cpu(name, data):
    """device="cuda" (the simulator in CI) gives the CPU's results: float64 bit for bit, every
    reduction (the same generated operations; Python's math and the CPU's libm agreed on every
    drawn point), float32 per element within twice the documented bar (the simulator evaluates
    float32 math functions in double precision, the CPU in float32; each is within the bar of the
    exact result, and refloss verify checks both).  4 x 4 pairs per example; a tenth of the
    profile's examples (the simulator runs each GPU thread as a Python thread)."""
    pytest.importorskip("numba.cuda")
    fn = _fn(name)
    p, t = data.draw(any_inputs(name, n=4), "inputs")
    params = data.draw(params_for(name), "params")
    dtype = data.draw(_choice(np.float64, np.float32), "dtype")
    reduction = data.draw(_choice("none", "sum", "mean"), "reduction") if dtype is np.float64 else "none"
    if dtype is np.float32:
        if _family(name) == "classification":
            p = np.clip(p, -80, 80)
        elif _family(name) == "elementwise":
            p, t = p / 2.0**20, t / 2.0**20
    kw = dict(dtype=dtype, reduction=reduction, **params)
    v, g = fn.value_and_grad(p, t, **kw)
    with _simulator_blocks(), np.errstate(all="ignore"):  # the simulator's NumPy scalars warn at NaN (zero union)
        vc, gc = fn.value_and_grad(p, t, device="cuda", **kw)
        v1 = fn(p, t, device="cuda", **kw)
    check = _assert_same if dtype is np.float64 else lambda a, b, what, p, t: _close_f32(name, a, b, what, p, t)
    check(vc, v, "value", p, t)
    check(v1, v, "value (value kernel)", p, t)
    for a, b, what in zip(gc, g, ("d/dpred", "d/dtarget")):
        check(a, b, what, p, t)


def _close_f32(name, got, want, what, p, t):
    """Two float32 results per element, each within the loss's bar of the exact one, so within
    twice the bar of each other.  ULP families: in ULPs of the larger of the two.  Boxes
    (abs/rel): values absolute, gradients relative to the larger of the pair's largest component
    and 1/(enclosing size)."""
    vbar, gbar = REFERENCES[name].bar.at("float32")
    grad = np.ndim(got) > 1 or "d/d" in what
    lim = 2 * (gbar if grad else vbar)
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(both_nan | (got == want), 0.0, np.abs(got - want))
        if REFERENCES[name].bar.per_epsilon:  # the box measure
            if grad:
                if _family(name) == "rotated":
                    size = _rotated_scale(p, t)
                else:
                    size = np.maximum(np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0]),
                                      np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))
                scale = np.maximum(np.nanmax(np.abs(want), axis=-1, initial=0.0), 1 / size)
                err = np.where(diff.max(axis=-1) == 0, 0.0, diff.max(axis=-1) / scale)  # (rows of NaN on both sides)
            else:
                err = diff
        else:
            err = np.where(diff == 0, 0.0,
                           diff / np.spacing(np.maximum(np.abs(got), np.abs(want)).astype(np.float32)).astype(np.float64))
    bad = ~(err <= lim)
    assert not bad.any(), f"{what} (float32): {np.max(np.where(bad, err, 0))} > {lim}; {_worst(got, want, p, t)}"


# ================================================================== input forms

REFLOSS_DIR = os.path.dirname(rl.__file__)


def _outcome(call):
    """("ok", result) or ("error", exception) of ``call()``."""
    try:
        return "ok", call()
    except Exception as e:  # noqa: BLE001 - the test judges the exception
        return "error", e


def _assert_clear_error(e, names, what):
    """A TypeError/ValueError whose message starts with the name of an argument (or of a
    parameter) and that refloss raised itself: the innermost frame is in refloss's code, not
    in NumPy or Numba (and the message is refloss's)."""
    frames = traceback.extract_tb(e.__traceback__)
    inner = frames[-1].filename if frames else "?"
    assert isinstance(e, (TypeError, ValueError)), f"{what}: {type(e).__name__}: {e} (raised in {inner})"
    assert inner.startswith(REFLOSS_DIR), f"{what}: {type(e).__name__} from {inner}: {e}"
    assert str(e).split(":")[0] in names, f"{what}: the message does not name the argument: {e}"


# transformations that keep an array's logical values: dtype (int, big-endian), memory layout
# (strided, negative strides, Fortran order, a zero-stride broadcast view), flags (read-only),
# the type (a masked array without mask, a memmap-like ndarray subclass) and Python lists
LAYOUTS = ("strided", "reversed", "fortran", "broadcast_view")


def _int_dtype(x):
    """The narrowest common integer dtype that holds the integers x (or bool for 0/1 values)."""
    if x.size and x.min() >= 0 and x.max() <= 1:
        return np.bool_
    for dt in (np.uint8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if not x.size or (x.min() >= info.min and x.max() <= info.max):
            return dt
    return np.int64


def _transform(x, forms):
    """``x`` (float64) under the transformations ``forms``, in a fixed order."""
    if "int" in forms:
        x = np.rint(x)
        x = x.astype(_int_dtype(x)) if np.abs(x).max(initial=0) < 2**62 else x
    if "big_endian" in forms and x.dtype != np.bool_:
        x = x.astype(x.dtype.newbyteorder(">"))
    if "strided" in forms and x.ndim:
        big = np.zeros((2 * x.shape[0],) + x.shape[1:-1] + (2 * x.shape[-1],) if x.ndim > 1 else (2 * x.shape[0],),
                       dtype=x.dtype)
        view = big[::2, ..., ::2] if x.ndim > 1 else big[::2]
        view[...] = x
        x = view
    if "reversed" in forms and x.ndim:
        x = x[::-1].copy()[::-1]
    if "fortran" in forms:
        x = np.asfortranarray(x)
    if "broadcast_view" in forms and x.ndim:
        x = np.broadcast_to(x[:1], x.shape)  # zero stride along the first axis (read-only)
    if "readonly" in forms:
        x = x.copy() if x.flags.writeable is False else x
        x.flags.writeable = False
    if "masked" in forms:
        x = np.ma.masked_array(x)
    if "list" in forms:
        x = x.tolist()
    return x


FORMS = ("int", "big_endian", "strided", "reversed", "fortran", "broadcast_view", "readonly", "masked", "list")
# known failures (pinned below by xfail(strict=True) tests; drawn again once fixed)
KNOWN_FORMS = {}


BAD_KINDS = ("complex", "complex_list", "object", "object_fractions", "none_inside", "str", "str_list", "bytes",
             "ragged", "datetime", "timedelta", "structured", "none", "dict", "set", "plain_str")
# known failures (pinned below by xfail(strict=True) tests; drawn again once fixed)
KNOWN_BAD_KINDS = {}


def _bad_value(kind, valid, width):
    """A value of ``kind`` (BAD_KINDS) that is not a real array, of the shape of ``valid`` where
    the kind has one."""
    x = np.asarray(valid, np.float64)
    if kind == "complex":
        return x.astype(np.complex128) + 1j
    if kind == "complex_list":
        return (x + 0.5j).tolist()
    if kind == "object":
        return x.astype(object)
    if kind == "object_fractions":
        return np.array([Fraction(1, 3)] * x.size, dtype=object).reshape(x.shape)
    if kind == "none_inside":  # the first number replaced by None
        lst = x.tolist()
        if width > 1:
            lst[0][0] = None
        else:
            lst[0] = None
        return lst
    if kind == "str":
        return x.astype(str)
    if kind == "str_list":
        return [str(v) for v in x.ravel().tolist()]
    if kind == "bytes":
        return x.astype("S8")
    if kind == "ragged":
        lst = x.tolist()
        if width > 1:
            lst[0] = lst[0][:2]
        else:
            lst = [lst, lst[:1]]
        return lst
    if kind == "datetime":
        return np.zeros(x.shape, dtype="datetime64[s]")
    if kind == "timedelta":
        return np.zeros(x.shape, dtype="timedelta64[s]")
    if kind == "structured":
        return np.zeros(x.shape[:1], dtype=[("a", "f8"), ("b", "f8")])
    if kind == "none":
        return None
    if kind == "dict":
        return {"a": 1.0}
    if kind == "set":
        return {1.0, 2.0}
    return "1.0"


_DRAWN_FORMS = [f for f in FORMS if f not in KNOWN_FORMS]


def _check_odd_forms(fn, p, t, params, picks):
    """Each input under a drawn set of transformations (FORMS: integer dtypes, big-endian,
    strided, negative strides, Fortran order, zero-stride broadcast views, read-only, nested
    lists), as 1-D or 2-D arrays of values (boxes: with a last axis of 4), gives for every
    reduction and dtype what a C-contiguous float64 copy (made by NumPy) gives, bit for bit,
    gradients shaped as the input; or a clear error (_assert_clear_error).  A masked array is
    refused (a TypeError naming it and .filled()): refloss would ignore its mask."""
    shape = picks.choice((N * N,), (N, N)) + p.shape[1:]
    inputs = [p.reshape(shape), t.reshape(shape)]
    reduction = picks.choice("none", "sum", "mean")
    dtype = picks.choice(None, np.float64, np.float32)
    forms = [picks.subset(_DRAWN_FORMS, 4) for _ in fn.inputs]
    odd = [_transform(x, f) for x, f in zip(inputs, forms)]
    masked = [n for n, x in zip(fn.inputs, odd) if isinstance(x, np.ma.MaskedArray)]
    if masked:  # refused (its mask would be ignored): a TypeError naming the first one and .filled()
        for call in (fn, fn.value_and_grad):
            e = _outcome(lambda: call(*odd, reduction=reduction, dtype=dtype, **params))[1]
            _assert_clear_error(e, fn.inputs, f"forms {forms}")
            assert isinstance(e, TypeError) and str(e).startswith(f"{masked[0]}: a masked array") \
                and f"{masked[0]}.filled(" in str(e), (forms, e)
        return
    plain = [np.array(x, dtype=np.float64, order="C") for x in odd]
    kw = dict(reduction=reduction, dtype=dtype, **params)
    want = _outcome(lambda: fn.value_and_grad(*plain, **kw))
    got = _outcome(lambda: fn.value_and_grad(*odd, **kw))
    got_value = _outcome(lambda: fn(*odd, **kw))
    if want[0] == "error":  # e.g. classification targets rounded out of [0, 1]: the same error
        for g in (got, got_value):
            assert g[0] == "error" and type(g[1]) is type(want[1]) and str(g[1]) == str(want[1]), (g, want)
        return
    if got[0] == "error" or got_value[0] == "error":
        _assert_clear_error(got[1] if got[0] == "error" else got_value[1], fn.inputs, f"forms {forms}")
        return
    (v, grads), (v0, grads0) = got[1], want[1]
    _assert_same(v, v0, f"value, forms {forms}")
    _assert_same(got_value[1], v0, f"value (value only), forms {forms}")
    for g, g0, x in zip(grads, grads0, plain):
        assert g.shape == x.shape, (g.shape, x.shape)
        _assert_same(g, g0, f"gradient, forms {forms}")


def _check_broadcasting(fn, p, t, params, picks):
    """Broadcast shapes give what explicitly broadcast contiguous copies give: values bit for
    bit, and each gradient the sum of the full gradient over the axes its input was broadcast
    along (summed by NumPy, in the same order: bit for bit).  Shapes decoded from the example's
    choices (_Picks.broadcastable_shapes: empty dimensions included, up to 3-D); element-wise
    inputs may be 0-d arrays, Python floats or NumPy scalars; widths of 4 stay the last axis.
    An empty batch: "sum" is 0, "mean" NaN."""
    width = fn.info.widths[0]
    input_shapes, full = picks.broadcastable_shapes()
    pool = (p, t)

    def fill(k, shape):
        size = int(np.prod(shape, dtype=np.int64))
        src = pool[k][np.arange(size) % len(pool[k])]
        return src.reshape(shape + ((width,) if width > 1 else ()))

    arrays = [fill(k, s) for k, s in enumerate(input_shapes)]
    if width == 1:  # a 0-d input may come as a Python float or a NumPy scalar
        arrays = [picks.choice(a, float(a), np.float64(a)) if a.ndim == 0 else a
                  for a in arrays]
    reduction = picks.choice("none", "sum", "mean")
    lead = full + ((width,) if width > 1 else ())
    explicit = [np.array(np.broadcast_to(np.asarray(a, np.float64), lead), order="C") for a in arrays]
    v, grads = fn.value_and_grad(*arrays, reduction=reduction, **params)
    v0, grads0 = fn.value_and_grad(*explicit, reduction=reduction, **params)
    _assert_same(v, v0, f"value, shapes {input_shapes}")
    _assert_same(fn(*arrays, reduction=reduction, **params), v0, "value (value only)")
    if reduction == "none":
        assert np.shape(v) == full
    if not int(np.prod(full, dtype=np.int64)):
        assert reduction != "sum" or v == 0.0
        assert reduction != "mean" or np.isnan(v)
    for k, (g, g0, a) in enumerate(zip(grads, grads0, arrays)):
        a_shape = np.shape(a)
        assert g.shape == a_shape, (g.shape, a_shape)
        lead_axes = len(lead) - len(a_shape)
        axes = tuple(range(lead_axes)) + tuple(lead_axes + i for i, n in enumerate(a_shape)
                                               if n == 1 and lead[lead_axes + i] != 1)
        want = _exact_sum(g0, axes).reshape(a_shape) if axes else g0
        if axes and reduction == "mean" and fn.info.mean_weight is not None:
            # a weighted mean divides the summed gradient by the sum W of the weights w once, the
            # explicit copy each element before NumPy sums them; where the weights carry a gradient,
            # both subtract (mean / W) dw, which cancels much of the first term: equal within 2^-40 of
            # the summed magnitudes of both terms (a broadcasting error is of the order of an element's
            # gradient).  The weights' term is recomputed here from the metric (LossInfo.mean_weight).
            mw = fn.info.mean_weight
            terms = np.abs(g0)
            if params.get(mw.differentiate):
                m, dm = getattr(rl, mw.metric).value_and_grad(*explicit, **{n: params[n] for n in mw.shared})
                e = params[mw.exponent]
                with np.errstate(divide="ignore", invalid="ignore"):
                    dw = np.where(m > 0, e * m ** (e - 1), 0)[..., None]
                    terms = terms + np.abs(v0 / np.sum(m**e) * dw * dm[k])
            bound = 2.0**-40 * terms.sum(axis=axes, keepdims=True).reshape(a_shape)
            with np.errstate(invalid="ignore"):
                bad = ~((np.abs(g - want) <= bound) | (np.isnan(g) & np.isnan(want)))
            assert not bad.any(), f"gradient of shape {a_shape} from {lead} (weighted mean): {_worst(g, want)}; " \
                                  f"inputs {[np.asarray(x).tolist() for x in arrays]}, {params}"
            continue
        if axes:  # a compensated sum: within an ulp of the exact sum (refloss/_sums.py), not NumPy's order
            n = int(np.prod([lead[k] for k in axes]))
            slack = np.spacing(np.abs(want)) + n * n * 2.0**-104 * np.abs(g0).sum(axis=axes, keepdims=True).reshape(a_shape)
            with np.errstate(invalid="ignore"):
                bad = ~((np.abs(g - want) <= slack) | (np.isnan(g) & np.isnan(want)) | (g == want))
            assert not bad.any(), f"gradient of shape {a_shape} from {lead}: {_worst(g, want)}"
            continue
        _assert_same(g, want, f"gradient of shape {a_shape} from {lead}")


def _exact_sum(g, axes):
    """``g`` summed over ``axes`` (keepdims): math.fsum's correctly rounded sums where every term is finite,
    NumPy's sum (an infinity or NaN, as IEEE propagates them) elsewhere."""
    plain = g.sum(axis=axes, keepdims=True)
    keep = [k for k in range(g.ndim) if k not in axes]
    terms = np.moveaxis(g, list(axes), list(range(len(axes)))).reshape(
        int(np.prod([g.shape[k] for k in axes])), *[g.shape[k] for k in keep])
    out = plain.copy().reshape([g.shape[k] for k in keep])
    for idx in np.ndindex(*out.shape):
        column = terms[(slice(None),) + idx]
        if np.isfinite(column).all():
            try:
                out[idx] = math.fsum(column)
            except OverflowError:
                pass
    return out.reshape(plain.shape)


def _check_bad_input(fn, p, t, params, picks):
    """A non-real input (BAD_KINDS: complex, object arrays, strings, bytes, ragged lists,
    datetimes, structured arrays, None, dicts, sets) raises TypeError or ValueError naming the
    argument, from refloss's own code (never an error from inside NumPy or Numba), on both
    devices, for the value and value_and_grad alike."""
    k = picks.int(0, 1)
    kind = picks.choice(*[b for b in BAD_KINDS if b not in KNOWN_BAD_KINDS])
    bad = _bad_value(kind, (p, t)[k][:2], fn.info.widths[k])
    inputs = [p, t]
    inputs[k] = bad
    device = picks.choice("cpu", "cuda")
    call = picks.choice(fn, fn.value_and_grad)
    outcome = _outcome(lambda: call(*inputs, device=device, **params))
    assert outcome[0] == "error", f"{kind} {fn.inputs[k]} accepted: {outcome[1]}"
    _assert_clear_error(outcome[1], fn.inputs, f"{kind} {fn.inputs[k]} on {device}")


def _check_non_finite(fn, p, t, params, picks):
    """NaN or +-inf anywhere in an input: a ValueError naming the argument and the first bad
    index in C order of the input's own shape (also for a Fortran-ordered input)."""
    shape = (N, N) + p.shape[1:]
    inputs = [p.reshape(shape).copy(), t.reshape(shape).copy()]
    k = picks.int(0, 1)
    flat = inputs[k].reshape(-1)
    where = {picks.int(0, flat.size - 1) for _ in range(picks.int(1, 3))}
    flat[list(where)] = picks.choice(np.nan, np.inf, -np.inf)
    first = np.unravel_index(min(where), inputs[k].shape)
    if picks.bool():  # Fortran order
        inputs[k] = np.asfortranarray(inputs[k])
    n = fn.inputs[k]
    index = ", ".join(map(str, first))
    with pytest.raises(ValueError, match=rf"{n}: must be finite; {n}\[{index}\] = "):
        fn.value_and_grad(*inputs, **params)


# the input forms go through the drivers shared by every loss of a family (validation, layout,
# broadcasting, reductions), not through each loss's formula: a fifth of the examples of the other
# properties (200 a loss in the ci profile, some 9,600 in all; "full": 400), where they cost the most
# (500 examples: 8 to 25 s a loss, 497 s of the 2,384 test-seconds of the clean-clone run at cfe5a66)
FORMS_EXAMPLES = max(10, EXAMPLES // 5)


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=FORMS_EXAMPLES)
@given(data=st.data())
def test_input_forms(name, data):
    """On one batch: odd input forms, broadcasting with scalars and empty arrays, bad input and
    non-finite input (see the _check_* functions)."""
    fn = _fn(name)
    p, t = data.draw(any_inputs(name), "inputs")
    params = data.draw(params_for(name), "params")
    picks = _picks(data)
    _check_odd_forms(fn, p, t, params, picks)
    _check_broadcasting(fn, p, t, params, picks)
    _check_bad_input(fn, p, t, params, picks)
    _check_non_finite(fn, p, t, params, picks)


# ================================================================== known failures, pinned
# Found by the properties above; each test asserts the correct (or documented) behaviour on one
# precise input and is an expected failure until the runtime is fixed (strict: a fix makes it
# fail, so that the xfail and the property's exclusion (KNOWN, KNOWN_BAD_KINDS, KNOWN_FORMS,
# _known_empty_weighted_mean) are removed together).


def _xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


def test_known_yolov1_value_at_zero_sizes():
    """Fixed: yolov1_box_loss evaluated (sqrt w - sqrt wt)^2 as (w - wt)^2/(sqrt w + sqrt wt)^2:
    0/0 = NaN when both widths (or heights) are 0, a valid input (sizes >= 0), and 0 where
    (w - wt)^2 underflows (sizes below ~1e-154).  Now ((w - wt)/(sqrt w + sqrt wt))^2, 0 at w = wt."""
    import mpmath as mp

    # L = 5 ((1 - 0)^2 + (2 - 0)^2 + (sqrt 0 - sqrt 0)^2 + (sqrt 1 - sqrt 4)^2) = 5 (1 + 4 + 0 + 1) = 30
    assert rl.yolov1_box_loss(np.array([1.0, 2.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, 4.0])) == 30.0
    for dtype in (np.float64, np.float32):
        zero = np.array([0.0, 0.0, 0.0, 1.0])
        assert rl.yolov1_box_loss(zero, zero, dtype=dtype) == 0.0  # got NaN
    # tiny sizes: the paper's formula at 60 digits (the old form gave 0 and 0/0 here)
    for p, t in (([0.0, 0.0, 2e-200, 1e-300], [0.0, 0.0, 1e-200, 0.0]), ([0.0, 0.0, 0.0, 1e-320], [0.0, 0.0, 0.0, 0.0])):
        with mp.workdps(60):
            exact = 5 * sum((mp.sqrt(mp.mpf(a)) - mp.sqrt(mp.mpf(b))) ** 2 for a, b in zip(p[2:], t[2:]))
        got = rl.yolov1_box_loss(np.array(p), np.array(t))
        assert got == pytest.approx(float(exact), rel=4 * 2.0**-52, abs=8 * 2.0**-1074)


def test_known_log_iou_loss_at_zero_union():
    """Fixed: log_iou_loss gave +inf at zero union (eps = 0) where the docs (and iou, iou_loss)
    give NaN; disjoint boxes with a positive union (or eps > 0) stay +inf."""
    b = np.array([0.0, 0.0, 1.0, 0.0])  # zero area: the union of b and b is 0
    assert np.isnan(rl.iou(b, b)) and np.isnan(rl.iou_loss(b, b))
    for dtype in (np.float64, np.float32):
        v, grads = rl.log_iou_loss.value_and_grad(b, b, dtype=dtype)
        assert np.isnan(v) and np.isnan(rl.log_iou_loss(b, b, dtype=dtype))  # got inf
        assert np.isnan(grads).all()
        assert rl.log_iou_loss(b, b, eps=1e-7, dtype=dtype) == np.inf  # IoU = 0/eps = 0
        assert rl.log_iou_loss(b, np.array([2.0, 0.0, 3.0, 1.0]), dtype=dtype) == np.inf  # disjoint, U = 1


def test_known_ciou_gradient_at_a_point_box():
    """Fixed: a point box (w = h = 0) had a finite value (atan2(0, 0) = 0) but NaN gradients (the
    derivative of atan2(w, h) is (h, -w) / (w^2 + h^2) = 0/0).  The convention (ciou_loss's
    page): atan2 passes no gradient at a point, as clamp's at its kink; the oracle follows it."""
    from refloss.oracle import boxes as oracle

    p, t = np.array([0.5, 0.5, 0.5, 0.5]), np.array([0.0, 0.0, 1.0, 1.0])
    for fn in (rl.ciou_loss, rl.ciou):
        for kw in ({}, {"alpha_grad": True}, {"darknet": True}):
            for a, b in ((p, t), (t, p)):
                v, (ga, gb) = fn.value_and_grad(a, b, **kw)
                # IoU = 0, rho = 0, v = 4/pi^2 (pi/4 - 0)^2 = 1/4, alpha v = v^2 / (1 + v) = 0.05
                assert v == pytest.approx(1.05 if fn is rl.ciou_loss else -0.05, rel=1e-15)
                assert np.isfinite(ga).all() and np.isfinite(gb).all()  # got [nan, nan, nan, nan]
                exact = oracle.ciou_loss(a, b, **kw) if fn is rl.ciou_loss else oracle.ciou(a, b, **kw)
                np.testing.assert_allclose(np.r_[ga, gb], np.array(exact[1] + exact[2], np.float64),
                                           rtol=1e-15, atol=1e-16)
                point = ga if a is p else gb
                np.testing.assert_array_equal(point, 0.0)  # no IoU, distance or aspect gradient reaches the point


def test_known_focal_loss_gamma_0_at_large_logits():
    import mpmath as mp

    for x, y in ((-710.0, 0.0), (710.0, 1.0)):
        v, (gx, gy) = rl.sigmoid_focal_loss.value_and_grad(np.array([x]), np.array([y]), alpha=0.25, gamma=0.0)
        # gamma = 0: L = alpha_t CE, alpha_t = 0.25 y + 0.75 (1 - y), CE = log(1 + e^x) - x y;
        # dL/dx = alpha_t (sigmoid(x) - y), dL/dy = (0.25 - 0.75) CE - alpha_t x
        with mp.workdps(50):
            at = 0.25 * y + 0.75 * (1 - y)
            ce = mp.log1p(mp.exp(x)) - x * y
            # sigma(x) - y as (1 - y) sigma(x) - y sigma(-x): 1 - sigma(710) is 4.5e-309, below 50 digits of 1
            dx, dy = at * ((1 - y) / (1 + mp.exp(-x)) - y / (1 + mp.exp(x))), -0.5 * ce - at * x
        assert np.isfinite(v).all()
        assert gy[0] == pytest.approx(float(dy), rel=1e-12)  # got nan
        assert gx[0] == pytest.approx(float(dx), rel=1e-6, abs=1e-320)  # got nan


def _balanced_l1_exact(x, beta, alpha, gamma):
    """The Balanced L1 value from its closed form (Libra R-CNN, general beta), 100 digits."""
    import mpmath as mp

    with mp.workdps(100):
        x, beta, alpha, gamma = map(mp.mpf, (x, beta, alpha, gamma))
        a, b = abs(x), mp.expm1(gamma / alpha)
        if a < beta:
            u = b * a / beta
            return float(alpha * beta / b * ((1 + u) * mp.log1p(u) - u))
        return float(gamma * a + gamma * beta / b - alpha * beta)


def test_known_balanced_l1_nan_at_large_gamma_over_alpha():
    params = dict(beta=2.0, alpha=0.03125, gamma=23.0)  # gamma / alpha = 736
    got = rl.balanced_l1(0.5, 0.0, **params)  # got nan
    assert got == pytest.approx(_balanced_l1_exact(0.5, **params), rel=1e-15)  # 11.4627141506075...
    assert rl.balanced_l1(0.0, 0.0, beta=1e-307) == 0.0  # default alpha, gamma; tiny beta: got nan
    params = dict(beta=1.0, alpha=0.125, gamma=287824.0)  # gamma / alpha = 2302592
    got = rl.balanced_l1(0.5, 0.0, **params)  # raised decimal.Overflow
    assert got == pytest.approx(_balanced_l1_exact(0.5, **params), rel=1e-15)


def test_known_balanced_l1_small_gamma_over_alpha():
    for r in (1e-15, 1e-20):
        exact = _balanced_l1_exact(1.0, 1.0, 1.0, r)  # = r / 2 to 16 digits: 5e-16, 5e-21
        got = rl.balanced_l1(1.0, 0.0, beta=1.0, alpha=1.0, gamma=r)  # got 4.9999999987666e-16, -3.67e-20
        assert got == pytest.approx(exact, rel=1e-14, abs=0)
    assert rl.balanced_l1(1.0, 0.0, beta=1.0, alpha=1.0, gamma=1e-300) > 0  # raised decimal.DivisionByZero


def _required(name) -> dict:
    """Values for the parameters without a default (MPDIoU's image_size), where a test calls a loss with its
    defaults: an (8, 8) image for a size."""
    return {p.name: (8.0, 8.0) for p in _fn(name).params if p.default is None and p.kind == "size"}


def test_known_tiny_eps_nan_gradient_at_zero_union():
    """Fixed: box losses with 0 < eps < ~1e-154 at zero union had a finite value (eps makes it
    defined) but NaN gradients, as (U + eps)^2 underflowed to 0 (0 * inf).  Quotients by a
    stabilised denominator are now differentiated as (da - (a/b) db)/b."""
    from refloss.oracle import boxes as oracle

    p, t = np.array([0.0, 0.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0, 1.0])  # two vertical segments, 1 apart
    v, (gp, gt) = rl.iou_loss.value_and_grad(p, t, eps=1e-200)
    assert v == 1.0  # (U - I + eps) / (U + eps) with U = I = 0
    # L = 1 - I/(U + eps) with I = 0 and the clamp's gradient 0 at negative overlaps: dL = 0
    np.testing.assert_array_equal(gp, 0.0)  # got nan
    np.testing.assert_array_equal(gt, 0.0)
    # every box loss on zero-union pairs (segments apart, collinear, a point) against the oracle:
    # gradients of order 1/eps (GIoU of collinear segments: C = 0) or 0, all finite here
    segments = [(p, t), (p, p), (p, np.array([0.0, 0.0, 0.0, 2.0])), (np.array([0.0, 0.0, 1.0, 0.0]), np.zeros(4))]
    for name in (n for n in LOSSES if _family(n) == "box" and n != "log_iou_loss"):  # -ln 0 = inf there
        for eps in (1e-200, 1e-300):
            for a, b in segments:
                kw = {"eps": eps, **_required(name)}
                v, grads = _fn(name).value_and_grad(a, b, **kw)
                exact = getattr(oracle, name)(a, b, **kw)
                if name in UNDEFINED_ALSO and UNDEFINED_ALSO[name](a[None], b[None], kw)[0]:
                    assert np.isnan(v) and math.isnan(exact[0]), (name, a, b)  # documented NaN whatever eps is
                    continue
                want = np.array(exact[1] + exact[2], np.float64)
                got = np.concatenate(grads)
                assert np.isfinite(got).all(), (name, eps, a, b, got)
                np.testing.assert_allclose(v, float(exact[0]), rtol=1e-15, atol=1e-15, err_msg=f"{name} {a} {b}")
                scale = np.abs(want).max()
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * scale, err_msg=f"{name} {eps} {a} {b}")


def test_known_qfl_target_gradient_overflow():
    """Fixed: d/dtarget of qfl_loss was -inf at hard targets with beta < 1 and (1 - beta) |x| above
    ~709 (beta |D|^(beta-1) overflowed before the cross-entropy, about |D|, multiplied it), where
    the derivative is about -x |D|^beta; now formed from the logit where |D| is subnormal."""
    from refloss.oracle import classification as oracle

    for dtype, xs in ((np.float64, (-733.0, -5000.0, -709.0)), (np.float32, (-88.0, -100.0, -1000.0))):
        for beta in (0.03125, 0.5):
            for x0, y in [(x, 0.0) for x in xs] + [(-x, 1.0) for x in xs]:
                _, (_, gy) = rl.qfl_loss.value_and_grad(np.array([x0], dtype), np.array([y], dtype), beta=beta)
                exact = float(oracle.qfl_loss(x0, y, beta=beta)[2])  # e.g. +-8.26e-8 at -733, 1/32
                if abs(exact) < np.finfo(dtype).tiny:  # subnormal: a few units of the smallest spacing
                    assert abs(float(gy[0]) - exact) <= 2 ** -20 * np.finfo(dtype).tiny, (dtype, beta, x0, y)
                else:
                    np.testing.assert_allclose(gy, exact, rtol=8 * np.finfo(dtype).eps, err_msg=f"{dtype} {beta} {x0}")


def test_known_ragged_list_error_names_no_argument():
    """Fixed: a ragged nested list raised NumPy's 'setting an array element with a sequence'
    ValueError, which did not name the argument."""
    with pytest.raises((TypeError, ValueError), match=r"^pred: "):
        rl.l1([[1.0, 2.0], [3.0]], 0.0)


def test_known_masked_array_reaches_numba():
    """Fixed: a masked array passed first in a process, C-contiguous and of the broadcast shape,
    reached Numba as it was and failed inside Numba's typeof (NumbaTypeError, not a TypeError);
    once the driver had run on a plain array, the mask was silently ignored.  Now a TypeError
    naming the argument and the way out (.filled()), first call or not."""
    import subprocess
    import sys

    # a fresh interpreter: the outcome depends on what the process has called before
    code = ("import numpy as np, refloss as rl\n"
            "b = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])\n"
            "def attempt():\n"
            "    try:\n"
            "        rl.giou_loss(np.ma.masked_array(b), b)\n"
            "        print('accepted')\n"
            "    except Exception as e:\n"
            "        print(type(e).__name__, e)\n"
            "attempt()\n"
            "rl.giou_loss(b, b)\n"  # the driver has now run on plain arrays
            "attempt()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(REFLOSS_DIR), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600).stdout
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1], out  # was "NumbaTypeError ...", then "accepted"
    assert lines[0].startswith("TypeError pred: a masked array") and "pred.filled(" in lines[0], out


def test_known_empty_weighted_mean_gradient():
    """Fixed: focal_eiou_loss with reduction='mean' on an empty batch gave NaN gradients to
    broadcast inputs (0/0: the sum of the IoU weights is 0); every other loss gives them 0, a
    sum over no elements."""
    empty, box = np.zeros((0, 4)), np.array([0.0, 0.0, 1.0, 1.0])
    _, (_, g_other) = rl.eiou_loss.value_and_grad(empty, box, reduction="mean")
    np.testing.assert_array_equal(g_other, 0.0)
    _, (_, g) = rl.focal_eiou_loss.value_and_grad(empty, box, reduction="mean")
    np.testing.assert_array_equal(g, 0.0)  # got [nan, nan, nan, nan]


def test_known_balanced_l1_subnormal_gamma_over_alpha():
    """Fixed: with gamma/alpha below ~2.2e-308 (b = exp(gamma/alpha) - 1 subnormal) k_2 = 2 alpha beta / b
    overflowed while z^3 underflowed: NaN values for |x| < beta (float32: below ~1e-38).  Found by the full
    profile; the series branch now uses k_2 z = 2 alpha a / (2 + u)."""
    # below beta, L = alpha beta / b ((1 + u) log1p(u) - u), u = b |x| / beta, b = expm1(gamma/alpha): the bracket is
    # u^2/2 (1 - u/3 + ...), so L = alpha b x^2 / (2 beta) to a relative 1e-308: 1e-308 / 4 here, a subnormal
    # (exact to 1 part in 5e14); _balanced_l1_exact's 100 digits cannot hold 1 + u here
    got = rl.balanced_l1(np.array([1.0]), np.array([0.0]), beta=2.0, alpha=1.0, gamma=1e-308)
    assert got[0] == pytest.approx(2.5e-309, rel=1e-12)  # was nan
    assert rl.balanced_l1(np.array([1.0]), np.array([0.0]), beta=2.0, alpha=1.0, gamma=1e-300, dtype=np.float32)[0] == 0.0


# (loss, pred, target, range, oracle function, how the oracle's value maps to the loss)
_RANGE_CASES = [
    # a unit box and a point box ~6e3 apart: float32 GIoU -1.0000001, giou_loss 2.0000002 ((C - U) and c_w c_h
    # rounded apart, their ratio above 1); the exact GIoU, -0.99999997039, rounds to -1.0 in float32
    ("giou", [3073.0, 1535.0, 3074.0, 1536.0], [-3201.0, -3846.0, -3201.0, -3846.0], (-1.0, 1.0), "giou", 1.0, 0.0),
    ("giou_loss", [3073.0, 1535.0, 3074.0, 1536.0], [-3201.0, -3846.0, -3201.0, -3846.0], (0.0, 2.0), "giou", -1.0, 1.0),
    # disjoint boxes: float32 1 - IoU was 1.0000001 (U - I from the parts outside the intersection, U as
    # A_p + A_t - I: rounded apart); exactly 1
    ("iou_loss", [-1025.0, -4093.0, 3056.0, -11.0], [2049.0, 0.0, 6133.0, 257.0], (0.0, 1.0), "iou", -1.0, 1.0),
]


@pytest.mark.parametrize("name, p, t, bounds, metric, sign, shift", _RANGE_CASES)
def test_known_box_values_in_range_in_float32(name, p, t, bounds, metric, sign, shift):
    """Fixed: values just outside the loss's range in float32, found by the bounds property on 2,000
    examples: a ratio of two separately rounded areas above 1.  The denominators are now formed from the
    numerator plus the rest ((C - U) + U + eps; (U - I + eps) + I), so the ratio cannot exceed 1."""
    from refloss.oracle import boxes as box_oracle

    exact = sign * float(getattr(box_oracle, metric)(p, t)[0]) + shift
    for dtype in (np.float32, np.float64):
        v = getattr(rl, name)(np.array([p], dtype), np.array([t], dtype))[0]
        assert bounds[0] <= v <= bounds[1], (name, dtype, v)
        assert abs(float(v) - exact) <= REFERENCES[name].bar.at("float32" if dtype is np.float32 else "float64")[0]
