"""Issue 15's classification losses from Generalized Focal Loss (arXiv 2006.04388) and VarifocalNet
(arXiv 2008.13367): what is each loss's own (the oracle rows, float32, CUDA simulator and finite
differences are the generic tests'): the papers' special cases, the peers' conventions written
here in torch the way each peer writes them, the diagnoses they get, and bad input."""
import numpy as np
import pytest
from mpmath import mp

import refloss as rl
import refloss.testing as rt

QFL, VFL = rl.qfl_loss, rl.varifocal_loss


def _points(n=64, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-8, 8, n)
    y = np.concatenate([rng.uniform(0.01, 0.99, n // 2), np.zeros(n // 4), np.ones(n - n // 2 - n // 4)])
    return x, y


# ------------------------------------------------------------------ QFL


def test_qfl_paper_formula_at_50_digits():
    """eq. 5 of arXiv 2006.04388 typed here, -|y - s|^b ((1 - y) log(1 - s) + y log s), at a few
    points (the oracle module is not used: the formula is the paper's, as printed)."""
    pts = [(0.3, 0.7, 2.0), (-2.5, 0.2, 2.0), (4.0, 0.9, 1.0), (-1.0, 0.0, 3.5), (1.5, 1.0, 2.0)]
    x, y, b = (np.array(c) for c in zip(*pts))
    got = np.concatenate([QFL(x[i:i + 1], y[i:i + 1], beta=b[i]) for i in range(len(pts))])
    with mp.workdps(50):
        for i, (xi, yi, bi) in enumerate(pts):
            s = 1 / (1 + mp.exp(-mp.mpf(xi)))
            want = -abs(yi - s) ** bi * ((1 - mp.mpf(yi)) * mp.log(1 - s) + yi * mp.log(s))
            assert abs(got[i] - float(want)) <= 4e-16 * abs(float(want)), (pts[i], got[i], want)


def test_qfl_hard_targets_are_the_focal_loss_and_beta_0_is_bce():
    """At y in {0, 1} QFL is the sigmoid focal loss with gamma = beta and no alpha_t (value and
    d/dlogits; d/dtarget differs: QFL's weight |y - sigma|^beta depends on y differently);
    beta = 0 is BCE, gradients included."""
    # the same forms in the signed logit, printed alike (refloss/_derive/expo.py: both loops vectorise): the same bits,
    # logits of every size, both dtypes, beta below 1, between 1 and 2, above 2 and far above
    rng = np.random.default_rng(7)
    for dtype in (np.float64, np.float32):
        x = np.concatenate([np.linspace(-30, 30, 61), rng.normal(0, 20, 4000), [0.0, -0.0, 1e-30, -1e-30, 200.0, -200.0,
                                                                                 1e30, -1e30]]).astype(dtype)
        for beta in (0.3, 1.5, 2.0, 3.5, 16.9):
            for y in (0.0, 1.0):
                t = np.full_like(x, y)
                v, (gx, _) = QFL.value_and_grad(x, t, beta=beta)
                fv, (fx, _) = rl.sigmoid_focal_loss.value_and_grad(x, t, alpha=None, gamma=beta)
                assert np.array_equal(v, fv) and np.array_equal(gx, fx), (dtype, beta, y)
    x, y = _points()
    v, g = QFL.value_and_grad(x, y, beta=0.0)
    bv, bg = rl.bce_with_logits.value_and_grad(x, y)
    np.testing.assert_allclose(v, bv, rtol=4e-16, atol=0)
    for a, b in zip(g, bg):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-300)


def test_qfl_is_zero_with_zero_logit_gradient_at_the_optimum():
    """sigma(x) = y: the loss and (beta > 1) d/dlogits vanish; d/dtarget is then -x |D|^beta + 0 = 0 too."""
    x = np.array([0.0, np.log(3.0)])
    y = np.array([0.5, 0.75])  # sigma(0) = 1/2, sigma(log 3) = 3/4 (to rounding)
    v, (gx, gy) = QFL.value_and_grad(x, y)
    assert np.all(np.abs(v) < 1e-30) and np.all(np.abs(gx) < 1e-15) and np.all(np.abs(gy) < 1e-15)


@pytest.mark.parametrize("beta", [1e-3, 1.0, 2.0, 3.5, 100.0])
def test_qfl_target_gradient_keeps_the_sign_of_its_underflow_beyond_2_to_the_100(beta):
    """dL/dy = -s sigma(z)^beta (z + beta softplus(z)/sigma(z)), z = (1 - 2y) x, s = 1 - 2y: at a hard target with
    z <= -2^100 sigma(z)^beta underflows and the exact value is a tiny number of the sign of -s z: -0 at the target 1
    (x >= 2^100), +0 at the target 0 (x <= -2^100), in both dtypes.  The float32 kernel's two terms there are zeros of
    opposite signs, whose sum gave +0 at the target 1 (a review's finding): those logits are a rare branch now,
    d/dtarget the float64 kernel's one product.  Finite logits from 2^100 to float32's largest, the same at 2^100
    exactly."""
    big = np.array([2.0**100, 1e31, 1e35, 3e38, np.finfo(np.float32).max], dtype=np.float64)
    for dtype in (np.float32, np.float64):
        for target, x, negative in ((1.0, big, True), (0.0, -big, False)):
            _, (d_logits, d_target) = rl.qfl_loss.value_and_grad(x.astype(dtype), np.full(x.shape, target, dtype),
                                                                 beta=beta)
            assert np.all(d_target == 0) and np.all(np.signbit(d_target) == negative), (dtype, target, d_target)


@pytest.mark.parametrize("beta", [1e-3, 0.3, 2.0, 3.5, 100.0])
def test_qfl_target_gradient_keeps_its_sign_in_the_deep_tail(beta):
    """The deep tail's d/dtarget, -s e^(beta z) (z + beta) from beta z split error-free (hi + lo) and e^hi as two
    halves, times e^lo: written 1 + lo, it turned the sign of d/dtarget where beta |z| passes 2^54 (lo below -1; e^hi
    is 0 there): float64 at beta 1e-3 gave +0 at the target 1 for 872 of 4001 logits from 2^62 to 2^100, where the
    exact value is a tiny negative number.  Every d/dtarget of the deep tail (logits 2^20 to 2^100, float64 logits
    that float32 cannot hold, so that lo is not 0; and their float32 roundings) has the sign of -s z, zero or not."""
    x = 2.0 ** np.linspace(20, 99.99, 4001)
    for dtype in (np.float64, np.float32):
        for target, logits, negative in ((1.0, x, True), (0.0, -x, False)):
            _, (_, d_target) = rl.qfl_loss.value_and_grad(logits.astype(dtype), np.full(x.shape, target, dtype),
                                                          beta=beta)
            wrong = np.signbit(d_target) != negative
            assert not wrong.any(), (dtype, target, int(wrong.sum()), logits[wrong][:3], d_target[wrong][:3])


def test_qfl_target_gradient_at_beta_0_is_minus_the_logit_with_its_sign():
    """At beta 0, QFL is the cross-entropy and dL/dy = -x exactly (the beta term's factor beta is 0): at logit +-0
    d/dtarget is -x with its zero's sign, at both hard targets and in both dtypes (the torch peer: autograd of
    binary_cross_entropy_with_logits gives -x).  A +0 from the beta term summed into -0 gave +0: float64 at logit
    -0, target 0 and logit +0, target 1 (one product -s (z + beta w), z = -0); float32 at logit +0, target 1 (two
    terms, -0 and +0).  Beside them, ordinary logits: -x to rounding."""
    x = np.array([-0.0, 0.0, -1.5, 2.0, -1e-300, 5e-324])
    for dtype in (np.float64, np.float32):
        for target in (0.0, 1.0):
            logits = x.astype(dtype)
            _, (_, d_target) = rl.qfl_loss.value_and_grad(logits, np.full(x.shape, target, dtype), beta=0.0)
            expected = -logits
            assert np.array_equal(np.signbit(d_target), np.signbit(expected)), (dtype, target, d_target)
            np.testing.assert_allclose(d_target, expected, rtol=4 * np.finfo(dtype).eps, atol=0)
    # beta > 0 keeps the second term as it is: at the target 1, logits where both float32 terms underflow (beta |z|
    # past ~104), the exact d/dtarget is a tiny positive number and the float64 kernel's is positive or +0; a first
    # form of this fix (the second term -0 wherever it was a zero) gave -0 there (a review's finding)
    x = np.array([5.0, 10.0, 19.0])
    for dtype in (np.float64, np.float32):
        for beta in (40.0, 100.0, 1000.0):
            _, (_, d_target) = rl.qfl_loss.value_and_grad(x.astype(dtype), np.ones(3, dtype), beta=beta)
            assert np.all(d_target >= 0) and not np.signbit(d_target).any(), (dtype, beta, d_target)


def test_qfl_at_beta_0_target_gradient_bit_for_bit_as_torch_bce():
    """The peer: at beta 0 QFL is torch's binary_cross_entropy_with_logits, whose autograd d/dtarget is -x; refloss's
    d/dtarget equals it bit for bit (zeros' signs included) at the hard targets, both dtypes."""
    torch = pytest.importorskip("torch")
    x = np.array([-0.0, 0.0, -1.5, 2.0, 1e-30, -7.25])
    for dtype in (np.float64, np.float32):
        for target in (0.0, 1.0):
            y = np.full(x.shape, target, dtype)
            _, (_, d_target) = rl.qfl_loss.value_and_grad(x.astype(dtype), y, beta=0.0)
            tx, ty = torch.tensor(x.astype(dtype)), torch.tensor(y, requires_grad=True)
            torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, reduction="sum").backward()
            peer = ty.grad.numpy()
            assert d_target.tobytes() == peer.tobytes(), (dtype, target, d_target, peer)


def test_sigmoid_focal_target_gradient_keeps_its_sign_where_it_underflows():
    """sigmoid_focal_loss's far tail, d/dy = da F + a s e^(gamma z) (gamma - z): where both terms underflow they were
    a +0 and a -0, summed to +0, and at the target 1 (s = -1) d/dy was +0 where the exact value is negative (alpha
    None and alpha >= 1/2, both dtypes, logits from about 745/gamma, float32 104/gamma).  Now -0 there; at the
    target 0 +0; with alpha_t = 0 (alpha 1 at the target 0, alpha 0 at the target 1) the weight term's own sign."""
    x = 2.0 ** np.linspace(4.5, 99.99, 4001)
    for dtype in (np.float64, np.float32):
        for alpha in (None, 0.25, 0.5, 0.75, 1.0, 0.0):
            for gamma in (0.5, 2.0):
                for target, logits in ((1.0, x), (0.0, -x)):
                    _, (_, d_y) = rl.sigmoid_focal_loss.value_and_grad(logits.astype(dtype), np.full(x.shape, target, dtype),
                                                                       alpha=alpha, gamma=gamma)
                    # the exact sign: -s (gamma - z) > 0 times a, s = 1 - 2 target, plus da F (da = 2 alpha - 1), the
                    # first term dominant unless alpha_t = 0
                    a_t = 1.0 if alpha is None else (alpha if target == 1 else 1 - alpha)
                    negative = target == 1.0 if a_t > 0 else (2 * alpha - 1) < 0
                    wrong = np.signbit(d_y) != negative
                    assert not wrong.any(), (dtype, alpha, gamma, target, int(wrong.sum()), logits[wrong][:3])


def test_qfl_torch_peer():
    """mmdetection's quality_focal_loss as it is written in torch (BCE against the score times
    |score - sigma|^beta, no detach; mmdet's own splits positives and negatives with index
    tensors, the same formula): values and autograd gradients."""
    torch = pytest.importorskip("torch")
    x, y = _points()
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    s = xt.sigmoid()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(xt, yt, reduction="none") * (yt - s).abs().pow(2.0)
    loss.sum().backward()
    v, (gx, gy) = QFL.value_and_grad(x, y)
    np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ VFL


def _vfl_torch(torch, x, q, alpha, gamma, detach):
    """BCE(x, q) times the peers' weight alpha sigma^gamma (1 - label) + q label, label = q > 0
    (ultralytics: not detached; RT-DETR, D-FINE: sigma detached, q an IoU under no_grad)."""
    label = (q > 0).to(x.dtype)
    s = x.sigmoid().detach() if detach else x.sigmoid()
    weight = alpha * s.pow(gamma) * (1 - label) + (q.detach() if detach else q) * label
    return torch.nn.functional.binary_cross_entropy_with_logits(x, q, reduction="none") * weight


@pytest.mark.parametrize("detach", [False, True], ids=["ultralytics", "rtdetr"])
def test_vfl_agrees_with_the_peers_torch_forms(detach):
    """Values and autograd gradients of the peers' form, detach_weight set as each peer does."""
    torch = pytest.importorskip("torch")
    x, q = _points()
    xt = torch.tensor(x, requires_grad=True)
    qt = torch.tensor(q, requires_grad=True)
    loss = _vfl_torch(torch, xt, qt, 0.75, 2.0, detach)
    loss.sum().backward()
    v, (gx, gq) = VFL.value_and_grad(x, q, detach_weight=detach)
    np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gq, qt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_vfl_mmdetection_iou_weighted_false():
    """mmdetection's varifocal_loss written in torch from its docs: BCE(x, q) times
    q [q > 0] + alpha |sigma - q|^gamma [q <= 0] (iou_weighted=True) or [q > 0] + alpha |sigma - q|^gamma [q <= 0]
    (iou_weighted=False), nothing detached; refloss's iou_weighted option, value and autograd gradients."""
    torch = pytest.importorskip("torch")
    x, q = _points()
    for weighted in (True, False):
        xt = torch.tensor(x, requires_grad=True)
        qt = torch.tensor(q, requires_grad=True)
        pos = (qt > 0).to(xt.dtype)
        w = (qt if weighted else 1.0) * pos + 0.75 * (xt.sigmoid() - qt).abs().pow(2.0) * (1 - pos)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt, qt, reduction="none") * w
        loss.sum().backward()
        v, (gx, gq) = VFL.value_and_grad(x, q, iou_weighted=weighted)
        np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
        # d/dq on the negatives: mmdetection's |sigma - q|^gamma also depends on q (-gamma alpha sigma^(gamma-1)
        # times BCE at q = 0); refloss's (and the paper's) weight alpha sigma^gamma does not: compare the positives
        keep = q > 0
        np.testing.assert_allclose(gq[keep], qt.grad.numpy()[keep], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_check_loss_names_mmdetections_vfl_weight(gamma):
    """check_loss on the torch transcription above: only d/dq at q = 0 differs, and by exactly the q-derivative
    of alpha |sigma - q|^gamma (diagnosis vfl_abs_weight); the paper's alpha sigma^gamma agrees."""
    import refloss.testing as rt

    torch = pytest.importorskip("torch")

    def vfl(absolute):
        def loss(x, q):
            pos = (q > 0).to(x.dtype)
            neg = (x.sigmoid() - q).abs() if absolute else x.sigmoid()
            w = q * pos + 0.5 * neg.pow(gamma) * (1 - pos)
            return torch.nn.functional.binary_cross_entropy_with_logits(x, q, reduction="none") * w
        return loss

    r = rt.check_loss(vfl(True), "varifocal_loss", framework="torch", alpha=0.5, gamma=gamma)
    assert not r.ok and r.codes == ["vfl_abs_weight"], str(r)
    assert {f.component for f in r.failures} == {"d/dtarget"} and all(f.inputs[1] == 0 for f in r.failures)
    assert rt.check_loss(vfl(False), "varifocal_loss", framework="torch", alpha=0.5, gamma=gamma).ok


def test_vfl_branches_are_bce_and_the_focal_loss():
    """q > 0: q BCE(x, q) (gradients: weight differentiated, dL/dq = BCE + q dBCE/dq); q = 0: the
    sigmoid focal loss at target 0 with alpha_t = 1 - a = alpha, i.e. a = 1 - alpha."""
    x = np.linspace(-40, 40, 81)
    q = np.full_like(x, 0.6)
    v, (gx, gq) = VFL.value_and_grad(x, q)
    bv, (bx, bq) = rl.bce_with_logits.value_and_grad(x, q)
    np.testing.assert_allclose(v, 0.6 * bv, rtol=4e-16)
    np.testing.assert_allclose(gx, 0.6 * bx, rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(gq, bv + 0.6 * bq, rtol=1e-14, atol=1e-15)
    z = np.zeros_like(x)
    v, (gx, gq) = VFL.value_and_grad(x, z, alpha=0.75, gamma=2.0)
    fv, (fx, _) = rl.sigmoid_focal_loss.value_and_grad(x, z, alpha=0.25, gamma=2.0)
    # (the same forms; sigmoid focal loss's functions printed, VFL's libm's: an ulp or two apart)
    np.testing.assert_allclose(v, fv, rtol=5e-16, atol=0)
    np.testing.assert_allclose(gx, fx, rtol=5e-16, atol=0)


def test_vfl_discontinuous_at_q_0_and_its_target_gradient_there():
    """The limit q -> 0+ is 0, the value at q = 0 alpha sigma^gamma softplus(x); dL/dq at q = 0 is
    -alpha sigma(x)^gamma x (the peers' BCE(x, q) * weight), finite where sigma(x) underflows."""
    x = np.array([-2.0, 0.5, 3.0, -800.0, -1e4])
    v0, (_, gq) = VFL.value_and_grad(x, np.zeros_like(x), gamma=0.5)
    vs = VFL(x, np.full_like(x, 1e-300), gamma=0.5)
    assert np.all(vs < 1e-290) and np.all(v0[:3] > 1e-3)
    with mp.workdps(50):
        for i, xi in enumerate(x):
            want = -0.75 * xi * (1 / (1 + mp.exp(-mp.mpf(xi)))) ** 0.5
            assert abs(gq[i] - float(want)) <= 4e-16 * abs(float(want)), (xi, gq[i], want)
    assert gq[3] > 1e-172  # sigma(-800) underflows, 600 sigma^0.5 = 600 e^-400 does not


def test_vfl_diagnoses_name_the_peers_convention():
    """RT-DETR's detached weight checked as the default (differentiated) gets vfl_weight_detached;
    ultralytics' form checked with detach_weight=True gets vfl_weight_differentiated."""
    torch = pytest.importorskip("torch")

    def peer(detach):
        def impl(x, q):
            return _vfl_torch(torch, x, q, 0.75, 2.0, detach)
        return impl

    r = rt.check_loss(peer(True), "varifocal_loss", framework="torch")
    assert not r.ok and r.codes[0] == "vfl_weight_detached", str(r)
    r = rt.check_loss(peer(False), "varifocal_loss", framework="torch", detach_weight=True)
    assert not r.ok and r.codes[0] == "vfl_weight_differentiated", str(r)
    assert rt.check_loss(peer(False), "varifocal_loss", framework="torch").ok


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("loss,params", [(QFL, {}), (VFL, {})])
def test_target_outside_0_1_and_bad_parameters(loss, params):
    with pytest.raises(ValueError, match=r"^target: "):
        loss(np.array([0.0, 1.0]), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"^target: "):
        loss(np.array([0.0]), np.array([-0.1]))
    bad = {"beta": -1.0} if loss is QFL else {"gamma": -1.0}
    with pytest.raises(ValueError, match=next(iter(bad))):
        loss(np.array([0.0]), np.array([0.5]), **bad)


# ------------------------------------------------------------------ DFL

DFL = rl.dfl_loss


def _dfl_paper(z, y):
    """eq. 6 of arXiv 2006.04388 typed here at 50 digits: -((y_r - y) log S_{y_l} + (y - y_l) log S_{y_r}),
    the bin y_r = n absent at y = n - 1 (its weight y - y_l is 0)."""
    with mp.workdps(50):
        zs = [mp.mpf(float(v)) for v in z]
        lse = mp.log(mp.fsum(mp.exp(v) for v in zs))
        y = mp.mpf(float(y))
        yl = int(mp.floor(y))
        out = -(yl + 1 - y) * (zs[yl] - lse)
        if yl + 1 < len(zs):
            out -= (y - yl) * (zs[yl + 1] - lse)
        return float(out)


def test_dfl_paper_formula_at_50_digits_and_integer_targets():
    """Targets inside a bin pair, at an inner bin (the paper's floor: weight 1 on y_l) and at the last
    bin (the out-of-range y_r has weight 0), rows of 5 and 17 bins (reg_max 4 and 16)."""
    rng = np.random.default_rng(7)
    for nb in (5, 17):
        z = rng.normal(size=(6, nb)) * 3
        y = np.array([0.0, 0.3, 1.0, nb - 1.5, nb - 1 - 1e-9, nb - 1.0])
        got = DFL(z, y)
        for i in range(len(y)):
            want = _dfl_paper(z[i], y[i])
            assert abs(got[i] - want) <= 4e-16 * abs(want), (nb, y[i], got[i], want)


def test_dfl_target_gradient_conventions():
    """dL/dy = z_{y_l} - z_{y_r}: at an integer y < n - 1 the right derivative z_y - z_{y+1} (floor, as
    the peers' autograd), at y = n - 1 the left one z_{n-2} - z_{n-1}; exact (one subtraction)."""
    z = np.array([[0.5, -1.25, 3.0, 2.0, -0.75]] * 4)
    y = np.array([0.0, 2.0, 2.5, 4.0])
    _, (gz, gy) = DFL.value_and_grad(z, y)
    np.testing.assert_array_equal(gy, [0.5 + 1.25, 3.0 - 2.0, 3.0 - 2.0, 2.0 + 0.75])
    # dL/dz = softmax - w: sums to 0, and its two-hot part is the weights
    p = np.exp(z[2] - z[2].max()) / np.exp(z[2] - z[2].max()).sum()
    np.testing.assert_allclose(gz[2], p - [0, 0, 0.5, 0.5, 0], rtol=1e-15, atol=1e-16)


def _ultralytics_dfl(torch, pred, target, clamp):
    """ultralytics' DFLoss as it writes it (reg_max there is the number of bins), per row: the target
    clamped to [0, n_bins - 1 - clamp], then CE to floor(t) and floor(t) + 1 weighted by the distances."""
    nb = pred.shape[-1]
    t = target.clamp(0, nb - 1 - clamp)
    tl = t.long()
    tr = tl + 1
    wl = tr - t
    wr = 1 - wl
    ce = torch.nn.functional.cross_entropy
    return ce(pred, tl, reduction="none") * wl + ce(pred, tr.clamp(max=nb - 1), reduction="none") * wr


def test_dfl_agrees_with_ultralytics_torch_form_and_diagnosis():
    """ultralytics' DFLoss (clamp 0.01) written in torch: values and autograd gradients (logits and
    target) equal dfl_loss(clamp=0.01); checked as the paper's default, check_loss names its clamp."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    z = rng.normal(size=(40, 16)) * 2
    y = np.concatenate([rng.uniform(0, 15, 36), [0.0, 3.0, 14.995, 15.0]])
    zt, yt = torch.tensor(z, requires_grad=True), torch.tensor(y, requires_grad=True)
    loss = _ultralytics_dfl(torch, zt, yt, 0.01)
    loss.sum().backward()
    v, (gz, gy) = DFL.value_and_grad(z, y, clamp=0.01)
    np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(gz, zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-12, atol=1e-15)
    r = rt.check_loss(lambda a, b: _ultralytics_dfl(torch, a, b, 0.01), "dfl_loss", framework="torch")
    assert not r.ok and r.codes[0] == "dfl_clamp_ultralytics", str(r)
    r = rt.check_loss(lambda a, b: _ultralytics_dfl(torch, a, b, 0.1), "dfl_loss", framework="torch")
    assert not r.ok and r.codes[0] == "dfl_clamp_dfine", str(r)


def test_dfl_bad_input():
    z = np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"target: must lie in \[0, 4\]; target\[1\] = 4.5"):
        DFL(z, np.array([1.0, 4.5]))
    with pytest.raises(ValueError, match="target"):
        DFL(z, np.array([-0.5, 1.0]))
    with pytest.raises(ValueError, match="target"):  # with a clamp too: the target is a bin index
        DFL(z, np.array([1.0, 5.0]), clamp=0.01)
    with pytest.raises(ValueError, match="clamp"):
        DFL(z, np.array([1.0, 2.0]), clamp=-0.5)
    # a clamp above n_bins - 1 leaves no target in [0, n_bins - 1 - clamp] (the kernels gave gradients that did not
    # sum to 0; one bin and clamp 0.01: d/dlogits 0.01 for a loss that is 0 everywhere)
    with pytest.raises(ValueError, match=r"clamp: must satisfy clamp is None or 0 <= clamp <= C - 1 with C = 5"):
        DFL.value_and_grad(z, np.array([1.0, 2.0]), clamp=4.5)
    with pytest.raises(ValueError, match=r"with C = 1 \(the rows' last axis\), got 0.01"):
        DFL(np.zeros((3, 1)), np.zeros(3), clamp=0.01)
    assert DFL(z, np.array([1.0, 2.0]), clamp=4.0).shape == (2,)  # n_bins - 1 itself: every target held at 0
    # before any device work (a GPU call checks it too; without one, the clamp's error comes first) and with
    # ragged lists the input's own error, not NumPy's
    with pytest.raises(ValueError, match=r"clamp: must satisfy .* with C = 3"):
        DFL([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [1.0, 1.0], clamp=5, device="cuda")
    with pytest.raises(ValueError, match=r"logits: not a regular array"):
        DFL([[0.0, 0.0, 0.0], [0.0, 0.0]], [1.0, 1.0], clamp=5)
    with pytest.raises(ValueError, match="target"):  # one target per row, not per bin
        DFL(z, np.zeros((2, 5)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dfl_target_held_at_the_clamp_top_against_the_oracle(dtype):
    """A target at or beyond n - 1 - clamp is held there: the weights are clamp and 1 - clamp (one rounding each),
    not 1 - (t_c - (n - 2)) from t_c = n - 1 - clamp rounded, whose half-ulp error the small weight magnified
    (float32: 279 ULP in the value, 246 in d/dlogits at clamp 0.01, n = 18; float64 26 ULP in d/dlogits at clamp
    0.1): value and d/dlogits within the 8-ULP bar of the live oracle (d/dlogits in ULPs of max(S_k, w_k)),
    d/dtarget 0 (the clamp holds it)."""
    from refloss.oracle.classification import dfl_gradient_scale, dfl_loss as oracle
    from refloss.oracle.rounding import ulp_error

    rng = np.random.default_rng(12)
    worst = 0.0
    for nb in (2, 5, 17, 18):
        # (1 + 2 eps: n - 1 - clamp rounds up onto the integer n - 2, the held target's bins one lower than t_c's)
        for clamp in (0.01, 0.1, 0.37, 1.5, 1 + 2 * float(np.finfo(dtype).eps)):
            if clamp >= nb - 1:
                continue
            z = (np.sort(rng.normal(0, 20, (8, nb)), axis=1)).astype(dtype)
            y = np.full(8, nb - 1, dtype)
            y[::2] = dtype(nb - 1) - dtype(clamp)  # at the bound as the float rounds it
            v, (gz, gy) = DFL.value_and_grad(z, y, clamp=clamp)
            c = float(dtype(clamp))  # the kernel's clamp: the float32 kernel computes at float32 parameters
            for i in range(len(y)):
                ev, egz, _ = oracle([float(a) for a in z[i]], float(y[i]), c)
                scale = dfl_gradient_scale([float(a) for a in z[i]], float(y[i]), dtype, c)
                worst = max(worst, ulp_error(v[i], ev, dtype))
                for k in range(nb):
                    spacing = float(np.spacing(dtype(max(abs(float(egz[k])), float(scale[k])))))
                    worst = max(worst, abs(float(gz[i, k]) - float(egz[k])) / spacing)
            # dL/dy 0 where the clamp holds the target (y >= n - 1 - clamp exactly; the bound as the float rounds it
            # may lie below: then the target is its own, and dL/dy its piece's slope, tested apart below)
            from fractions import Fraction
            held = np.array([Fraction(float(t)) >= Fraction(nb - 1) - Fraction(c) for t in y])
            assert (gy[held] == 0).all() and held[1::2].all()
    assert worst <= 8, worst


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dfl_target_gradient_at_the_floats_next_to_the_clamp_bound(dtype):
    """dL/dtarget is 0 exactly where the value holds the target (y >= n - 1 - clamp, decided exactly, the clamp
    at the kernel's precision), the slope of its piece below: the gate decided y < n - 1 - clamp with the bound
    rounded, so a target within half an ulp below it (float32, clamp 0.01, 8 bins: 6.98999977 against 6.99) kept
    its value's slope out (found by `refloss verify` with clamp 0.01: 1.5e7 ULP), and one above it in (where the
    bound rounds down); and with a clamp of half the last index or more both decisions took (n - 1) - y rounded, so a
    target a few ulps below the bound was held (value, d/dlogits and d/dtarget; found by review).  Against the live
    oracle, at the three floats each side of the bound and the bound."""
    from refloss.oracle.classification import dfl_loss as oracle

    rng = np.random.default_rng(4)
    for nb in (2, 3, 4, 5, 8, 17):
        # small clamps, and clamps of half the last index and more (bounds below (n - 1)/2, where (n - 1) - y rounds:
        # a target a few ulps below such a bound was held, n = 4, clamp 2.5, found by review)
        for clamp in (0.01, 0.1, 0.3, (nb - 1) / 2, (nb - 1) / 2 + 0.25, nb - 1.5, nb - 2):
            if not 0 <= clamp <= nb - 1:
                continue
            c = float(dtype(clamp))  # the kernel's clamp
            bound = dtype(nb - 1) - dtype(clamp)
            y = [bound]
            for _ in range(3):
                y = [np.nextafter(y[0], dtype(-1))] + y + [np.nextafter(y[-1], dtype(nb))]
            y = np.clip(np.array(y, dtype), 0, nb - 1)
            z = rng.normal(0, 3, (len(y), nb)).astype(dtype)
            v, (gz, gy) = DFL.value_and_grad(z, y, clamp=clamp)
            for i in range(len(y)):
                ev, egz, want = oracle([float(a) for a in z[i]], float(y[i]), c)
                tol = 8 * float(np.spacing(dtype(abs(float(want)) + 1)))
                assert abs(float(gy[i]) - float(want)) <= tol, (nb, clamp, float(y[i]), gy[i], float(want))
                assert abs(float(v[i]) - float(ev)) <= 8 * float(np.spacing(dtype(abs(float(ev)) + 1))), (nb, clamp, i)
                assert max(abs(float(g) - float(e)) for g, e in zip(gz[i], egz)) <= 8 * float(np.spacing(dtype(1))), \
                    (nb, clamp, i)


def test_cuda_simulator_equals_cpu():
    """The three losses' generated CUDA kernels (numba's simulator in CI) equal the CPU kernels (both
    precisions for DFL, whose row kernel writes its target's gradient through a one-element view)."""
    pytest.importorskip("numba.cuda")
    rng = np.random.default_rng(2)
    x, y = _points(16)
    z, t = rng.normal(size=(6, 5)) * 3, np.array([0.0, 0.5, 2.0, 3.25, 4.0, 1.0])
    for fn, args, params, dtypes in ((QFL, (x, y), {}, ("float32",)), (VFL, (x, y), {"detach_weight": True}, ("float64",)),
                                     (DFL, (z, t), {"clamp": 0.25}, ("float64", "float32"))):
        for dtype in dtypes:
            v, g = fn.value_and_grad(*args, dtype=dtype, **params)
            vc, gc = fn.value_and_grad(*args, dtype=dtype, device="cuda", **params)
            kw = dict(rtol=4 * np.finfo(dtype).eps, atol=1e-300 if dtype == "float64" else 1e-37)
            np.testing.assert_allclose(vc, v, **kw)
            for a, b in zip(gc, g):
                np.testing.assert_allclose(a, b, **kw)


def test_dfl_decode_float16_in_float16_out():
    """float16 logits are computed in float32 and the results returned as float16 (float32 came back: a probe)."""
    z = np.random.default_rng(0).normal(size=(3, 17)).astype(np.float16)
    value, grad = rl.dfl_decode.value_and_grad(z)
    value32, grad32 = rl.dfl_decode.value_and_grad(z.astype(np.float32))
    assert rl.dfl_decode(z).dtype == value.dtype == grad.dtype == np.float16
    assert np.array_equal(value, value32.astype(np.float16)) and np.array_equal(grad, grad32.astype(np.float16))


def test_dfl_decode_and_its_vjp_against_the_oracle():
    """rl.dfl_decode: sum_i i softmax_i over the last axis, and its VJP c S_j (j - y_hat), within a few
    ULP of the 50-digit oracle (refloss/oracle/classification.py), float64 and float32, logits of
    every scale up to +-1e30; the result has the rows' shape and the inputs' float type."""
    from refloss.oracle.classification import dfl_decode as oracle

    rng = np.random.default_rng(11)
    z = rng.normal(size=(12, 17)) * 10.0 ** rng.uniform(-3, 2, (12, 1))
    z[0] = 0.0
    z[1, [0, 16]] = [1e30, -1e30]
    c = rng.uniform(-2, 2, 12)
    for dtype, tol in ((np.float64, 8), (np.float32, 8)):
        v, g = rl.dfl_decode.value_and_grad(z.astype(dtype), c.astype(dtype))
        assert v.dtype == dtype and v.shape == (12,) and g.shape == (12, 17)
        eps = np.finfo(dtype).eps
        for i in range(len(z)):
            ev, eg = oracle(z[i].astype(dtype), float(c.astype(dtype)[i]))
            assert abs(v[i] - float(ev)) <= tol * eps * max(abs(float(ev)), 1.0), (dtype, i, v[i], ev)
            scale = abs(float(c.astype(dtype)[i])) * 17  # the VJP's terms: |c| S_j |j - y_hat|
            assert np.all(np.abs(g[i] - np.array([float(e) for e in eg])) <= tol * eps * scale), (dtype, i)
    np.testing.assert_array_equal(rl.dfl_decode(z), rl.dfl_decode.value_and_grad(z)[0])  # one computation
    with pytest.raises(ValueError, match="logits"):
        rl.dfl_decode(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="cotangent"):
        rl.dfl_decode.value_and_grad(z, np.ones(3))


def _dfl_decode_errors(z, c):
    """(value error, worst gradient error) of rl.dfl_decode.value_and_grad at the row z and cotangent c, in ULPs
    of z's dtype (refloss._measures.ulp_error) against the 50-digit oracle; a gradient component's ULP at the
    magnitude of the terms that cancel in it, |c| S_j sum_i S_i |j - i| (j - y_hat = sum_i S_i (j - i)), and
    at least K 2^emin (below it the e^(z_j - m) are subnormal: absolute errors of that order)."""
    from refloss._measures import ulp_error
    from refloss.oracle.classification import dfl_decode as oracle
    from refloss.oracle.rounding import split

    dtype = z.dtype.type
    v, g = rl.dfl_decode.value_and_grad(z, np.asarray(c, dtype))
    ev, eg = oracle(z, float(c))
    with mp.workdps(30):
        zs = [mp.mpf(float(x)) for x in z]
        e = [mp.exp(x - max(zs)) for x in zs]
        p = [x / mp.fsum(e) for x in e]
        floor = [float(abs(mp.mpf(float(c))) * p[j] * mp.fsum(pi * abs(j - i) for i, pi in enumerate(p)))
                 for j in range(len(z))]
    tiny = len(z) * float(np.finfo(dtype).tiny)
    err_v = float(ulp_error(v, *split(ev), dtype))
    err_g = max(float(ulp_error(g[j], *split(eg[j]), dtype, max(floor[j], tiny))) for j in range(len(z)))
    return err_v, err_g


def test_dfl_decode_gradient_at_the_peak_bin():
    """The peak bin's gradient S_j (j - y_hat) where y_hat ~ j: j - y_hat was formed from y_hat already rounded
    and lost every digit (0 where the exact is -5.5e-17 at [0, 37, 0.5]; float32's bin 6 at [0, .., 3, 25, 3.5, 0]
    0, exact 6.9e-11: a probe); it is L_j - R_j of two sums of non-negative terms now, within the bar."""
    for z in (np.array([0, 37, 0.5]), np.array([0, 0, 0, 0, 0, 3, 25, 3.5, 0], np.float32),
              np.array([0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 0, 0, 0, 0, 0], np.float32), np.array([-3.0, 40, -2.5])):
        _, err_g = _dfl_decode_errors(z, 1.0)
        assert err_g <= 4, (z, err_g)
    g = rl.dfl_decode.value_and_grad(np.array([0, 37, 0.5]))[1]
    assert g[1] != 0 and abs(g[1] / -5.5355694987173997e-17 - 1) < 1e-15


def test_dfl_decode_at_large_logit_gaps():
    """z_i - m is rounded before e^(z_i - m) (its error, |z_i - m| ulp/2, became a relative error of the value:
    130 ULP64 at [0.1, -400.3], 20.6 ULP32 at [0.1, -40.3], a probe); its rounding error is carried now."""
    for z in (np.array([0.1, -400.3]), np.array([-64.47743418482642, -438.1052537646047]),
              np.array([0.1, -40.3], np.float32),
              np.array([45.45115661621094, -1.1344395875930786, 3.83201789], np.float32)):
        err_v, err_g = _dfl_decode_errors(z, 1.0)
        assert err_v <= 4 and err_g <= 4, (z, err_v, err_g)


def test_dfl_decode_within_the_bar_on_random_rows():
    """Values within 4 ULP and gradients within 4 ULP of the terms that cancel (docs/accuracy.md, "dfl_decode"),
    float64 and float32, on rows of 2..33 bins, logits N(0, s) for s in 0.1..30, a third with one bin raised by
    5..60 (peaked), some at s = 400 (gaps beyond the exp's range in float32), random cotangents."""
    rng = np.random.default_rng(5)
    worst = {}
    for trial in range(120):
        k = int(rng.integers(2, 34))
        z = rng.normal(size=k) * 10 ** rng.uniform(-1, np.log10(30))
        if trial % 3 == 0:
            z[int(rng.integers(k))] += rng.uniform(5, 60)
        if trial % 7 == 0:
            z = rng.normal(size=k) * 400
        c = rng.uniform(-2, 2)
        for dtype in (np.float64, np.float32):
            errs = _dfl_decode_errors(z.astype(dtype), dtype(c))
            worst[dtype] = np.maximum(worst.get(dtype, 0), errs)
    for dtype, (err_v, err_g) in worst.items():
        assert err_v <= 4 and err_g <= 4, (dtype, err_v, err_g)


def test_dfl_decode_reads_its_inputs_as_the_losses_do():
    """The input handling of the losses (refloss/_validate.py): dfl_decode called np.asarray first (a probe)."""
    torch = pytest.importorskip("torch")
    z = np.array([[1.0, 2, 0.5, -1], [0.1, -1, 3, 0]])
    # a bfloat16 tensor is computed in float32 and returned as float32 (as dfl_loss and softmax_cross_entropy):
    # torch's TypeError "Got unsupported ScalarType BFloat16" before
    zb = torch.tensor(z).bfloat16()
    for got, want in zip(rl.dfl_decode.value_and_grad(zb), rl.dfl_decode.value_and_grad(zb.float().numpy())):
        assert got.dtype == np.float32 and np.array_equal(got, want)
    assert rl.dfl_loss(zb, torch.tensor([1.5, 2.0]).bfloat16()).dtype == rl.dfl_decode(zb).dtype
    for f in (rl.dfl_decode, rl.dfl_decode.value_and_grad):  # torch's RuntimeError "Can't call numpy() ..." before
        with pytest.raises(TypeError, match=r"^logits: a tensor that requires grad.*\.value_and_grad"):
            f(torch.zeros(2, 4, requires_grad=True))
    with pytest.raises(TypeError, match=r"^cotangent: a tensor that requires grad"):
        rl.dfl_decode.value_and_grad(z, torch.ones(2, requires_grad=True))
    with pytest.raises(ValueError, match=r"^logits: not a regular array"):  # NumPy's message, naming nothing
        rl.dfl_decode([[1, 2], [3]])
    for dtype in (np.float16, np.int64):  # silently float32 / float64 before
        with pytest.raises(ValueError, match=r"^dtype: must be float64 or float32"):
            rl.dfl_decode(z, dtype=dtype)
    with pytest.raises(ValueError, match=r"^cotangent: must be finite; cotangent\[1\] = nan"):  # NaN gradients
        rl.dfl_decode.value_and_grad(z, np.array([1.0, np.nan]))


@pytest.mark.parametrize("x, q", [(-1e308, 1.0), (-8.99e307, 1.0), (-1e308, 0.99999999), (-1e308, 1 - 2.0**-53)])
def test_varifocal_detached_weight_at_the_largest_logits(x, q):
    """detach_weight=True, q > 0: d/dq = q dCE/dq = -q x is finite where the form not chosen
    (the weight differentiated, ~2 q |x|) overflows; as a sum weighted by 0 and 1 its 0 * inf gave NaN (a probe,
    2026-12-07: from logits ~-8.99e307)."""
    from refloss.oracle import classification as oracle

    v, (gx, gq) = rl.varifocal_loss.value_and_grad(np.array([x]), np.array([q]), detach_weight=True)
    want = oracle.varifocal_loss(x, q, detach_weight=True)
    assert np.isfinite(gq[0])
    for got, exact in zip((v[0], gx[0], gq[0]), want):
        assert abs(got - float(exact)) <= 4 * np.spacing(abs(float(exact))), (got, exact)


def _tiny_target_points(rng, n):
    """(logit, target) at soft targets below 2^-64 and logits below -64: the probe's points (a subnormal target at the
    logit -1e4; 1e-170 at -1e20, -1e21, -1e25), random ones (logits -64.5 to -760 and -10^(1.8 .. 300), targets
    10^-323 .. 2^-64) and near the optimum (the target e^x (1 +- 10^-12 .. 10^-1))."""
    pts = [(-1e4, 1e-310), (-1e4, 5e-324), (-1e4, 1e-315), (-1e20, 1e-170), (-1e21, 1e-170), (-1e25, 1e-170),
           (-1e4, 1e-160), (-1e4, 1e-155)]
    for k in range(n):
        x = -rng.uniform(64.5, 760) if k % 3 == 0 else -10 ** rng.uniform(1.8, 300)
        y = 10 ** rng.uniform(-323, np.log10(2.0**-64))
        if k % 4 == 3:
            x = -rng.uniform(64.5, 740)
            y = np.exp(x) * (1 + 10 ** rng.uniform(-12, -1) * rng.choice([-1, 1]))
        if 0 < y < 2.0**-64:
            pts.append((float(x), float(y)))
    return pts


# (bar 2 ULP64, not the losses' 12 and 8: the branch measured within 1.4 ULP64, a review)
@pytest.mark.parametrize("name, params, bar", [
    ("qfl_loss", {"beta": 0.01}, 2.0), ("qfl_loss", {"beta": 0.001}, 2.0), ("qfl_loss", {"beta": 0.3}, 2.0),
    ("qfl_loss", {"beta": 2.0}, 2.0), ("qfl_loss", {"beta": 3.5}, 2.0),
    ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0}, 2.0), ("sigmoid_focal_loss", {"alpha": None, "gamma": 2.0}, 2.0),
    ("sigmoid_focal_loss", {"alpha": 0.75, "gamma": 0.5}, 2.0), ("sigmoid_focal_loss", {"alpha": None, "gamma": 5.0}, 2.0)])
def test_tiny_soft_targets_float64_against_the_oracle(name, params, bar):
    """float64, soft targets below 2^-64 at logits below -64 (a rare branch: each output from the logs of its factors,
    derivations/_logits.py's tiny_target_parts): QFL at beta <= 0.01 with a subnormal target at the logit -1e4 gave
    d/dlogits NaN and d/dtarget inf (|D|^(beta - 1) overflowed before beta CE multiplied it), and both losses at the
    target 1e-170, logits below about -1e20, d/dtarget 2/3 of the exact value at gamma (beta) 2 (m^gamma underflowed
    before |x| multiplied it; 1e15 ULP at subnormal results).  Every output within the bar of the 50-digit oracle."""
    from refloss._measures import ulp_error
    from refloss.oracle import classification as oracle

    rng = np.random.default_rng([5, len(name), int(1000 * params.get("beta", params.get("gamma")))])
    pts = _tiny_target_points(rng, 45)
    x, y = (np.array(c) for c in zip(*pts))
    value, grads = getattr(rl, name).value_and_grad(x, y, **params)
    floor_of = oracle.qfl_gradient_scale if name == "qfl_loss" else oracle.focal_gradient_scale
    worst = (0.0, None)
    for i, (xi, yi) in enumerate(pts):
        exact = getattr(oracle, name)(xi, yi, **params)
        floors = tuple(float(f) for f in floor_of(xi, yi, np.float64, **params))
        floors = floors if len(floors) == 3 else (None, *floors)
        for what, got, want, floor in zip(("value", "d_logits", "d_target"), (value[i], grads[0][i], grads[1][i]),
                                          exact, floors):
            err = float(ulp_error(float(got), float(want), float(want - float(want)), np.float64, floor))
            worst = max(worst, (err, (what, xi, yi, float(got), float(want))), key=lambda w: w[0])
    assert worst[0] <= bar, worst


@pytest.mark.parametrize("name, params", [("qfl_loss", {"beta": 2.0}), ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0})])
def test_a_negative_target_without_validation_keeps_the_common_forms(name, params):
    """validate=False computes the formula as written: a negative target at a logit below -64 (the tiny-target
    branch's region but for its sign) took the branch's logs and gave NaN value and gradients (a review); the
    branch is for 0 < y only, and the common forms' results are finite there, as the oracle's.  (Sigmoid focal loss's
    gradients at a target below 0 are its forms' for targets in [0, 1], outside their domain: d/dtarget here a third
    of the oracle's, as before the branch; its value, and QFL's outputs, the oracle's.)"""
    from refloss.oracle import classification as oracle

    x, y = np.array([-100.0, -70.0]), np.array([-1e-30, -3e-25])
    value, (d_x, d_y) = getattr(rl, name).value_and_grad(x, y, validate=False, **params)
    for i in range(2):
        exact = [float(v) for v in getattr(oracle, name)(float(x[i]), float(y[i]), **params)]
        got = [float(value[i]), float(d_x[i]), float(d_y[i])]
        assert all(np.isfinite(got)), (got, exact)
        checked = 3 if name == "qfl_loss" else 1
        assert got[:checked] == pytest.approx(exact[:checked], rel=1e-12, abs=0), (got, exact)
