"""A reference returns one value for one input: ``L(x)`` and ``L.value_and_grad(x)[0]`` agree
bit for bit (NaN equal to NaN), for every loss, parameter set, precision and backend.

The generator prints the value part of ``value_and_grad_<p>`` from the very statements of
``value_<p>``; a separate common-subexpression pass for the gradient kernel would group and
order the value's operations differently and change its last bits."""
import numpy as np
import pytest

import refloss as rl
from refloss._battery import battery
from refloss._reference import REFERENCES

DTYPES = ("float64", "float32")
N_RANDOM = 3000
YOLO_VARIANTS = [{"variant": "v2"}, {"variant": "v3"}, {"variant": "v4", "scale_xy": 1.2}, {"variant": "scaled"}]


def _param_sets(loss: str) -> list:
    return list(REFERENCES[loss].param_sets)


def _random_inputs(loss: str, n: int, seed: int = 11) -> tuple:
    """n random input pairs of the loss's kind: residuals over many scales, logits and soft
    targets, boxes from tiny to huge, overlapping or apart."""
    rng = np.random.default_rng(seed)
    info = getattr(rl, loss).info
    if info.family == "elementwise":
        t = rng.uniform(-5, 5, n)
        x = 10.0 ** rng.uniform(-7, 3, n) * rng.choice([-1.0, 1.0], n)
        x[: n // 20] = 0.0
        return t + x, t
    if info.family == "softmax":  # rows of 5 classes, logits over many scales, soft targets
        x = rng.normal(0, 1, (n, 5)) * 10.0 ** rng.uniform(-4, 3, (n, 1))
        return x, rng.random((n, 5))
    if info.family == "distribution":  # rows of 8 bins, logits over many scales, a target in [0, 7] per row
        x = rng.normal(0, 1, (n, 8)) * 10.0 ** rng.uniform(-4, 3, (n, 1))
        y = np.where(rng.random(n) < 0.3, rng.integers(0, 8, n).astype(float), rng.uniform(0, 7, n))
        return x, y
    if info.family == "rotated":  # rotated boxes (cx, cy, w, h, angle) from tiny to huge, nearby or apart
        scale = 10.0 ** rng.uniform(-3, 4, (n, 1))
        pred = np.column_stack([rng.normal(0, 1, (n, 2)) * scale, np.exp(rng.uniform(-3, 1, (n, 2))) * scale,
                                rng.uniform(-4, 4, n)])
        target = pred + np.column_stack([rng.normal(0, 0.3, (n, 4)) * scale, rng.normal(0, 1, n)])
        target[:, 2:4] = np.abs(target[:, 2:4])
        return pred, target
    if info.family == "classification":
        x = rng.normal(0, 1, n) * 10.0 ** rng.uniform(-4, 2, n)
        y = np.where(rng.random(n) < 0.5, rng.integers(0, 2, n).astype(float), rng.random(n))
        return x, y

    def boxes(centre, size):
        return np.concatenate([centre - size / 2, centre + size / 2], axis=1)

    scale = 10.0 ** rng.uniform(-3, 4, (n, 1))
    centre = rng.normal(0, 1, (n, 2)) * scale
    size = np.exp(rng.uniform(-3, 1, (n, 2))) * scale
    pred = boxes(centre, size)
    near = rng.random((n, 1)) < 0.7  # most pairs overlap, the rest are apart
    shift = np.where(near, rng.normal(0, 0.2, (n, 2)), rng.normal(0, 3, (n, 2))) * scale
    target = boxes(centre + shift, size * np.exp(rng.normal(0, 0.3, (n, 2))))
    if "xywh" in info.layouts:
        pred, target = (np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
                        for b in (pred, target))
    return pred, target


def _inputs(loss: str, n_random: int = N_RANDOM) -> tuple:
    _, fixed, _ = battery(getattr(rl, loss), "all")
    return tuple(np.concatenate([a, b]) for a, b in zip(fixed, _random_inputs(loss, n_random)))


def _differing(a, b) -> int:
    """How many elements differ in their bits (any NaN equals any NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    uint = np.uint64 if a.dtype == np.float64 else np.uint32
    same = (a.view(uint) == b.view(uint)) | (np.isnan(a) & np.isnan(b))
    return int(np.count_nonzero(~same))


def _report(what: str, a, b) -> str:
    a, b = np.ravel(a), np.ravel(b)
    uint = np.uint64 if a.dtype == np.float64 else np.uint32
    bad = np.flatnonzero((a.view(uint) != b.view(uint)) & ~(np.isnan(a) & np.isnan(b)))
    shown = ", ".join(f"{a[i]!r} vs {b[i]!r}" for i in bad[:3])
    return f"{what}: value and value_and_grad differ at {len(bad)} of {a.size} ({shown})"


@pytest.mark.parametrize("loss", rl.ALL_LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_value_equals_value_and_grad_value(loss, dtype):
    fn = getattr(rl, loss)
    inputs = _inputs(loss)
    failures = []
    for params in _param_sets(loss):
        with np.errstate(all="ignore"):
            value = fn(*inputs, dtype=dtype, validate=False, **params)
            value2, _ = fn.value_and_grad(*inputs, dtype=dtype, validate=False, **params)
        if _differing(value, value2):
            failures.append(_report(f"{loss} {params} {dtype}", value, value2))
        for reduction in ("sum", "mean"):  # the reductions too (Focal-EIoU's weighted mean included)
            with np.errstate(all="ignore"):
                r = fn(*inputs, dtype=dtype, validate=False, reduction=reduction, **params)
                r2, _ = fn.value_and_grad(*inputs, dtype=dtype, validate=False, reduction=reduction, **params)
            if _differing(np.asarray(r), np.asarray(r2)):
                failures.append(f"{loss} {params} {dtype} reduction={reduction}: {r!r} vs {r2!r}")
    assert not failures, "\n".join(failures)


def _yolo_inputs(n: int, seed: int = 5) -> tuple:
    rng = np.random.default_rng(seed)
    t = rng.normal(0, 3, (n, 4)) * 10.0 ** rng.uniform(-3, 1, (n, 1))
    t[:8] = [[0.0] * 4, [30.0, -30.0, 5.0, -5.0], [1e-8, -1e-8, 1e-8, -1e-8], [20.0, 20.0, -40.0, 40.0],
             [-0.5, 0.5, -1.0, 1.0], [3.0, -3.0, 0.25, -0.25], [80.0, -80.0, 80.0, -80.0], [1.0] * 4]
    anchors = np.exp(rng.uniform(-3, 6, (n, 2)))
    grid = rng.integers(0, 80, (n, 2)).astype(float)
    return t, anchors, grid


@pytest.mark.parametrize("params", YOLO_VARIANTS, ids=lambda p: p["variant"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_yolo_decode_boxes_equal(params, dtype):
    t, anchors, grid = _yolo_inputs(N_RANDOM)
    failures = []
    for stride in (1.0, 8.0):
        with np.errstate(all="ignore"):
            boxes = rl.yolo_decode(t, anchors, grid, stride=stride, dtype=dtype, validate=False, **params)
            boxes2, _ = rl.yolo_decode.value_and_grad(t, anchors, grid, stride=stride, dtype=dtype, validate=False,
                                                      **params)
        if _differing(boxes, boxes2):
            failures.append(_report(f"yolo_decode {params} stride {stride} {dtype}", boxes, boxes2))
    assert not failures, "\n".join(failures)


# the CUDA simulator runs the kernels as Python, element by element: a few losses, few points
CUDA_LOSSES = ("giou_loss", "ciou_loss", "balanced_l1", "sigmoid_focal_loss", "focal_l1_eiou_loss")


@pytest.mark.parametrize("loss", CUDA_LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_value_equals_value_and_grad_value_cuda(loss, dtype):
    pytest.importorskip("numba.cuda")
    fn = getattr(rl, loss)
    inputs = tuple(a[::7][:150] for a in _inputs(loss, 600))
    failures = []
    for params in _param_sets(loss)[:2]:
        with np.errstate(all="ignore"):
            value = fn(*inputs, dtype=dtype, device="cuda", validate=False, **params)
            value2, _ = fn.value_and_grad(*inputs, dtype=dtype, device="cuda", validate=False, **params)
        if _differing(value, value2):
            failures.append(_report(f"{loss} {params} {dtype} cuda", value, value2))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES)
def test_yolo_decode_boxes_equal_cuda(dtype):
    pytest.importorskip("numba.cuda")
    t, anchors, grid = _yolo_inputs(120)
    failures = []
    for params in YOLO_VARIANTS:
        with np.errstate(all="ignore"):
            boxes = rl.yolo_decode(t, anchors, grid, stride=8.0, dtype=dtype, device="cuda", validate=False, **params)
            boxes2, _ = rl.yolo_decode.value_and_grad(t, anchors, grid, stride=8.0, dtype=dtype, device="cuda",
                                                      validate=False, **params)
        if _differing(boxes, boxes2):
            failures.append(_report(f"yolo_decode {params} {dtype} cuda", boxes, boxes2))
    assert not failures, "\n".join(failures)
