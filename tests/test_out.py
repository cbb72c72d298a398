"""``out=`` (refloss/_out.py): results written into the caller's arrays are those of the same call
without it, bit for bit, for every loss; the kernels write into them directly on the common call's
fast path (no copy), and every other form (non-contiguous, overlapping an input, broadcast, float16,
class indices) is computed as without ``out=`` and copied in; wrong shapes, dtypes, forms and
read-only arrays are errors that say what was expected."""
import numpy as np
import pytest

import refloss as rl
from refloss import _out
from refloss._battery import battery
from refloss._generated._index import LOSSES
from refloss._loss import Loss, loss_named

# the public loss objects (yolo_decode is a box coding with an API of its own)
LOSS_NAMES = sorted(n for n in LOSSES if isinstance(getattr(rl, n), Loss))


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


def _inputs(name, dtype):
    loss = loss_named(name)
    params = {p.name: (640.0, 480.0) for p in loss.params if p.kind == "size" and p.default is None}  # MPDIoU's
    _, inputs, _ = battery(loss, "standard")
    return loss, [np.ascontiguousarray(a, dtype) for a in inputs], params


@pytest.fixture
def copies(monkeypatch):
    """The names of the outputs copied into their out= arrays (not written by the kernels directly)."""
    seen = []
    put = _out._put

    def spy(name, r, o):
        if o is not None and o is not r:
            seen.append(name)
        return put(name, r, o)

    monkeypatch.setattr(_out, "_put", spy)
    return seen


def test_every_loss_but_the_box_coding():
    assert len(LOSS_NAMES) >= 36 and set(LOSSES) - set(LOSS_NAMES) == {"yolo_decode"}


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_out_gives_the_same_bits_as_the_call_without_it(name, dtype, copies):
    loss, inputs, params = _inputs(name, dtype)
    with np.errstate(all="ignore"):
        value = loss(*inputs, **params)
        out = np.full_like(value, 7.0)
        assert loss(*inputs, out=out, **params) is out
        _same(out, value)
        for reduction in ("none", "mean"):
            v, grads = loss.value_and_grad(*inputs, reduction=reduction, **params)
            outs = [np.full_like(v, 7.0) if reduction == "none" else None] + [np.full_like(g, 7.0) for g in grads]
            v2, grads2 = loss.value_and_grad(*inputs, reduction=reduction, out=tuple(outs), **params)
            _same(v2, v)
            if reduction == "none":
                assert v2 is outs[0]
            for g, g2, o in zip(grads, grads2, outs[1:]):
                assert g2 is o
                _same(g2, g)
            # the calls the fast path serves (not Focal-EIoU's weighted mean) write into the arrays directly
            if loss._fast_width is not None and (reduction == "none" or loss.info.mean_weight is None):
                assert copies == [], "the fast path copied where the kernels could have written directly"
            copies.clear()


def test_forms_that_are_copied_in():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    ref, (gp, gt) = rl.smooth_l1.value_and_grad(p, t)
    strided = np.empty((50, 8))[:, ::2]  # non-contiguous
    assert rl.smooth_l1(p, t, out=strided) is strided
    _same(strided, ref)
    q = p.copy()  # in place: the output is an input
    assert rl.l1(q, t, out=q) is q
    _same(q, rl.l1(p, t))
    # the target broadcast along the boxes: its gradient is summed into the array given
    boxes = np.array([[0.0, 0.0, 2.0, 1.0], [1.0, 1.0, 3.0, 4.0], [0.5, 0.2, 1.0, 3.0]])
    gt_box = np.array([[0.5, 0.0, 2.5, 1.5]])
    v, (d_boxes, d_gt) = rl.ciou_loss.value_and_grad(boxes, gt_box)
    o = np.empty((1, 4))
    v2, (d_boxes2, d_gt2) = rl.ciou_loss.value_and_grad(boxes, gt_box, out=(None, (None, o)))
    assert d_gt2 is o
    _same(v2, v), _same(d_boxes2, d_boxes), _same(o, d_gt)
    # float16: computed in float32, returned (and written) as float16
    h, ht = p.astype(np.float16), t.astype(np.float16)
    oh = np.empty((50, 4), np.float16)
    rl.mse(h, ht, out=oh)
    _same(oh, rl.mse(h, ht))
    # class indices: their gradient is None, and so is its out=
    logits, k = rng.normal(size=(6, 5)), rng.integers(0, 5, 6)
    v, (dz, dk) = rl.softmax_cross_entropy.value_and_grad(logits, k)
    o = (np.empty(6), np.empty((6, 5)), None)
    v2, (dz2, dk2) = rl.softmax_cross_entropy.value_and_grad(logits, k, out=o)
    assert v2 is o[0] and dz2 is o[1] and dk2 is None and dk is None
    _same(v2, v), _same(dz2, dz)


def test_far_boxes_computed_again_scaled_land_in_out():
    """Box pairs beyond the kernels' range are computed again scaled (Loss._rescale): into the array given."""
    p = np.array([[0.0, 0.0, 2.0, 1.0], [1e300, 1e300, 3e300, 4e300]])
    t = np.array([[0.5, 0.0, 2.5, 1.5], [1.5e300, 1e300, 3e300, 5e300]])
    v, (gp, gt) = rl.giou_loss.value_and_grad(p, t)
    outs = (np.empty(2), np.empty((2, 4)), np.empty((2, 4)))
    rl.giou_loss.value_and_grad(p, t, out=outs)
    _same(outs[0], v), _same(outs[1], gp), _same(outs[2], gt)
    assert np.isfinite(v).all() and 0 < v[1] < 2


def test_bad_input_is_named_when_the_output_is_the_input():
    """An out= array that is an input is not written by the kernels (the check reads the inputs again)."""
    q = np.array([1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match=r"pred.*\[1\]|index 1"):
        rl.l1(q, np.zeros(3), out=q)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(out=np.empty(4)), ValueError, r"shape \(3, 4\)"),
    (dict(out=np.empty((3, 4), np.float32)), ValueError, "dtype float64, got float32"),
    (dict(out=[0.0] * 12), TypeError, "out: must be a NumPy array"),
    (dict(out=np.empty((3, 4)), reduction="sum"), ValueError, "scalar"),
    (dict(out=np.empty((3, 4)), device="cuda"), ValueError, "device"),
])
def test_value_out_errors(kwargs, error, match):
    p = np.ones((3, 4))
    with pytest.raises(error, match=match):
        rl.smooth_l1(p, p, **kwargs)


def test_read_only_out_is_refused():
    p = np.ones((3, 4))
    o = np.empty((3, 4))
    o.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        rl.smooth_l1(p, p, out=o)


@pytest.mark.parametrize("out, error, match", [
    (np.empty((3, 4)), TypeError, r"\(value, d_pred, d_target\), a tuple"),
    ((None, None), TypeError, "3 arrays or None, got 2"),
    ((None, [1.0], None), TypeError, "d_pred must be a NumPy array"),
    ((np.empty(()), None, None), ValueError, "scalar value: pass None"),
])
def test_value_and_grad_out_errors(out, error, match):
    p = np.ones((3, 4))
    with pytest.raises(error, match=match):
        rl.smooth_l1.value_and_grad(p, p, reduction="mean", out=out)


def test_class_index_gradient_out_is_refused():
    with pytest.raises(ValueError, match="class-index input has no gradient"):
        rl.softmax_cross_entropy.value_and_grad(np.zeros((2, 3)), np.array([0, 2]), out=(None, None, np.empty(2)))


def test_out_in_the_signature_and_the_typo_hint():
    import inspect

    assert inspect.signature(rl.giou_loss).parameters["out"].default is None
    with pytest.raises(TypeError, match="did you mean out="):
        rl.smooth_l1(np.ones(3), np.ones(3), outt=np.empty(3))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix's own, made by the test)
def test_a_matrix_out_gets_the_results_and_the_checks_run():
    """np.matrix reshapes its own way (to (1, N)): the kernels do not write into it; the result is copied in
    (found by review: every element took element 0's value, and the input check was skipped)."""
    p, t = np.array([[5.0, 1, 2, 3], [4, 5, 6, 7]]), np.zeros((2, 4))
    m = np.asmatrix(np.zeros((2, 4)))
    assert rl.l1(p, t, out=m) is m
    _same(np.asarray(m), rl.l1(p, t))
    p[1, 2] = np.nan
    with pytest.raises(ValueError, match="nan"):
        rl.l1(p, t, out=np.asmatrix(np.zeros((2, 4))))


def test_masked_outs_are_refused():
    with pytest.raises(TypeError, match="masked"):
        rl.l1(np.ones(3), np.zeros(3), out=np.ma.masked_array(np.zeros(3)))
    with pytest.raises(TypeError, match="masked"):
        rl.l1.value_and_grad(np.ones(3), np.zeros(3), out=(None, np.ma.masked_array(np.zeros(3)), None))


@pytest.mark.parametrize("share, names", [("same", "d_pred and d_target"), ("views", "value and d_pred"),
                                          ("value twice", "value and d_pred")])
def test_outputs_sharing_memory_are_refused(share, names):
    p, t = np.ones(5), np.zeros(5)
    buf = np.empty(10)
    out = {"same": (None, buf[:5], buf[:5]), "views": (buf[:5], buf[4:9], None),  # (one element shared)
           "value twice": (buf[:5], buf[:5], None)}[share]
    with pytest.raises(ValueError, match=f"out: {names} share memory"):
        rl.smooth_l1.value_and_grad(p, t, out=out)


def test_no_array_is_written_where_another_is_wrong():
    """The general path checks every array given before it copies into any."""
    p, t = np.ones((3, 4)), np.zeros((1, 4))
    v = np.full((3, 4), 7.0)
    with pytest.raises(ValueError, match=r"d_target must have the result's shape \(1, 4\)"):
        rl.smooth_l1.value_and_grad(p, t, out=(v, None, np.empty(4)))
    assert (v == 7.0).all()


def test_the_calls_own_errors_come_first():
    p, o = np.ones((3, 4)), np.empty((3, 4))
    with pytest.raises(ValueError, match="reduction: must be one of"):
        rl.smooth_l1(p, p, reduction="elementwise", out=o)
    with pytest.raises(ValueError, match="device: must be 'cpu' or 'cuda'"):
        rl.smooth_l1(p, p, device="gpu", out=o)
    with pytest.raises(ValueError, match="device: must be 'cpu' or 'cuda'"):  # before out='s own form
        rl.smooth_l1.value_and_grad(p, p, device="gpu", out=(None, None))
    with pytest.raises(ValueError, match="native byte order"):
        rl.smooth_l1(p, p, out=np.empty((3, 4), ">f8"))


def test_refloss_torch_says_out_is_the_numpy_apis():
    torch = pytest.importorskip("torch")
    import refloss.torch as rt

    with pytest.raises(TypeError, match="takes no out=.*NumPy API's"):
        rt.smooth_l1(torch.ones(3), torch.ones(3), out=torch.empty(3))
    import inspect

    assert "out" not in inspect.signature(rt.smooth_l1).parameters
    assert float(rt.smooth_l1(torch.ones(3), torch.zeros(3), reduction="sum", out=None)) == 1.5  # the default


def test_interleaved_outputs_that_do_not_overlap_are_accepted():
    """buf[:, ::2] and buf[:, 1::2] share no element: refused before ('share memory', np.may_share_memory's address
    bounds); an output that really overlaps another is still refused. out=() counted as 1 array given."""
    p, t = np.random.default_rng(0).normal(size=(2, 5, 4))
    buf = np.empty((5, 8))
    value, (dp, dt) = rl.smooth_l1.value_and_grad(p, t, out=(None, buf[:, ::2], buf[:, 1::2]))
    want = rl.smooth_l1.value_and_grad(p, t)
    np.testing.assert_array_equal(buf[:, ::2], want[1][0])
    np.testing.assert_array_equal(buf[:, 1::2], want[1][1])
    with pytest.raises(ValueError, match="share memory"):
        rl.smooth_l1.value_and_grad(p, t, out=(None, buf[:, :4], buf[:, 2:6]))
    with pytest.raises(TypeError, match="3 arrays or None, got 0"):
        rl.smooth_l1.value_and_grad(p, t, out=())
