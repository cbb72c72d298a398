"""The public API: shapes, broadcasting, reductions, dtypes, and relations between losses
(checked against independent formulas, not against the kernels' own earlier output)."""
import inspect

import numpy as np
import pytest

import refloss as rl

LOSSES = [getattr(rl, n) for n in rl.ELEMENTWISE_LOSSES]
rng = np.random.default_rng(11)


def test_names_repr_signature_and_doc():
    for fn in LOSSES:
        assert repr(fn) == f"refloss.{fn.__name__}"
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["pred", "target"]
        assert params["reduction"].default == "none"
        assert "x = pred - target" in fn.__doc__ or "a = |pred - target|" in fn.__doc__
        assert repr(fn.value_and_grad) == f"refloss.{fn.__name__}.value_and_grad"
    assert inspect.signature(rl.balanced_l1).parameters["beta"].default == 1.0
    assert inspect.signature(rl.focal_l1).parameters["beta"].default == 0.8


# The public contract (the project's DESIGN.md): the input names and parameter defaults that
# outside code relies on, written out here so that a rename in a derivation fails a test.
CONTRACT = {
    "sigmoid_focal_loss": ("logits", "targets", {"alpha": 0.25, "gamma": 2.0}),
    "bce_with_logits": ("logits", "targets", {}),
    "softmax_cross_entropy": ("logits", "targets", {}),
    "dfl_loss": ("logits", "target", {}),
    "qfl_loss": ("logits", "target", {"beta": 2.0}),
    "varifocal_loss": ("logits", "target", {"alpha": 0.75, "gamma": 2.0}),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_the_design_contract_input_names_and_defaults(name):
    first, second, defaults = CONTRACT[name]
    params = inspect.signature(getattr(rl, name)).parameters
    assert list(params)[:2] == [first, second]
    assert {k: params[k].default for k in defaults} == defaults
    x, y = np.array([0.3, -1.0]), np.array([0.5, 1.0])
    if name == "dfl_loss":  # logits over the bins of one side, the target between the bins
        x, y = np.zeros((2, 4)), np.array([0.5, 2.0])
    elif name == "softmax_cross_entropy":
        x, y = np.zeros((2, 3)), np.array([0, 2])
    np.testing.assert_array_equal(getattr(rl, name)(**{first: x, second: y}), getattr(rl, name)(x, y))


def test_pytorch_definitions():
    """Values as torch.nn.functional defines them, written out independently."""
    x = np.array([-3.0, -1.0, -0.25, 0.0, 0.4, 1.0, 2.0])
    np.testing.assert_array_equal(rl.l1(x, 0.0), np.abs(x))
    np.testing.assert_array_equal(rl.mse(x, 0.0), x * x)
    b = 0.5
    np.testing.assert_allclose(rl.smooth_l1(x, 0.0, beta=b),
                               np.where(np.abs(x) < b, 0.5 * x**2 / b, np.abs(x) - 0.5 * b), rtol=1e-15)
    d = 0.5
    np.testing.assert_allclose(rl.huber(x, 0.0, delta=d),
                               np.where(np.abs(x) < d, 0.5 * x**2, d * (np.abs(x) - 0.5 * d)), rtol=1e-15)


def test_beta_zero_is_l1_and_huber_is_delta_times_smooth_l1():
    p, t = rng.normal(size=100), rng.normal(size=100)
    np.testing.assert_array_equal(rl.smooth_l1(p, t, beta=0.0), rl.l1(p, t))
    for d in (0.3, 1.0, 4.0):
        np.testing.assert_allclose(rl.huber(p, t, delta=d), d * rl.smooth_l1(p, t, beta=d), rtol=4e-16)


def test_balanced_l1_scaling_law_and_libra_form_at_beta_one():
    x = np.abs(rng.normal(size=200)) * 2
    for beta in (1 / 9, 0.5, 3.0):
        np.testing.assert_allclose(rl.balanced_l1(x, 0.0, beta=beta), beta * rl.balanced_l1(x / beta, 0.0, beta=1.0),
                                   rtol=1e-14)
    a, g = 0.5, 1.5
    b = np.exp(g / a) - 1
    libra = np.where(x < 1, a / b * (b * x + 1) * np.log(b * x + 1) - a * x, g * x + g / b - a)
    np.testing.assert_allclose(rl.balanced_l1(x, 0.0), libra, rtol=1e-12)


def test_value_and_grad_shapes_dtypes_and_reductions():
    p = rng.normal(size=(4, 3))
    t = rng.normal(size=(3,))
    for fn in LOSSES:
        v, (gp, gt) = fn.value_and_grad(p, t)
        assert v.shape == (4, 3) and gp.shape == (4, 3) and gt.shape == (3,)
        # broadcast input: its gradient is the sum over the broadcast axis
        _, (gp_full, gt_full) = fn.value_and_grad(p, np.broadcast_to(t, p.shape).copy())
        np.testing.assert_allclose(gt, gt_full.sum(axis=0), rtol=1e-14)
        vs, (gps, gts) = fn.value_and_grad(p, t, reduction="sum")
        assert vs == pytest.approx(v.sum(), rel=1e-14)
        np.testing.assert_array_equal(gps, gp)
        vm, (gpm, gtm) = fn.value_and_grad(p, t, reduction="mean")
        assert vm == pytest.approx(v.mean(), rel=1e-14)
        np.testing.assert_allclose(gpm, gp / 12, rtol=1e-15)
        np.testing.assert_allclose(gtm, gt_full.sum(axis=0) / 12, rtol=1e-14)
        v32, (gp32, _) = fn.value_and_grad(p, t, dtype=np.float32)
        assert v32.dtype == np.float32 and gp32.dtype == np.float32
        np.testing.assert_allclose(v32, v, rtol=1e-5, atol=1e-6)


def test_scalars_lists_ints_and_empty():
    assert rl.l1(3, 1) == 2.0
    np.testing.assert_array_equal(rl.mse([1, 2], [0, 0]), [1.0, 4.0])
    assert rl.l1(np.zeros(0), np.zeros(0)).shape == (0,)
    assert rl.l1(np.zeros(0), np.zeros(0), reduction="sum") == 0.0
    assert np.isnan(rl.l1(np.zeros(0), np.zeros(0), reduction="mean"))
    v, (gp, gt) = rl.smooth_l1.value_and_grad(np.zeros((0, 4)), np.zeros((0, 4)), reduction="mean")
    assert gp.shape == (0, 4)


def test_non_contiguous_and_float32_inputs():
    p = rng.normal(size=(6, 8))[:, ::2]
    t = rng.normal(size=(6, 4))
    np.testing.assert_array_equal(rl.smooth_l1(p, t), rl.smooth_l1(np.ascontiguousarray(p), t))
    assert rl.l1(p.astype(np.float32), t).dtype == np.float64  # computation is float64 unless asked


def test_gradient_conventions_at_kinks():
    # sign(0) = 0 as PyTorch autograd: L1 and smooth L1 with beta = 0 have zero gradient at x = 0
    _, (gp, gt) = rl.l1.value_and_grad(np.array([0.0]), np.array([0.0]))
    assert gp[0] == 0 and gt[0] == 0
    _, (gp, _) = rl.smooth_l1.value_and_grad(np.array([0.0, 1.0, -1.0]), 0.0, beta=1.0)
    np.testing.assert_array_equal(gp, [0.0, 1.0, -1.0])
    v, (gp, _) = rl.focal_l1.value_and_grad(np.array([0.0]), 0.0)
    assert v[0] == 0 and gp[0] == 0


def test_float16_weighted_mean_is_the_float32_result_rounded_once():
    """focal_eiou_loss's mean (weighted by IoU^gamma) of float16 inputs: its sums and quotient in float32, rounded to
    float16 once, as every float16 call (the quotient and the gradients were divided in float16: 27 % of the
    gradients an ulp off, a probe of refloss.torch, 2026-12-07)."""
    rng = np.random.default_rng(0)
    xy = rng.random((1000, 2))
    p = np.concatenate([xy, xy + 0.2 + rng.random((1000, 2))], 1).astype(np.float16)
    t = np.concatenate([xy + 0.05, xy + 0.3 + rng.random((1000, 2))], 1).astype(np.float16)
    v16, g16 = rl.focal_eiou_loss.value_and_grad(p, t, reduction="mean")
    v32, g32 = rl.focal_eiou_loss.value_and_grad(p.astype(np.float32), t.astype(np.float32), reduction="mean")
    assert v16.dtype == np.float16 and v16 == np.float16(v32)
    for a, b in zip(g16, g32):
        assert a.dtype == np.float16 and np.array_equal(a, b.astype(np.float16))


def test_a_typo_in_a_loss_name_gets_a_guess():
    """refloss.giou_los said only that refloss has no such attribute (refloss.torch guessed, as "giou_loss=?")."""
    with pytest.raises(AttributeError, match=r"did you mean refloss\.giou_loss\?"):
        rl.giou_los  # noqa: B018
    with pytest.raises(AttributeError, match=r"has no attribute 'zzzq'$"):
        rl.zzzq  # noqa: B018
