"""sigmoid_focal_loss and bce_with_logits: finite differences, stability, torchvision (the oracle:
tests/test_oracle.py, every row of the table)."""
import numpy as np
import pytest
from scipy.differentiate import derivative

import refloss as rl
from refloss._reference import REFERENCES


@pytest.mark.parametrize("loss,params", [(l, p) for l in rl.CLASSIFICATION_LOSSES for p in REFERENCES[l].param_sets],
                         ids=repr)
def test_gradients_match_finite_differences(loss, params):
    if any(k.startswith("detach") and v for k, v in params.items()):
        pytest.skip("a weight held constant: the gradient is not the value's derivative (tests/test_dfl_qfl_vfl.py)")
    fn = getattr(rl, loss)
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, 200)
    y = np.concatenate([rng.uniform(0.02, 0.98, 100), np.round(rng.uniform(0, 1, 100))])
    _, (gx, gy) = fn.value_and_grad(x, y, **params)
    for at, other, g, which in ((x, y, gx, "logits"), (y, x, gy, "targets")):
        def f(z, o):
            return fn(z, o, **params, validate=False) if which == "logits" else fn(o, z, **params, validate=False)

        step = 1e-3 if which == "logits" else 1e-4  # targets stay inside [0, 1]... or just beyond, unvalidated
        res = derivative(f, at, args=(other,), initial_step=step, step_factor=2.0, tolerances=dict(atol=1e-12, rtol=1e-10))
        ok = res.success
        assert ok.mean() > 0.95
        if which == "targets":  # where the loss jumps in the target (Varifocal at q = 0), d/dy is a convention
            h = 1e-6
            ok &= ~(np.abs(f(y, x) - (f(y + h, x) + f(y - h, x)) / 2) > 1e-9 * (1 + np.abs(f(y, x))))
        np.testing.assert_allclose(g[ok], res.df[ok], rtol=1e-7, atol=1e-10, err_msg=f"{loss} {params} d/d{which}")


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_finite_for_extreme_logits(gamma):
    for dtype, big in ((np.float64, 1e4), (np.float32, 80.0)):
        x = np.array([-big, -big / 2, -1.0, 0.0, 1.0, big / 2, big], dtype=dtype)
        for y in (0.0, 1.0, 0.3):
            t = np.full_like(x, y)
            for fn, kw in ((rl.sigmoid_focal_loss, dict(gamma=gamma)), (rl.bce_with_logits, {})):
                v, (gx, gy) = fn.value_and_grad(x, t, dtype=dtype, **kw)
                assert np.all(np.isfinite(v)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gy)), (fn, dtype, y)
    # where the naive formula overflows or takes log(0), refloss does not
    with np.errstate(all="ignore"):
        naive = -np.log(1 / (1 + np.exp(-np.array([-1000.0]))))
    assert not np.isfinite(naive[0])
    assert rl.bce_with_logits(np.array([-1000.0]), np.array([1.0]))[0] == 1000.0


def test_alpha_none_negative_and_gamma_zero():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=50) * 3, rng.uniform(size=50)
    np.testing.assert_array_equal(rl.sigmoid_focal_loss(x, y, alpha=None), rl.sigmoid_focal_loss(x, y, alpha=-1.0))
    np.testing.assert_allclose(rl.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0), rl.bce_with_logits(x, y), rtol=1e-15)
    a = 0.25
    np.testing.assert_allclose(rl.sigmoid_focal_loss(x, y, alpha=a, gamma=0.0),
                               (a * y + (1 - a) * (1 - y)) * rl.bce_with_logits(x, y), rtol=1e-14)


def test_validation():
    with pytest.raises(ValueError, match=r"targets: must lie in \[0, 1\]; targets\[2\]"):
        rl.bce_with_logits(np.zeros(3), np.array([0.0, 1.0, 1.5]))
    with pytest.raises(ValueError, match="gamma: must satisfy 0 <= gamma"):
        rl.sigmoid_focal_loss(np.zeros(3), np.zeros(3), gamma=-1.0)
    with pytest.raises(ValueError, match=r"logits: must be finite; logits\[0\]"):
        rl.sigmoid_focal_loss(np.array([np.inf]), np.zeros(1))


def test_cuda_simulator_equals_cpu():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=32) * 5, rng.uniform(size=32)
    for fn in (rl.bce_with_logits, rl.sigmoid_focal_loss):
        for dtype in (np.float64, np.float32):
            v, g = fn.value_and_grad(x, y, dtype=dtype)
            vc, gc = fn.value_and_grad(x, y, dtype=dtype, device="cuda")
            tol = 8 * np.finfo(dtype).eps
            np.testing.assert_allclose(vc, v, rtol=tol, atol=1e-30)
            for a, b in zip(gc, g):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_agrees_with_torch_and_torchvision():
    torch = pytest.importorskip("torch")
    tvops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(5)
    x = rng.uniform(-4, 4, 300)  # moderate logits: torchvision's 1 - p_t by subtraction keeps ~14 digits here
    y = np.concatenate([rng.uniform(0, 1, 150), np.round(rng.uniform(0, 1, 150))])
    for alpha, gamma in ((0.25, 2.0), (-1.0, 2.0), (0.5, 1.5)):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.tensor(y, requires_grad=True)
        tv = tvops.sigmoid_focal_loss(xt, yt, alpha=alpha, gamma=gamma, reduction="none")
        tv.sum().backward()
        v, (gx, gy) = rl.sigmoid_focal_loss.value_and_grad(x, y, alpha=alpha, gamma=gamma)
        np.testing.assert_allclose(v, tv.detach().numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-10, atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    b = torch.nn.functional.binary_cross_entropy_with_logits(xt, yt, reduction="none")
    b.sum().backward()
    v, (gx, gy) = rl.bce_with_logits.value_and_grad(x, y)
    np.testing.assert_allclose(v, b.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_discrepancy_torchvision_focal_loses_digits_for_confident_predictions():
    """Pinned: torchvision computes 1 - p_t by subtraction, so for a confident correct prediction
    (logit 15, target 1: 1 - p_t = 3e-7) its loss has ~9 correct digits; refloss's sum of
    non-negative terms is correctly rounded to a few ULP (checked against the oracle)."""
    torch = pytest.importorskip("torch")
    tvops = pytest.importorskip("torchvision.ops")
    from refloss.oracle.classification import sigmoid_focal_loss as oracle

    x, y = np.array([15.0]), np.array([1.0])
    exact = float(oracle(15.0, 1.0, alpha=0.25, gamma=2.0)[0])
    ours = rl.sigmoid_focal_loss(x, y)[0]
    theirs = tvops.sigmoid_focal_loss(torch.tensor(x), torch.tensor(y), reduction="none").item()
    assert abs(ours - exact) <= 8 * np.spacing(exact)
    assert abs(theirs - exact) / exact > 1e-10


@pytest.mark.parametrize("loss,target,side", [("sigmoid_focal_loss", 1.0, 1.0), ("varifocal_loss", 0.0, -1.0)])
def test_alpha_above_one_is_refused_and_alpha_one_keeps_the_tail_s_digits(loss, target, side):
    """alpha weights a term that falls below the normal range in the logits' tail (|x| > 87 in float32): times a
    weight above 1 that term's few digits became the result's (float32, alpha 1e3, logit -93.9: 500 ULP; alpha 1e10
    at -109.7: 0 for 2.35e-38), so alpha > 1 is refused, as torchvision refuses it for the focal loss.  At alpha = 1,
    the bound, the tail keeps the ULP8 bar against the 50-digit oracle (value and d/dlogits; sigmoid focal's
    positives, VFL's negatives: the sides alpha weights)."""
    from refloss.oracle import classification as oracle

    fn = getattr(rl, loss)
    x, t = np.zeros(3), np.full(3, target)
    for bad in (1.0 + 2.0**-52, 2.0, 1e30):
        with pytest.raises(ValueError, match=r"alpha: must satisfy .*alpha <= 1, got"):
            fn(x, t, alpha=bad)
    assert np.all(np.isfinite(fn(x, t, alpha=1.0)))
    if loss == "sigmoid_focal_loss":  # None or a negative alpha still turns the weighting off
        np.testing.assert_array_equal(fn(x + 3, t, alpha=-5.0), fn(x + 3, t, alpha=None))
    logits = (side * np.linspace(60.0, 110.0, 41)).astype(np.float32)
    for gamma in (0.0, 0.5, 2.0):
        v, (gx, _) = fn.value_and_grad(logits, np.full_like(logits, target), alpha=1.0, gamma=gamma)
        for i, xi in enumerate(logits):
            exact = getattr(oracle, loss)(float(xi), target, alpha=1.0, gamma=gamma)
            for got, want in ((v[i], exact[0]), (gx[i], exact[1])):
                want = float(want)
                ulp = max(float(np.spacing(np.abs(np.float32(want)))), float(np.finfo(np.float32).smallest_subnormal))
                assert abs(float(got) - want) <= 8 * ulp, (loss, gamma, float(xi), float(got), want)


@pytest.mark.parametrize("dtype, scales", [(np.float64, (1e4, 1e30, 1e300)), (np.float32, (80.0, 1e20, 1e38))])
def test_bce_with_logits_at_logits_of_any_magnitude(dtype, scales):
    """The README's claim: finite and within the bar for logits of any finite magnitude (it said up to 1e4 / 80).
    Against mpmath: L = softplus(x) - x y, dL/dx = sigmoid(x) - y, dL/dy = -x."""
    import mpmath as mp
    with mp.workdps(60):
        _bce_at_logits(dtype, scales, mp)


def _bce_at_logits(dtype, scales, mp):
    for s in scales:
        for x in (s, -s):
            for y in (0.0, 0.25, 1.0):
                xv, yv = dtype(x), dtype(y)
                v, (gx, gy) = rl.bce_with_logits.value_and_grad(np.array([xv]), np.array([yv]))
                X, Y = mp.mpf(float(xv)), mp.mpf(float(yv))
                exact = mp.log1p(mp.exp(-abs(X))) + max(X, 0) - X * Y
                assert np.isfinite(v[0]) and np.isfinite(gx[0]) and np.isfinite(gy[0])
                assert abs(mp.mpf(float(v[0])) - exact) <= 4 * np.finfo(dtype).eps * abs(exact) + np.finfo(dtype).tiny
                assert abs(mp.mpf(float(gx[0])) - (1 / (1 + mp.exp(-X)) - Y)) <= 4 * np.finfo(dtype).eps
                assert float(gy[0]) == -float(xv)
