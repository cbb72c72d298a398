"""The fast path of a call (``Loss._fast``: C-contiguous NumPy arrays of one float dtype and one
shape) gives what the general path gives, bit for bit, for every loss it serves: the same drivers on
the same memory, reached with less Python (issue 16's fixed cost at N = 10).  The general path is
forced by handing the same numbers over as non-contiguous views."""
import numpy as np
import pytest

from refloss._battery import battery
from refloss._generated._index import LOSSES
from refloss._loss import Loss, loss_named

FAST = [n for n in LOSSES if loss_named(n)._fast_width is not None]


def _strided(a):
    """The same values in a non-contiguous view (every second element of a doubled array)."""
    wide = np.repeat(a, 2, axis=0)[::2]
    assert not wide.flags.c_contiguous and np.array_equal(wide, a)
    return wide


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), np.max(np.abs(a - b))


def test_the_fast_path_serves_the_losses_with_one_input_width():
    assert len(FAST) >= 30 and "giou_loss" in FAST and "smooth_l1" in FAST and "sigmoid_focal_loss" in FAST
    assert {"softmax_cross_entropy", "dfl_loss"}.isdisjoint(FAST)  # rows of a variable width: the general path


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_and_general_paths_agree_bit_for_bit(name, dtype, monkeypatch):
    loss = loss_named(name)
    params = {p.name: (640.0, 480.0) for p in loss.params if p.kind == "size" and p.default is None}  # MPDIoU's
    _, inputs, _ = battery(loss, "standard")
    inputs = [np.ascontiguousarray(a, dtype) for a in inputs]
    calls = []
    fast = Loss._fast
    def counted(self, *a):
        result = fast(self, *a)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(Loss, "_fast", counted)
    for reduction in ("none", "sum", "mean"):
        with np.errstate(all="ignore"):
            v1, g1 = loss.value_and_grad(*inputs, reduction=reduction, **params)
            v2, g2 = loss.value_and_grad(*map(_strided, inputs), reduction=reduction, **params)
            _same(v1, v2)
            for a, b in zip(g1, g2):
                _same(a, b)
            _same(loss(*inputs, reduction=reduction, **params), v2)
    assert calls[:3] == [True, False, True], "the fast path was not taken, or taken for the strided views"


def test_what_the_fast_path_leaves_to_the_general_one():
    """Broadcasting, mixed dtypes, float16, lists, keyword arrays and bad shapes take the general path,
    with its results and its errors."""
    import refloss as rl

    p = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]])
    t = np.array([0.5, 0.5, 2.5, 2.0])
    want = rl.giou_loss(p, np.tile(t, (2, 1)))
    _same(rl.giou_loss(p, t), want)  # broadcast
    assert rl.giou_loss(p.astype(np.float32), t).dtype == np.float64  # NumPy's promotion
    assert rl.giou_loss(p.astype(np.float16), t.astype(np.float16)).dtype == np.float16
    _same(rl.giou_loss(p.tolist(), np.tile(t, (2, 1)).tolist()), want)
    _same(rl.giou_loss(pred=p, target=np.tile(t, (2, 1))), want)
    with pytest.raises(ValueError, match="last dimension must be 4"):
        rl.giou_loss(p[:, :3].copy(), p[:, :3].copy())
    with pytest.raises(ValueError, match="finite"):
        rl.giou_loss(np.array([[0.0, 0.0, np.nan, 1.0]]), np.array([[0.0, 0.0, 1.0, 1.0]]))
    x = np.array(0.5)  # 0-d inputs: a 0-d result, as the general path's
    v, (gp, gt) = rl.smooth_l1.value_and_grad(x, np.array(0.0))
    assert v.shape == () and gp.shape == () and float(v) == 0.125 and float(gp) == 0.5
