"""What is each rotated-box loss's own (ProbIoU, KLD, GWD on boxes (cx, cy, w, h, angle)): the papers' formulas
written out, torch transcriptions of the matrix definitions, ultralytics' probiou and its variants, angle
periodicity, the w/h swap, symmetries and invariances, the conventions at identical and zero-size boxes,
validation.  Oracle agreement on the rotated battery (float64 and float32, at the box bar) comes from the
generic tests parametrised over the index (tests/test_stored.py, `refloss verify`)."""
import math

import numpy as np
import pytest

import refloss as rl
from refloss.oracle import rotated as oracle

RNG = np.random.default_rng(21)
ROTATED = ("probiou_loss", "kld_loss", "gwd_loss")
PARAMS = {"probiou_loss": [{}, {"mode": "bd"}], "kld_loss": [{}, {"fun": "sqrt"}, {"tau": 2.0}, {"reverse": True}],
          "gwd_loss": [{}, {"fun": "sqrt"}, {"tau": 2.0}]}
CASES = [(n, p) for n in ROTATED for p in PARAMS[n]]


def _boxes(n, spread=2.0):
    return np.column_stack([RNG.normal(0, spread, n), RNG.normal(0, spread, n), np.exp(RNG.uniform(-1, 1, n)),
                            np.exp(RNG.uniform(-1, 1, n)), RNG.uniform(-math.pi, math.pi, n)])


P = _boxes(12)
T = _boxes(12)
T[:6] = P[:6] + RNG.normal(0, 0.3, (6, 5))  # nearby pairs too
T[:, 2:4] = np.abs(T[:, 2:4])


def _grads(name, p, t, **params):
    v, (gp, gt) = getattr(rl, name).value_and_grad(p, t, **params)
    return v, np.concatenate([gp, gt], axis=-1)


def test_rotated_losses_are_listed():
    assert set(ROTATED) <= set(rl.ROTATED_LOSSES) and set(ROTATED) <= set(rl.ALL_LOSSES)
    for name in ROTATED:
        assert getattr(rl, name).info.layouts == ("xywhr", "xywhr")
        assert "(cx, cy, w, h, angle)" in getattr(rl, name).__doc__


# ----------------------------------------------------------------------------- the papers' formulas written out

def test_axis_aligned_boxes_per_axis():
    # at angle 0 every covariance is diagonal: each distance is a sum over the axes, written out here
    p, t = np.array([0.3, -0.2, 2.0, 0.5, 0.0]), np.array([0.0, 0.4, 1.5, 0.8, 0.0])
    dx, dy = 0.3, -0.6
    # ProbIoU: variances w^2/12; B_D = sum over axes of dx^2/(4 (s1 + s2)) + 1/2 ln((s1 + s2)/(2 sqrt(s1 s2)))
    bd = 0.0
    for d, a, b in ((dx, 2.0, 1.5), (dy, 0.5, 0.8)):
        s1, s2 = a * a / 12, b * b / 12
        bd += d * d / (4 * (s1 + s2)) + 0.5 * math.log((s1 + s2) / (2 * math.sqrt(s1 * s2)))
    assert math.isclose(float(rl.probiou_loss(p, t, mode="bd")), bd, rel_tol=1e-14)
    assert math.isclose(float(rl.probiou_loss(p, t)), math.sqrt(1 - math.exp(-bd)), rel_tol=1e-14)
    # KLD: variances w^2/4; KL(N_p || N_t) = sum 1/2 (d^2/st + sp/st - 1 - ln(sp/st))
    kl = 0.0
    for d, a, b in ((dx, 2.0, 1.5), (dy, 0.5, 0.8)):
        sp_, st = a * a / 4, b * b / 4
        kl += 0.5 * (d * d / st + sp_ / st - 1 - math.log(sp_ / st))
    assert math.isclose(float(rl.kld_loss(p, t)), 1 - 1 / (1 + math.log1p(kl)), rel_tol=1e-14)
    assert math.isclose(float(rl.kld_loss(p, t, fun="sqrt", tau=2.0)), 1 - 1 / (2 + math.sqrt(kl)), rel_tol=1e-14)
    # GWD: W^2 = |d|^2 + ((wp - wt)/2)^2 + ((hp - ht)/2)^2 for diagonal covariances
    w2 = dx * dx + dy * dy + ((2.0 - 1.5) / 2) ** 2 + ((0.5 - 0.8) / 2) ** 2
    assert math.isclose(float(rl.gwd_loss(p, t)), 1 - 1 / (1 + math.log1p(w2)), rel_tol=1e-14)
    assert math.isclose(float(rl.gwd_loss(p, t, fun="sqrt")), 1 - 1 / (1 + math.sqrt(w2)), rel_tol=1e-14)


def _torch_cov(b, s):
    import torch

    w, h, a = b[..., 2], b[..., 3], b[..., 4]
    c, si = torch.cos(a), torch.sin(a)
    A = s * w**2 * c**2 + s * h**2 * si**2
    B = s * w**2 * si**2 + s * h**2 * c**2
    C = s * (w**2 - h**2) * si * c
    return torch.stack([torch.stack([A, C], -1), torch.stack([C, B], -1)], -2)


def _torch_distance(name, p, t, params):
    """The papers' matrix definitions, transcribed into torch (float64, autograd)."""
    import torch

    d = (p[..., :2] - t[..., :2]).unsqueeze(-1)
    if name == "probiou_loss":
        s1, s2 = _torch_cov(p, 1 / 12), _torch_cov(t, 1 / 12)
        s = (s1 + s2) / 2
        bd = (d.transpose(-1, -2) @ torch.linalg.inv(s) @ d).squeeze(-1).squeeze(-1) / 8 + 0.5 * torch.log(
            torch.det(s) / torch.sqrt(torch.det(s1) * torch.det(s2)))
        return bd if params.get("mode") == "bd" else torch.sqrt(1 - torch.exp(-bd))
    sp_, st = _torch_cov(p, 0.25), _torch_cov(t, 0.25)
    if name == "kld_loss":
        if params.get("reverse"):  # KL(N_t || N_p)
            sp_, st = st, sp_
        sti = torch.linalg.inv(st)
        dist = 0.5 * ((d.transpose(-1, -2) @ sti @ d).squeeze(-1).squeeze(-1) + torch.diagonal(
            sti @ sp_, dim1=-2, dim2=-1).sum(-1) + torch.log(torch.det(st) / torch.det(sp_))) - 1
    else:
        root = torch.sqrt(torch.diagonal(sp_ @ st, dim1=-2, dim2=-1).sum(-1)
                          + 2 * (p[..., 2] * p[..., 3] / 4) * (t[..., 2] * t[..., 3] / 4))
        dist = (d.squeeze(-1) ** 2).sum(-1) + torch.diagonal(sp_, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(
            st, dim1=-2, dim2=-1).sum(-1) - 2 * root
    f = torch.sqrt(dist) if params.get("fun") == "sqrt" else torch.log1p(dist)
    return 1 - 1 / (params.get("tau", 1.0) + f)


@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_matches_a_torch_transcription_of_the_matrix_definition(name, params):
    torch = pytest.importorskip("torch")
    pt, tt = torch.tensor(P, requires_grad=True), torch.tensor(T, requires_grad=True)
    ref = _torch_distance(name, pt, tt, params)
    ref.sum().backward()
    v, g = _grads(name, P, T, **params)
    np.testing.assert_allclose(v, ref.detach().numpy(), rtol=1e-11, atol=1e-14)
    want = np.concatenate([pt.grad.numpy(), tt.grad.numpy()], axis=1)
    np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-11)  # torch's matrix forms lose digits, not refloss


@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_agrees_with_the_oracle(name, params):
    v, g = _grads(name, P, T, **params)
    for i in range(len(P)):
        ov, op, ot = getattr(oracle, name)(P[i], T[i], **params)
        want = np.array([float(x) for x in op + ot])
        assert abs(v[i] - float(ov)) <= 1e-14 * max(1.0, abs(float(ov)))
        assert np.max(np.abs(g[i] - want)) <= 1e-13 * max(np.abs(want).max(), 1.0)


# ----------------------------------------------------------------------------- ultralytics' probiou

def test_ultralytics_probiou_with_a_negligible_eps_is_the_hellinger_distance():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    pt, tt = torch.tensor(P, requires_grad=True), torch.tensor(T, requires_grad=True)
    ref = 1 - metrics.probiou(pt, tt, eps=1e-300).squeeze(-1)
    ref.sum().backward()
    v, g = _grads("probiou_loss", P, T)
    np.testing.assert_allclose(v, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, np.concatenate([pt.grad.numpy(), tt.grad.numpy()], axis=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("floor,code", [(0.0, "probiou_ultralytics_eps"), (0.01, "probiou_ultralytics_floor")])
def test_ultralytics_variants_reproduce_its_probiou(floor, code):
    # the generated variant kernels (values) are ultralytics' formula: eps placements, clamp, floor (RotatedBboxLoss)
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    from refloss._generated import probiou_loss as gen

    variant = next(v for v in rl.probiou_loss.info.variants if v.code == code)
    fn = getattr(gen, f"variant_{variant.kernel}_f64")
    ref = 1 - metrics.probiou(torch.tensor(P), torch.tensor(T), floor=floor).squeeze(-1)
    for i in range(len(P)):
        assert math.isclose(fn(*P[i], *T[i], 0.0), float(ref[i]), rel_tol=1e-12)
    # identical boxes: ultralytics gives sqrt(2e-7) (clamp and eps), refloss 0
    assert math.isclose(fn(*P[0], *P[0], 0.0), math.sqrt(2e-7), rel_tol=1e-6)
    assert float(rl.probiou_loss(P[0], P[0])) == 0.0


def test_check_loss_names_ultralytics_eps_placement():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    from refloss.testing import check_loss

    report = check_loss(lambda p, t: 1 - metrics.probiou(p, t).squeeze(-1), "probiou_loss", framework="torch")
    assert not report.ok
    assert [c for c, _ in report.diagnoses][0] == "probiou_ultralytics_eps"
    del torch


# ----------------------------------------------------------------------------- symmetries and invariances

@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_angle_period_pi_and_the_swap_of_w_and_h(name, params):
    v, g = _grads(name, P, T, **params)
    for k in (1.0, -3.0):  # angle + k pi
        q = P.copy()
        q[:, 4] += k * math.pi
        v2, g2 = _grads(name, q, T, **params)
        np.testing.assert_allclose(v2, v, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(g2, g, rtol=1e-10, atol=1e-11)
    # (w, h, angle) -> (h, w, angle + pi/2): the same Gaussian; the w and h gradients exchange
    q = P[:, [0, 1, 3, 2, 4]].copy()
    q[:, 4] += math.pi / 2
    v2, g2 = _grads(name, q, T, **params)
    np.testing.assert_allclose(v2, v, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g2[:, [0, 1, 3, 2, 4]], g[:, :5], rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_translation_rotation_and_scale(name, params):
    v = getattr(rl, name)(P, T, **params)
    shift = np.array([1e3, -2e3, 0, 0, 0])
    np.testing.assert_allclose(getattr(rl, name)(P + shift, T + shift, **params), v, rtol=1e-10, atol=1e-12)
    a = 0.7  # turn the whole scene about the origin: centres and angles

    def turn(b):
        out = b.copy()
        out[:, 0] = math.cos(a) * b[:, 0] - math.sin(a) * b[:, 1]
        out[:, 1] = math.sin(a) * b[:, 0] + math.cos(a) * b[:, 1]
        out[:, 4] += a
        return out
    np.testing.assert_allclose(getattr(rl, name)(turn(P), turn(T), **params), v, rtol=1e-12, atol=1e-13)
    k = np.array([3.0, 3.0, 3.0, 3.0, 1.0])
    scaled = getattr(rl, name)(P * k, T * k, **params)
    if name == "gwd_loss":  # W^2 is a squared length: not scale invariant
        assert not np.allclose(scaled, v)
    else:
        np.testing.assert_allclose(scaled, v, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ROTATED)
def test_symmetry_in_pred_and_target(name):
    v = getattr(rl, name)(P, T)
    swapped = getattr(rl, name)(T, P)
    if name == "kld_loss":  # KL(N_p || N_t): the divergence of the prediction from the target
        assert not np.allclose(swapped, v)
        v2, (gp, gt) = rl.kld_loss.value_and_grad(P, T, reverse=True)  # KL(N_t || N_p)
        v3, (gp3, gt3) = rl.kld_loss.value_and_grad(T, P)
        np.testing.assert_allclose(v2, v3, rtol=1e-15)
        np.testing.assert_allclose(np.c_[gp, gt], np.c_[gt3, gp3], rtol=1e-14, atol=1e-16)
    else:
        np.testing.assert_allclose(swapped, v, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- conventions and accuracy

@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_identical_boxes_and_their_swap(name, params):
    v, g = _grads(name, P, P, **params)
    want = 0.0 if name == "probiou_loss" else (params.get("tau", 1.0) - 1) / params.get("tau", 1.0)
    np.testing.assert_allclose(v, want, atol=1e-15)
    assert np.all(g == 0.0)


def test_zero_size_boxes():
    p = np.array([[0.0, 0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 2.0, 1.0, 0.2], [0.0, 0.0, 0.0, 0.0, 0.0]])
    t = np.array([[0.5, 0.1, 2.0, 1.0, 0.0], [0.5, 0.1, 2.0, 0.0, 0.0], [1.0, 0.0, 2.0, 1.0, 0.3]])
    v, g = _grads("probiou_loss", p, t)
    assert np.all(v == 1.0) and np.isnan(g).all()
    assert np.all(rl.probiou_loss(p, t, mode="bd") == np.inf)
    v, g = _grads("kld_loss", p, t)
    assert np.all(v == 1.0) and np.isnan(g).all()
    # GWD: degenerate Gaussians are fine, but a point box has no derivative (F = 0)
    v, g = _grads("gwd_loss", p, t)
    for i in range(3):
        ov, op, ot = oracle.gwd_loss(p[i], t[i])
        assert math.isclose(v[i], float(ov), rel_tol=1e-14)
        want = np.array([float(x) for x in op + ot])
        assert np.isnan(want).all() == np.isnan(g[i]).all()
        if not np.isnan(want).any():
            np.testing.assert_allclose(g[i], want, rtol=1e-13, atol=1e-15)
    assert np.isnan(g[2]).all() and np.isfinite(g[:2]).all()


def test_nearly_identical_and_swapped_boxes_keep_their_digits():
    # distances of O(delta^2): the closed forms are sums of non-negative terms (the matrix forms cancel)
    p = np.array([1e3, -2e3, 3.0, 0.5, 1e3 + 0.25])
    for delta in (1e-5, 1e-9):
        t = p + delta * np.array([1.0, -0.5, 0.7, 0.2, 0.3])
        swap = t[[0, 1, 3, 2, 4]] + np.array([0, 0, 0, 0, math.pi / 2])
        for name, params in CASES:
            for target in (t, swap):
                v, g = _grads(name, p, target, **params)
                ov, op, ot = getattr(oracle, name)(p, target, **params)
                want = np.array([float(x) for x in op + ot])
                assert abs(float(v) - float(ov)) <= 1e-15 * max(abs(float(ov)), 1e-300) + 1e-300 or \
                    abs(float(v) - float(ov)) <= 4e-16 * abs(float(ov)) + 1e-30, (name, params, delta)
                assert np.max(np.abs(g - want)) <= 1e-13 * np.abs(want).max(), (name, params, delta)


@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_float32_within_its_bar(name, params):
    p32, t32 = P.astype(np.float32), T.astype(np.float32)
    v, g = _grads(name, p32, t32, **params)
    assert v.dtype == np.float32 and g.dtype == np.float32
    for i in range(len(P)):
        ov, op, ot = getattr(oracle, name)(p32[i], t32[i], **params)
        want = np.array([float(x) for x in op + ot])
        assert abs(float(v[i]) - float(ov)) <= 4e-7 * max(1.0, abs(float(ov)))
        assert np.max(np.abs(g[i] - want)) <= 5.4e-5 * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("name,params", CASES, ids=repr)
def test_cuda_simulator_equals_cpu(name, params):
    for dtype in (np.float64, np.float32):
        v, (gp, gt) = getattr(rl, name).value_and_grad(P[:4], T[:4], dtype=dtype, **params)
        vc, (gpc, gtc) = getattr(rl, name).value_and_grad(P[:4], T[:4], dtype=dtype, device="cuda", **params)
        tol = 64 * np.finfo(dtype).eps
        np.testing.assert_allclose(vc, v, rtol=tol, atol=tol)
        for a, b in ((gpc, gp), (gtc, gt)):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


# ----------------------------------------------------------------------------- the user's side

def test_validation_and_errors():
    with pytest.raises(ValueError, match=r"sizes must be >= 0 \(boxes are cx, cy, w, h, angle in radians\)"):
        rl.probiou_loss(np.array([0.0, 0, -1, 1, 0]), np.array([0.0, 0, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"last dimension must be 5 \(cx, cy, w, h, angle\)"):
        rl.kld_loss(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="mode"):
        rl.probiou_loss(P, T, mode="hellinger_distance")
    with pytest.raises(ValueError, match="fun"):
        rl.gwd_loss(P, T, fun="log")
    with pytest.raises(ValueError, match="tau"):
        rl.kld_loss(P, T, tau=0.0)


def test_broadcasting_reduction_and_torch_tensors():
    v = rl.gwd_loss(P[:, None, :], T[None, :, :])
    assert v.shape == (12, 12)
    np.testing.assert_allclose(np.diag(v), rl.gwd_loss(P, T), rtol=1e-15)
    assert math.isclose(float(rl.probiou_loss(P, T, reduction="mean")), float(rl.probiou_loss(P, T).mean()),
                        rel_tol=1e-15)
    torch = pytest.importorskip("torch")
    got = rl.kld_loss(torch.tensor(P), torch.tensor(T))
    np.testing.assert_allclose(np.asarray(got), rl.kld_loss(P, T), rtol=1e-15)


def test_check_loss_names_the_reversed_kld():
    pytest.importorskip("torch")
    from refloss.testing import check_loss

    report = check_loss(lambda p, t: _torch_distance("kld_loss", p, t, {"reverse": True}), "kld_loss",
                        framework="torch")
    assert not report.ok and [c for c, _ in report.diagnoses][0] == "kld_reversed"
    assert check_loss(lambda p, t: _torch_distance("kld_loss", p, t, {}), "kld_loss", framework="torch",
                      cases="standard", rtol=1e-6).ok


# one box's sides far below the other's (a probe, 2026-12): ProbIoU's gradient was -inf (the chain rule's N D'/D^2 of
# log1p(N/D), D the product of four sides: D^2 underflowed), KLD's value and gradient NaN (the direction or the form
# not chosen, weighted by 0, overflowed: 0 * inf); the exact values from the oracle, with the digits that a size
# ratio of 1e-120 needs (KLD's det Sigma_p/det Sigma_t - 1 = -1 + ratio^4)
FAR_SIZES = [
    ("probiou_loss", {}, np.float32, [0, 0, 1e-16, 2e-16, 0.3], [0, 0, 1, 1.5, 0]),
    ("probiou_loss", {"mode": "bd"}, np.float32, [0, 0, 1e-16, 2e-16, 0.3], [0, 0, 1, 1.5, 0]),
    ("probiou_loss", {}, np.float32, [0, 0, 1e-8, 1e-8, 0], [0, 0, 1e8, 1e8, 0]),
    ("probiou_loss", {"mode": "bd"}, np.float32, [0, 0, 1e-8, 1e-8, 0], [0, 0, 1e8, 1e8, 0]),
    ("probiou_loss", {}, np.float32, [0, 0, 1e-30, 2e-30, 0.3], [0.5, 0, 1, 1.5, 0]),
    ("probiou_loss", {"mode": "bd"}, np.float32, [0, 0, 1e-30, 2e-30, 0.3], [0, 0, 1, 1.5, 0]),
    ("probiou_loss", {}, np.float64, [0, 0, 1e-120, 2e-120, 0.3], [0, 0, 1, 1.5, 0]),
    ("probiou_loss", {"mode": "bd"}, np.float64, [0, 0, 1e-120, 2e-120, 0.3], [0.5, 0, 1, 1.5, 0]),
    ("probiou_loss", {"mode": "bd"}, np.float64, [0, 0, 1e-250, 2e-250, 0.3], [0, 0, 1, 1.5, 0]),
    ("kld_loss", {}, np.float32, [0, 0, 1e-16, 2e-16, 0.3], [0, 0, 1, 1.5, 0]),
    ("kld_loss", {"reverse": True}, np.float32, [0, 0, 1, 1.5, 0], [0, 0, 1e-16, 2e-16, 0.3]),
    ("kld_loss", {}, np.float32, [0.3, -0.2, 1e-20, 1, 0.4], [0.1, 0.1, 1.5, 1.2, 0.1]),
    ("kld_loss", {}, np.float64, [0, 0, 1e-120, 2e-120, 0.3], [0, 0, 1, 1.5, 0]),
    ("kld_loss", {"fun": "sqrt", "reverse": True}, np.float64, [0, 0, 1, 1.5, 0], [0, 0, 1e-120, 2e-120, 0.3]),
    ("kld_loss", {}, np.float64, [0.3, -0.2, 1e-160, 1, 0.4], [0.1, 0.1, 1.5, 1.2, 0.1]),
    # beyond the float32 kernel's range (D >= 2^64 or a side outside [2^-30, 2^30]: float64 there, 2026-12-07): a
    # target far smaller (d/dw_t -inf), a target side 1e-20 (D beyond float32's range: NaN), boxes of sides below
    # 1e-19 (their squares 0: NaN), a thin target, large boxes
    ("kld_loss", {}, np.float32, [0, 0, 1e8, 1e8, 0.3], [0, 0, 1e-8, 1e-8, 0.1]),
    ("kld_loss", {"fun": "sqrt"}, np.float32, [0, 0, 1, 1, 0.3], [0, 0, 1e-20, 1e-20, 0.1]),
    ("kld_loss", {}, np.float32, [0, 0, 1e-25, 2e-25, 0.3], [0, 0, 1e-30, 1e-30, 0.1]),
    ("kld_loss", {"reverse": True}, np.float32, [0, 0, 1e-30, 1e-30, 0.1], [1e-25, 0, 1e-25, 2e-25, 0.3]),
    ("kld_loss", {}, np.float32, [0, 0, 1, 2, 0.3], [0, 0, 3, 1e-30, 0.1]),
    ("kld_loss", {"tau": 2.0}, np.float32, [1e12, 0, 3e12, 2e12, 0.3], [0, 0, 2e12, 1e12, 0.1]),
    # GWD float32 beyond its kernel's range (a side ratio below 2^-40, the largest side outside [2^-40, 2^60] or
    # W^2 >= 2^100: float64 there, a probe 2026-12-07): a target far smaller (1/(G + F)^2 overflowed: every w, h,
    # angle gradient NaN), a pred far smaller (K a subnormal: 7e-4 off), fun="sqrt", tau = 2, a thin box, a box of
    # sides 1e-40 (subnormal; float32's F underflows to 0 there: its F = 0 branch would give NaN gradients)
    ("gwd_loss", {}, np.float32, [0, 0, 3, 4, 0.3], [0.5, 0.2, 2.5e-20, 4.5e-20, 0.1]),
    ("gwd_loss", {}, np.float32, [0, 0, 3e-22, 4e-22, 0.3], [0.5, 0.2, 2.5, 4.5, 0.1]),
    ("gwd_loss", {"fun": "sqrt"}, np.float32, [0, 0, 3, 4, 0.3], [0.5, 0.2, 2.5e-20, 4.5e-20, 0.1]),
    ("gwd_loss", {"tau": 2.0}, np.float32, [0, 0, 3e-15, 4e-15, 0.3], [0.5, 0.2, 2.5, 4.5, 0.1]),
    ("gwd_loss", {}, np.float32, [0.1, 0, 2, 1e-20, 0.3], [0, 0.2, 1.5, 1.2, 0.1]),
    ("gwd_loss", {}, np.float32, [0, 0, 1e-40, 2e-40, 0.3], [0.5, 0.2, 2.5, 4.5, 0.1]),
    # and float64 (the same probe): K's side differences now over G + F first (no K ~ r^2, no 1/(G + F)^2): a target
    # of side ratio ~1e-160 (NaN gradients before), a pred (d/dh_p 1.4e-6 off relative), ratios ~1e-300
    ("gwd_loss", {}, np.float64, [0, 0, 3, 4, 0.3], [0.5, 0.2, 2.5e-160, 4.5e-160, 0.1]),
    ("gwd_loss", {}, np.float64, [0, 0, 3e-160, 4e-160, 0.3], [0.5, 0.2, 2.5, 4.5, 0.1]),
    ("gwd_loss", {"fun": "sqrt"}, np.float64, [0, 0, 3, 4, 0.3], [0.5, 0.2, 2.5e-300, 4.5e-300, 0.1]),
    ("gwd_loss", {}, np.float64, [0, 0, 3e-300, 4e-300, 0.3], [0.5, 0.2, 2.5, 4.5, 0.1]),
]


@pytest.mark.parametrize("name,params,dtype,p,t", FAR_SIZES, ids=repr)
def test_one_box_far_smaller_than_the_other(name, params, dtype, p, t, monkeypatch):
    monkeypatch.setattr(oracle, "_GUARD_DPS", 700)
    p, t = np.array(p, dtype), np.array(t, dtype)
    v, g = _grads(name, p, t, **params)
    ov, op, ot = getattr(oracle, name)(p, t, **params)
    want = np.array([float(x) for x in op + ot])
    value_bar, grad_bar = (1e-14, 1e-13) if dtype == np.float64 else (5.4e-6, 5.4e-5)
    assert np.isfinite(v) and np.isfinite(g).all(), (v, g)
    assert abs(float(v) - float(ov)) <= value_bar * abs(float(ov)), (float(v), float(ov))
    assert np.max(np.abs(g - want)) <= grad_bar * np.abs(want).max(), (g, want)


# ProbIoU float32, small boxes far apart relative to their size (a probe, 2026-12-07): every length is divided by the
# largest side m, so the gradient carries 1/m times B_D's derivative (~B_D): the size gradients overflowed, NaN
# ("hellinger": 0 * inf, exact 0; "bd": d/dh_p NaN, exact -3.9e35), and the offset's square overflowed beyond ~1e20
# times the sides (value NaN, exact 1); now float64 where B_D >= 2^40 or m is outside [2^-30, 2^30].  An exact
# component beyond float32's range is its infinity.
@pytest.mark.parametrize("params,p,t", [({}, [100, 50, 1e-12, 1e-12, 0.3], [0, 0, 2e-12, 3e-12, 0.1]),
                                        ({}, [1e9, 50, 1e-12, 1e-12, 0.3], [0, 0, 2e-12, 3e-12, 0.1]),
                                        ({"mode": "bd"}, [100, 50, 1e-12, 1e-12, 0.3], [0, 0, 2e-12, 3e-12, 0.1]),
                                        ({"mode": "bd"}, [100, 50, 1e-10, 1e-10, 0.3], [0, 0, 2e-10, 3e-10, 0.1]),
                                        ({}, [3e20, 0, 1, 2, 0.3], [0, 0, 2, 3, 0.1])], ids=repr)
def test_probiou_float32_small_boxes_far_apart(params, p, t, monkeypatch):
    monkeypatch.setattr(oracle, "_GUARD_DPS", 700)
    p, t = np.array(p, np.float32), np.array(t, np.float32)
    with np.errstate(over="ignore"):
        v, g = _grads("probiou_loss", p, t, **params)
        ov, op, ot = oracle.probiou_loss(p, t, **params)
        want = np.array([float(x) for x in op + ot])
        big = np.abs(want) > np.finfo(np.float32).max
    assert abs(float(v) - float(ov)) <= 5.4e-6 * abs(float(ov)), (float(v), float(ov))
    assert np.array_equal(g[big], np.sign(want[big]) * np.inf), (g, want)
    assert np.max(np.abs(g[~big] - want[~big]), initial=0) <= 5.4e-5 * np.abs(want[~big]).max(initial=0), (g, want)



# ProbIoU float32, one box far smaller than the other or thin, B_D below 2^40 (a probe, 2026-12-08): mode "hellinger"'s
# gradient exp(-B_D) dB_D/(2L) lost exp(-B_D) to float32's subnormal range (B_D above ~87) while dB_D ~ 1/side kept the
# product normal: sides 1e-30 against 1 offset by 3.2 (B_D 99), d/dw_p 1.2 % off; offset 3.5 (B_D 105): 0 (exact
# -6.3e-17); sides ~1e-41 (subnormal, 1/side inf): d/dw_p -inf (exact -0.577); two thin boxes of side ratio 2^-80:
# 4.1e-4 of the scale; two similar boxes of sides ~2e-9 at B_D 105: d/dh_t 0 (exact -4.8e-36).  Now float64 where mode
# "hellinger" has B_D >= 2^6 or the smallest side is below 2^-64 times the largest.  The "bd" rows (a subnormal side;
# a side ratio 2^-107) were within the bar before too: the ratio criterion sends them to float64.
@pytest.mark.parametrize("params,p,t", [({}, [0, 0, 1e-30, 2e-30, 0.3], [3.2, 0, 1, 1.5, 0]),
                                        ({}, [0, 0, 1e-30, 2e-30, 0.3], [3.5, 0, 1, 1.5, 0]),
                                        ({}, [0, 0, 1e-41, 2e-41, 0.3], [0, 0, 1, 1.5, 0]),
                                        ({}, [0, 0, 1, 2.0**-80, 0.4], [2, 0, 1.2, 3 * 2.0**-80, 0.2]),
                                        ({}, [9.25 * 2.0**-29, 0.3 * 2.0**-29, 2.0**-29, 1.5 * 2.0**-29, 0],
                                         [0, 0, 1.2 * 2.0**-29, 1.1 * 2.0**-29, 0.1]),
                                        ({"mode": "bd"}, [0, 0, 4e-39, 6e-39, 0.3], [0.2, 0, 1, 1.5, 0]),
                                        ({"mode": "bd"}, [0, 0, 536870.912, 6.3e-33, 1.3], [0, 0, 2.0**29, 1.5 * 2.0**29, 0])],
                         ids=repr)
def test_probiou_float32_one_box_far_smaller_b_d_not_large(params, p, t, monkeypatch):
    monkeypatch.setattr(oracle, "_GUARD_DPS", 700)
    p, t = np.array(p, np.float32), np.array(t, np.float32)
    v, g = _grads("probiou_loss", p, t, **params)
    ov, op, ot = oracle.probiou_loss(p, t, **params)
    want = np.array([float(x) for x in op + ot])
    assert abs(float(v) - float(ov)) <= 5.4e-6 * abs(float(ov)), (float(v), float(ov))
    assert np.max(np.abs(g - want)) <= 5.4e-5 * np.abs(want).max(), (g, want)

# angles far from 0 (a probe, 2026-12-07): sin(phi) was sin(hi) + lo cos(hi), phi = hi + lo the angle difference's
# TwoSum, which drops lo^2/2: 5e-13 of the value at an angle of 1e10 in float64, 1.7e-3 at 1e6 in float32, an OBB
# angle loss of 1.012 > 1 at 1e300; now sin(hi) cos(lo) + cos(hi) sin(lo)
FAR_ANGLES = [(name, dtype, pa, ta) for name in ("probiou_loss", "kld_loss", "gwd_loss", "obb_angle_loss")
              for dtype, pa, ta in ((np.float64, 1e10, 0.1), (np.float64, 2.0**40, 1.2e-4), (np.float64, 1e300, 0.1),
                                    (np.float32, 1e6, 0.03), (np.float32, 3e4, -0.2))]


def _within_the_bars(name, dtype, p, t):
    """The value and every gradient component of one pair within the rotated bars of the oracle's (value: relative;
    gradient: of the largest exact component)."""
    v, g = _grads(name, p, t)
    ov, op, ot = getattr(oracle, name)(p, t)
    want = np.array([float(x) for x in op + ot])
    value_bar, grad_bar = (1e-14, 1e-13) if dtype == np.float64 else (5.4e-6, 5.4e-5)
    assert abs(float(v) - float(ov)) <= value_bar * abs(float(ov)), (float(v), float(ov))
    assert np.max(np.abs(g - want)) <= grad_bar * np.abs(want).max(), (g, want)


@pytest.mark.parametrize("name,dtype,pa,ta", FAR_ANGLES, ids=repr)
def test_angles_far_from_zero(name, dtype, pa, ta):
    p, t = np.array([0.3, 0.2, 2.0, 1.0, pa], dtype), np.array([0.0, 0.0, 1.5, 1.2, ta], dtype)
    _within_the_bars(name, dtype, p, t)


# fun="sqrt" far from the origin (2026-12-07): the chain rule's 1/(2 f (tau + f)^2), f = sqrt(distance), overflowed its
# denominator where f ~ 1e103 (float64; float32 ~ 1e13) and every gradient component was 0; now -[1/(tau + f)^2]
# [(d distance/ds) [1/(2 f)]], each bracket one factor (the pair scaled by s, its angles kept)
# fun="log1p" (the default) far from the origin (a probe, 2026-12-07): the chain rule's (1 + W^2)(tau + f)^2 overflowed
# where W^2 ~ 1e306 (float64; float32 ~1e36) and every gradient component was 0; now -[1/(tau + f)^2] [(dW^2/ds)
# [1/(1 + W^2)]] (the pair scaled by s; float32 beyond W^2 = 2^100 in float64); KLD's D is scale invariant: its
# prediction moved ~1e153 of its sides away instead
@pytest.mark.parametrize("name,dtype,s", [("gwd_loss", np.float64, 1e152), ("gwd_loss", np.float64, 1e100),
                                          ("gwd_loss", np.float32, 1e18), ("gwd_loss", np.float32, 1e14),
                                          ("kld_loss", np.float64, 1e153), ("kld_loss", np.float32, 1e18)])
def test_log1p_normalisation_far_from_the_origin(name, dtype, s, monkeypatch):
    monkeypatch.setattr(oracle, "_GUARD_DPS", 700)
    if name == "gwd_loss":
        p = np.array([1 * s, 2 * s, 3 * s, 4 * s, 0.3], dtype)
        t = np.array([1.5 * s, 2.2 * s, 2.5 * s, 4.5 * s, 0.1], dtype)
    else:
        p, t = np.array([1 * s, 2 * s, 3, 4, 0.3], dtype), np.array([0, 0, 2.5, 4.5, 0.1], dtype)
    _within_the_bars(name, dtype, p, t)


@pytest.mark.parametrize("name", ["gwd_loss", "kld_loss"])
@pytest.mark.parametrize("dtype,s", [(np.float64, 1e103), (np.float64, 1e110), (np.float64, 1e150), (np.float32, 1e13),
                                     (np.float32, 1e17)])
def test_sqrt_normalisation_far_from_the_origin(name, dtype, s, monkeypatch):
    monkeypatch.setattr(oracle, "_GUARD_DPS", 700)
    p = np.array([0.3 * s, 0.2 * s, 2 * s, 1 * s, 0.5], dtype)
    t = np.array([0, 0, 1.5 * s, 1.2 * s, 0.1], dtype)
    v, g = _grads(name, p, t, fun="sqrt")
    ov, op, ot = getattr(oracle, name)(p, t, fun="sqrt")
    want = np.array([float(x) for x in op + ot])
    value_bar, grad_bar = (1e-14, 1e-13) if dtype == np.float64 else (5.4e-6, 5.4e-5)
    assert abs(float(v) - float(ov)) <= value_bar * abs(float(ov)), (float(v), float(ov))
    assert np.max(np.abs(g - want)) <= grad_bar * np.abs(want).max(), (g, want)


# angles far apart (a review, 2026-12-07): the OBB term's 2 phi overflowed where |phi| >= 2^1023 (float32 2^127), and
# pa - ta itself for angles of opposite signs beyond ~1e308 (float32 3e38): value and gradients NaN.  Now a rare branch
# where |pa/2 - ta/2| > 2^1020 (float32 2^124): sin 2 phi = 2 sin phi cos phi from phi/2's TwoSum
FAR_APART_ANGLES = [(dtype, pa, ta) for dtype, big in ((np.float64, 1e308), (np.float32, 3e38))
                    for pa, ta in ((big, 0.2), (0.2, big), (big, -big), (-big, 0.3 * big), (big, -0.7 * big),
                                   (big, 0.5 * big))]


@pytest.mark.parametrize("dtype,pa,ta", FAR_APART_ANGLES, ids=repr)
def test_obb_angle_loss_angles_far_apart(dtype, pa, ta):
    p, t = np.array([0, 0, 2.0, 3.0, pa], dtype), np.array([0.5, 0, 2.5, 3.0, ta], dtype)
    _within_the_bars("obb_angle_loss", dtype, p, t)


# centre offsets far beyond the distance's range (open since note 50, fixed 2026-12-07): GWD's W^2 = |Delta|^2 + ... overflowed where the
# offset is beyond ~1e154 (value NaN: log1p(inf)/inf or inf/inf; every gradient 0); now rare float64 branches where
# W^2 > 2^1023 take it scaled by c^2 = 2^-1200 (offsets as c px - c tx), f = ln(scaled) - 2 ln c or sqrt(scaled)/c, the
# value 1 - 1/(tau + f) (exactly 1 where sqrt(W^2) overflows).  KLD's D (offsets in the sides' units) likewise where
# D > 2^1023 (value NaN and the size gradients NaN before).  The gradient bar's floor is 1/(the larger of the sides
# and the offsets), as the battery's; the CUDA driver (under the simulator) gives the CPU's value and gradients.
def _far_pair(off, unit, axis):
    if axis == "neg":  # centres of opposite signs: px - tx overflows at 1e308
        return np.array([0.9 * off, 0.1 * off, 2.0 * unit, 3.0 * unit, 0.1]), \
            np.array([-0.9 * off, 0.3 * unit, 2.5 * unit, 3.0 * unit, 0.7])
    dx, dy = {"x": (off, 0.0), "y": (0.0, off), "xy": (0.7 * off, -0.6 * off)}[axis]
    return np.array([off, off, 2.0 * unit, 3.0 * unit, 0.1]), np.array([off + dx, off + dy, 2.5 * unit, 3.0 * unit, 0.2])


FAR_OFFSETS = [(name, params, off, unit, axis)
               for name, plist in (("gwd_loss", ({}, {"fun": "sqrt"}, {"tau": 2.0})),
                                   ("kld_loss", ({}, {"fun": "sqrt"}, {"reverse": True})))
               for params in plist
               for off, unit, axis in ((1e155, 1.0, "x"), (1e160, 1e-5, "y"), (1e200, 1e5, "xy"), (1e300, 1.0, "xy"),
                                       (1e303, 1e-5, "x"), (1e308, 1.0, "neg"))]


@pytest.mark.parametrize("name,params,off,unit,axis", FAR_OFFSETS, ids=repr)
def test_centre_offsets_far_apart(name, params, off, unit, axis):
    p, t = _far_pair(off, unit, axis)
    with np.errstate(over="ignore"):
        v, g = _grads(name, p, t, **params)
        vc, (gpc, gtc) = getattr(rl, name).value_and_grad(p, t, device="cuda", **params)
    ov, op, ot = getattr(oracle, name)(p, t, **params)
    want = np.array([float(x) for x in op + ot])
    offset = max(abs(p[0] / 2 - t[0] / 2), abs(p[1] / 2 - t[1] / 2)) * 2
    scale = max(np.abs(want).max(), 1 / max(offset, p[2], p[3], t[2], t[3]))
    assert abs(float(v) - float(ov)) <= 1e-14 * abs(float(ov)), (float(v), float(ov))
    assert np.isfinite(g).all() and np.max(np.abs(g - want)) <= 1e-13 * scale, (g, want)
    tol = 64 * np.finfo(np.float64).eps
    np.testing.assert_allclose(vc, v, rtol=tol, atol=0)
    np.testing.assert_allclose(np.concatenate([gpc, gtc]), g, rtol=0, atol=tol * scale)


# ProbIoU's centre term 3 q/(N + D) holds the squared offset over the largest side m^2: beyond ~2^512 m it overflowed
# and the 0/1 weights of q's two forms gave 0 * inf: B_D NaN, mode 'hellinger' NaN value and gradients, mode 'bd' NaN
# value and size and angle gradients (sides 1e-5 from offsets ~1e150).  Now rare float64 branches where
# max(|dx|, |dy|) > 2^500 m (B_D > 2^1000 there): mode 'hellinger' 1 and gradients 0 (e^-B_D underflows: exact), mode
# 'bd' the centre term scaled by c^2 = 2^-1200, B_D = (T'/c)/c + the log term.  In mode 'bd' B_D, its size and its
# angle derivatives are beyond float64's range at most of these pairs (the exact result rounds to +-inf; the
# offset derivatives are finite): those components must be that infinity.  Float32 (its float64 range branch, kernel
# unchanged) at offsets up to 3e38: right before and after.
PROBIOU_FAR = [(np.float64, mode, off, unit, axis) for mode in ("hellinger", "bd")
               for off, unit, axis in ((1e150, 1e-5, "x"), (1e155, 1.0, "x"), (1e160, 1e-5, "y"), (1e153, 1e-5, "xy"),
                                       (1e200, 1e5, "xy"), (1e300, 1.0, "xy"), (1e303, 1e-5, "x"), (1e308, 1.0, "neg"),
                                       (1.7e308, 1e5, "neg"))] \
    + [(np.float32, mode, off, unit, axis) for mode in ("hellinger", "bd")
       for off, unit, axis in ((1e30, 1e-5, "x"), (1.5e38, 1.0, "neg"))]


@pytest.mark.parametrize("dtype,mode,off,unit,axis", PROBIOU_FAR, ids=repr)
def test_probiou_centre_offsets_far_apart(dtype, mode, off, unit, axis):
    p, t = (x.astype(dtype) for x in _far_pair(off, unit, axis))
    with np.errstate(over="ignore", invalid="ignore"):
        v, g = _grads("probiou_loss", p, t, mode=mode)
        vc, (gpc, gtc) = rl.probiou_loss.value_and_grad(p, t, device="cuda", mode=mode)
        ov, op, ot = oracle.probiou_loss(p.astype(np.float64), t.astype(np.float64), mode=mode)
        want = np.array([float(x) for x in op + ot]).astype(dtype)
        exact = float(ov)
    value_bar, grad_bar = (1e-14, 1e-13) if dtype == np.float64 else (5.4e-6, 5.4e-5)
    if np.isinf(np.float64(exact).astype(dtype)):
        assert v == np.float64(exact).astype(dtype), (v, exact)
    else:
        assert abs(float(v) - exact) <= value_bar * abs(exact), (float(v), exact)
    fin = np.isfinite(want)
    assert (g[~fin] == want[~fin]).all(), (g, want)
    offset = max(abs(float(p[0]) / 2 - float(t[0]) / 2), abs(float(p[1]) / 2 - float(t[1]) / 2)) * 2
    scale = max(np.abs(want[fin].astype(np.float64)).max(initial=0.0),
                1 / max(offset, *(float(x) for x in (p[2], p[3], t[2], t[3]))))
    assert np.isfinite(g[fin]).all() and np.max(np.abs(g[fin] - want[fin]), initial=0.0) <= grad_bar * scale, (g, want)
    tol = 64 * np.finfo(dtype).eps
    if np.isinf(v):
        assert vc == v
    else:
        np.testing.assert_allclose(vc, v, rtol=tol, atol=0)
    gc = np.concatenate([gpc, gtc])
    assert (gc[~fin] == g[~fin]).all(), (gc, g)
    np.testing.assert_allclose(gc[fin], g[fin], rtol=0, atol=tol * scale)


# angles of opposite signs beyond ~9e307 (open since note 50, fixed 2026-12-07): phi = pa - ta overflowed in the Gaussian losses' float64
# kernels, sin(inf): value and gradients NaN.  Now a rare branch where |pa/2 - ta/2| > 2^1020: the whole kernel at the
# angles reduced to (-pi, pi] (atan2 of libm's sine and cosine).  Float32 (its float64 range branch) was right.
FAR_ANGLE_LOSSES = ("probiou_loss", "gwd_loss", "kld_loss")
FAR_ANGLE_PAIRS = [(1e308, -1e308), (-1e308, 0.95e308), (1.7e308, -1.7e308), (1e308, -0.7e308)]


@pytest.mark.parametrize("name,params", [c for c in CASES if c[0] in FAR_ANGLE_LOSSES], ids=repr)
@pytest.mark.parametrize("pa,ta", FAR_ANGLE_PAIRS, ids=repr)
@pytest.mark.parametrize("off,unit", [(0.5, 1.0), (3.0, 1e-3)], ids=repr)
def test_gaussian_losses_angles_of_opposite_signs_far_apart(name, params, pa, ta, off, unit):
    p, t = np.array([0, 0, 2.0 * unit, 3.0 * unit, pa]), np.array([off * unit, 0.2 * unit, 2.5 * unit, 3.0 * unit, ta])
    # (no CUDA simulator here: its kernels run Python's math, whose sin(inf) in the prelude raises, where a device gives
    # NaN and takes the rare branch)
    v, g = _grads(name, p, t, **params)
    ov, op, ot = getattr(oracle, name)(p, t, **params)
    want = np.array([float(x) for x in op + ot])
    assert abs(float(v) - float(ov)) <= 1e-14 * abs(float(ov)), (float(v), float(ov))
    assert np.isfinite(g).all() and np.max(np.abs(g - want)) <= 1e-13 * np.abs(want).max(), (g, want)
