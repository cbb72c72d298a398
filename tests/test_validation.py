"""Bad input: one test per rule, each asserting the message (argument, rule, index)."""
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
