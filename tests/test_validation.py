"""Bad input: one test per rule, each asserting the message (argument, rule, index)."""
import re

import numpy as np
import pytest

import refloss as rl

P = np.array([[0.0, 1.0], [2.0, 3.0]])


def test_non_broadcastable_shapes():
    with pytest.raises(ValueError, match=r"shapes not broadcastable: pred \(2, 2\), target \(3,\)"):
        rl.smooth_l1(P, np.zeros(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pred_names_the_index(bad):
    p = P.copy()
    p[1, 0] = bad
    with pytest.raises(ValueError, match=r"pred: must be finite; pred\[1, 0\]"):
        rl.l1(p, 0.0)


def test_non_finite_target_names_the_index():
    t = np.zeros(5)
    t[3] = np.nan
    with pytest.raises(ValueError, match=r"target: must be finite; target\[3\]"):
        rl.mse(np.zeros(5), t)


def test_validate_false_skips_the_array_checks():
    v = rl.l1(np.array([np.nan, 1.0]), 0.0, validate=False)
    assert np.isnan(v[0]) and v[1] == 1.0


@pytest.mark.parametrize("loss,param,value,rule", [
    ("smooth_l1", "beta", -0.1, "0 <= beta"),
    ("huber", "delta", 0.0, "0 < delta"),
    ("huber", "delta", -1.0, "0 < delta"),
    ("balanced_l1", "alpha", 0.0, "0 < alpha"),
    ("balanced_l1", "gamma", -1.5, "0 < gamma"),
    ("balanced_l1", "beta", 0.0, "0 < beta"),
    ("focal_l1", "beta", 0.2, "exp(-1) <= beta <= 1"),
    ("focal_l1", "beta", 1.5, "exp(-1) <= beta <= 1"),
])
def test_parameter_out_of_domain(loss, param, value, rule):
    with pytest.raises(ValueError, match=rf"{param}: must satisfy {rule.replace('(', '[(]').replace(')', '[)]')}, got"):
        getattr(rl, loss)(P, 0.0, **{param: value})


@pytest.mark.parametrize("loss,param", [("smooth_l1", "beta"), ("huber", "delta"), ("balanced_l1", "alpha"),
                                        ("focal_l1", "beta")])
def test_nan_parameter(loss, param):
    with pytest.raises(ValueError, match=rf"{param}: must satisfy .*, got nan"):
        getattr(rl, loss)(P, 0.0, **{param: float("nan")})


def test_complex_parameter():
    with pytest.raises(TypeError, match="beta: must be a real scalar"):
        rl.smooth_l1(P, 0.0, beta=1 + 2j)


def test_unknown_reduction():
    with pytest.raises(ValueError, match=r"reduction: must be one of \('none', 'mean', 'sum'\), got 'avg'"):
        rl.l1(P, 0.0, reduction="avg")


def test_non_numeric_array():
    with pytest.raises(TypeError, match=r"pred: must be a real numeric array, got non-numeric"):
        rl.l1(np.array(["a", "b"]), 0.0)


def test_python_ints_beyond_int64_are_read_as_floats():
    # NumPy makes an object array of 2**70; refloss reads it as float(2**70), as it reads 2.0**70
    for pred in (2**70, [2**70, -3], [[2**70, 1.5]]):
        value, (d_pred, d_target) = rl.l1.value_and_grad(pred, 0)
        expected = np.abs(np.array(pred, dtype=float))
        assert value.dtype == np.float64 and np.array_equal(value, expected)
        assert np.array_equal(d_pred, np.sign(np.array(pred, dtype=float)))
    assert rl.l1(2**70, 0, dtype=np.float32) == np.float32(2.0**70)
    with pytest.raises(ValueError, match=r"^pred: must be finite; got an integer beyond float's range"):
        rl.l1([1, 2**1100], 0)
    with pytest.raises(TypeError, match=r"^pred: must be a real numeric array, got non-numeric \(object\)"):
        rl.l1([2**70, None], 0)
    with pytest.raises(TypeError, match=r"^pred: must be a real numeric array, got non-numeric \(object\)"):
        rl.l1(np.array([2**70, 1], dtype=object), 0)  # an object array passed as one: refused, as before


def test_complex_array():
    with pytest.raises(TypeError, match=r"target: must be a real numeric array, got complex values"):
        rl.l1(P, np.array([1j, 2]))


def test_unknown_parameter_name():
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['bta'\]"):
        rl.smooth_l1(P, 0.0, bta=1.0)


def test_wrong_dtype_and_device():
    with pytest.raises(ValueError, match="dtype: must be float64 or float32, got float16"):
        rl.l1(P, 0.0, dtype=np.float16)
    with pytest.raises(ValueError, match="device: must be 'cpu' or 'cuda', got 'tpu'"):
        rl.l1(P, 0.0, device="tpu")


def test_wrong_number_of_arrays():
    with pytest.raises(TypeError, match=r"l1\(\) missing array argument\(s\) target \(it takes pred, target\)"):
        rl.l1(P)


# --- found by a fuzz of the API (2026-12-06): each raised an error that named nothing, or let a bad value through

B = np.array([[0.0, 0.0, 2.0, 2.0]])
G = np.array([[0.0, 0.0, 1.0, 1.0]])


@pytest.mark.parametrize("loss,param", [("giou_loss", "eps"), ("balanced_l1", "beta"), ("balanced_l1", "alpha"),
                                        ("wiou_loss", "delta"), ("smooth_l1", "beta"), ("qfl_loss", "beta")])
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_an_infinite_parameter_is_refused_by_name(loss, param, bad):
    """No rule's bound is infinite: eps = inf gave NaN, balanced_l1's beta = inf decimal.InvalidOperation."""
    fn = getattr(rl, loss)
    args = (B, G) if fn.info.family == "box" else (np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=rf"^{param}: must be finite and satisfy"):
        fn(*args, **{param: bad})


def test_a_parameter_beyond_float32_s_range_is_refused_in_a_float32_call():
    for dtype in (np.float32, np.float16):
        with pytest.raises(ValueError, match=r"^eps: 1e\+300 is beyond float32's range .* pass float64 inputs"):
            rl.iou_loss(B.astype(dtype), G.astype(dtype), eps=1e300)
    with pytest.raises(ValueError, match=r"^tau: 1e\+300 is beyond float32's range"):
        rl.gwd_loss(np.array([[0, 0, 2, 1, 0.3]]), np.array([[0, 0, 1, 1, 0.1]]), tau=1e300, dtype=np.float32)
    assert np.isfinite(rl.iou_loss(B, G, eps=1e300)).all()  # float64 takes it


def test_a_pair_parameter_is_checked_whatever_was_cached_before():
    """(True, 8) == (1, 8) and their hashes are equal: the parameters' cache let the bool through once (1, 8) had
    been seen."""
    rl.mpdiou_loss(B, B, image_size=(1, 8))
    with pytest.raises(TypeError, match=r"^image_size: must be a pair \(width, height\) of real numbers"):
        rl.mpdiou_loss(B, B, image_size=(True, 8))


def test_an_array_image_size_with_pairs_that_are_rescaled():
    """Pairs beyond 2^+-480 are computed scaled, their length parameters with them: an array image_size gave
    'only 0-dimensional arrays can be converted to Python scalars'."""
    p, t = B * 1e150, B * 1e150 + 1e149
    want = rl.mpdiou_loss(p, t, image_size=(640.0, 640.0))
    np.testing.assert_array_equal(rl.mpdiou_loss(p, t, image_size=np.array([640.0, 640.0])), want)
    with pytest.raises(TypeError, match=r"^image_size: must be a pair"):
        rl.mpdiou_loss(p, t, image_size=(True, 640.0))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")  # (np.matrix itself warns)
def test_a_matrix_is_read_as_a_plain_array():
    """np.matrix keeps two axes through reshape: the box drivers failed on it in Numba's typing."""
    v, g = rl.giou_loss.value_and_grad(np.matrix(B * 3), np.matrix(G), reduction="sum")
    w, h = rl.giou_loss.value_and_grad(B * 3, G, reduction="sum")
    assert v == w and all(type(a) is np.ndarray and np.array_equal(a, b) for a, b in zip(g, h))
    assert np.array_equal(rl.kld_loss(np.matrix([[0, 0, 2, 1, 0.3]]), np.array([[0, 0, 1, 1, 0.1]])),
                          rl.kld_loss(np.array([[0, 0, 2, 1, 0.3]]), np.array([[0, 0, 1, 1, 0.1]])))
    m = rl.match_by_iou(np.matrix([[0.6, 0.1], [0.2, 0.9]]), 0.5, 0.4)
    assert type(m) is np.ndarray and m.tolist() == [0, 1]


def test_a_dtype_numpy_does_not_know_is_named():
    for call in (lambda: rl.l1(np.ones(2), 0.0, dtype="bogus"), lambda: rl.dfl_decode(np.zeros((2, 17)), dtype="f9")):
        with pytest.raises(TypeError, match=r"^dtype: must be None, numpy.float64 or numpy.float32"):
            call()


def test_integer_rows_shaped_like_the_logits_are_not_taken_for_indices():
    for n in (3, 4):  # (a square batch broadcast its one-hot rows as indices before)
        with pytest.raises(ValueError, match=rf"^targets: integer values are class indices, one per row of logits "
                                             rf"\({n}, 4\) .* got the rows' own shape \({n}, 4\); for one-hot"):
            rl.softmax_cross_entropy(np.zeros((n, 4)), np.eye(4, dtype=int)[:n])
    np.testing.assert_array_equal(rl.softmax_cross_entropy(np.zeros((3, 4)), np.eye(4)[:3]),
                                  rl.softmax_cross_entropy(np.zeros((3, 4)), np.arange(3)))


def test_a_column_of_class_indices_is_refused_where_it_would_pair_every_row_with_every_index():
    """Labels as a column (N, 1) against logits (N, C): NumPy's rules broadcast them to an (N, N) result (its
    "mean" a plausible, wrong number; until 2026-12-07 returned); torch's cross_entropy refuses them too.  A
    column that broadcasts to itself (one row) is taken."""
    x = np.random.default_rng(0).normal(size=(3, 4))
    t = np.array([[1], [2], [0]])
    with pytest.raises(ValueError, match=r"^targets: .* got shape \(3, 1\): a column of them would broadcast against "
                                         r"the rows' shape to \(3, 3\) .* pass targets\[\.\.\., 0\] \(shape \(3,\)\)"):
        rl.softmax_cross_entropy(x, t, reduction="mean")
    with pytest.raises(ValueError, match=r"to \(3, 3, 1\)"):
        rl.softmax_cross_entropy(x[:, None], t[:, :, None])
    with pytest.raises(ValueError, match="a column of them"):
        rl.softmax_cross_entropy.value_and_grad(x, t)
    for rows, labels, to in (((3, 4), (3, 1, 1), "(3, 1, 3)"), ((1, 3, 4), (3, 1), "(3, 3)"), ((3, 4), (2, 1), "(2, 3)")):
        with pytest.raises(ValueError, match=rf"to \{to[:-1]}\) .*np.broadcast_to"):
            rl.softmax_cross_entropy(np.zeros(rows), np.zeros(labels, int))
    want = [rl.softmax_cross_entropy(x[i], t[i, 0]) for i in range(3)]
    np.testing.assert_array_equal(rl.softmax_cross_entropy(x, t[:, 0]), want)
    np.testing.assert_array_equal(rl.softmax_cross_entropy(x[:1], t[:1]), [want[:1]])  # (1, 1): one row
    np.testing.assert_array_equal(rl.softmax_cross_entropy(x, [1]), [rl.softmax_cross_entropy(r, 1) for r in x])
    np.testing.assert_array_equal(rl.softmax_cross_entropy(x[:, None], t)[:, 0], want)  # a column against (N, 1, C)
    with pytest.raises(ValueError, match=r"not broadcastable .* logits \(2, 3, 4\), targets \(2, 3, 1\)"):
        rl.softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3, 1), int))  # (the broadcast's own message)


def test_a_column_of_class_indices_is_refused_by_refloss_torch_with_gradients_and_traced():
    """refloss.torch: the gradients' path widened the rows to the broadcast shape before the NumPy API saw them (a
    review found the refusal skipped there, and for meta tensors, which torch.compile traces)."""
    torch = pytest.importorskip("torch")
    import refloss.torch as rt
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1], [2], [0]])
    for logits in (x, x.detach(), x.detach().to("meta")):
        with pytest.raises(ValueError, match=r"^targets: .* to \(3, 3\)"):
            rt.softmax_cross_entropy(logits, t.to(logits.device), reduction="mean")
    loss = rt.softmax_cross_entropy(x, t[:, 0], reduction="mean")
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(x, t[:, 0]), rtol=1e-14, atol=0)


def _dfl_by_torch(z, t):
    """DFL as ultralytics' DFLoss computes it (torch's cross_entropy to the two bins around t, weighted): a peer."""
    import torch
    z, t = torch.as_tensor(z), torch.as_tensor(t)
    tl = t.long()
    wl = tl + 1 - t
    ce = torch.nn.functional.cross_entropy
    return (ce(z, tl, reduction="none") * wl + ce(z, tl + 1, reduction="none") * (1 - wl)).numpy()


def test_a_column_of_dfl_targets_is_refused_where_it_would_pair_every_row_with_every_target():
    """dfl_loss's target, one value a row, as a column (N, 1) against logits (N, C): NumPy's rules broadcast it to
    an (N, N) result, every row with every target (returned until 2026-12-07, a probe), the trap that
    softmax_cross_entropy's integer labels close; a column that broadcasts to the rows' own shape is taken."""
    pytest.importorskip("torch")
    z = np.array([[1.0, 2, 0.5, -1], [0.1, -1, 3, 0], [0.3, 0.2, -2, 1]])
    t = np.array([1.3, 2.5, 0.25])
    for call in (lambda: rl.dfl_loss(z, t[:, None]), lambda: rl.dfl_loss.value_and_grad(z, t[:, None]),
                 lambda: rl.dfl_loss(z, t[:, None], reduction="mean", clamp=0.01)):
        with pytest.raises(ValueError, match=r"^target: one value per row of logits \(3, 4\) \(shape \(3,\)\), got "
                                             r"shape \(3, 1\): a column of them would broadcast against the rows' "
                                             r"shape to \(3, 3\) .* pass target\[\.\.\., 0\] \(shape \(3,\)\)"):
            call()
    want = _dfl_by_torch(z, t)
    np.testing.assert_allclose(rl.dfl_loss(z, t), want, rtol=1e-14)
    np.testing.assert_allclose(rl.dfl_loss(z[:, None], t[:, None])[:, 0], want, rtol=1e-14)  # against (N, 1, C)
    np.testing.assert_allclose(rl.dfl_loss(z[:1], t[:1, None])[:, 0], want[:1], rtol=1e-14)  # one row
    np.testing.assert_allclose(rl.dfl_loss(z, t[:1]), _dfl_by_torch(z, np.repeat(t[:1], 3)), rtol=1e-14)


def test_a_column_of_dfl_targets_is_refused_by_refloss_torch_with_gradients_and_traced():
    torch = pytest.importorskip("torch")
    import refloss.torch as rt
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[1.3], [2.5], [0.25]], dtype=torch.float64)
    for logits in (x, x.detach(), x.detach().to("meta")):
        with pytest.raises(ValueError, match=r"^target: one value per row .* to \(3, 3\)"):
            rt.dfl_loss(logits, t.to(logits.device), reduction="mean")
    loss = rt.dfl_loss(x, t[:, 0])
    np.testing.assert_allclose(loss.detach().numpy(), _dfl_by_torch(x.detach(), t[:, 0]), rtol=1e-14)


def test_focal_eiou_mean_of_disjoint_pairs_only_is_nan_without_warnings():
    """Every weight IoU^gamma is 0: the paper's normalisation is 0/0 (NaN, as the mean of an empty batch), and
    NumPy's division warnings stay inside."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for wg in (False, True):
            v, (gp, gt) = rl.focal_eiou_loss.value_and_grad(G, G + 2, reduction="mean", weight_grad=wg)
            assert np.isnan(v) and np.isnan(gp).all() and np.isnan(gt).all()
        assert np.isnan(rl.focal_eiou_loss(G, G + 2, reduction="mean"))


def test_a_bool_parameter_is_a_bool_not_an_array_of_one():
    for ok in (True, np.True_, np.array(True), 0):
        rl.ciou_loss(B, G, alpha_grad=ok)
    for bad in (np.array([True]), 1.0, np.float64(0.0), "yes"):
        with pytest.raises(TypeError, match=r"^alpha_grad: must be True or False"):
            rl.ciou_loss(B, G, alpha_grad=bad)


def test_a_float16_result_beyond_its_range_is_inf_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (NumPy's "overflow encountered in cast" leaked before)
        v, (g, _) = rl.mse.value_and_grad(np.array([300.0], np.float16), np.array([0.0], np.float16))
    assert v.dtype == np.float16 and v[0] == np.inf and g[0] == np.float16(600.0)


def test_the_helpers_refuse_a_masked_array_as_the_losses_do():
    """box_convert and dfl_decode read np.asarray(x), which drops a mask silently (dfl_decode of [[0, 5]] with the 5
    masked gave 0.993, the 5 included)."""
    for call, name in ((lambda: rl.box_convert(np.ma.masked_array([0.0, 0, 1, 1], mask=[0, 1, 0, 0]), "xyxy", "xywh"),
                        "boxes"),
                       (lambda: rl.dfl_decode(np.ma.masked_array([[0.0, 5.0]], mask=[[0, 1]])), "logits")):
        with pytest.raises(TypeError, match=rf"^{name}: a masked array"):
            call()


def test_an_integer_parameter_beyond_float_s_range_is_named():
    with pytest.raises(ValueError, match=r"^eps: must be finite .* got an integer beyond float's range"):
        rl.giou_loss(B, G, eps=10**400)
    # a float32 call takes a parameter at float32's value, onto a bound of its domain too (ratio 0.01 is not a
    # float32 number): not refused
    assert np.isfinite(rl.inner_iou_loss(B.astype(np.float32), G.astype(np.float32), ratio=0.01)).all()


def test_a_length_whose_scaling_would_underflow_leaves_the_pair_as_it_is():
    """NWD's c scaled with a pair beyond 2^+-480: where c 2^-e would leave the normal numbers the pair is computed
    as it is (c = 1e-300 at 2^600 raised 'c: must satisfy 0 < c, got 0.0' from the underflowed scaling)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (np.ldexp's overflow warning leaked at c = 1e300, 2^-1000)
        assert np.all(np.isfinite(rl.nwd_loss(B * 2.0**600, G * 2.0**600, c=1e-300)))
        assert np.all(np.isfinite(rl.nwd_loss(B * 2.0**-1000, G * 2.0**-1000, c=1e300)))


def test_an_error_on_one_box_names_the_array_not_an_empty_index():
    # (a probe, 2026-12-07: "pred[] = [...]" for a 1-D box)
    with pytest.raises(ValueError, match=r"sizes must be >= 0 .*; pred = \[0\.0, 0\.0, -1\.0, 1\.0, 0\.0\]$"):
        rl.kld_loss([0, 0, -1, 1, 0], [0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"boxes must have x2 >= x1 and y2 >= y1; target = \[0\.0, 0\.0, -1\.0, 1\.0\]$"):
        rl.giou_loss([0, 0, 1, 1], [0, 0, -1, 1])
    with pytest.raises(ValueError, match=r"must be finite; pred\[2\] = nan"):
        rl.giou_loss([0, 0, np.nan, 1], [0, 0, 1, 1])


def test_a_number_beyond_float32s_range_in_a_float32_call_is_named():
    """A Python number (or float64 array with dtype=float32) beyond float32's range in a float32 call said
    'target: must be finite; target = inf', an inf the caller never passed, with NumPy's overflow warning."""
    import warnings

    f32 = np.ones(4, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for target, shown in ((1e300, "target = 1e+300"), (2**200, "target = 1.6069380442589903e+60")):
            with pytest.raises(ValueError, match=re.escape(shown) + ".*beyond float32's range"):
                rl.smooth_l1(f32, target)
        with pytest.raises(ValueError, match=re.escape("target[2] = 1e+300") + ".*beyond float32's range"):
            rl.smooth_l1(np.ones(4), np.array([0.0, 1.0, 1e300, 2.0]), dtype=np.float32)
        with pytest.raises(ValueError, match="target: must be finite"):  # a real inf is still named as such
            rl.smooth_l1(f32, np.inf)
    assert rl.smooth_l1(f32, 3.0).dtype == np.float32
    with warnings.catch_warnings():  # validate=False skips the input checks, this one too: NumPy's cast, quietly
        warnings.simplefilter("error")
        assert np.isinf(rl.l1(f32, 1e39, validate=False)).all()
        if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # (x86's 80-bit long double; elsewhere it is double)
            with pytest.raises(ValueError, match="refloss computes in float64 at most"):
                rl.l1(np.ones(2, np.longdouble), np.longdouble("1e400"))
