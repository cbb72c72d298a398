"""refloss.torch: the losses as PyTorch custom operators with autograd (issue 17).

Checked here, on the CPU: gradcheck (float64) and opcheck for every loss; values and gradients
equal to refloss's NumPy API bit for bit (the same kernels); agreement with torchvision and
torch.nn.functional where they compute the same thing; torch.compile(fullgraph=True); a short
training run step for step against torchvision; float16/bfloat16; clear errors.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import refloss as rl  # noqa: E402
import refloss.torch as rt  # noqa: E402
from refloss._reference import REFERENCES  # noqa: E402
from test_value_identity import _differing, _inputs  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws the same tensors on every run: a failure is reproducible, never a lucky draw."""
    torch.manual_seed(0)


def _smooth_inputs(loss: str, n: int = 6, seed: int = 5) -> tuple:
    """n random inputs of the loss's kind at unit scale, away from kinks and ties (for finite
    differences)."""
    rng = np.random.default_rng(seed)
    info = getattr(rl, loss).info
    if info.family == "elementwise":
        t = rng.uniform(-2, 2, n)
        return t + rng.uniform(0.05, 3, n) * rng.choice([-1.0, 1.0], n), t
    if info.family == "classification":
        return rng.normal(0, 2, n), rng.uniform(0.05, 0.95, n)
    if info.family == "softmax":
        return rng.normal(0, 2, (n, 5)), rng.dirichlet(np.ones(5), n)
    if info.family == "distribution":
        return rng.normal(0, 2, (n, 8)), rng.uniform(0.1, 6.9, n)
    if info.family == "rotated":
        pred = np.column_stack([rng.normal(0, 1, (n, 2)), np.exp(rng.uniform(-0.5, 0.5, (n, 2))),
                                rng.uniform(-2, 2, n)])
        # the target's sizes a factor off the prediction's (an additive offset made a size negative at n = 64)
        return pred, pred * np.column_stack([np.ones((n, 2)), np.exp(rng.normal(0, 0.3, (n, 2))), np.ones(n)]) \
            + np.column_stack([rng.normal(0, 0.3, (n, 2)), np.zeros((n, 2)), rng.normal(0, 0.5, n)])
    centre, size = rng.normal(0, 1, (n, 2)), np.exp(rng.uniform(-0.5, 0.5, (n, 2)))
    target_centre = centre + rng.normal(0, 0.3, (n, 2))
    target_size = size * np.exp(rng.normal(0, 0.3, (n, 2)))
    if "xywh" in info.layouts:
        return np.hstack([centre, size]), np.hstack([target_centre, target_size])
    return (np.hstack([centre - size / 2, centre + size / 2]),
            np.hstack([target_centre - target_size / 2, target_centre + target_size / 2]))


def _cases():
    return [(loss, params) for loss in rt.LOSSES for params in REFERENCES[loss].param_sets]


def _tensors(arrays, dtype=torch.float64, grad=True):
    return [torch.tensor(a, dtype=dtype, requires_grad=grad) for a in arrays]


# the switches that turn a documented surrogate gradient (a factor detached, as the paper and its
# peers do: CIoU's alpha, Focal-EIoU's weight, WIoU's enclosing box, alpha-IoU's beta, VFL's weight)
# into the gradient of the value, which finite differences check
FULL_GRADIENT = {"alpha_grad": True, "weight_grad": True, "enclosing_grad": True, "beta_grad": True,
                 "detach_weight": False}


# gradients that are by definition not the value's (no switch): darknet's hand-written CIoU gradient,
# WIoU v2/v3's focusing factor as a constant; the bit-for-bit test below pins them to refloss's kernels
SURROGATE_ONLY = [("ciou_loss", {"darknet": True}), ("wiou_loss", {"version": 2, "iou_mean": 0.6}),
                  ("wiou_loss", {"version": 3, "iou_mean": 0.4})]


@pytest.mark.parametrize("loss,params", [c for c in _cases() if c not in SURROGATE_ONLY], ids=repr)
def test_gradcheck(loss, params):
    fn = getattr(rt, loss)
    names = {p.name for p in fn.info.params}
    params = {**params, **{k: v for k, v in FULL_GRADIENT.items() if k in names}}
    for reduction in ("none", "mean"):
        inputs = _tensors(_smooth_inputs(loss))
        assert torch.autograd.gradcheck(lambda *x: fn(*x, reduction=reduction, **params), inputs)


@pytest.mark.parametrize("loss", rt.LOSSES)
def test_opcheck(loss):
    info = getattr(rl, loss).info
    params = REFERENCES[loss].param_sets[0]
    args = [params.get(p.name, p.default) for p in info.params]
    args = [list(map(float, v)) if p.kind == "size" else v for p, v in zip(info.params, args)]
    inputs = [torch.tensor(a) for a in _smooth_inputs(loss, 4)]
    for with_grad in (False, True):
        for reduction in ("none", "sum"):
            torch.library.opcheck(getattr(rt, loss).op, (*inputs, *args, reduction, True, with_grad))


@pytest.mark.parametrize("loss", rt.LOSSES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_equals_numpy_api_bit_for_bit(loss, dtype):
    """Every parameter set, the battery and random inputs over many scales, each reduction."""
    fn, np_fn = getattr(rt, loss), getattr(rl, loss)
    arrays = [a.astype(dtype) for a in _inputs(loss, 500)]
    failures = []
    for params in REFERENCES[loss].param_sets:
        for reduction in ("none", "sum", "mean"):
            with np.errstate(all="ignore"):
                value, grads = np_fn.value_and_grad(*arrays, validate=False, reduction=reduction, **params)
            tensors = [torch.from_numpy(a).requires_grad_() for a in arrays]
            out = fn(*tensors, validate=False, reduction=reduction, **params)
            (out.sum() if reduction == "none" else out).backward()
            assert out.dtype == getattr(torch, dtype)
            for what, a, b in [("value", out.detach().numpy(), value),
                               *[(f"d_{n}", t.grad.numpy(), g) for n, t, g in zip(np_fn.inputs, tensors, grads)]]:
                if _differing(a, np.asarray(b)):
                    failures.append(f"{params} {reduction} {what}")
    assert not failures, failures


def test_broadcasting_and_value_only():
    pred = torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[0.5, 0.0, 2.0, 3.0]]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 1.0, 1.0, 2.0], [0.0, 0.0, 2.0, 2.0]], dtype=torch.float64,
                          requires_grad=True)
    out = rt.diou_loss(pred, target)
    assert out.shape == (2, 3)
    w = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    (out * w).sum().backward()
    p, t = np.broadcast_arrays(pred.detach().numpy(), target.detach().numpy())
    value, (gp, gt) = rl.diou_loss.value_and_grad(p, t)
    np.testing.assert_array_equal(out.detach().numpy(), value)
    wn = w.numpy()[..., None]
    np.testing.assert_allclose(pred.grad.numpy(), (gp * wn).sum(axis=1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(target.grad.numpy(), (gt * wn).sum(axis=0), rtol=1e-15)
    with torch.no_grad():  # the value-only kernel
        np.testing.assert_array_equal(rt.diou_loss(pred, target).numpy(), value)
    # Python numbers and non-contiguous tensors
    x = torch.linspace(-2, 2, 10, dtype=torch.float32)[::2]
    np.testing.assert_array_equal(rt.smooth_l1(x, 0.25, beta=0.5).numpy(), rl.smooth_l1(x.numpy(), 0.25, beta=0.5))
    assert rt.smooth_l1(x, 0.25).dtype == torch.float32


def test_class_indices_get_no_gradient():
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 3, 4, 1])
    out = rt.softmax_cross_entropy(logits, targets, label_smoothing=0.1, reduction="mean")
    ref = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1)
    assert abs(out.item() - ref.item()) <= 1e-15 * abs(ref.item())
    out.backward()
    g = logits.grad.clone()
    logits.grad = None
    ref.backward()
    np.testing.assert_allclose(g.numpy(), logits.grad.numpy(), rtol=1e-14, atol=1e-17)


def _boxes(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 10
    return torch.cat([xy, xy + 0.5 + torch.rand(n, 2, generator=g, dtype=dtype) * 5], dim=1)


@pytest.mark.parametrize("peer,loss,params", [
    ("generalized_box_iou_loss", "giou_loss", {"eps": 1e-7}),
    ("distance_box_iou_loss", "diou_loss", {"eps": 1e-7}),
    ("complete_box_iou_loss", "ciou_loss", {"eps": 1e-7}),
])
def test_against_torchvision_box_losses(peer, loss, params):
    ops = pytest.importorskip("torchvision.ops")
    pred, target = _boxes(200, 1).requires_grad_(), _boxes(200, 2)
    ours = getattr(rt, loss)(pred, target, reduction="sum", **params)
    ours.backward()
    g = pred.grad.clone()
    pred.grad = None
    theirs = getattr(ops, peer)(pred, target, reduction="sum")
    theirs.backward()
    # the same formula at these boxes (unit scale: torchvision's eps placements are documented in docs/peers.md)
    assert abs(ours.item() - theirs.item()) <= 1e-12 * abs(theirs.item())
    np.testing.assert_allclose(g.numpy(), pred.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_against_torch_functional():
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(50, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(50, dtype=torch.float64, generator=gen)
    pairs = [(rt.smooth_l1(x, y, beta=0.5, reduction="mean"), F.smooth_l1_loss(x, y, beta=0.5)),
             (rt.huber(x, y, delta=0.7, reduction="sum"), F.huber_loss(x, y, delta=0.7, reduction="sum")),
             (rt.mse(x, y, reduction="mean"), F.mse_loss(x, y)),
             (rt.l1(x, y, reduction="sum"), F.l1_loss(x, y, reduction="sum")),
             (rt.bce_with_logits(x, torch.sigmoid(y), reduction="mean"),
              F.binary_cross_entropy_with_logits(x, torch.sigmoid(y)))]
    for ours, theirs in pairs:
        gx, = torch.autograd.grad(ours, x)
        hx, = torch.autograd.grad(theirs, x)
        assert abs(ours.item() - theirs.item()) <= 4e-16 * abs(theirs.item())
        # Each gradient element is a difference (sigmoid(x) - t, x - y) that both sides round: where it cancels,
        # the two agree to a few ULP of the gradient's scale, not of the element (CI drew x[7] ~ y[7] once).
        scale = float(hx.abs().max())
        np.testing.assert_allclose(gx.numpy(), hx.numpy(), rtol=1e-14, atol=8 * np.finfo(np.float64).eps * scale)


def test_sigmoid_focal_loss_against_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    x = torch.randn(300, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(300, dtype=torch.float64) < 0.3).double()
    ours = rt.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction="sum")
    theirs = ops.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction="sum")
    gx, = torch.autograd.grad(ours, x)
    hx, = torch.autograd.grad(theirs, x)
    assert abs(ours.item() - theirs.item()) <= 1e-13 * theirs.item()
    np.testing.assert_allclose(gx.numpy(), hx.numpy(), rtol=1e-10, atol=1e-15)


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 4, dtype=torch.float64)

    def forward(self, x, target):
        raw = self.linear(x)
        boxes = torch.cat([raw[:, :2], raw[:, :2] + torch.nn.functional.softplus(raw[:, 2:])], dim=1)
        return rt.ciou_loss(boxes, target, reduction="mean") + 0.1 * rt.smooth_l1(boxes, target, reduction="mean")


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = _Model()
    x, target = torch.randn(32, 6, dtype=torch.float64), _boxes(32, 3)
    eager = model(x, target)
    eager.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x, target)
    out.backward()
    assert out.item() == eager.item()
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-14, atol=1e-16)


def _train(loss_fn, steps=300, lr=0.1):
    """A linear box regressor on synthetic data (the example in docs/torch.md), SGD."""
    torch.manual_seed(0)
    x = torch.randn(256, 8, dtype=torch.float64)
    true = torch.randn(8, 4, dtype=torch.float64)
    raw = x @ true
    target = torch.cat([raw[:, :2], raw[:, :2] + 1 + raw[:, 2:].abs()], dim=1)
    model = torch.nn.Linear(8, 4, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    curve = []
    for _ in range(steps):
        out = model(x)
        pred = torch.cat([out[:, :2], out[:, :2] + torch.nn.functional.softplus(out[:, 2:])], dim=1)
        loss = loss_fn(pred, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return np.array(curve)


def test_training_curve_matches_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    ours = _train(lambda p, t: rt.giou_loss(p, t, eps=1e-7, reduction="mean"))
    theirs = _train(lambda p, t: ops.generalized_box_iou_loss(p, t, reduction="mean"))
    assert ours[-1] < 0.75 * ours[0]  # it trains (1.44 -> 0.98)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)  # every step (4e-16 seen)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16])
def test_low_precision_computed_in_float32(low):
    pred, target = (t.to(low) for t in (_boxes(40, 4, torch.float32), _boxes(40, 5, torch.float32)))
    pred.requires_grad_()
    out = rt.giou_loss(pred, target)
    assert out.dtype == low
    out.sum().backward()
    assert pred.grad.dtype == low
    value, (gp, _) = rl.giou_loss.value_and_grad(pred.detach().float().numpy(), target.float().numpy())
    assert torch.equal(out.detach(), torch.from_numpy(value).to(low))
    assert torch.equal(pred.grad, torch.from_numpy(gp).to(low))


def test_errors_are_clear():
    p = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(TypeError, match="did you mean eps="):
        rt.giou_loss(p, p, esp=1e-7)
    # the call's keywords (no dtype= or device= here: they follow the tensors)
    with pytest.raises(TypeError, match=r"call's reduction=, validate=; reducton= .*did you mean reduction="):
        rt.giou_loss(p, p, reducton="sum")
    with pytest.raises(ValueError, match="reduction"):
        rt.giou_loss(p, p, reduction="avg")
    with pytest.raises(ValueError, match="x2 >= x1|x2"):
        rt.giou_loss(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), p)
    with pytest.raises(ValueError, match="beta"):
        rt.smooth_l1(p, p, beta=-1.0)
    for q in (p.clone().requires_grad_(), p.double().requires_grad_()):  # recording for autograd: the same errors
        with pytest.raises(ValueError, match="beta"):
            rt.smooth_l1(q, p, beta=-1.0)
        with pytest.raises(ValueError, match="eps"):
            rt.giou_loss(q, p, eps=-1.0)
        with pytest.raises(TypeError, match="did you mean eps="):
            rt.giou_loss(q, p, esp=1e-7)
    with pytest.raises(TypeError, match="torch tensors"):
        rt.giou_loss(p.numpy(), p.numpy())
    with pytest.raises(AttributeError, match="giou_loss"):
        rt.giou_los
    with pytest.raises(RuntimeError, match="second derivatives"):
        q = p.clone().requires_grad_()
        g, = torch.autograd.grad(rt.giou_loss(q, p + 0.1).sum(), q, create_graph=True)


def test_design_loss_wraps():
    pytest.importorskip("sympy")
    from refloss.design import from_gradient
    import sympy as sp

    a, beta = sp.symbols("a beta", positive=True)
    d = from_gradient("torch_wrap_check", [(a < beta, a / beta), (None, 1)], a, {beta: 1.0})
    fn = rt.wrap(d.loss)
    x = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    fn(x, 0.0, beta=0.5, reduction="sum").backward()
    value, (g, _) = d.loss.value_and_grad(x.detach().numpy(), 0.0, beta=0.5)
    np.testing.assert_array_equal(x.grad.numpy(), g)


def test_wrap_errors_say_what_to_pass():
    """A probe (2026-12-08): wrap("gio_loss") read "has no loss 'gio_loss'; it (did you mean giou_loss?)";
    wrap("retinanet_loss") suggested inner_iou_loss; wrap(a Design) gave a TypeError without a hint."""
    with pytest.raises(AttributeError, match=r"^refloss\.torch has no loss 'gio_loss' \(did you mean giou_loss\?\)$"):
        rt.wrap("gio_loss")
    with pytest.raises(AttributeError,
                       match=r"'retinanet_loss' is a whole detector loss.*use refloss\.torch\.retinanet_loss"):
        rt.wrap("retinanet_loss")
    with pytest.raises(AttributeError, match=r"did you mean refloss\.torch\.retinanet_loss, a whole detector loss\?"):
        rt.wrap("retinanet_los")
    with pytest.raises(AttributeError, match=r"^refloss\.torch has no loss 'zzzzzz'$"):
        rt.wrap("zzzzzz")
    pytest.importorskip("sympy")
    import sympy as sp

    from refloss.design import from_gradient

    a = sp.Symbol("a", nonnegative=True)
    d = from_gradient("torch_wrap_hint", [(None, a)], a, {})
    with pytest.raises(TypeError, match=r"wrap its compiled loss: wrap\(design\.loss\)"):
        rt.wrap(d)


def test_docs_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "torch.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "docs/torch.md", "exec"), {})


def test_import_refloss_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, refloss; assert 'torch' not in sys.modules, 'torch imported'; print(len(refloss.ALL_LOSSES))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_detector_losses_take_tensors():
    rng = np.random.default_rng(0)
    anchors = [np.array([[0, 0, 4, 4], [3, 0, 7, 4], [4, 0, 8, 4], [1, 1, 7, 7]], float)] * 2
    targets = [{"boxes": np.array([[0.5, 0.5, 4.5, 4.0]]), "labels": np.array([1])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]
    head = {"cls_logits": rng.normal(size=(2, 4, 3)), "bbox_regression": rng.normal(0, 0.1, (2, 4, 4))}
    assert set(rt.DETECTOR_LOSSES) >= {"retinanet_loss", "ssd_loss", "yolov3_loss"}
    for name in ("retinanet_loss", "ssd_loss"):
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in head.items()}
        t_targets = [{k: torch.as_tensor(v) for k, v in d.items()} for d in targets]
        result = getattr(rt, name)(t_targets, tensors, [torch.as_tensor(a) for a in anchors], None)
        assert isinstance(result.total, torch.Tensor) and result.total.requires_grad
        (2 * result.total).backward()
        ref, grads = getattr(rl, name).value_and_grad(targets, head, anchors, None)
        assert result.total.item() == ref.total
        for k in head:
            np.testing.assert_array_equal(tensors[k].grad.numpy(), 2 * grads[k])
        with torch.no_grad():
            assert getattr(rt, name)(t_targets, tensors, anchors, None).total.item() == ref.total
    with pytest.raises(TypeError, match="no torch tensor"):
        rt.retinanet_loss(targets, head, anchors, None)


@pytest.mark.parametrize("name", ["retinanet_loss", "ssd_loss"])
def test_detector_gradients_follow_the_head_outputs_keys(name):
    """Each head output gets its own gradient whatever the dict's key order (the gradients were zipped in refloss's
    order: bbox_regression got cls_logits' with the keys swapped, 4 classes; PyTorch's shape error with others),
    and a key the loss does not read gets none."""
    rng = np.random.default_rng(0)
    anchors = [np.array([[0, 0, 4, 4], [3, 0, 7, 4], [4, 0, 8, 4], [0, 4, 4, 8]], float)]
    targets = [{"boxes": np.array([[0.5, 0.5, 4.5, 4.0]]), "labels": np.array([1])}]
    head = {"bbox_regression": rng.normal(0, 0.1, (1, 4, 4)), "cls_logits": rng.normal(size=(1, 4, 4))}
    _, grads = getattr(rl, name).value_and_grad(targets, dict(reversed(head.items())), anchors)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in head.items()}
    tensors["features"] = torch.ones(3, requires_grad=True)  # not read by the loss
    getattr(rt, name)(targets, tensors, anchors).total.backward()
    for k in head:
        np.testing.assert_array_equal(tensors[k].grad.numpy(), grads[k])
    assert tensors["features"].grad is None


def test_repeated_backward_accumulates():
    """The eager backward of a reduced loss hands out the kernel's gradients as they are: autograd
    must not accumulate into them (three backward passes give three times the gradient)."""
    p = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    loss = rt.giou_loss(p, t, reduction="sum")
    loss.backward(retain_graph=True)
    once = p.grad.clone()
    loss.backward(retain_graph=True)
    loss.backward()
    assert torch.equal(p.grad, 3 * once)
    _, (gp, _) = rl.giou_loss.value_and_grad(p.detach().numpy(), t.numpy(), reduction="sum")
    np.testing.assert_array_equal(once.numpy(), gp)
    # the first backward's gradient becomes p.grad itself (no copy): zeroing it in place (an optimiser's
    # zero_grad(set_to_none=False)) must not change what a retained graph hands out next
    p.grad = None
    loss = rt.giou_loss(p, t, reduction="sum")
    loss.backward(retain_graph=True)
    p.grad.zero_()
    loss.backward()
    np.testing.assert_array_equal(p.grad.numpy(), gp)
    # without retain_graph, the gradients are freed as PyTorch frees any saved tensor
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_newcomer_mistakes_get_clear_errors():
    p = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    with pytest.raises(TypeError, match="move or cast the tensors"):
        rt.giou_loss(p, t, device="cuda")
    with pytest.raises(TypeError, match="move or cast the tensors"):
        rt.giou_loss(p, t, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"pred: last dimension must be 4 \(x1, y1, x2, y2\), got shape \(1, 3\)"):
        rt.giou_loss(p[:, :3], t)
    with pytest.raises(ValueError, match="not broadcastable"):
        rt.giou_loss(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="did you mean target="):
        rt.giou_loss(p, targets=t)
    assert rt.giou_loss(pred=p, target=t).shape == (1,)  # by name, as the NumPy API


def _simulated_cuda(monkeypatch):
    """refloss.torch's CUDA path on CPU tensors under Numba's CUDA simulator: the simulator has no
    ``as_cuda_array``, so CPU tensors are wrapped as simulator device arrays over their own memory
    (the kernels write into the tensors, as they would on a GPU), and PyTorch's current stream and
    Numba's external stream over it are stand-ins (the simulator has no external streams)."""
    from numba import config, cuda
    if not config.ENABLE_CUDASIM:
        pytest.skip("a real CUDA device: the simulator stand-ins do not apply (tests/test_backends.py)")
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    class Stream:
        cuda_stream = 0

        def synchronize(self):
            pass

    def as_cuda_array(t, sync=True):
        if t.requires_grad:  # as PyTorch's __cuda_array_interface__ (the first GPU run found leaves passed to it)
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad.")
        return FakeCUDAArray(t.numpy())

    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(cuda, "external_stream", lambda handle: cuda.stream())  # (the simulator has none)
    from refloss import torch as module
    return module


@pytest.mark.parametrize("loss, params", [("giou_loss", {}), ("ciou_loss", {"eps": 1e-7}), ("smooth_l1", {"beta": 0.5}),
                                          ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0}),
                                          ("probiou_loss", {})])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_path_under_the_simulator(monkeypatch, loss, params, dtype):
    """The CUDA implementation (flattening and broadcasting, the kernels' launch, the reductions and
    the gradients' shapes) gives the CPU implementation's results, for every reduction, with and
    without gradients, a broadcast target included. (float32 math runs in double precision in the
    simulator, and its libm may round differently: compared at a few ULP.)"""
    module = _simulated_cuda(monkeypatch)
    fn = getattr(rt, loss)
    a, b = (torch.from_numpy(x).to(dtype) for x in _smooth_inputs(loss, n=6))
    cases = [(a, b), (a, b[:1])]  # the second: one target broadcast against every prediction
    tol = dict(rtol=4 * torch.finfo(dtype).eps, atol=4 * torch.finfo(dtype).eps)
    for p, t in cases:
        for reduction in ("none", "sum", "mean"):
            for with_grad in (False, True):
                cpu = module._cpu_impl(fn._loss, (p, t), params, reduction, True, with_grad)
                # with gradients, the leaves themselves (requiring grad), as the autograd Function's forward passes them
                leaves = [x.detach().requires_grad_(with_grad) for x in (p, t)]
                sim = module._cuda_impl(fn._loss, leaves, params, reduction, True, with_grad)
                assert len(sim) == len(cpu)
                for x, y in zip(sim, cpu):
                    assert x.shape == y.shape and x.dtype == y.dtype, (reduction, with_grad, x.shape, y.shape)
                    torch.testing.assert_close(x, y, **tol)


def test_cuda_path_under_the_simulator_checks_inputs(monkeypatch):
    module = _simulated_cuda(monkeypatch)
    p = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, -1.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="pred"):
        module._cuda_impl(rt.giou_loss._loss, (p, p), {}, "none", True, False)


@pytest.mark.gpu
@pytest.mark.skipif("os.environ.get('REFLOSS_TEST_REAL_GPU') != '1'")
@pytest.mark.parametrize("loss", ["giou_loss", "ciou_loss", "smooth_l1", "sigmoid_focal_loss", "probiou_loss",
                                  "softmax_cross_entropy"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_tensors_equal_cpu_tensors(loss, dtype):
    """On a GPU (benchmarks/gpu_check.sh): CUDA tensors give CUDA results and gradients equal to the
    CPU tensors' within a few ULP (libdevice against libm), on PyTorch's current stream."""
    fn = getattr(rt, loss)
    arrays = _smooth_inputs(loss, n=64)
    for reduction in ("none", "sum", "mean"):
        out = []
        for device in ("cpu", "cuda"):
            tensors = [torch.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
            v = fn(*tensors, reduction=reduction)
            (v.sum() if reduction == "none" else v).backward()
            assert v.device.type == device and v.dtype == dtype
            out.append([v.detach().cpu(), *[t.grad.cpu() for t in tensors]])
        for a, b in zip(*out):
            torch.testing.assert_close(a, b, rtol=64 * torch.finfo(dtype).eps, atol=64 * torch.finfo(dtype).eps)


def test_operator_called_directly_takes_any_tensors():
    """torch.ops.refloss.<loss> called directly (not through refloss.torch, which unifies dtypes first) with
    integer, float16 or mixed tensors: the NumPy API's rules (result dtype, float16 computed in float32), not the
    fast path's single-dtype drivers (integers gave integer zeros, float16 an error)."""
    op = rt.giou_loss.op
    p, t = torch.tensor([[0, 0, 2, 2], [0, 0, 1, 1]]), torch.tensor([[1, 1, 3, 3], [0, 0, 3, 1]])
    want = rl.giou_loss(p.numpy().astype(float), t.numpy().astype(float))
    got = op(p, t, 0.0, "none", True, False)[0]
    assert got.dtype == torch.float64 and np.array_equal(got.numpy(), want)
    half = op(p.half(), t.half(), 0.0, "none", True, False)[0]
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float().numpy(), want, rtol=1e-3)
    mixed = op(p.double(), t.float(), 0.0, "none", True, False)[0]
    assert mixed.dtype == torch.float64 and np.array_equal(mixed.numpy(), want)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_broadcast_gradients_are_the_numpy_apis_bit_for_bit(dtype):
    """A target broadcast over 3*10^5 boxes: its gradient summed as the NumPy API sums it (compensated,
    refloss/_sums.py), eager and compiled; torch's sum_to_size was up to 27 ulps from the exact sum."""
    rng = np.random.default_rng(2)
    p = torch.tensor(rng.normal(size=(300000, 4)), dtype=dtype, requires_grad=True)
    t = torch.tensor([0.1, -0.2, 0.3, 0.5], dtype=dtype, requires_grad=True)
    value, (gp, gt) = rl.smooth_l1.value_and_grad(p.detach().numpy(), t.detach().numpy(), reduction="mean")
    compiled = torch.compile(lambda a, b: rt.smooth_l1(a, b, reduction="mean"), fullgraph=True)
    for fn in (lambda a, b: rt.smooth_l1(a, b, reduction="mean"), compiled):
        p.grad = t.grad = None
        out = fn(p, t)
        out.backward()
        assert out.item() == value
        assert t.grad.numpy().tobytes() == gt.tobytes() and p.grad.numpy().tobytes() == gp.tobytes()
    g = torch.tensor(rng.normal(size=(50, 3, 4)), dtype=dtype)
    torch.library.opcheck(torch.ops.refloss.sum_to, (g, [3, 1]))
    torch.library.opcheck(torch.ops.refloss.sum_to, (g, [50, 3, 4]))


def test_meta_tensors_in_eager_mode_give_meta_results_of_the_right_shapes():
    """Shapes without values (the meta device) go to the registered operator's fake implementation, as under
    torch.compile; the eager path asked NumPy for their values ("can't convert meta device type tensor")."""
    m = torch.ones(3, 4, device="meta", requires_grad=True)
    for reduction, shape in (("none", (3,)), ("sum", ())):
        out = rt.giou_loss(m, torch.ones(3, 4, device="meta"), reduction=reduction)
        assert out.is_meta and tuple(out.shape) == shape
    rt.giou_loss(m, torch.ones(3, 4, device="meta"), reduction="sum").backward()
    assert m.grad.is_meta and tuple(m.grad.shape) == (3, 4)
    half = rt.l1(torch.ones(2, device="meta", dtype=torch.float16), torch.ones(2, device="meta", dtype=torch.float16))
    assert half.is_meta and half.dtype == torch.float16
    with pytest.raises(TypeError, match=r"^pred: cannot be read as a NumPy array"):  # the NumPy API names the input
        rl.l1(torch.ones(2, device="meta"), 0.0)
    for call in (lambda: rt.giou_loss(m, m, eps=-1.0), lambda: rt.sigmoid_focal_loss(m, m, alpha=2.0)):
        with pytest.raises(ValueError, match=r"must satisfy"):  # (the fake implementation checks no parameter)
            call()


def test_the_numpy_api_reads_a_bfloat16_tensor():
    """bfloat16 is computed and returned in float32 (NumPy has no bfloat16; float32 holds every bfloat16 and its
    range, float16 not: 300^2 overflows it); NumPy could not view it."""
    x = torch.tensor([0.5, 1.25, -3.0, 300.0], dtype=torch.bfloat16)
    v, (g, _) = rl.mse.value_and_grad(x, torch.zeros(4, dtype=torch.bfloat16))
    w, (h, _) = rl.mse.value_and_grad(np.array([0.5, 1.25, -3.0, 300.0], np.float32), np.zeros(4, np.float32))
    assert v.dtype == np.float32 and np.array_equal(v, w) and np.array_equal(g, h) and v[3] == 90000.0


# --- a probe of refloss.torch (2026-12-07): each test failed before its fix ---

def test_torch_compile_fullgraph_with_parameters():
    """A parameter given by keyword (eps=1e-7; the docs' training loop) broke fullgraph tracing: Dynamo does not trace
    dict_keys.isdisjoint, which the call used to see whether an input came by keyword."""
    p = torch.tensor([[0., 0, 2, 2], [1, 1, 4, 3]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1., 1, 3, 3], [1, 0.5, 4, 3.5]], dtype=torch.float64)
    compiled = torch.compile(lambda a, b: rt.giou_loss(a, b, eps=1e-7, reduction="mean"), fullgraph=True,
                             backend="aot_eager")
    out = compiled(p, t)
    out.backward()
    value, (gp, _) = rl.giou_loss.value_and_grad(p.detach().numpy(), t.numpy(), eps=1e-7, reduction="mean")
    assert out.item() == value and np.array_equal(p.grad.numpy(), gp)


def test_losses_pickle_and_copy_as_references():
    """copy.deepcopy of a model holding a loss (an EMA model), torch.save, spawn workers: a loss is pickled as a
    reference to itself (the NumPy API's had a lambda, refloss.torch's a registered operator)."""
    import copy
    import pickle

    for loss in (rl.giou_loss, rl.kld_loss, rt.giou_loss, rt.smooth_l1, rt.yolov3_loss):
        assert pickle.loads(pickle.dumps(loss)) is loss and copy.deepcopy(loss) is loss and copy.copy(loss) is loss
    model = torch.nn.Sequential(torch.nn.Linear(2, 4))
    model.crit = rt.giou_loss
    assert copy.deepcopy(model).crit is rt.giou_loss


def test_second_derivatives_of_detector_losses_are_refused():
    """The detector losses' backward multiplied constant gradients by the incoming one: a second derivative was 0,
    silently (now the element-wise ops' error); a second backward without retain_graph accumulated again."""
    rng = np.random.default_rng(0)
    heads = [torch.tensor(rng.normal(0, .5, (2, 4, 4, 2, 8)), requires_grad=True)]
    args = ([np.array([[0.2, 0.3], [0.5, 0.4]])], [np.array([[0.3, 0.3, 0.2, 0.3]]), np.array([[0.6, 0.6, 0.3, 0.2]])],
            [np.array([1]), np.array([0])])
    r = rt.yolov3_loss(heads, *args)
    with pytest.raises(RuntimeError, match="second derivatives are not available"):
        torch.autograd.grad(r.total + (heads[0] ** 3).sum(), heads[0], create_graph=True)
    r = rt.yolov3_loss(heads, *args)
    r.total.backward()
    with pytest.raises(RuntimeError, match="second time"):
        r.total.backward()


def test_forward_mode_and_torch_func_are_refused():
    """A dual tensor's tangent was dropped silently (the value path read its primal); torch.func's transforms
    failed inside PyTorch."""
    import torch.autograd.forward_ad as fwad

    p = torch.tensor([[0., 0, 2, 2]], dtype=torch.float64)
    t = torch.tensor([[1., 1, 3, 3]], dtype=torch.float64)
    with fwad.dual_level():
        with pytest.raises(RuntimeError, match="forward-mode AD"):
            rt.giou_loss(fwad.make_dual(p, torch.ones_like(p)), t, reduction="mean")
        rt.giou_loss(p, t)  # (inside a dual level, tensors without a tangent: as ever)
    with pytest.raises(RuntimeError, match="torch.func transforms"):
        torch.func.grad(lambda q: rt.giou_loss(q, t, reduction="mean"))(p)
    with pytest.raises(RuntimeError, match="torch.func transforms"):
        torch.func.vmap(lambda q: rt.l1(q, torch.zeros(3, dtype=torch.float64), reduction="sum"))(torch.ones(4, 3))


def test_weighted_mean_with_a_broadcast_input_is_the_numpy_apis_bit_for_bit():
    """focal_eiou_loss's mean (weighted by IoU^gamma) with a broadcast target: its gradient from the NumPy API at the
    target's own shape, eager and compiled (broadcast first and summed after, it was an ulp off)."""
    rng = np.random.default_rng(3)
    xy = rng.random((200, 2))
    p = np.concatenate([xy, xy + 0.2 + rng.random((200, 2))], axis=1)
    t = np.array([0.1, 0.2, 0.9, 0.8])
    value, (gp, gt) = rl.focal_eiou_loss.value_and_grad(p, t, reduction="mean")
    compiled = torch.compile(lambda a, b: rt.focal_eiou_loss(a, b, reduction="mean"), fullgraph=True,
                             backend="aot_eager")
    for fn in (lambda a, b: rt.focal_eiou_loss(a, b, reduction="mean"), compiled):
        pt, tt = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
        out = fn(pt, tt)
        out.backward()
        assert out.item() == value and np.array_equal(tt.grad.numpy(), gt) and np.array_equal(pt.grad.numpy(), gp)
    torch.library.opcheck(rt.focal_eiou_loss.op, (torch.tensor(p, requires_grad=True),
                                                  torch.tensor(t, requires_grad=True), 1e-7, 0.5, False, "mean",
                                                  True, True))


def test_operator_called_directly_agrees_with_its_fake():
    """Mixed or integer tensors: the fake implementation said the first tensor's dtype, the implementation computed
    NumPy's (float64); bfloat16 was refused."""
    op = rt.giou_loss.op
    p = torch.tensor([[0., 0, 2, 2], [1, 1, 4, 3]], dtype=torch.float64)
    t = torch.tensor([[1., 1, 3, 3], [1, 0.5, 4, 3.5]], dtype=torch.float64)
    torch.library.opcheck(op, (p.float().requires_grad_(), t, 0.0, "mean", True, True))
    torch.library.opcheck(op, (p.long(), t.long(), 0.0, "none", True, False))
    got = op(p.bfloat16(), t.bfloat16(), 0.0, "none", True, True)
    want = rt.giou_loss(p.bfloat16(), t.bfloat16())
    assert all(g.dtype == torch.bfloat16 for g in got) and torch.equal(got[0], want)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match=r"shapes not broadcastable .*pred \(3, 4\), target \(4, 4\)"):
        rt.giou_loss(torch.zeros(3, 4, requires_grad=True), torch.zeros(4, 4))  # (torch's own message before)
    for bad in (None, "abc"):
        with pytest.raises(TypeError, match=r"target must be a tensor"):
            rt.giou_loss(torch.zeros(1, 4), bad)
    m = torch.randn(5, 8, dtype=torch.float64).to("meta")
    with pytest.raises(ValueError, match=r"clamp: must satisfy"):  # (meta tensors skipped the rows' check)
        rt.dfl_loss(m, torch.rand(5, dtype=torch.float64).to("meta"), clamp=100.0)


def test_detector_results_have_numpys_dtype():
    """Mixed float32/float64 heads: the total and the float64 head's gradient in float64, as the NumPy API computes
    them (they were the first head's float32); bfloat16 heads computed in float32 and returned in bfloat16 (an
    error before)."""
    rng = np.random.default_rng(0)
    arrays = [rng.normal(0, .5, (2, 4, 4, 2, 8)), rng.normal(0, .5, (2, 2, 2, 2, 8))]
    args = ([np.array([[0.2, 0.3], [0.5, 0.4]]), np.array([[0.1, 0.1], [0.3, 0.2]])],
            [np.array([[0.3, 0.3, 0.2, 0.3]]), np.array([[0.6, 0.6, 0.3, 0.2]])], [np.array([1]), np.array([0])])
    heads = [torch.tensor(arrays[0], dtype=torch.float32, requires_grad=True),
             torch.tensor(arrays[1], requires_grad=True)]
    r = rt.yolov3_loss(heads, *args)
    r.total.backward()
    value, grads = rl.yolov3_loss.value_and_grad([h.detach().numpy() for h in heads], *args)
    assert r.total.dtype == torch.float64 and r.total.item() == value.total
    assert heads[1].grad.dtype == torch.float64 and np.array_equal(heads[1].grad.numpy(), grads[1])
    low = [torch.tensor(a, dtype=torch.bfloat16, requires_grad=True) for a in arrays]
    r = rt.yolov3_loss(low, *args)
    r.total.backward()
    value = rl.yolov3_loss([h.detach().float().numpy() for h in low], *args)
    assert r.total.dtype == torch.bfloat16 and r.total.item() == torch.tensor(float(value.total)).bfloat16().item()
    assert low[0].grad.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["retinanet_loss", "ssd_loss"])
def test_detector_losses_under_torch_compile(name):
    """A compiled function calling a whole detector loss runs it eagerly (a graph break: its matching and masks
    are host code): the same total and gradients as eager.  torch.compile traced into refloss's NumPy code and
    failed ("'ndarray' object has no attribute 'setflags'")."""
    rng = np.random.default_rng(0)
    anchors = [np.array([[0, 0, 4, 4], [3, 0, 7, 4], [4, 0, 8, 4], [1, 1, 7, 7]], float)] * 2
    targets = [{"boxes": np.array([[0.5, 0.5, 4.5, 4.0]]), "labels": np.array([1])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]
    head = {"cls_logits": rng.normal(size=(2, 4, 3)), "bbox_regression": rng.normal(0, 0.1, (2, 4, 4))}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in head.items()}
    compiled = torch.compile(lambda h: 2 * getattr(rt, name)(targets, h, anchors).total)
    total = compiled(tensors)
    total.backward()
    ref, grads = getattr(rl, name).value_and_grad(targets, head, anchors)
    assert total.item() == 2 * ref.total
    for k in head:
        np.testing.assert_array_equal(tensors[k].grad.numpy(), 2 * grads[k])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_batched_gradients_of_a_reduced_loss(reduction):
    """Many incoming gradients at once (``is_grads_batched=True``, ``jacobian(vectorize=True)``: vmap over the
    backward) of a reduced loss: each the kernel's gradient times its own incoming gradient.  The backward asked the
    incoming gradient for its single value and failed ("Batching rule not implemented for aten::item")."""
    p = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64)
    _, (gp, _) = rl.giou_loss.value_and_grad(p.detach().numpy(), t.numpy(), reduction=reduction)
    jac = torch.autograd.functional.jacobian(lambda x: rt.giou_loss(x, t, reduction=reduction), p, vectorize=True)
    np.testing.assert_array_equal(jac.numpy(), gp)
    v = rt.giou_loss(p, t, reduction=reduction)
    g, = torch.autograd.grad(v, p, torch.tensor([1.0, -3.0], dtype=torch.float64), is_grads_batched=True)
    np.testing.assert_array_equal(g[0].numpy(), gp)
    np.testing.assert_array_equal(g[1].numpy(), -3 * gp)


def test_cross_entropy_of_images_takes_the_class_axis_moved_last():
    """The drop-in table's row for F.cross_entropy of (N, C, d1, d2) logits: torch's class axis is dim 1,
    refloss's the last, so the row moves it; without that refloss computes another, plausible number."""
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(2, 3, 4, 5)))
    y = torch.tensor(rng.integers(0, 3, (2, 4, 5)))
    ref = F.cross_entropy(x, y, label_smoothing=0.1)
    out = rt.softmax_cross_entropy(x.movedim(1, -1), y, label_smoothing=0.1, reduction="mean")
    assert abs(out.item() - ref.item()) < 1e-14


def test_parameters_take_the_fast_path_with_the_same_bits(monkeypatch):
    """An nn.Parameter (a module's weight) is a plain tensor for refloss: the same value and gradient as the tensor
    it holds, bit for bit, through the fast path (it took the general path before, correct and slower); another
    Tensor subclass still takes the general path (its operations may mean something else)."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 10, (16, 2))
    p = torch.tensor(np.hstack([xy, xy + rng.uniform(1, 5, (16, 2))]))
    t = p + torch.tensor(rng.normal(0, 0.5, (16, 4)))
    w, x = torch.nn.Parameter(p.clone()), p.clone().requires_grad_(True)
    for inp in (w, x):
        rt.ciou_loss(inp, t, reduction="mean").backward()
    assert torch.equal(rt.ciou_loss(w, t), rt.ciou_loss(x, t)) and torch.equal(w.grad, x.grad)

    def general(*a, **k):
        raise AssertionError("the general path")

    monkeypatch.setattr(rt, "_tensors", general)
    rt.ciou_loss(w, t, reduction="sum").backward()  # the fast path: never converts
    with torch.no_grad():
        rt.ciou_loss(w, t)

    class Marked(torch.Tensor):
        pass

    with pytest.raises(AssertionError, match="the general path"):
        rt.ciou_loss(p.as_subclass(Marked), t)
