"""IoU-family kernels: invariances, finite differences, broadcasting, variants, CUDA simulator,
bad input (the oracle battery: tests/test_oracle.py, every row of the table)."""
import os

import numpy as np
import pytest
from scipy.differentiate import derivative

import refloss as rl
from refloss import _fd, box_cases
from refloss._reference import REFERENCES
from refloss.oracle import oracle


def _generic(n=40, seed=5):
    groups = box_cases.box_cases(np.float64, n_random=n, seed=seed)
    p = np.concatenate([g[1] for g in groups if g[0] == "generic"])
    t = np.concatenate([g[2] for g in groups if g[0] == "generic"])
    return p, t


LOSSES = [getattr(rl, n) for n in rl.BOX_LOSSES + rl.METRICS]
# losses that compare lengths with a length parameter (NWD's C, MPDIoU's image size): not scale invariant
# (their own tests scale the parameter with the boxes)
NOT_SCALE_INVARIANT = {"nwd_loss", "mpdiou_loss"}


def _params(name) -> dict:
    """The loss's first parameter set of the reference table (a required parameter, e.g. MPDIoU's
    image_size, has no default)."""
    return dict(REFERENCES[name].param_sets[0])


def _dyadic(n=40, seed=3):
    """Overlapping boxes on a 2^-8 grid: translations and scalings by powers of two are exact."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 256, (n, 2))
    wh = rng.integers(1, 256, (n, 2))
    off = rng.integers(-64, 64, (n, 2))
    dwh = rng.integers(-32, 32, (n, 2))
    p = np.concatenate([xy, xy + wh], axis=1) / 256.0
    t = np.concatenate([xy + off, xy + off + np.maximum(wh + dwh, 1)], axis=1) / 256.0
    return p, t


@pytest.mark.parametrize("fn", LOSSES, ids=repr)
def test_translation_and_scale_invariance(fn):
    p, t = _dyadic()
    kw = _params(fn.name)
    v, (gp, gt) = fn.value_and_grad(p, t, **kw)
    shift = np.array([3.25, -1.5, 3.25, -1.5])
    v2 = fn(p + shift, t + shift, **kw)
    np.testing.assert_allclose(v2, v, rtol=1e-12, atol=1e-13)
    if fn.name in NOT_SCALE_INVARIANT:
        return
    s = 8.0  # a power of two: scaling is exact
    v3, (gp3, gt3) = fn.value_and_grad(p * s, t * s, **kw)
    np.testing.assert_allclose(v3, v, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gp3, gp / s, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gt3, gt / s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn", LOSSES, ids=repr)
def test_symmetry_in_pred_and_target(fn):
    p, t = _generic()
    kw = _params(fn.name)
    v, (gp, gt) = fn.value_and_grad(p, t, **kw)
    v2, (gp2, gt2) = fn.value_and_grad(t, p, **kw)
    np.testing.assert_allclose(v2, v, rtol=1e-12, atol=1e-14)
    if fn.name not in ("ciou_loss", "ciou"):  # alpha is held constant: its gradient is not symmetric
        np.testing.assert_allclose(gp2, gt, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", rl.BOX_LOSSES)
def test_zero_loss_and_gradient_at_identical_boxes(name):
    p, _ = _generic()
    v, (gp, gt) = getattr(rl, name).value_and_grad(p, p.copy(), **_params(name))
    assert np.all(v == 0), v
    size = np.maximum(p[:, 2] - p[:, 0], p[:, 3] - p[:, 1])[:, None]
    assert np.all(np.abs(gp) * size <= 1e-14) and np.all(np.abs(gt) * size <= 1e-14)  # ~45 eps of 1/size


def _true_derivative(loss, params) -> bool:
    """False for the conventions whose gradient is by design not the derivative of the value
    (CIoU's constant alpha, gate, darknet; Focal-EIoU's constant weight; alpha-CIoU's constant beta; Wise-IoU's detached diagonal and factors): the oracle checks those."""
    if loss in ("ciou", "ciou_loss"):
        return bool(params.get("alpha_grad")) and not params.get("darknet") and params.get("alpha_gate") is None
    if loss == "focal_eiou_loss":
        return bool(params.get("weight_grad"))
    if loss == "alpha_iou_loss":  # alpha-CIoU's beta, a constant unless beta_grad
        return params.get("form") != "ciou" or bool(params.get("beta_grad"))
    if loss == "wiou_loss":  # the paper's detached diagonal and focusing factors
        return bool(params.get("enclosing_grad")) and params.get("version", 1) == 1
    return True


FD_CASES = [(l, p) for l in rl.BOX_LOSSES + rl.METRICS for p in REFERENCES[l].param_sets if _true_derivative(l, p)]
FD_CASES.append(("ciou", {"alpha_grad": True}))


@pytest.mark.parametrize("loss,params", FD_CASES, ids=repr)
def test_gradients_match_finite_differences(loss, params):
    """Every coordinate's gradient vs Richardson-extrapolated central differences
    (away from ties and touching boxes: the generic group has none)."""
    fn = getattr(rl, loss)
    p, t = _generic(24, seed=9)
    _, (gp, gt) = fn.value_and_grad(p, t, **params)
    size = np.maximum(np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0]),
                      np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))
    for which, g in ((0, gp), (1, gt)):
        fd, _ = _fd.gradient(lambda a, b: fn(a, b, **params), (p, t), which, 1e-4 * size)
        scale = np.maximum(np.abs(g).max(axis=1), 1 / size)
        err = np.abs(fd - g) / scale[:, None]
        i, k = np.unravel_index(int(np.argmax(err)), err.shape)
        assert err[i, k] < 1e-6, f"{loss} {params} d/d{('pred', 'target')[which]}[{k}] at {p[i]} {t[i]}: fd {fd[i, k]} vs {g[i, k]}"


def test_pairwise_broadcasting():
    p, t = _generic(12)
    v, (gp, gt) = rl.giou_loss.value_and_grad(p[:, None], t[None, :6])
    assert v.shape == (len(p), 6) and gp.shape == (len(p), 1, 4) and gt.shape == (1, 6, 4)
    for i in (0, 3):
        for j in (0, 5):
            np.testing.assert_allclose(v[i, j], rl.giou_loss(p[i], t[j]), rtol=1e-15)
    full = rl.giou_loss.value_and_grad(np.repeat(p[:, None], 6, 1), np.repeat(t[None, :6], len(p), 0))[1]
    np.testing.assert_allclose(gt[0], full[1].sum(axis=0), rtol=1e-13)


def test_ciou_variants():
    p, t = _generic()
    iou = rl.iou(p, t)
    base = rl.ciou_loss.value_and_grad(p, t)
    exact = rl.ciou_loss.value_and_grad(p, t, alpha_grad=True)
    np.testing.assert_array_equal(exact[0], base[0])  # same value, different gradient
    assert np.abs(exact[1][0] - base[1][0]).max() > 1e-6
    gated = rl.ciou_loss(p, t, alpha_gate=0.5)
    low = iou <= 0.5
    assert low.any() and (~low).any()
    np.testing.assert_allclose(gated[low], rl.diou_loss(p[low], t[low]), rtol=1e-14)
    np.testing.assert_allclose(gated[~low], base[0][~low], rtol=1e-14)
    dark = rl.ciou_loss.value_and_grad(p, t, darknet=True)
    np.testing.assert_array_equal(dark[0], base[0])
    np.testing.assert_allclose(dark[1][1], base[1][1], rtol=1e-14)  # target side keeps the exact dv
    assert np.abs(dark[1][0] - base[1][0]).max() > 1e-6


def test_ciou_is_zero_not_nan_for_identical_boxes_and_finite_at_zero_height():
    b = np.array([[0.0, 0.0, 2.0, 1.0], [1.0, 1.0, 3.0, 1.0]])
    v, (gp, gt) = rl.ciou_loss.value_and_grad(b, b)
    assert v[0] == 0.0 and np.isnan(v[1])  # zero-height identical boxes: zero union -> NaN
    v, (gp, gt) = rl.ciou_loss.value_and_grad(np.array([0.0, 0.0, 2.0, 0.0]), np.array([0.0, 0.0, 2.0, 1.0]))
    assert np.isfinite(v) and np.all(np.isfinite(gp)) and np.all(np.isfinite(gt))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ciou_at_equal_aspect_ratios_is_diou_at_every_scale(dtype):
    """v = 0 where the aspect ratios are equal (identical boxes included): CIoU is DIoU, value and gradients.
    The kernel has one branch (the aspect term's denominators add 1 - [v > 0], not a second body for v = 0),
    so this is the aspect term vanishing, not a branch taken; down to boxes whose w^2 + h^2 underflows (atan2's
    slope is evaluated without it: 0 times it stays 0)."""
    rng = np.random.default_rng(7)
    n = 300
    xy = rng.integers(-20, 20, (n, 2)).astype(float)
    wh = rng.integers(1, 10, (n, 2)).astype(float)
    c = xy + rng.integers(-3, 4, (n, 2))
    p = np.concatenate([xy, xy + wh], 1)
    t = np.concatenate([c, c + rng.choice([0.5, 1.0, 2.0, 4.0], (n, 1)) * wh], 1)  # exactly the same w/h
    t[:30] = p[:30]
    top = 300 if dtype == np.float64 else 40
    for k in (-top, -20, 0, 20, top):
        P, T = (p * 2.0**k).astype(dtype), (t * 2.0**k).astype(dtype)
        v, (gp, gt) = rl.ciou_loss.value_and_grad(P, T)
        w, (hp, ht) = rl.diou_loss.value_and_grad(P, T)
        assert v.dtype == dtype and np.all(np.isfinite(v)) and np.all(v[:30] == 0)
        np.testing.assert_allclose(v, w, rtol=4 * np.finfo(dtype).eps, atol=0)
        scale = np.abs(np.concatenate([hp, ht], 1)).max(1, keepdims=True)
        for g, h in ((gp, hp), (gt, ht)):
            assert np.all(np.abs(g - h) <= 4 * np.finfo(dtype).eps * scale)
    tiny = dtype(1e-160 if dtype == np.float64 else 1e-30)  # w^2 + h^2 underflows; eps keeps the union > 0
    b = np.array([0.0, 0.0, 2.0, 1.0], dtype) * tiny
    v, (gp, gt) = rl.ciou_loss.value_and_grad(b, b, eps=1e-7)
    w, (hp, ht) = rl.diou_loss.value_and_grad(b, b, eps=1e-7)
    assert v == w == 1.0  # IoU = I/(U + eps) with I ~ 1e-320: 0
    np.testing.assert_array_equal(gp, hp)
    np.testing.assert_array_equal(gt, ht)


def test_focal_eiou_mean_normalises_by_the_weights():
    p, t = _generic()
    per = rl.focal_eiou_loss(p, t)
    w = rl.iou(p, t) ** 0.5
    assert rl.focal_eiou_loss(p, t, reduction="mean") == pytest.approx(per.sum() / w.sum(), rel=1e-14)
    np.testing.assert_allclose(per, w * rl.eiou_loss(p, t), rtol=1e-13)
    _, (gp, _) = rl.focal_eiou_loss.value_and_grad(p, t, reduction="mean")
    _, (gp_sum, _) = rl.focal_eiou_loss.value_and_grad(p, t, reduction="sum")
    np.testing.assert_allclose(gp, gp_sum / w.sum(), rtol=1e-14)
    # weight_grad=True: the gradient of sum(w L)/sum(w) with everything differentiated, vs finite differences
    k, h = 3, 1e-7
    f = lambda q: rl.focal_eiou_loss(q, t, reduction="mean", weight_grad=True)  # noqa: E731
    _, (g, _) = rl.focal_eiou_loss.value_and_grad(p, t, reduction="mean", weight_grad=True)
    dp = np.zeros_like(p)
    dp[k, 2] = h
    assert g[k, 2] == pytest.approx((f(p + dp) - f(p - dp)) / (2 * h), rel=1e-6)


def test_box_validation():
    with pytest.raises(ValueError, match=r"pred: boxes must have x2 >= x1 and y2 >= y1; pred\[1\]"):
        rl.giou_loss(np.array([[0.0, 0, 1, 1], [2.0, 0, 1, 1]]), np.zeros((2, 4)) + [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"target: last dimension must be 4 \(x1, y1, x2, y2\), got shape \(2, 3\)"):
        rl.iou_loss(np.zeros((2, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"eps: must satisfy 0 <= eps"):
        rl.diou_loss(np.zeros(4), np.zeros(4), eps=-1.0)
    with pytest.raises(TypeError, match="alpha_grad: must be True or False"):
        rl.ciou_loss(np.zeros(4), np.zeros(4), alpha_grad="yes")
    with pytest.raises(ValueError, match="alpha_gate: must satisfy"):
        rl.ciou_loss(np.zeros(4), np.zeros(4), alpha_gate=1.5)
    v = rl.iou_loss(np.array([2.0, 0, 1, 1]), np.array([0.0, 0, 1, 1]), validate=False)
    assert np.isfinite(v) or np.isnan(v)


@pytest.mark.parametrize("name", ["iou_loss", "giou_loss", "diou_loss", "ciou_loss", "eiou_loss", "log_iou_loss"])
def test_cuda_simulator_equals_cpu(name):
    p, t = _generic(16)
    for dtype in (np.float64, np.float32):
        v, g = getattr(rl, name).value_and_grad(p, t, dtype=dtype)
        vc, gc = getattr(rl, name).value_and_grad(p, t, dtype=dtype, device="cuda")
        tol = 8 * np.finfo(dtype).eps
        np.testing.assert_allclose(vc, v, rtol=tol, atol=tol)
        for a, b in zip(gc, g):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_box_convert_round_trips():
    b = np.array([[1.0, 2.0, 4.0, 8.0]])
    np.testing.assert_array_equal(rl.box_convert(b, "xyxy", "xywh"), [[1, 2, 3, 6]])
    np.testing.assert_array_equal(rl.box_convert(b, "xyxy", "cxcywh"), [[2.5, 5, 3, 6]])
    for fmt in ("xywh", "cxcywh"):
        np.testing.assert_allclose(rl.box_convert(rl.box_convert(b, "xyxy", fmt), fmt, "xyxy"), b)
    with pytest.raises(ValueError, match="in_fmt: must be one of"):
        rl.box_convert(b, "yxyx", "xyxy")


def test_box_convert_to_the_same_format_and_float16_as_torchvision():
    """The same format gives the boxes as they are, a copy (torchvision's clone; the round trip through xyxy
    gave 0.20000000000000004 for 0.2: a probe); float16 is computed in float32 and returned as float16 (float32
    came back), as torchvision returns it."""
    b = np.array([0.1, 0.0, 0.2, 1.0])
    for fmt in ("xyxy", "xywh", "cxcywh"):
        out = rl.box_convert(b, fmt, fmt)
        assert np.array_equal(out, b) and not np.shares_memory(out, b)
    h = b.astype(np.float16)
    out = rl.box_convert(h, "xywh", "xyxy")
    assert out.dtype == np.float16 and np.array_equal(out, rl.box_convert(h.astype(np.float32), "xywh", "xyxy")
                                                      .astype(np.float16))
    assert rl.box_convert(h, "cxcywh", "cxcywh").dtype == np.float16
    assert rl.box_convert(np.array([1, 2, 3, 4]), "xyxy", "xywh").dtype == np.float64


@pytest.mark.parametrize("name", ["iou_loss", "log_iou_loss", "giou_loss", "diou_loss", "eiou_loss", "focal_l1_eiou_loss",
                                  "ciou_loss"])
def test_values_keep_their_relative_accuracy_as_iou_tends_to_1(name):
    """Boxes 1e-9 apart: 1 - IoU is ~1e-9, a difference of areas ~1e9 apart in size.  U - I from
    coordinate differences keeps every digit (the plain U - I lost ~7: relative errors ~5e-7),
    and so does GIoU's C - U from the parts outside the intersection and the gaps."""
    groups = {n: (p, t) for n, p, t in box_cases.box_cases(np.float64, n_random=100)}
    p, t = groups["near_identical"]
    got = getattr(rl, name)(p, t)
    exact = np.array([float(oracle(name)(tuple(a), tuple(b))[0]) for a, b in zip(p, t)])
    assert np.all(exact > 0)
    assert np.max(np.abs(got - exact) / exact) <= 64 * np.finfo(np.float64).eps


def test_focal_l1_eiou_is_focal_l1_of_the_eiou_loss():
    """Focal-EIoU v1: the value is Focal-L1 at x = L_EIoU and the gradient the chain rule, on
    both sides of Focal-L1's branch point x = 1 (disjoint boxes give L_EIoU > 1)."""
    p, t = _generic(30, seed=11)
    far = p + np.array([5.0, 0.0, 5.0, 0.0]) * (p[:, 2:3] - p[:, 0:1])  # moved past the target: L_EIoU > 1
    for beta in (0.5, 0.8, 1.0):
        for q in (p, far):
            e, (ge, _) = rl.eiou_loss.value_and_grad(q, t)
            v, (gv, _) = rl.focal_l1_eiou_loss.value_and_grad(q, t, beta=beta)
            f, (df, _) = rl.focal_l1.value_and_grad(e, np.zeros_like(e), beta=beta)
            np.testing.assert_allclose(v, f, rtol=1e-14, atol=1e-300)
            np.testing.assert_allclose(gv, df[:, None] * ge, rtol=1e-12, atol=1e-300)
    assert (rl.eiou_loss(far, t) > 1).all() and (rl.eiou_loss(p, t) < 1).any()
    with pytest.raises(ValueError, match="beta"):
        rl.focal_l1_eiou_loss(p, t, beta=0.2)


def _scale_table() -> dict:
    """docs/accuracy.md's table of the scales 2^k over which each box loss stays scale invariant."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "accuracy.md").read_text()
    table = text.split("<!-- scale-table -->")[1].split("<!-- /scale-table -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        name, f64, f32 = (c.strip() for c in line.strip("|").split("|"))
        rows[name.strip("`")] = {np.float64: tuple(map(int, f64.split(".."))), np.float32: tuple(map(int, f32.split("..")))}
    return rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scale_invariance_holds_over_the_documented_scales(dtype):
    """Every scale-invariant box loss, at the ends of its documented interval of scales 2^k (and
    at k = 0 .. 8 inside it): values and rescaled gradients equal to the unscaled ones, as
    benchmarks/scale_invariance.py measured them."""
    from benchmarks import scale_invariance as si

    rows = _scale_table()
    assert sorted(rows) == sorted(si.losses())  # every scale-invariant box loss has its row
    p, t = (a.astype(dtype) for a in si.pairs(64))
    for name, row in rows.items():
        lo, hi = row[dtype]
        for k in (lo, lo + 1, hi - 1, hi, *range(9)):
            assert si.invariant_at(name, p, t, k), f"{name} {dtype.__name__}: not scale invariant at 2^{k}"


def _rescaled_close(got, want, s, scale, name):
    """got * s within 64,000 eps of scale of want, or both NaN (log_iou_loss's gradient of disjoint boxes)."""
    g = got.astype(np.float64) * s
    ok = (np.abs(g - want) <= 64_000 * np.finfo(got.dtype).eps * scale) | (np.isnan(g) & np.isnan(want)) | (g == want)
    assert np.all(ok), name


@pytest.mark.parametrize("dtype, k", [(np.float64, 600), (np.float64, 1000), (np.float64, -600), (np.float64, -1000),
                                      (np.float32, 70), (np.float32, 120), (np.float32, -70), (np.float32, -100)])
def test_pairs_beyond_the_float_range_of_their_areas_are_computed_scaled(dtype, k):
    """Sides beyond 2^+-512 (float64) or 2^+-64 (float32) overflowed or underflowed the areas: NaN values and
    gradients, or lost digits, with no error.  Such pairs are now computed again scaled by a power of two
    (Loss._rescale): equal to the pairs at scale 1 (values, and gradients times 2^k), on the fast path and the
    general one (strided views, broadcasting, reduction="mean") alike.  (At 2^-120 in float32 a gradient of
    log_iou_loss, 2^120 times its size at scale 1, overflows to inf: the float32 result, rounded.)"""
    from benchmarks import scale_invariance as si

    p, t = (a.astype(dtype) for a in si.pairs(16))
    s = dtype(np.ldexp(1.0, k))
    for name in si.losses():
        fn = getattr(rl, name)
        v0, g0 = fn.value_and_grad(p, t)
        v, g = fn.value_and_grad(p * s, t * s)
        assert v.dtype == dtype and np.all(np.isfinite(v)) == np.all(np.isfinite(v0)), name
        np.testing.assert_allclose(v, v0, rtol=64 * np.finfo(dtype).eps, atol=0, err_msg=name)
        for a, b in zip(g, g0):
            _rescaled_close(a, b, s, np.max(np.abs(np.where(np.isfinite(b), b, 0)), axis=1, keepdims=True), name)
        # the general path (non-contiguous views), broadcasting a target and the mean
        wide = np.repeat(p * s, 2, axis=0)[::2]
        vm, gm = fn.value_and_grad(wide, t[0] * s, reduction="mean")
        vm0, gm0 = fn.value_and_grad(p, t[0], reduction="mean")
        np.testing.assert_allclose(vm, vm0, rtol=64 * np.finfo(dtype).eps, err_msg=name)
        _rescaled_close(gm[1], gm0[1], s, np.max(np.abs(np.where(np.isfinite(gm0[1]), gm0[1], 0))), name)
        np.testing.assert_allclose(fn(p * s, t * s, validate=False), v, rtol=0, err_msg=name)


@pytest.mark.parametrize("dtype, k", [(np.float64, 600), (np.float64, -1000), (np.float32, 70), (np.float32, -100)])
def test_cuda_drivers_rescale_as_the_cpu_path(dtype, k):
    """The CUDA drivers compute a pair beyond 2^+-480 (float32 2^+-56) again scaled, in the element's own
    thread (refloss._info.cuda_rescaled): the same values and gradients as the CPU path (under the
    simulator, bit for bit; before, NaN as the CPU path had been).  Every scale-invariant loss the CPU path
    rescales (NWD and MPDIoU, whose parameters scale with the pair: the test below); with eps > 0 tiny pairs are
    left to eps; reduction="mean" scales after the divisor."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("bit-for-bit agreement holds under the simulator (a GPU contracts to FMAs)")
    from benchmarks import scale_invariance as si
    from refloss._info import cuda_rescaled

    p, t = (a.astype(dtype) for a in si.pairs(4))
    s = dtype(np.ldexp(1.0, k))
    names = [n for n in si.losses() if cuda_rescaled(getattr(rl, n).info.family, getattr(rl, n).info.properties,
                                                             getattr(rl, n).params)]
    assert len(names) >= 15 and "giou_loss" in names and "nwd_loss" not in names
    for name in names:
        fn = getattr(rl, name)
        # where the simulator and the CPU differ already at scale 1 (alpha-IoU's float32 pow, SIoU's float32 expm1,
        # by an ULP: the simulator's float32 libm is float64's, rounded), the CUDA path at scale s is held to its own
        # result at scale 1, as the CPU test above holds the CPU path
        (v1, g1), (vc1, gc1) = fn.value_and_grad(p, t), fn.value_and_grad(p, t, device="cuda")
        same = np.array_equal(v1, vc1) and all(np.array_equal(a, b) for a, b in zip(g1, gc1))
        for kw in ({}, {"reduction": "mean"}):
            v, g = fn.value_and_grad(p * s, t * s, **kw) if same else fn.value_and_grad(p, t, device="cuda", **kw)
            vc, gc = fn.value_and_grad(p * s, t * s, device="cuda", **kw)
            if same:
                np.testing.assert_array_equal(vc, v, err_msg=name)
                for a, b in zip(gc, g):
                    np.testing.assert_array_equal(a, b, err_msg=name)
            else:
                np.testing.assert_allclose(vc, v, rtol=64 * np.finfo(dtype).eps, atol=0, err_msg=name)
                for a, b in zip(gc, g):
                    _rescaled_close(a, b, s, np.max(np.abs(b), axis=-1, keepdims=True), name)
        assert np.array_equal(fn(p * s, t * s, device="cuda"), fn.value_and_grad(p * s, t * s, device="cuda")[0]), name
    if k < 0:
        assert np.array_equal(rl.iou_loss(p * s, t * s, eps=1e-7, device="cuda"), rl.iou_loss(p * s, t * s, eps=1e-7))


@pytest.mark.parametrize("dtype, k", [(np.float64, 600), (np.float64, -600), (np.float64, -1000), (np.float32, 70),
                                      (np.float32, -70), (np.float32, -100)])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # (the simulator's NumPy scalars in its
# threads, where np.errstate does not reach, at pairs left unscaled: on a GPU inf without a warning)
def test_a_parameter_in_the_boxes_units_is_scaled_with_them(dtype, k):
    """NWD's c and MPDIoU's image size are lengths: L(s p, s t; s c) = L(p, t; c), gradients times 1/s.
    Pairs beyond 2^+-480 (float32 2^+-56) are computed again scaled with those parameters (Loss._rescale):
    before, NWD's gradient of tiny boxes was 0 (its distance's squares underflowed; the exact one is about
    1/c) and MPDIoU gave NaN."""
    from benchmarks import scale_invariance as si

    p, t = (a.astype(dtype) for a in si.pairs(16))
    s = dtype(np.ldexp(1.0, k))
    for name, param, base in (("nwd_loss", "c", 12.8), ("nwd_loss", "c", 0.5), ("mpdiou_loss", "image_size", (6.0, 4.0))):
        fn = getattr(rl, name)
        scaled = tuple(float(x * s) for x in base) if isinstance(base, tuple) else float(base * s)
        v0, g0 = fn.value_and_grad(p, t, **{param: base})
        v, g = fn.value_and_grad(p * s, t * s, **{param: scaled})
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g[0])), name
        np.testing.assert_allclose(v, v0, rtol=64 * np.finfo(dtype).eps, atol=0, err_msg=name)
        for a, b in zip(g, g0):
            _rescaled_close(a, b, s, np.max(np.abs(b), axis=1, keepdims=True), name)
    if k < 0:  # NWD with the user's c at tiny boxes: L(s p, s t; c) = L(p, t; c / s)
        v, g = rl.nwd_loss.value_and_grad(p * s, t * s, c=12.8)
        v0, g0 = rl.nwd_loss.value_and_grad(p, t, c=float(12.8 / s))
        np.testing.assert_allclose(v, v0 * 1, rtol=64 * np.finfo(dtype).eps, err_msg="nwd_loss, c fixed")
        assert np.max(np.abs(g[0])) > 1e-3  # (it was 0)
        _rescaled_close(g[0], g0[0], s, np.max(np.abs(g0[0]), axis=1, keepdims=True), "nwd_loss, c fixed")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":  # NWD's CUDA drivers scale c in the element's thread (before:
        # 1.0 at 2^600 with c scaled alike, where the CPU gives 0.0467); MPDIoU's scale the image's w and h and sum
        # their squares there (its kernels take w^2 + h^2, out of range where its pairs are; before, NaN at 2^600
        # with the image scaled alike, where the CPU gives 0.532); a length whose scaling would leave the normal
        # numbers leaves its pairs as computed, on both paths
        far = (1e30, 1e-30) if dtype == np.float32 else (1e300, 1e-300)
        # (not far[1] for MPDIoU: w^2 + h^2 underflows to 0 at scale 1 already, which the simulator's Python floats
        # divide by with an error; on a GPU and the CPU, inf)
        sizes = [(6.0, 4.0), (float(6.0 * s), float(4.0 * s)), (1.0, float(4.0 * s)), (far[0], far[0])]
        # (name, parameters, the parameters at scale 1: the simulator and the CPU agree there first, both dtypes;
        # MPDIoU's at scale 1 with an ordinary image, as an image scaled by 2^-600 has w^2 + h^2 = 0: far[1] above)
        cases = ([("nwd_loss", {"c": c}, {"c": c}) for c in (12.8, 0.5, float(12.8 * s), *far)]
                 + [("mpdiou_loss", {"image_size": size}, {"image_size": (6.0, 4.0)}) for size in sizes])
        for name, kw, kw1 in cases:
            fn = getattr(rl, name)
            (v1, g1), (vc1, gc1) = fn.value_and_grad(p, t, **kw1), fn.value_and_grad(p, t, device="cuda", **kw1)
            assert np.array_equal(v1, vc1) and all(np.array_equal(a, b) for a, b in zip(g1, gc1)), (name, kw1)
            for red in ("none", "mean"):
                v, g = fn.value_and_grad(p * s, t * s, reduction=red, **kw)
                vc, gc = fn.value_and_grad(p * s, t * s, device="cuda", reduction=red, **kw)
                # (NaN where a length left unscaled leaves tiny pairs as computed: MPDIoU's image 1e30 in float32)
                assert np.array_equal(vc, v, equal_nan=True), (name, kw, red)
                assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(gc, g)), (name, kw, red)


def test_what_the_rescaling_leaves_as_it_was():
    """A pair at ordinary scale is untouched (its eps kept); tiny pairs with eps > 0 keep the kernel's
    eps-dominated value; a pair whose parameter in the boxes' units would leave the float range when scaled
    with them stays as computed; a bad input still raises."""
    p = np.array([[0.0, 0.0, 2.0, 2.0], [1e300, 1e300, 3e300, 2e300]])
    t = np.array([[1.0, 1.0, 3.0, 3.0], [2e300, 1e300, 4e300, 3e300]])
    v = rl.giou_loss(p, t, eps=1e-3)
    assert v[0] == rl.giou_loss(p[:1], t[:1], eps=1e-3)[0] != rl.giou_loss(p[:1], t[:1])[0]
    assert abs(v[1] - rl.giou_loss(p[1:] * 1e-300, t[1:] * 1e-300)[0]) < 1e-15  # eps 1e-3 negligible at 1e300
    tiny = np.ldexp(1.0, -1000)
    assert rl.iou_loss(p[:1] * tiny, t[:1] * tiny, eps=1e-7)[0] == 1.0  # eps decides: IoU = I/(U + eps) = 0
    assert rl.iou_loss(p[:1] * tiny, t[:1] * tiny)[0] == rl.iou_loss(p[:1], t[:1])[0]  # eps 0: rescaled
    with np.errstate(all="ignore"):
        assert np.isnan(rl.nwd_loss(p[1:], t[1:])[0]) or rl.nwd_loss(p[1:], t[1:])[0] in (0.0, 1.0)
    sub = np.ldexp(1.0, -1060)  # c / 2^-1063 overflows: left as the kernel computes it (W's squares underflow: 0)
    assert rl.nwd_loss.value_and_grad(p[:1] * sub, t[:1] * sub, c=2.0**100)[1][0].tolist() == [[0.0] * 4]
    with pytest.raises(ValueError, match="finite"):
        rl.giou_loss(np.array([[0.0, 0.0, np.inf, 1.0]]), t[:1])
