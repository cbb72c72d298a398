"""rl.softmax_cross_entropy: a derived row loss (the class axis is the last one).

Checked against the 50-digit oracle (refloss/oracle/classification.py, written from the
definition), finite differences of its own value, and torch.nn.functional.cross_entropy
(class indices and probabilities, every reduction); bad input; the CUDA kernels under the
simulator.
"""
import numpy as np
import pytest

import refloss as rl
from refloss import _verify
from refloss.oracle.classification import softmax_cross_entropy as oracle
from refloss.oracle.rounding import ulp_error

SCE = rl.softmax_cross_entropy


@pytest.mark.parametrize("index", [0, 1], ids=["plain", "label_smoothing"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_verify_battery_within_bar(dtype, index):
    """refloss verify's rows: the stored 50-digit results of the battery (hard, huge +-1e30,
    bound +-1e4 / +-80, ties, confident, near-equal and random soft rows) within 8 ULP."""
    row = _verify.check("softmax_cross_entropy", index, dtype, "cpu")[0]
    assert row.ok, row.worst
    assert row.points > 200


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_logits_against_live_oracle(dtype):
    """Logits of 1e30 and -1e30 (and +-80 in float32): finite values, each within 4 ULP of the
    oracle, computed here live (not the stored values)."""
    big = 1e30
    z = np.array([[big, -big, 0.0], [-big, big, big], [80.0, -80.0, 79.0], [-80.0, -80.0, 80.0]], dtype)
    y = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0.5, 0.5], [0.25, 0.25, 0.5]], dtype)
    v, (gz, gy) = SCE.value_and_grad(z, y)
    assert v.dtype == dtype and np.isfinite(v).all()
    for i in range(len(z)):
        ev, egz, egy = oracle(z[i], y[i])
        assert ulp_error(v[i], ev, dtype) <= 4, (i, v[i], ev)
        for j in range(3):
            assert ulp_error(gy[i, j], egy[j], dtype) <= 4, (i, j)
            # the gradient's terms Y softmax_j and y_j cancel: errors relative to the larger
            scale = max(abs(egz[j]), float(np.finfo(dtype).tiny))
            assert abs(float(gz[i, j]) - float(egz[j])) <= 4 * np.finfo(dtype).eps * max(scale, abs(float(y[i, j]))) \
                + 4 * np.finfo(dtype).eps * abs(float(egz[j])), (i, j)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logits_more_than_the_largest_float_apart(dtype):
    """Finite logits whose differences overflow (1e308 and -1e308; float32 3e38): exp(z_j - m) is 0 there and lse(z) -
    z_j is inf, which NaN-poisoned every output before (inf - inf in the exp's rounding error, inf * 0 at a target
    of 0). Now: no NaN; the value, d/dlogits and d/dtargets within the 8-ULP bar of the live oracle (gradients in
    ULPs of max(|exact|, Y softmax_j, y_j)), except where a term y_j (lse(z) - z_j) has lse(z) - z_j itself beyond
    the largest float at y_j > 0: there the value (and that d/dtarget) is inf (docs/accuracy.md). DFL too."""
    from refloss.oracle.classification import dfl_loss as dfl_oracle, softmax_gradient_scale

    big = dtype(1e308 if dtype == np.float64 else 3e38)
    fmax = float(np.finfo(dtype).max)
    z = np.array([[big, -big, 0.0, 1.0], [-big, big, -big / 3, 0.0], [0.0, -big, 2.5, big], [big, big, -big, -2.5]],
                 dtype)
    y = np.array([[1.0, 0, 0, 0], [0.0, 0.5, 0, 0.5], [0.25, 0, 0.25, 0.5], [0.5, 0.5, 0, 0]], dtype)
    v, (gz, gy) = SCE.value_and_grad(z, y)
    assert not np.isnan(v).any() and not np.isnan(gz).any() and not np.isnan(gy).any()
    spacing = lambda e: float(np.spacing(dtype(min(abs(float(e)), fmax))))  # noqa: E731
    for i in range(len(z)):
        zi, ti = [float(a) for a in z[i]], [float(a) for a in y[i]]
        ev, egz, egy = oracle(zi, ti)
        overflow = any(t > 0 and max(zi) - zk > fmax for zk, t in zip(zi, ti))
        assert (v[i] == np.inf) if overflow else ulp_error(v[i], ev, dtype) <= 8, (i, v[i], ev)
        scale = softmax_gradient_scale(zi, ti, dtype)[:len(zi)]
        for j in range(len(zi)):
            assert abs(float(gz[i, j]) - float(egz[j])) <= 8 * spacing(max(abs(egz[j]), scale[j])), (i, j)
            if max(zi) - zi[j] <= fmax:
                assert ulp_error(gy[i, j], egy[j], dtype) <= 8, (i, j)
            else:
                assert gy[i, j] == np.inf
    # DFL: the row's softmax as above, the two bins' weights
    for t in (0.0, 0.5, 1.0, 3.0):
        v, (gz, _) = rl.dfl_loss.value_and_grad(z, np.full(len(z), t, dtype))
        assert not np.isnan(v).any() and not np.isnan(gz).any()
        for i in range(len(z)):
            zi = [float(a) for a in z[i]]
            ev, egz, _ = dfl_oracle(zi, t)
            lo = min(int(t), len(zi) - 2)
            weights = [lo + 1 - t, t - lo]
            overflow = any(w > 0 and max(zi) - zi[lo + k] > fmax for k, w in enumerate(weights))
            assert (v[i] == np.inf) if overflow else ulp_error(v[i], ev, dtype) <= 8, (t, i, v[i], ev)
            for j in range(len(zi)):
                assert abs(float(gz[i, j]) - float(egz[j])) <= 8 * np.finfo(dtype).eps, (t, i, j)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_rows_within_bar(dtype):
    """Rows of 1,203 classes (LVIS's), logits over three decades, soft targets: value and gradients within the
    8-ULP bar of the live 50-digit oracle (gradients in ULPs of max(|exact|, Y softmax_j, y_j), as verify's).
    The sums over a row are compensated: summed plainly, in index order, they erred by 12 / 14 ULP (float64)
    and 16 / 23 ULP (float32) on such rows, and by 25-100 ULP at 1,203-4,096 classes in float32."""
    from refloss.oracle.classification import softmax_gradient_scale

    rng = np.random.default_rng(3)
    c = 1203
    x = rng.normal(0, 1, (2, c)) * np.array([[0.01], [10.0]])
    y = rng.dirichlet(np.ones(c), 2)
    z, t = x.astype(dtype), y.astype(dtype)
    v, (gz, gy) = SCE.value_and_grad(z, t)
    for i in range(len(z)):
        zi, ti = [float(a) for a in z[i]], [float(a) for a in t[i]]
        ev, egz, egy = oracle(zi, ti)
        scale = softmax_gradient_scale(zi, ti, dtype)[:c]
        assert ulp_error(v[i], ev, dtype) <= 8, (i, ulp_error(v[i], ev, dtype))
        spacing = lambda e: float(np.spacing(dtype(abs(float(e)))))  # noqa: E731
        worst = max(abs(float(gz[i, j]) - float(egz[j])) / spacing(max(abs(egz[j]), scale[j])) for j in range(c))
        assert worst <= 8, (i, worst)
        assert max(ulp_error(gy[i, j], egy[j], dtype) for j in range(c)) <= 8



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subnormal_softmax_with_targets_summing_above_one(dtype):
    """Soft targets summing to Y > 1 and a class whose softmax_j is subnormal (a logit gap beyond 708, float32 87)
    while Y softmax_j is not: d/dlogits_j = Y softmax_j - y_j within the 8-ULP bar of the live oracle (in ULPs of
    max(|exact|, Y softmax_j, y_j)) at a target of 0 there, where Y softmax_j is the whole gradient.  The kernels
    formed exp(z_j - m) alone, subnormal, and lost its low bits: 14-17 ULP (float64) and 15-20 ULP (float32) on
    these rows (within 2.2 ULP now: they keep it times 2^64; docs/accuracy.md)."""
    from refloss.oracle.classification import softmax_gradient_scale

    c = 60
    tiny_gap = 708.3964 if dtype == np.float64 else 87.3365  # softmax_j = e^-gap below the smallest normal
    rng = np.random.default_rng(11)
    z, t = [], []
    for gap in tiny_gap + np.array([0.5, 1.5, 2.5, 3.5]):  # Y softmax_j normal up to a gap of tiny_gap + log Y
        zi = np.zeros(c)
        zi[1] = gap
        zs = -rng.uniform(0.0, 1.0, c)  # the other logits spread below 0
        zs[c // 2] = gap
        for row in (zi, zs):
            yi = rng.uniform(0.5, 1.0, c)
            yi[::2] = 0.0  # target 0 at every other class: there d/dz_j = Y softmax_j alone
            z.append(row)
            t.append(yi)
    z, t = np.array(z, dtype), np.array(t, dtype)
    _, (gz, _) = SCE.value_and_grad(z, t, reduction="sum")
    spacing = lambda e: float(np.spacing(dtype(abs(float(e)))))  # noqa: E731
    for i in range(len(z)):
        zi, ti = [float(a) for a in z[i]], [float(a) for a in t[i]]
        _, egz, _ = oracle(zi, ti)
        scale = softmax_gradient_scale(zi, ti, dtype)[:c]
        worst = max(abs(float(gz[i, j]) - float(egz[j])) / spacing(max(abs(egz[j]), scale[j])) for j in range(c))
        assert worst <= 8, (i, worst)

def test_finite_differences():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(6, 4)) * 3, rng.uniform(size=(6, 4))
    v, (gz, gy) = SCE.value_and_grad(z, y)
    h = 1e-6
    for which, g in ((0, gz), (1, gy)):
        for j in range(4):
            e = np.zeros((6, 4))
            e[:, j] = h
            args_p = (z + e, y) if which == 0 else (z, y + e)
            args_m = (z - e, y) if which == 0 else (z, y - e)
            fd = (SCE(*args_p) - SCE(*args_m)) / (2 * h)
            np.testing.assert_allclose(g[:, j], fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_torch_cross_entropy_class_indices_and_probabilities(reduction, smoothing):
    """torch.nn.functional.cross_entropy on (N, C) and (N, C, d) (class axis 1 there, last here),
    with class indices and with probabilities, with and without label smoothing; values and
    autograd gradients."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    for shape in ((7, 5), (3, 4, 6)):  # (N, C) and (N, d, C) in refloss's layout
        z = rng.normal(size=shape) * 4
        labels = rng.integers(0, shape[-1], shape[:-1])
        probs = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        for targets, torch_targets in ((labels, torch.tensor(labels)), (probs, torch.tensor(probs).movedim(-1, 1))):
            zt = torch.tensor(z, requires_grad=True)
            ref = F.cross_entropy(zt.movedim(-1, 1), torch_targets, reduction=reduction, label_smoothing=smoothing)
            ref.sum().backward()
            v, (gz, gy) = SCE.value_and_grad(z, targets, reduction=reduction, label_smoothing=smoothing)
            np.testing.assert_allclose(v, ref.detach().numpy(), rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(gz, zt.grad.numpy(), rtol=1e-11, atol=1e-15)
            if targets is labels:
                assert gy is None
            else:
                assert gy.shape == probs.shape


def test_hard_targets_are_one_hot_rows_and_keep_float32():
    """SSD's call: (N, C) float32 logits and int64 labels give float32 (N,) values and an (N, C)
    gradient, equal to the one-hot call; the label gets no gradient."""
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(10, 4)) * 5).astype(np.float32)
    labels = rng.integers(0, 4, 10).astype(np.int64)
    v, g = SCE.value_and_grad(z, labels, reduction="none")
    assert v.dtype == np.float32 and v.shape == (10,) and g[0].shape == (10, 4) and g[0].dtype == np.float32
    assert g[1] is None
    vh, gh = SCE.value_and_grad(z, np.eye(4, dtype=np.float32)[labels])
    np.testing.assert_array_equal(v, vh)
    np.testing.assert_array_equal(g[0], gh[0])
    assert SCE(z, labels, reduction="mean") == pytest.approx(float(v.astype(np.float64).mean()), rel=1e-6)


def test_class_indices_through_their_own_kernels(monkeypatch):
    """Class indices on the CPU (float32, float64) go to the class-index drivers (no one-hot rows are built):
    the same bits as the one-hot rows' call for the value and d/dlogits, every reduction, with and without label
    smoothing, rows of 1-80 classes, indices broadcast against the logits; bad indices and non-finite logits raise
    the same errors; float16 still goes through one-hot rows (computed in float32)."""
    from refloss import _arrays

    rng = np.random.default_rng(8)
    cases = []
    for dt in (np.float64, np.float32):
        for c in (1, 2, 8, 80):
            for shape in ((300,), (4, 5), ()):
                x = (rng.normal(0, 3, shape + (c,)) * 10.0 ** rng.uniform(-3, 3, shape + (1,))).astype(dt)
                cases.append((x, rng.integers(0, c, shape), c))
    x = rng.normal(size=6)  # one row of logits for every index
    cases.append((x, rng.integers(0, 6, (3, 4)), 6))
    expected = {}
    for i, (x, k, c) in enumerate(cases):
        for ls in (0.0, 0.1, 1.0):
            for red in ("none", "sum", "mean"):
                expected[i, ls, red] = SCE.value_and_grad(x, np.eye(c, dtype=x.dtype)[k], label_smoothing=ls,
                                                          reduction=red)

    def no_one_hot(*args, **kwargs):
        raise AssertionError("one-hot rows built")

    monkeypatch.setattr(_arrays, "one_hot", no_one_hot)
    for i, (x, k, c) in enumerate(cases):
        for ls in (0.0, 0.1, 1.0):
            for red in ("none", "sum", "mean"):
                v, (g, none) = SCE.value_and_grad(x, k, label_smoothing=ls, reduction=red)
                ev, (eg, _) = expected[i, ls, red]
                assert none is None and g.shape == x.shape and g.dtype == x.dtype
                assert np.asarray(v).tobytes() == np.asarray(ev).tobytes(), (i, ls, red)
                assert g.tobytes() == eg.tobytes(), (i, ls, red)
                assert np.asarray(SCE(x, k, label_smoothing=ls, reduction=red)).tobytes() == np.asarray(ev).tobytes()
    with pytest.raises(ValueError, match=r"targets: class index 4 at targets\[1\] is outside \[0, 4\)"):
        SCE(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(ValueError, match=r"shapes not broadcastable \(the axes before the last\): logits \(2, 4\), "
                                         r"targets \(3,\)"):
        SCE(np.zeros((2, 4)), np.array([0, 1, 2]))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"logits: must be finite; logits\[1, 2\] = nan"):
        SCE(np.array([[0.0, 1.0, 2.0], [0.0, 1.0, np.nan]]), np.array([0, 1]))
    assert np.isnan(SCE(np.array([[0.0, np.nan]]), np.array([0]), validate=False)).all()
    v16, (g16, _) = SCE.value_and_grad(np.ones((2, 3), np.float16), np.array([0, 2]))
    assert v16.dtype == np.float16 and g16.dtype == np.float16


def test_class_indices_beyond_float32_integers():
    """Rows wider than 2^24 classes in float32: an index as a float32 would round (2^24 + 1 -> 2^24), so such
    rows keep the one-hot rows (the class-index kernels take the index as a float of the rows' dtype)."""
    c = 2**24 + 2
    z = np.zeros((1, c), np.float32)
    z[0, -1] = 5.0
    for k in (2**24, 2**24 + 1):
        v, (g, _) = SCE.value_and_grad(z, np.array([k]))
        hot = np.zeros((1, c), np.float32)
        hot[0, k] = 1.0
        ev, (eg, _) = SCE.value_and_grad(z, hot)
        assert v.tobytes() == ev.tobytes() and g.tobytes() == eg.tobytes(), k
        assert g[0, k] < 0 and (g[0, :k] >= 0).all() and (g[0, k + 1:] >= 0).all()


def test_class_indices_allocate_nothing_row_wide():
    """Peak memory of a call with class indices beyond its outputs (tracemalloc): the float copy of the
    indices (one number a row), not the one-hot rows and their gradient (twice the logits' bytes before):
    issue 16's "peak extra memory within 10 % of inputs + outputs"."""
    import tracemalloc

    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 50))
    k = rng.integers(0, 50, 20000)
    SCE.value_and_grad(x, k)  # (compiled first: the parallel driver's compilation allocates)
    tracemalloc.start()
    try:
        v, (g, _) = SCE.value_and_grad(x, k)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outputs = v.nbytes + g.nbytes
    assert peak - outputs <= 0.1 * (x.nbytes + k.nbytes + outputs), (peak, outputs)


def test_bad_input():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"targets: class index 4 at targets\[1\] is outside \[0, 4\)"):
        SCE(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"targets: class index -1 at targets\[2\]"):
        SCE(z, np.array([0, 1, -1]))
    with pytest.raises(ValueError, match=r"targets: must lie in \[0, 1\]"):
        SCE(z, np.full((3, 4), 1.5))
    with pytest.raises(ValueError, match=r"logits: must be finite"):
        SCE(np.array([[0.0, np.inf]]), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"targets: last dimension must be 4 as logits's"):
        SCE(z, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"got shape \(3,\) \(class indices must be an integer array\)"):
        SCE(z, np.array([0.0, 1.0, 2.0]))  # float class indices: a newcomer's likely slip
    with pytest.raises(ValueError, match=r"logits: needs a last axis of at least one element"):
        SCE(np.zeros((3, 0)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"logits: needs a last axis"):
        SCE(np.float64(1.0), np.float64(1.0))
    with pytest.raises(ValueError, match=r"label_smoothing"):
        SCE(z, np.zeros(3, np.int64), label_smoothing=1.5)


def test_cuda_simulator_equals_cpu():
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(6, 3)) * 5, rng.uniform(size=(6, 3))
    labels = rng.integers(0, 3, 6)
    for dtype in (np.float64, np.float32):
        for targets in (y, labels):
            v, g = SCE.value_and_grad(z, targets, dtype=dtype, reduction="mean")
            vc, gc = SCE.value_and_grad(z, targets, dtype=dtype, reduction="mean", device="cuda")
            tol = 8 * np.finfo(dtype).eps  # the simulator's math.exp is float64's, rounded
            np.testing.assert_allclose(vc, v, rtol=tol)
            np.testing.assert_allclose(gc[0], g[0], rtol=tol, atol=tol * np.abs(g[0]).max())
            assert (gc[1] is None) == (g[1] is None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rows_of_one_class(dtype):
    """A last axis of length 1 is a row of one class, not a scalar to broadcast (it raised NumPy's "input operand
    has more dimensions than allowed" before): softmax CE and DFL against their oracles, on every path that flattens
    (the fast path, broadcast targets, class indices)."""
    from refloss.oracle.classification import dfl_loss as dfl_oracle

    rng = np.random.default_rng(5)
    z = rng.normal(0, 3, (6, 1)).astype(dtype)
    y = rng.random((6, 1)).astype(dtype)
    for smoothing in (0.0, 0.1):
        v, (gz, gy) = SCE.value_and_grad(z, y, label_smoothing=smoothing)
        assert v.shape == (6,) and gz.shape == gy.shape == (6, 1)
        for i in range(6):
            ev, egz, egy = oracle(z[i], y[i], smoothing)
            assert float(v[i]) == float(ev) and float(gy[i, 0]) == float(egy[0])
            # d/dz = Y' softmax - y' = 0: its two terms (each about y') cancel, an error relative to them
            assert abs(float(gz[i, 0]) - float(egz[0])) <= 4 * np.finfo(dtype).eps * (float(y[i, 0]) + smoothing)
    np.testing.assert_array_equal(SCE(z, y[:1]), SCE(z, np.broadcast_to(y[:1], z.shape)))  # broadcast targets
    np.testing.assert_array_equal(SCE(z, np.zeros(6, np.int64)), SCE(z, np.ones_like(z)))  # class indices
    v, (gz, gt) = rl.dfl_loss.value_and_grad(z, np.zeros(6, dtype))
    for i in range(6):
        ev, egz, egt = dfl_oracle(z[i], 0.0)
        assert float(v[i]) == float(ev) and float(gz[i, 0]) == float(egz[0]) and float(gt[i]) == float(egt)
