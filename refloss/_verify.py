"""``refloss verify``: every kernel against the 50-digit oracle and finite differences.

For each loss, parameter set, backend (CPU; CUDA when a GPU or the simulator is
present) and dtype, the built-in battery (``refloss.cases``) is evaluated by the
kernel and by the mpmath oracle (``refloss.oracle``); the error of the value and
of every gradient component is measured in ULPs of the dtype against the
correctly rounded exact result.  Float64 gradients are also compared with
Richardson-extrapolated central differences of the kernel's own value away from
kinks.  Imports mpmath; never imported by ``import refloss``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import cases as _cases
from ._registry import ELEMENTWISE_LOSSES

MAX_ULP = 4.0  # the bar for values and gradients, float64 and float32
# focal loss is a product of up to five correctly rounded factors (alpha_t, CE, (1-p_t)^gamma, ...)
CLASSIFICATION_MAX_ULP = 8.0
FD_RTOL = 1e-8  # analytic vs extrapolated finite-difference gradient (float64)

PARAM_SETS = {
    "l1": [{}],
    "mse": [{}],
    "smooth_l1": [{"beta": 1.0}, {"beta": 1 / 9}, {"beta": 0.0}, {"beta": 2.5}],
    "huber": [{"delta": 1.0}, {"delta": 0.5}, {"delta": 3.0}],
    "balanced_l1": [
        {"beta": 1.0, "alpha": 0.5, "gamma": 1.5},
        {"beta": 1 / 9, "alpha": 0.5, "gamma": 1.5},
        {"beta": 0.11, "alpha": 0.5, "gamma": 1.5},
        {"beta": 2.0, "alpha": 1.0, "gamma": 1.0},
    ],
    "focal_l1": [{"beta": 0.8}, {"beta": 0.5}, {"beta": 1.0}, {"beta": 0.37}],
}
EXTRA_KINKS = {"focal_l1": (1.0,)}  # kinks not given by a beta/delta parameter

# classification losses on (logits, targets): same ULP bar, battery of logits_cases()
CLASSIFICATION_PARAM_SETS = {
    "bce_with_logits": [{}],
    "sigmoid_focal_loss": [{"alpha": 0.25, "gamma": 2.0}, {"alpha": None, "gamma": 2.0},
                           {"alpha": 0.5, "gamma": 0.5}, {"alpha": 0.25, "gamma": 0.0}],
}

BOX_PARAM_SETS = {
    "iou": [{}, {"eps": 1e-7}],
    "iou_loss": [{}, {"eps": 1e-7}],
    "log_iou_loss": [{}],
    "giou": [{}],
    "giou_loss": [{}, {"eps": 1e-7}],
    "diou": [{}],
    "diou_loss": [{}, {"eps": 1e-7}],
    "ciou": [{}],
    "ciou_loss": [{}, {"alpha_grad": True}, {"alpha_gate": 0.5}, {"darknet": True}],
    "eiou_loss": [{}],
    "focal_eiou_loss": [{}, {"weight_grad": True}],
    "focal_l1_eiou_loss": [{}, {"beta": 0.5}, {"beta": 1.0}],
}
# the box bar (issue 4): float64 value error <= 1e-14 absolute, gradient error <= 1e-13
# relative to the pair's largest exact component; float32 the same number of float32 epsilons
# float32 cannot hold these: coordinates spanning 1e10 at box sizes 1e5 make the rho^2/c^2
# gradient a difference of terms 1e4 times larger than itself (float64 keeps 12 digits there)
F32_EXCLUDED_BOX_GROUPS = {"far_apart": "float32 cancellation in the rho^2/c^2 gradient (coordinates ~1e10, sizes ~1e5)"}
BOX_VALUE_ATOL = {"float64": 1e-14, "float32": 1e-14 / 2.0**-52 * 2.0**-23}
BOX_GRAD_RTOL = {"float64": 1e-13, "float32": 1e-13 / 2.0**-52 * 2.0**-23}


@dataclass
class Row:
    loss: str
    params: dict
    backend: str
    dtype: str
    points: int
    ulp_value: float
    ulp_grad: float
    worst: str
    fd_rel: float | None = None
    notes: list = field(default_factory=list)
    boxes: bool = False  # errors are (value abs, gradient rel-to-largest) instead of ULP

    @property
    def ok(self) -> bool:
        bar = YOLO_MAX_ULP if self.loss in ("yolo_decode", "yolov1_box_loss") else (
            CLASSIFICATION_MAX_ULP if self.loss in CLASSIFICATION_PARAM_SETS else None)
        if bar is not None:
            return self.ulp_value <= bar and self.ulp_grad <= bar
        if self.boxes:
            return self.ulp_value <= BOX_VALUE_ATOL[self.dtype] and self.ulp_grad <= BOX_GRAD_RTOL[self.dtype]
        fd_ok = self.fd_rel is None or self.fd_rel <= FD_RTOL
        return self.ulp_value <= MAX_ULP and self.ulp_grad <= MAX_ULP and fd_ok


def kinks(loss: str, params: dict) -> tuple:
    if loss == "focal_l1":
        return EXTRA_KINKS[loss]
    return _cases.kinks_from_params(params, EXTRA_KINKS.get(loss, ()))


def battery(loss: str, params: dict, dtype, n_random: int = 200):
    """(group name per point, pred, target) of the built-in battery, concatenated."""
    groups = _cases.elementwise_cases(params, dtype, n_random=n_random, kinks=kinks(loss, params))
    names = np.concatenate([np.full(len(p), g, dtype=object) for g, p, _ in groups])
    pred = np.concatenate([p for _, p, _ in groups])
    target = np.concatenate([t for _, _, t in groups])
    return names, pred, target


def logits_cases(dtype, n_random: int = 200, seed: int = 0):
    """(group per point, logits, targets): logits from 1e-8 to the dtype's stability bound
    (1e4 float64, 80 float32) both signs, against hard targets 0 and 1 and soft targets."""
    dt = np.dtype(dtype)
    top = 4 if dt == np.float64 else np.log10(80.0)
    mags = np.logspace(-8, top, 49)
    logits = np.concatenate([mags, -mags, [0.0]]).astype(dt)
    rng = np.random.default_rng(seed)
    groups = []
    for y in (0.0, 1.0, 0.3, 0.9):
        groups.append(("hard" if y in (0.0, 1.0) else "soft", logits, np.full(logits.shape, y, dt)))
    x = (rng.uniform(-1, 1, n_random) * 10.0 ** rng.uniform(-3, top, n_random)).astype(dt)
    groups.append(("random", x, rng.uniform(0, 1, n_random).astype(dt)))
    names = np.concatenate([np.full(len(a), g, dtype=object) for g, a, _ in groups])
    return names, np.concatenate([a for _, a, _ in groups]), np.concatenate([b for _, _, b in groups])


@lru_cache(maxsize=None)
def _exact(loss: str, params_key: tuple, dtype_name: str, n_random: int):
    from .oracle import ORACLES
    from .oracle.classification import CLASSIFICATION_ORACLES

    params = dict(params_key)
    if loss in CLASSIFICATION_ORACLES:
        names, pred, target = logits_cases(dtype_name, n_random)
        exact = [CLASSIFICATION_ORACLES[loss](float(p), float(t), **params) for p, t in zip(pred, target)]
        return names, pred, target, exact
    names, pred, target = battery(loss, params, np.dtype(dtype_name), n_random)
    oracle = ORACLES[loss]
    exact = [oracle(float(p), float(t), **params) for p, t in zip(pred, target)]
    return names, pred, target, exact


def oracle_errors(loss: str, params: dict, dtype, backend: str = "cpu", n_random: int = 200):
    """Per-point ULP errors: (names, pred, target, ulp[value], ulp[d_pred], ulp[d_target], got)."""
    from .oracle import ulp_error
    import refloss

    dt = np.dtype(dtype)
    names, pred, target, exact = _exact(loss, tuple(sorted(params.items())), dt.name, n_random)
    fn = getattr(refloss, loss)
    value, (gp, gt) = fn.value_and_grad(pred, target, dtype=dt, device=backend, **params)
    got = (np.asarray(value), np.asarray(gp), np.asarray(gt))
    errs = np.array([[ulp_error(got[c][i], exact[i][c], dt) for c in range(3)] for i in range(len(pred))])
    if loss in CLASSIFICATION_PARAM_SETS:
        errs[:, 1:] = _conditioned_grad_errors(loss, params, pred, target, exact, got, dt)
    return names, pred, target, errs, got


def _one_minus_pt(x: float, y: float) -> float:
    from mpmath import mp

    with mp.workdps(30):
        x, y = mp.mpf(x), mp.mpf(y)
        return float(y / (1 + mp.exp(x)) + (1 - y) / (1 + mp.exp(-x)))


def _conditioned_grad_errors(loss, params, pred, target, exact, got, dt):
    """Gradient errors in ULPs of max(|exact|, scale of the cancelling terms) (see
    refloss.oracle.classification.gradient_scale): near the optimum sigma(x) = y of a soft
    target the gradient is a difference of nearly equal terms."""
    from mpmath import mp

    from .oracle.classification import gradient_scale
    from .oracle.rounding import round_to, ulp

    out = np.zeros((len(pred), 2))
    tiny = float(np.finfo(dt).tiny)
    for i in range(len(pred)):
        if params.get("gamma", 1.0) < 1 and _one_minus_pt(float(pred[i]), float(target[i])) < tiny:
            continue  # documented limit: 1 - p_t underflows, its gamma-1 < 0 power is taken as 0
        scales = gradient_scale(loss, float(pred[i]), float(target[i]), **params)
        for c in (1, 2):
            ref = max(abs(exact[i][c]), scales[c - 1])
            g = float(got[c][i])
            if not np.isfinite(g) or mp.isnan(exact[i][c]):
                out[i, c - 1] = 0.0 if (np.isnan(g) and mp.isnan(exact[i][c])) else np.inf
                continue
            with mp.workdps(50):
                out[i, c - 1] = float(abs(mp.mpf(g) - exact[i][c]) / ulp(round_to(ref, dt), dt))
    return out


def fd_errors(loss: str, params: dict, names, pred, target, grad_pred, grad_target):
    """Relative error of float64 gradients vs Richardson-extrapolated central differences."""
    import refloss

    fn = getattr(refloss, loss)
    x = pred - target
    mask = np.array([g not in _cases.KINK_GROUPS for g in names]) & (np.abs(x) > 0)
    mask &= ~_cases.near_kink(x, kinks(loss, params) + (0.0,), rel=1e-2)
    # the step is 1e-3 |x|; rounding pred +- h perturbs the step by ~eps*|pred|, a relative
    # error eps*|pred|/h in the difference quotient: keep points where that is far below the bar
    scale = np.maximum(np.abs(pred), np.abs(target))
    mask &= 2.2e-16 * scale / (1e-3 * np.abs(x) + 1e-300) <= FD_RTOL / 100
    h = 1e-3 * np.abs(x[mask])

    def d(f_plus, f_minus, h):
        return (f_plus - f_minus) / (2 * h)

    rel = []
    for which, g in (("pred", grad_pred), ("target", grad_target)):
        p, t = pred[mask], target[mask]

        def f(shift):
            return fn(p + shift, t, **params) if which == "pred" else fn(p, t + shift, **params)

        d1 = d(f(h), f(-h), h)
        d2 = d(f(h / 2), f(-h / 2), h / 2)
        fd = (4 * d2 - d1) / 3
        gm = g[mask]
        scale = np.maximum(np.abs(gm), np.abs(fd))
        rel.append(np.where(scale > 0, np.abs(fd - gm) / np.where(scale > 0, scale, 1), 0.0))
    return float(max((r.max() if r.size else 0.0) for r in rel))


@lru_cache(maxsize=None)
def _box_exact(loss: str, params_key: tuple, dtype_name: str, n_random: int):
    from . import box_cases
    from .oracle.boxes import BOX_ORACLES

    groups = box_cases.box_cases(np.dtype(dtype_name), n_random=n_random)
    names = np.concatenate([np.full(len(p), g, dtype=object) for g, p, _ in groups])
    pred = np.concatenate([p for _, p, _ in groups])
    target = np.concatenate([t for _, _, t in groups])
    oracle = BOX_ORACLES[loss]
    params = dict(params_key)
    exact = []
    for p, t in zip(pred, target):
        v, gp, gt = oracle(tuple(map(float, p)), tuple(map(float, t)), **params)
        exact.append((float(v), np.array([float(g) for g in gp + gt])))
    return names, pred, target, exact


def box_errors(loss: str, params: dict, dtype, backend: str = "cpu", n_random: int = 100):
    """Per-pair errors: (names, pred, target, value abs error, gradient error relative to the
    pair's largest exact component).  NaN where both are NaN counts as 0, else inf."""
    import refloss

    dt = np.dtype(dtype)
    names, pred, target, exact = _box_exact(loss, tuple(sorted(params.items())), dt.name, n_random)
    value, (gp, gt) = getattr(refloss, loss).value_and_grad(pred, target, dtype=dt, device=backend, **params)
    value, grads = np.asarray(value, np.float64), np.concatenate([np.asarray(gp), np.asarray(gt)], axis=1)
    ev = np.array([e[0] for e in exact])
    eg = np.stack([e[1] for e in exact])
    with np.errstate(invalid="ignore"):
        verr = np.where(np.isnan(ev) & np.isnan(value), 0.0, np.abs(value - ev))
        verr = np.where((ev == value), 0.0, verr)  # equal infinities
        scale = np.nanmax(np.abs(np.where(np.isfinite(eg), eg, np.nan)), axis=1, initial=0.0)
        # floor: the natural gradient scale 1/(enclosing size). Where the exact gradient
        # cancels to (nearly) 0 (identical boxes, tied coordinates) no float computation of
        # the O(1/size) terms can match it relative to itself
        p64, t64 = pred.astype(np.float64), target.astype(np.float64)
        size = np.maximum(np.maximum(p64[:, 2], t64[:, 2]) - np.minimum(p64[:, 0], t64[:, 0]),
                          np.maximum(p64[:, 3], t64[:, 3]) - np.minimum(p64[:, 1], t64[:, 1]))
        scale = np.maximum(scale, np.where(size > 0, 1.0 / np.where(size > 0, size, 1.0), 0.0))
        diff = np.where(np.isnan(eg) & np.isnan(grads), 0.0, np.abs(grads - eg))
        gerr = np.nanmax(np.where(np.isnan(diff), np.inf, diff), axis=1, initial=0.0) / np.where(scale > 0, scale, 1.0)
    verr = np.where(np.isnan(verr), np.inf, verr)
    if dt == np.float32:
        keep = np.array([n not in F32_EXCLUDED_BOX_GROUPS for n in names])
        names, pred, target, verr, gerr = names[keep], pred[keep], target[keep], verr[keep], gerr[keep]
    return names, pred, target, verr, gerr


def backends() -> list:
    """"cpu", plus "cuda" when a GPU or the CUDA simulator is available."""
    out = ["cpu"]
    try:
        from numba import cuda

        if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or cuda.is_available():
            out.append("cuda")
    except Exception:  # numba-cuda not installed or no driver
        pass
    return out


def run(losses=None, dtypes=("float64", "float32"), devices=None, n_random: int = 200, progress=None) -> list:
    rows = []
    for loss in losses or ELEMENTWISE_LOSSES + tuple(BOX_PARAM_SETS) + tuple(CLASSIFICATION_PARAM_SETS) + ("yolo_decode",):
        if loss == "yolo_decode":
            rows += _run_yolo(dtypes, devices, progress)
            continue
        if loss in BOX_PARAM_SETS:
            rows += _run_boxes(loss, dtypes, devices, progress)
            continue
        for params in {**PARAM_SETS, **CLASSIFICATION_PARAM_SETS}[loss]:
            for backend in devices or backends():
                for dtype in dtypes:
                    names, pred, target, errs, got = oracle_errors(loss, params, dtype, backend, n_random)
                    worst_i = int(np.argmax(errs.max(axis=1)))
                    worst = (f"{names[worst_i]}: pred={pred[worst_i]!r}, target={target[worst_i]!r}, "
                             f"ulp(value, d_pred, d_target)={tuple(round(e, 2) for e in errs[worst_i])}")
                    fd = None
                    if dtype == "float64" and backend == "cpu" and loss in PARAM_SETS:
                        fd = fd_errors(loss, params, names, pred, target, got[1], got[2])
                    row = Row(loss, params, backend, dtype, len(pred), float(errs[:, 0].max()),
                              float(errs[:, 1:].max()), worst, fd)
                    rows.append(row)
                    if progress:
                        progress(row)
    return rows


def _run_boxes(loss, dtypes, devices, progress) -> list:
    rows = []
    for params in BOX_PARAM_SETS[loss]:
        for backend in devices or backends():
            for dtype in dtypes:
                names, pred, target, verr, gerr = box_errors(loss, params, dtype, backend)
                worst_i = int(np.argmax(np.maximum(verr / BOX_VALUE_ATOL[dtype], gerr / BOX_GRAD_RTOL[dtype])))
                worst = (f"{names[worst_i]}: pred={pred[worst_i].tolist()}, target={target[worst_i].tolist()}, "
                         f"value abs err {verr[worst_i]:.2g}, gradient rel err {gerr[worst_i]:.2g}")
                row = Row(loss, params, backend, dtype, len(pred), float(verr.max()), float(gerr.max()), worst,
                          boxes=True)
                rows.append(row)
                if progress:
                    progress(row)
    return rows


YOLO_VARIANTS = [{"variant": "v3"}, {"variant": "v4", "scale_xy": 1.2}, {"variant": "scaled"}]
YOLO_MAX_ULP = 8.0  # a box coordinate is a product/sum of up to four correctly rounded results


def yolo_cases(dtype, n: int = 200, seed: int = 0):
    """(t, anchors, grid, cotangent): t from -30 to 30 (float32: clipped to +-80 anyway), anchors
    from 1 to 150, cells 0..79, random cotangents; plus t = 0 and extreme t."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    t = np.concatenate([rng.normal(0, 3, (n, 4)), [[0.0] * 4, [30.0, -30.0, 5.0, -5.0]]])
    anchors = np.exp(rng.uniform(0, 5, (len(t), 2)))
    grid = rng.integers(0, 80, (len(t), 2)).astype(float)
    ct = rng.normal(size=t.shape)
    return tuple(a.astype(dt) for a in (t, anchors, grid, ct))


def yolo_errors(params: dict, dtype, backend: str = "cpu"):
    """Per-point maximum ULP errors (boxes, VJP) of yolo_decode against the oracle (stride 8)."""
    import refloss
    from .oracle import ulp_error
    from .oracle.yolo import decode, jacobian_diagonal

    dt = np.dtype(dtype)
    t, anchors, grid, ct = yolo_cases(dt)
    boxes, d_t = refloss.yolo_decode.value_and_grad(t, anchors, grid, stride=8.0, cotangent=ct, dtype=dt,
                                                    device=backend, **params)
    s = params.get("scale_xy", 1.0)
    ev = np.zeros(len(t))
    eg = np.zeros(len(t))
    for i in range(len(t)):
        exact = decode(t[i], anchors[i], grid[i], params["variant"], s, 8.0)
        jac = jacobian_diagonal(t[i], anchors[i], grid[i], params["variant"], s, 8.0)
        ev[i] = max(ulp_error(boxes[i, k], exact[k], dt) for k in range(4))
        eg[i] = max(ulp_error(d_t[i, k], jac[k] * float(ct[i, k]), dt) for k in range(4))
    return t, ev, eg


def yolov1_errors(dtype, n: int = 200, seed: int = 0, backend: str = "cpu"):
    """Per-box maximum ULP errors (value, gradients) of yolov1_box_loss against the oracle."""
    import refloss
    from .oracle import ulp_error
    from .oracle.yolo import yolov1_box_loss

    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, (n, 2)), 10.0 ** rng.uniform(-3, 0, (n, 2))], axis=1).astype(dt)
    t = np.concatenate([rng.uniform(0, 1, (n, 2)), 10.0 ** rng.uniform(-3, 0, (n, 2))], axis=1).astype(dt)
    t[: n // 4, 2:] = (p[: n // 4, 2:] * (1 + rng.uniform(-1e-6, 1e-6, (n // 4, 2)))).astype(dt)  # w ~ w^
    v, (gp, gt) = refloss.yolov1_box_loss.value_and_grad(p, t, dtype=dt, device=backend)
    ev, eg = np.zeros(n), np.zeros(n)
    for i in range(n):
        e, ep, et = yolov1_box_loss(p[i], t[i])
        ev[i] = ulp_error(v[i], e, dt)
        eg[i] = max(max(ulp_error(gp[i, k], ep[k], dt), ulp_error(gt[i, k], et[k], dt)) for k in range(4))
    return p, ev, eg


def _run_yolo(dtypes, devices, progress) -> list:
    rows = []
    for backend in devices or backends():
        for dtype in dtypes:
            p, ev, eg = yolov1_errors(dtype, backend=backend)
            i = int(np.argmax(np.maximum(ev, eg)))
            rows.append(Row("yolov1_box_loss", {}, backend, dtype, len(p), float(ev.max()), float(eg.max()),
                            f"pred={p[i].tolist()}: ulp(value, grad)=({ev[i]:.2f}, {eg[i]:.2f})"))
            if progress:
                progress(rows[-1])
    for params in YOLO_VARIANTS:
        for backend in devices or backends():
            for dtype in dtypes:
                t, ev, eg = yolo_errors(params, dtype, backend)
                i = int(np.argmax(np.maximum(ev, eg)))
                rows.append(Row("yolo_decode", params, backend, dtype, len(t), float(ev.max()), float(eg.max()),
                                f"t={t[i].tolist()}: ulp(box, vjp)=({ev[i]:.2f}, {eg[i]:.2f})"))
                if progress:
                    progress(rows[-1])
    return rows


def format_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "-"


def format_table(rows) -> str:
    head = f"{'loss':<12} {'params':<36} {'backend':<7} {'dtype':<8} {'points':>6} " \
           f"{'ulp value':>9} {'ulp grad':>9} {'fd rel':>9}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.boxes:
            lines.append(f"{r.loss:<12} {format_params(r.params):<36} {r.backend:<7} {r.dtype:<8} {r.points:>6} "
                         f"{r.ulp_value:>9.1e} {r.ulp_grad:>9.1e} {'-':>9}  {'pass' if r.ok else 'FAIL'}")
            continue
        fd = "-" if r.fd_rel is None else f"{r.fd_rel:.1e}"
        lines.append(f"{r.loss:<12} {format_params(r.params):<36} {r.backend:<7} {r.dtype:<8} {r.points:>6} "
                     f"{r.ulp_value:>9.2f} {r.ulp_grad:>9.2f} {fd:>9}  {'pass' if r.ok else 'FAIL'}")
    bad = [r for r in rows if not r.ok]
    lines.append("")
    lines.append(f"bar: values and gradients within {MAX_ULP:g} ULP of the correctly rounded 50-digit result; "
                 f"float64 gradients within {FD_RTOL:g} of extrapolated finite differences away from kinks")
    if any(r.loss == "yolo_decode" for r in rows):
        lines.append(f"yolo_decode, yolov1_box_loss: bar {YOLO_MAX_ULP:g} ULP (yolo_decode: the decoded box as value, "
                     "the VJP as grad)")
    if any(r.loss in CLASSIFICATION_PARAM_SETS for r in rows):
        lines.append(f"classification losses: bar {CLASSIFICATION_MAX_ULP:g} ULP; gradients in ULPs of max(|exact|, "
                     "magnitude of the terms that cancel near sigma(x) = y)")
    if any(r.boxes for r in rows):
        lines.append("box losses: columns are the value's absolute error and the gradient's error relative to the "
                     f"pair's largest component; bar {BOX_VALUE_ATOL['float64']:g} / {BOX_GRAD_RTOL['float64']:g} "
                     f"(float64), {BOX_VALUE_ATOL['float32']:.2g} / {BOX_GRAD_RTOL['float32']:.2g} (float32)")
    for r in bad:
        lines.append(f"FAIL {r.loss} ({format_params(r.params)}, {r.backend}, {r.dtype}): worst at {r.worst}")
    lines.append(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    return "\n".join(lines)
