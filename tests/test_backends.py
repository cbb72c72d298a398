"""CUDA kernels (simulator in CI, real GPU with REFLOSS_TEST_REAL_GPU=1) equal the CPU kernels."""
import numpy as np
import pytest

import refloss as rl
from refloss import _verify
from refloss._reference import REFERENCES

pytest.importorskip("numba.cuda")

CASES = [(loss, params, dtype) for loss in rl.ELEMENTWISE_LOSSES for params in REFERENCES[loss].param_sets[:2]
         for dtype in ("float64", "float32")]


def _inputs(dtype, n=64):
    rng = np.random.default_rng(3)
    x = 10.0 ** rng.uniform(-6, 2, n) * rng.choice([-1, 1], n)
    x[:4] = [0.0, 1.0, -1 / 9, 0.5]
    t = rng.uniform(-2, 2, n)
    return (t + x).astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("loss,params,dtype", CASES, ids=repr)
def test_cuda_equals_cpu(loss, params, dtype):
    fn = getattr(rl, loss)
    p, t = _inputs(dtype)
    v_cpu, g_cpu = fn.value_and_grad(p, t, dtype=dtype, **params)
    v_gpu, g_gpu = fn.value_and_grad(p, t, dtype=dtype, device="cuda", **params)
    # the same generated operations; libm (simulator, CPU) and libdevice (GPU) log/log1p may
    # differ by an ULP, and the simulator runs float32 math functions in double precision
    kw = dict(rtol=4 * np.finfo(dtype).eps, atol=1e-300 if dtype == "float64" else 1e-37)
    np.testing.assert_allclose(v_gpu, v_cpu, **kw)
    for a, b in zip(g_gpu, g_cpu):
        np.testing.assert_allclose(a, b, **kw)
    np.testing.assert_allclose(fn(p, t, dtype=dtype, device="cuda", **params), v_cpu, **kw)


def test_cuda_reductions_and_broadcasting():
    p = np.linspace(-2, 2, 12).reshape(3, 4)
    t = np.array([0.1, -0.2, 0.3, 0.0])
    for reduction in ("mean", "sum"):
        v_cpu, (gp_cpu, gt_cpu) = rl.smooth_l1.value_and_grad(p, t, beta=0.5, reduction=reduction)
        v_gpu, (gp_gpu, gt_gpu) = rl.smooth_l1.value_and_grad(p, t, beta=0.5, reduction=reduction, device="cuda")
        assert v_gpu == pytest.approx(v_cpu, rel=1e-15)
        np.testing.assert_allclose(gp_gpu, gp_cpu, rtol=1e-15)
        np.testing.assert_allclose(gt_gpu, gt_cpu, rtol=1e-15)
        assert gt_gpu.shape == t.shape


def test_cuda_device_arrays_stay_on_device():
    from numba import cuda

    p = cuda.to_device(np.array([0.5, -2.0, 0.0]))
    t = cuda.to_device(np.zeros(3))
    v, (gp, gt) = rl.smooth_l1.value_and_grad(p, t, device="cuda")
    from refloss._arrays import is_device_array as _is_device_array

    assert _is_device_array(v) and _is_device_array(gp)
    np.testing.assert_array_equal(v.copy_to_host(), [0.125, 1.5, 0.0])
    np.testing.assert_array_equal(gp.copy_to_host(), [0.5, -1.0, 0.0])


def test_cuda_validation_names_the_index():
    from numba import cuda

    p = cuda.to_device(np.array([0.5, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"pred: must be finite; pred\[1\]"):
        rl.l1(p, cuda.to_device(np.zeros(3)), device="cuda")
    with pytest.raises(ValueError, match="shapes must be equal"):
        rl.l1(p, cuda.to_device(np.zeros(2)), device="cuda")
    with pytest.raises(ValueError, match="target: device arrays must be C-contiguous"):
        rl.l1(p, cuda.to_device(np.zeros(6))[::2], device="cuda")
    with pytest.raises(ValueError, match="all arrays on the device or all on the host, got pred device, target host"):
        rl.l1(p, np.zeros(3), device="cuda")


@pytest.mark.parametrize("on_device", [False, True], ids=["numpy", "device"])
def test_cuda_validation_follows_each_input_rule(on_device):
    """The CUDA path checks what the CPU path checks, with the same messages: target ranges
    (bce: targets in [0, 1]), xyxy boxes and YOLOv1's (x, y, w, h) sizes."""
    from numba import cuda

    put = cuda.to_device if on_device else np.asarray
    logits, targets = np.array([1.0, 2.0, 0.5]), np.array([0.5, 1.5, 0.0])
    with pytest.raises(ValueError, match=r"targets: must lie in \[0, 1\]; targets\[1\] = 1.5"):
        rl.bce_with_logits(put(logits), put(targets), device="cuda")
    xywh = np.array([[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, -0.1, 0.3]])
    ok = np.array([[0.5, 0.5, 0.3, 0.2]] * 2)
    with pytest.raises(ValueError, match=r"pred: sizes must be >= 0 \(boxes are x, y, w, h\); pred\[1\]"):
        rl.yolov1_box_loss(put(xywh), put(ok), device="cuda")
    xyxy = np.array([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"target: boxes must have x2 >= x1 and y2 >= y1; target\[1\]"):
        rl.giou_loss(put(xyxy[:1].repeat(2, 0)), put(xyxy), device="cuda")
    # rotated boxes have 5 coordinates (the device check read them 4 at a time, and named x, y, w, h)
    xywhr = np.array([[0.0, 0.0, 1.0, 2.0, 0.3], [1.0, 1.0, 2.0, 1.0, 0.1], [0.0, 0.0, 1.0, -1.0, 0.0]])
    with pytest.raises(ValueError, match=r"pred: sizes must be >= 0 \(boxes are cx, cy, w, h, angle in radians\); "
                                         r"pred\[2\] = \[0.0, 0.0, 1.0, -1.0, 0.0\]"):
        rl.probiou_loss(put(xywhr), put(np.abs(xywhr)), device="cuda")
    rl.probiou_loss(put(np.abs(xywhr)), put(np.abs(xywhr)), device="cuda")  # valid: no error


def test_cuda_validation_reports_what_the_host_path_reports():
    """The device check (one pass an input for every rule, one copy back for all inputs) names the same
    error as the host path's check, in its order: the first input with an error, and within it non-finite
    before a broken box before a value out of range, each at its first index."""
    from numba import cuda

    def message(fn, *arrays, device):
        with pytest.raises(ValueError) as err:
            fn(*(cuda.to_device(a) if device else a for a in arrays), device="cuda")
        return str(err.value)

    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 2.0, 3.0]])
    bad_box = boxes.copy()
    bad_box[1, 2] = -1.0  # x2 < x1 in row 1
    with_nan = bad_box.copy()
    with_nan[2, 3] = np.nan  # non-finite later in the array: reported first all the same
    targets = np.array([0.5, 1.5, -0.5])  # out of [0, 1] at 1 and 2
    logits = np.array([np.inf, 0.0, 0.0])
    cases = [(rl.giou_loss, boxes, bad_box), (rl.giou_loss, with_nan, bad_box), (rl.giou_loss, bad_box, with_nan),
             (rl.bce_with_logits, logits, targets), (rl.bce_with_logits, np.zeros(3), targets)]
    for fn, *arrays in cases:
        assert message(fn, *arrays, device=True) == message(fn, *arrays, device=False)


def test_box_and_yolov1_losses_on_device_arrays_equal_cpu():
    """Width-4 inputs on the device path: (x, y, w, h) boxes with x > w are valid for YOLOv1
    (they were checked as xyxy before), and box losses keep their shapes."""
    from numba import cuda

    rng = np.random.default_rng(4)
    xywh_p = np.concatenate([rng.uniform(0, 1, (2, 3, 2)), rng.uniform(0.01, 1, (2, 3, 2))], axis=-1)
    xywh_t = np.concatenate([rng.uniform(0, 1, (2, 3, 2)), rng.uniform(0.01, 1, (2, 3, 2))], axis=-1)
    lo = rng.uniform(0, 1, (2, 3, 2))
    xyxy_p = np.concatenate([lo, lo + rng.uniform(0.1, 1, (2, 3, 2))], axis=-1)
    xyxy_t = np.concatenate([lo + 0.05, lo + rng.uniform(0.1, 1, (2, 3, 2))], axis=-1)
    for fn, p, t in ((rl.yolov1_box_loss, xywh_p, xywh_t), (rl.giou_loss, xyxy_p, xyxy_t)):
        v, (gp, gt) = fn.value_and_grad(p, t)
        vd, (gpd, gtd) = fn.value_and_grad(cuda.to_device(p), cuda.to_device(t), device="cuda")
        assert tuple(vd.shape) == (2, 3) and tuple(gpd.shape) == (2, 3, 4)
        np.testing.assert_allclose(vd.copy_to_host(), v, rtol=1e-14)
        np.testing.assert_allclose(gpd.copy_to_host(), gp, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gtd.copy_to_host(), gt, rtol=1e-13, atol=1e-15)


def test_row_losses_on_device_arrays_equal_cpu():
    """The row losses on device arrays: softmax cross-entropy (rows of 80 classes, and of one), DFL (rows of bins
    and one target a row: the inputs' shapes differ by the row axis, which the device path once refused as
    unequal shapes; the simulator's shapes once failed on a negative index). Validation on, every reduction."""
    from numba import cuda

    rng = np.random.default_rng(6)
    for classes in (80, 1):
        z = rng.normal(0, 3, (2, 3, classes))
        y = rng.uniform(size=(2, 3, classes))
        y /= y.sum(-1, keepdims=True)
        v, (gz, gy) = rl.softmax_cross_entropy.value_and_grad(z, y)
        vd, (gzd, gyd) = rl.softmax_cross_entropy.value_and_grad(cuda.to_device(z), cuda.to_device(y), device="cuda")
        assert tuple(vd.shape) == (2, 3) and tuple(gzd.shape) == (2, 3, classes)
        np.testing.assert_allclose(vd.copy_to_host(), v, rtol=4e-16)
        np.testing.assert_allclose(gzd.copy_to_host(), gz, rtol=4e-16, atol=1e-17)
        np.testing.assert_allclose(gyd.copy_to_host(), gy, rtol=4e-16)
    z = rng.normal(0, 3, (5, 17))
    t = rng.uniform(0, 15.99, 5)
    for reduction in ("none", "sum", "mean"):
        v, (gz, gt) = rl.dfl_loss.value_and_grad(z, t, reduction=reduction)
        vd, (gzd, gtd) = rl.dfl_loss.value_and_grad(cuda.to_device(z), cuda.to_device(t), device="cuda",
                                                     reduction=reduction)
        np.testing.assert_allclose(vd.copy_to_host() if reduction == "none" else vd, v, rtol=4e-16)
        np.testing.assert_allclose(gzd.copy_to_host(), gz, rtol=4e-16, atol=1e-17)
        np.testing.assert_allclose(gtd.copy_to_host(), gt, rtol=4e-16, atol=1e-17)
    with pytest.raises(ValueError, match=r"shapes must be equal .* logits \(5, 17\), target \(3,\)"):
        rl.dfl_loss(cuda.to_device(z), cuda.to_device(t[:3]), device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif("os.environ.get('REFLOSS_TEST_REAL_GPU') != '1'")
@pytest.mark.parametrize("loss", _verify.names())
def test_real_gpu_verify_rows_pass(loss):
    """On a real GPU: every row of `refloss verify --device cuda` (run with REFLOSS_TEST_REAL_GPU=1)."""
    rows = _verify.run([loss], devices=["cuda"])
    assert rows and all(r.backend == "cuda" for r in rows)
    assert all(r.ok for r in rows), [(r.loss, r.params, r.dtype, r.worst) for r in rows if not r.ok]


def test_yolo_rows_of_verify_run_on_the_cuda_backend():
    """`refloss verify --device cuda` checks yolo_decode and yolov1_box_loss on the device too
    (here the simulator)."""
    rows = _verify.run(["yolov1_box_loss", "yolo_decode"], dtypes=("float64",), devices=["cuda"])
    assert [(r.loss, r.backend) for r in rows] == [("yolov1_box_loss", "cuda")] + [("yolo_decode", "cuda")] * 3
    assert all(r.ok for r in rows), [r.worst for r in rows if not r.ok]


@pytest.mark.parametrize("loss, params, p, t", [
    # pairs where the float64 kernels take their double-double parts (tests/test_float32_worst.py); on a real GPU
    # this checks that NVVM's FMA contraction leaves Dekker's products exact (they are formed from split halves)
    ("focal_l1_eiou_loss", {"beta": 1.0}, [-16696.490234375, -1682.1939697265625, -11251.564453125, 22920.0859375],
     [-19289.064453125, -2873.81201171875, -6435.67041015625, 26213.15625]),
    ("focal_eiou_loss", {"weight_grad": True}, [-42.36159133911133, 2.0617005825042725, 51.01752853393555,
                                                2.0851142406463623],
     [-16.79824447631836, 2.0382423400878906, 11.604793548583984, 2.115218162536621]),
])
def test_cuda_double_double_parts_equal_cpu(loss, params, p, t):
    fn = getattr(rl, loss)
    P, T = np.array([p, p]), np.array([t, t])
    v_cpu, (gp_cpu, gt_cpu) = fn.value_and_grad(P, T, reduction="none", **params)
    v_gpu, (gp_gpu, gt_gpu) = fn.value_and_grad(P, T, reduction="none", device="cuda", **params)
    np.testing.assert_allclose(v_gpu, v_cpu, rtol=4e-16)
    for a, b in ((gp_gpu, gp_cpu), (gt_gpu, gt_cpu)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=4e-16 * np.max(np.abs(b)))


@pytest.mark.parametrize("beta", [0.3, 1.5])
def test_cuda_qfl_accurate_part_equals_cpu(beta):
    """QFL's float64 soft targets near the optimum (|y - sigma(x)| < T/2, 0 < beta < 2) form D = y - sigma(x) in
    double-double with refloss/_dd_functions.py's exp (its table of 2^(j/64)) and products by an FMA
    (refloss/_fma.py): compiled as device functions on a GPU (numba-cuda), the CPU dispatchers under the simulator.
    The CUDA path agrees with the CPU to float64's rounding (on a real GPU NVVM may contract other products into
    FMAs: a low word's bits, not the result's)."""
    rng = np.random.default_rng(8)
    x = rng.normal(0, 4, 256)
    y = 1 / (1 + np.exp(-x)) * (1 + rng.normal(0, 1, 256) * 10.0 ** rng.uniform(-14, -2, 256))
    y = np.clip(y, 0, 1)
    v_cpu, (gx_cpu, gy_cpu) = rl.qfl_loss.value_and_grad(x, y, beta=beta)
    v_gpu, (gx_gpu, gy_gpu) = rl.qfl_loss.value_and_grad(x, y, beta=beta, device="cuda")
    np.testing.assert_allclose(np.asarray(v_gpu), v_cpu, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(gx_gpu), gx_cpu, rtol=1e-15)
    np.testing.assert_allclose(np.asarray(gy_gpu), gy_cpu, rtol=1e-15)
