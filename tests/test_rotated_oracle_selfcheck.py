"""Self-checks of the rotated-box oracle (refloss.oracle.rotated): ProbIoU, KLD and GWD of (cx, cy, w, h, angle)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from mpmath import mp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from refloss.oracle import boxes as box_oracle  # noqa: E402
from refloss.oracle import rotated as rot  # noqa: E402
from refloss.oracle.rotated import gwd_loss, kld_loss, probiou_loss  # noqa: E402

# every loss and option the gradient check covers
OPTIONS = [
    (probiou_loss, {"mode": "hellinger"}),
    (probiou_loss, {"mode": "bd"}),
    (kld_loss, {"fun": "log1p", "tau": 1.0}),
    (kld_loss, {"fun": "log1p", "tau": 2.0}),
    (kld_loss, {"fun": "sqrt", "tau": 1.0}),
    (kld_loss, {"fun": "sqrt", "tau": 2.0}),
    (gwd_loss, {"fun": "log1p", "tau": 1.0}),
    (gwd_loss, {"fun": "log1p", "tau": 2.0}),
    (gwd_loss, {"fun": "sqrt", "tau": 1.0}),
    (gwd_loss, {"fun": "sqrt", "tau": 2.0}),
]
OPTION_IDS = [f"{f.__name__}-{'-'.join(str(v) for v in kw.values())}" for f, kw in OPTIONS]


# the box oracle's self-check helpers: the tests' own mpf arithmetic at 60 digits (an autouse fixture), mpf(x), and
# |a - b| <= tol max(1, |a|, |b|)
from test_box_oracle_selfcheck import _close, _m, _mp_precision  # noqa: E402,F401


def _grads(result):
    return list(result[1]) + list(result[2])


def _assert_grads_close(got, want, tol=1e-40, what="", floor=mp.one):
    """Each partial within tol of the other, relative to the largest partial (and at least ``floor``)."""
    scale = max([floor] + [abs(w) for w in want])
    for i, (g, w) in enumerate(zip(got, want)):
        assert abs(g - w) <= tol * scale, (what, i, g, w)


def _random_pairs(seed, n=10):
    """Generic (pred, target) pairs of float boxes: sizes 0.5..3, any angles, overlapping or not."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        p = (rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0.5, 3), rng.uniform(0.5, 3),
             rng.uniform(-np.pi, np.pi))
        t = (p[0] + rng.normal(0, 0.7), p[1] + rng.normal(0, 0.7), p[2] * np.exp(rng.normal(0, 0.4)),
             p[3] * np.exp(rng.normal(0, 0.4)), rng.uniform(-np.pi, np.pi))
        pairs.append((tuple(float(v) for v in p), tuple(float(v) for v in t)))
    return pairs


def _numeric_grad(f, pred, target, monkeypatch, direction=None, **kw):
    """d value / d each of the 10 coordinates by mp.diff at 45 digits, of the oracle run at 100 digits
    (its value then has ~100 correct digits; mp.diff's default step is 2**-(prec + 10) ~ 1e-49).
    ``direction``: per-coordinate mp.diff direction (0 central, 1 forward), default all central."""
    monkeypatch.setattr(rot, "DPS", 100)
    coords = [_m(c) for c in list(pred) + list(target)]
    out = []
    with mp.workdps(45):
        for i in range(10):
            def value(x, i=i):
                c = list(coords)
                c[i] = x
                return f(c[:5], c[5:], **kw)[0]
            out.append(mp.diff(value, coords[i], direction=(direction or [0] * 10)[i]))
    monkeypatch.undo()
    return out


# ------------------------------------------------------------ the refactored dual numbers


def test_dual10_is_generic():
    """boxes._Dual with N as a class attribute: a subclass with 10 partials works end to end."""
    D10 = rot._Dual10
    with mp.workdps(30):
        x = D10(_m(2), tuple(_m(i) for i in range(10)))
        y = 3 - x * x / (1 + x) + 0.5
        assert type(y) is D10 and len(y.d) == 10
        for r in (box_oracle._const(x), box_oracle._clamp_min0(-x), box_oracle._log(x - 2), D10.nan(),
                  box_oracle._maximum(x, x), box_oracle._exp(x), box_oracle._sqrt(x), box_oracle._sin(x),
                  rot._cos(x), box_oracle._log1p(x), box_oracle._power(x, 0), box_oracle._power(x - 2, 0.5)):
            assert type(r) is D10 and len(r.d) == 10, r
        assert all(mp.isnan(d) for d in box_oracle._log(x - 2).d)
        with pytest.raises(ValueError):
            D10(_m(1), (mp.zero,) * 8)  # a partial tuple of the wrong length
        with pytest.raises(TypeError):
            x + box_oracle._Dual(_m(1))  # 10 and 8 partials do not mix
        with pytest.raises(TypeError):
            box_oracle._Dual(_m(1)) + x
    assert box_oracle._Dual.N == 8 and len(box_oracle._Dual(_m(1)).d) == 8


# ------------------------------------------------------------ gradients vs numerical differentiation


@pytest.mark.parametrize("seed, f, kw", [(i, f, kw) for i, (f, kw) in enumerate(OPTIONS)], ids=OPTION_IDS)
def test_gradients_match_numerical_differentiation(seed, f, kw, monkeypatch):
    """10 generic pairs per option: every partial within 1e-30 (relative) of mp.diff of the value."""
    for k, (pred, target) in enumerate(_random_pairs(20240 + seed, n=10)):
        got = f(pred, target, **kw)
        want = _numeric_grad(f, pred, target, monkeypatch, **kw)
        for i, (g, w) in enumerate(zip(_grads(got), want)):
            assert abs(g - w) <= _m(10) ** -30 * abs(w) + _m(10) ** -42, (k, i, pred, target, g, w)


# ------------------------------------------------------------ closed forms for angle 0 (diagonal Gaussians)

AXIS_PAIRS = [
    ((0.5, -0.25, 2.0, 1.0, 0.0), (0.125, 0.75, 1.5, 3.0, 0.0)),
    ((3.0, 1.0, 0.75, 4.0, 0.0), (-1.0, 2.5, 0.5, 0.25, 0.0)),
    ((0.0, 0.0, 1.0, 1.0, 0.0), (0.0, 0.0, 2.0, 0.5, 0.0)),
    ((1e-3, 2e3, 7.0, 1e-2, 0.0), (-2e-3, 2e3 + 1, 6.5, 2e-2, 0.0)),
]


def _axis(pred, target, s):
    """Per-axis (delta, sigma_p, sigma_t) of two angle-0 boxes, covariance diag(s w^2, s h^2)."""
    p, t = [_m(v) for v in pred], [_m(v) for v in target]
    return [(p[0] - t[0], s * p[2] ** 2, s * t[2] ** 2), (p[1] - t[1], s * p[3] ** 2, s * t[3] ** 2)]


def _bd_closed(pred, target):
    axes = _axis(pred, target, _m(1) / 12)
    maha = sum(d * d / ((sp + st) / 2) for d, sp, st in axes) / 8
    bar = mp.fprod((sp + st) / 2 for _, sp, st in axes)
    return maha + mp.log(bar / mp.sqrt(mp.fprod(sp * st for _, sp, st in axes))) / 2


def _kl_closed(pred, target):
    return sum(d * d / st + sp / st - 1 - mp.log(sp / st) for d, sp, st in _axis(pred, target, _m(1) / 4)) / 2


def _w2_closed(pred, target):
    p, t = [_m(v) for v in pred], [_m(v) for v in target]
    return (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2 + (p[2] - t[2]) ** 2 / 4 + (p[3] - t[3]) ** 2 / 4


def _closed(f, kw):
    """The closed-form loss of two angle-0 boxes for one option of OPTIONS."""
    tau = _m(kw.get("tau", 1))
    fun = {"log1p": mp.log1p, "sqrt": mp.sqrt}.get(kw.get("fun"))
    if f is probiou_loss:
        if kw["mode"] == "bd":
            return _bd_closed
        return lambda p, t: mp.sqrt(1 - mp.exp(-_bd_closed(p, t)))
    dist = _kl_closed if f is kld_loss else _w2_closed
    return lambda p, t: 1 - 1 / (tau + fun(dist(p, t)))


@pytest.mark.parametrize("f, kw", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("pred, target", AXIS_PAIRS)
def test_axis_aligned_closed_forms(f, kw, pred, target):
    """Value and the d/d(cx, cy, w, h) partials against the per-axis formulas (differentiated by mp.diff)."""
    closed = _closed(f, kw)
    value, gp, gt = f(pred, target, **kw)
    assert _close(value, closed(pred, target)), (value, closed(pred, target))
    coords = [_m(v) for v in pred + target]
    with mp.workdps(60):
        for i in (0, 1, 2, 3, 5, 6, 7, 8):  # the angle does not enter the closed form
            def fx(x, i=i):
                c = list(coords)
                c[i] = x
                return closed(c[:5], c[5:])
            want = mp.diff(fx, coords[i])
            got = (list(gp) + list(gt))[i]
            assert abs(got - want) <= _m(10) ** -40 * max(mp.one, abs(want)), (i, got, want)


def test_closed_form_hand_values():
    """A few values worked by hand."""
    # GWD: W^2 = 1 + 0 + (2 - 1)^2/4 + (1 - 3)^2/4 = 2.25 -> log1p: 1 - 1/(1 + ln 3.25); sqrt, tau 2: 1 - 1/3.5
    p, t = (1.0, 0.0, 2.0, 1.0, 0.0), (0.0, 0.0, 1.0, 3.0, 0.0)
    assert _close(gwd_loss(p, t)[0], 1 - 1 / (1 + mp.log(_m(13) / 4)))
    assert _close(gwd_loss(p, t, fun="sqrt", tau=2.0)[0], 1 - 1 / _m(3.5))
    # KLD of two centred boxes, sizes (2, 1) and (1, 1): sigma ratios 4 and 1 -> D = (4 - 1 - ln 4) / 2
    p, t = (0.0, 0.0, 2.0, 1.0, 0.0), (0.0, 0.0, 1.0, 1.0, 0.0)
    assert _close(kld_loss(p, t, fun="sqrt", tau=1.0)[0], 1 - 1 / (1 + mp.sqrt((3 - mp.log(4)) / 2)))
    # B_D of two unit squares one unit apart: (1/8) * 1 / (1/12) = 1.5
    p, t = (1.0, 0.0, 1.0, 1.0, 0.0), (0.0, 0.0, 1.0, 1.0, 0.0)
    assert _close(probiou_loss(p, t, mode="bd")[0], _m(1.5))
    assert _close(probiou_loss(p, t)[0], mp.sqrt(1 - mp.exp(-1.5)))


# ------------------------------------------------------------ symmetries

SYM_PAIRS = [
    ((0.3, -0.2, 2.0, 1.0, 0.4), (0.1, 0.1, 1.5, 1.2, -0.3)),
    ((-1.0, 2.0, 0.5, 3.0, 2.5), (0.5, 1.0, 2.5, 0.75, -1.25)),
]


def _mp_box(b):
    return [_m(v) for v in b]


@pytest.mark.parametrize("f, kw", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("pred, target", SYM_PAIRS)
def test_symmetries(f, kw, pred, target):
    p, t = _mp_box(pred), _mp_box(target)
    base = f(p, t, **kw)
    v0, g0 = base[0], _grads(base)

    def same(result, grads, what):
        assert _close(result[0], v0), (what, result[0], v0)
        _assert_grads_close(_grads(result), grads, what=what)

    # angle periodicity (pred, then target): same value and gradients
    same(f(p[:4] + [p[4] + mp.pi], t, **kw), g0, "pred angle + pi")
    same(f(p, t[:4] + [t[4] - mp.pi], **kw), g0, "target angle - pi")
    # w <-> h with angle + pi/2: same value, d/dw and d/dh swap
    swapped = g0[:2] + [g0[3], g0[2]] + g0[4:]
    same(f([p[0], p[1], p[3], p[2], p[4] + mp.pi / 2], t, **kw), swapped, "pred w<->h, angle + pi/2")
    swapped = g0[:7] + [g0[8], g0[7]] + g0[9:]
    same(f(p, [t[0], t[1], t[3], t[2], t[4] - mp.pi / 2], **kw), swapped, "target w<->h, angle - pi/2")
    # translation of both centres: same value and gradients
    shift = (_m("0.375"), _m(-5))
    same(f([p[0] + shift[0], p[1] + shift[1]] + p[2:], [t[0] + shift[0], t[1] + shift[1]] + t[2:], **kw), g0,
         "translation")
    # rotation of both boxes about the origin by phi: same value; centre gradients rotate with them
    phi = _m("0.7")
    c, s = mp.cos(phi), mp.sin(phi)

    def rotate(b):
        return [c * b[0] - s * b[1], s * b[0] + c * b[1], b[2], b[3], b[4] + phi]

    rotated = list(g0)
    for k in (0, 5):
        rotated[k], rotated[k + 1] = c * g0[k] - s * g0[k + 1], s * g0[k] + c * g0[k + 1]
    same(f(rotate(p), rotate(t), **kw), rotated, "rotation")
    # exchange of pred and target: ProbIoU and GWD are symmetric
    if f is not kld_loss:
        same(f(t, p, **kw), g0[5:] + g0[:5], "pred <-> target")
    # scaling of centres and sizes by lam: ProbIoU and KLD are invariant; length gradients scale by 1/lam
    if f is not gwd_loss:
        lam = _m(3)
        scaled = [g / lam if k % 5 != 4 else g for k, g in enumerate(g0)]
        same(f([v * lam for v in p[:4]] + p[4:], [v * lam for v in t[:4]] + t[4:], **kw), scaled, "scaling")


def test_kld_is_not_symmetric_and_gwd_not_scale_invariant():
    """The two symmetries the papers' losses do not have really are absent (the checks above are not vacuous)."""
    p, t = SYM_PAIRS[0]
    assert not _close(kld_loss(p, t)[0], kld_loss(t, p)[0], tol=1e-3)
    scale = [v * 3 for v in p[:4]] + [p[4]], [v * 3 for v in t[:4]] + [t[4]]
    assert not _close(gwd_loss(p, t)[0], gwd_loss(*scale)[0], tol=1e-3)


# ------------------------------------------------------------ conventions


@pytest.mark.parametrize("tau", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("pred, target", [
    ((0.3, -0.2, 2.0, 1.0, 0.4), (0.3, -0.2, 2.0, 1.0, 0.4)),  # identical boxes
    ((1e5, 3.0, 1e-3, 7.0, -2.0), (1e5, 3.0, 1e-3, 7.0, -2.0)),
    ((0.3, -0.2, 1.5, 1.5, 0.4), (0.3, -0.2, 1.5, 1.5, -1.1)),  # equal squares at different angles
])
def test_identical_gaussians_exact_zero(pred, target, tau):
    zero = [mp.zero] * 10
    for mode in ("hellinger", "bd"):
        value, gp, gt = probiou_loss(pred, target, mode=mode)
        assert value == 0 and list(gp) + list(gt) == zero, (mode, value, gp, gt)
    with mp.workdps(50):
        expected = 1 - 1 / _m(tau)  # exact for these tau
    for f in (kld_loss, gwd_loss):
        for fun in ("log1p", "sqrt"):
            value, gp, gt = f(pred, target, fun=fun, tau=tau)
            assert value == expected and list(gp) + list(gt) == zero, (f.__name__, fun, value, gp, gt)


def _all_nan(result):
    return all(mp.isnan(g) for g in _grads(result))


@pytest.mark.parametrize("pred, target", [
    ((0.0, 0.0, 0.0, 1.0, 0.3), (0.5, 0.0, 1.0, 2.0, 0.0)),  # zero-width pred
    ((0.0, 0.0, 1.0, 1.0, 0.3), (0.5, 0.0, 1.0, 0.0, 0.0)),  # zero-height target
    ((0.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0)),  # two identical point boxes
])
def test_zero_size_boxes_probiou_kld(pred, target):
    value, *_ = r = probiou_loss(pred, target)
    assert value == 1 and _all_nan(r)
    value, *_ = r = probiou_loss(pred, target, mode="bd")
    assert value == mp.inf and _all_nan(r)
    for fun in ("log1p", "sqrt"):
        for tau in (1.0, 3.0):
            value, *_ = r = kld_loss(pred, target, fun=fun, tau=tau)
            assert value == 1 and _all_nan(r)


@pytest.mark.parametrize("fun", ["log1p", "sqrt"])
def test_gwd_zero_width_box_is_valid(fun, monkeypatch):
    """A zero-width pred: finite value (closed form at angle 0) and finite partials, d/dw the one-sided one."""
    pred, target = (0.5, -0.25, 0.0, 1.5, 0.0), (0.0, 0.5, 1.0, 2.0, 0.0)
    r = gwd_loss(pred, target, fun=fun)
    w2 = _w2_closed(pred, target)
    assert _close(r[0], 1 - 1 / (1 + (mp.log1p(w2) if fun == "log1p" else mp.sqrt(w2))))
    direction = [0] * 10
    direction[2] = 1  # w_p = 0: forward differences
    want = _numeric_grad(gwd_loss, pred, target, monkeypatch, direction=direction, fun=fun)
    for i, (g, w) in enumerate(zip(_grads(r), want)):
        assert mp.isfinite(g) and abs(g - w) <= _m(10) ** -30 * max(mp.one, abs(w)), (i, g, w)
    # a zero-width box at an angle, against a generic target: finite too
    assert all(mp.isfinite(g) for g in _grads(gwd_loss((0.0, 0.0, 0.0, 2.0, 0.7), (1.0, 0.0, 1.0, 0.0, -0.2))))


@pytest.mark.parametrize("pred, target", [
    ((0.5, 0.0, 0.0, 0.0, 0.3), (0.0, 0.25, 1.0, 2.0, 0.0)),  # point pred
    ((0.5, 0.0, 0.0, 0.0, 0.3), (0.0, 0.0, 0.0, 0.0, 1.0)),  # two point boxes
    ((0.0, 0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0)),  # two coincident point boxes (NaN first)
    ((1.0, 0.0, 0.0, 2.0, 0.0), (0.0, 0.0, 3.0, 0.0, 0.0)),  # perpendicular zero-width boxes
])
@pytest.mark.parametrize("fun", ["log1p", "sqrt"])
def test_gwd_inner_sqrt_zero_gives_nan_gradients(pred, target, fun):
    r = gwd_loss(pred, target, fun=fun, tau=2.0)
    assert _all_nan(r)
    # value: W^2 = |Delta|^2 + tr Sigma_p + tr Sigma_t (the trace of the square root is 0)
    p, t = _mp_box(pred), _mp_box(target)
    w2 = (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2 + (p[2] ** 2 + p[3] ** 2 + t[2] ** 2 + t[3] ** 2) / 4
    ff = mp.log1p(w2) if fun == "log1p" else mp.sqrt(w2)
    assert _close(r[0], 1 - 1 / (2 + ff)), (r[0], w2)


def test_invalid_inputs_raise():
    good = (0.0, 0.0, 1.0, 1.0, 0.0)
    bad_boxes = [
        (0.0, 0.0, 1.0, 1.0),  # 4 coordinates
        (0.0, 0.0, 1.0, 1.0, 0.0, 0.0),
        (float("nan"), 0.0, 1.0, 1.0, 0.0),
        (0.0, 0.0, 1.0, 1.0, float("inf")),
        (0.0, 0.0, -1.0, 1.0, 0.0),  # w < 0
        (0.0, 0.0, 1.0, -1e-300, 0.0),  # h < 0
    ]
    for f in (probiou_loss, kld_loss, gwd_loss):
        for b in bad_boxes:
            with pytest.raises(ValueError):
                f(b, good)
            with pytest.raises(ValueError):
                f(good, b)
    with pytest.raises(ValueError):
        probiou_loss(good, good, mode="l1")
    for f in (kld_loss, gwd_loss):
        with pytest.raises(ValueError):
            f(good, good, fun="log")
        for tau in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError):
                f(good, good, tau=tau)


def test_exact_conversion_of_float_inputs():
    """Python/NumPy floats are taken exactly (float32 0.1 is not 0.1)."""
    p32 = tuple(np.float32(v) for v in (0.1, 0.2, 1.3, 0.7, 0.4))
    t = (0.0, 0.0, 1.0, 1.0, 0.0)
    exact = [mp.mpf(float(v)) for v in p32]  # float32 -> float64 is exact
    for f in (probiou_loss, kld_loss, gwd_loss):
        assert f(p32, t)[0] == f(exact, t)[0]
        assert f(p32, t)[0] != f((0.1, 0.2, 1.3, 0.7, 0.4), t)[0]


# ------------------------------------------------------------ the accuracy the docstring states


@pytest.mark.parametrize("f, kw", OPTIONS[::2] + OPTIONS[1::4], ids=OPTION_IDS[::2] + OPTION_IDS[1::4])
def test_nearly_identical_boxes_keep_their_digits(f, kw, monkeypatch):
    """The docstring's claim against a 230-digit run (_GUARD_DPS = 180): boxes that agree to k digits keep
    about 80 - k digits in the partials (relative to the largest) and, when the difference is in the angle,
    in the value; differences of centres and sizes cost the value nothing."""
    with mp.workdps(120):
        b = _mp_box((0.3, -0.2, 2.0, 1.0, 0.4))

        def moved(e, angle, rest=True):
            r = e if rest else 0
            return [b[0] + r, b[1] - r, b[2] * (1 + r), b[3] * (1 - r), b[4] + (e if angle else 0)]

        e20, e40 = _m(10) ** -20, _m(10) ** -40
        cases = [  # (target, value tolerance, partials tolerance); pred is b
            (moved(e20, True), 1e-45, 1e-45),  # every coordinate 1e-20 apart: ~60 digits
            (moved(e40, False), 1e-45, 1e-35),  # centres and sizes 1e-40 apart: value 50, partials ~40
            (moved(e40, True, rest=False), 1e-35, 1e-35),  # angles 1e-40 apart: ~40 digits
        ]
    for t, vtol, gtol in cases:
        got = f(b, t, **kw)
        monkeypatch.setattr(rot, "_GUARD_DPS", 180)
        want = f(b, t, **kw)
        monkeypatch.undo()
        assert want[0] > 0
        assert abs(got[0] - want[0]) <= _m(vtol) * abs(want[0]), (got[0], want[0])
        _assert_grads_close(_grads(got), _grads(want), tol=gtol, floor=mp.zero)


@pytest.mark.parametrize("f", [kld_loss, gwd_loss])
def test_far_apart_boxes_keep_their_partials(f, monkeypatch):
    """``1 - 1/(tau + f)`` for a huge f: the partials ``df / (tau + f)**2`` are tiny but kept (no quotient-rule
    cancellation): against a 230-digit run where f is ~1e40, and for f ~ 1e600 the sqrt and log1p partials are
    non-zero and parallel (both are multiples of the distance's gradient)."""
    pred, target = (1e40, 0.0, 1.0, 2.0, 0.3), (0.0, 0.0, 2.0, 1.0, -0.2)
    for fun in ("sqrt", "log1p"):
        got = f(pred, target, fun=fun, tau=2.0)
        monkeypatch.setattr(rot, "_GUARD_DPS", 180)
        want = f(pred, target, fun=fun, tau=2.0)
        monkeypatch.undo()
        _assert_grads_close(_grads(got), _grads(want), tol=1e-45, floor=mp.zero)
    pred, target = (1e300, -1e-300, 1e-300, 1e300, 1e10), (0.0, 5e-324, 1e-300, 1e300, -1e-10)
    g_sqrt, g_log = _grads(f(pred, target, fun="sqrt")), _grads(f(pred, target, fun="log1p"))
    assert all(g != 0 for g in g_sqrt[:2] + g_sqrt[4:7] + g_sqrt[9:])
    ratios = [a / b for a, b in zip(g_sqrt, g_log) if b != 0]
    assert len(ratios) >= 6 and all(abs(r - ratios[0]) <= _m(10) ** -45 * abs(ratios[0]) for r in ratios), ratios
