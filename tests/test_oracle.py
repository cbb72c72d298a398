"""Kernels against the independent 50-digit oracle: values and gradients within 4 ULP
of the correctly rounded result, float64 and float32, every parameter set."""
import numpy as np
import pytest

from refloss import _verify

CASES = [(loss, params, dtype) for loss, sets in _verify.PARAM_SETS.items() for params in sets
         for dtype in ("float64", "float32")]


@pytest.mark.parametrize("loss,params,dtype", CASES, ids=repr)
def test_cpu_kernel_matches_oracle(loss, params, dtype):
    names, pred, target, errs, got = _verify.oracle_errors(loss, params, dtype, "cpu")
    worst = int(np.argmax(errs.max(axis=1)))
    assert errs.max() <= _verify.MAX_ULP, (
        f"{loss}({_verify.format_params(params)}) {dtype}: {errs.max():.2f} ULP at {names[worst]} "
        f"pred={pred[worst]!r} target={target[worst]!r}; ulp (value, d_pred, d_target) = {errs[worst]}; "
        f"got value={got[0][worst]!r}"
    )
    assert got[0].dtype == np.dtype(dtype)


def test_oracle_errors_detect_a_wrong_kernel(monkeypatch):
    """The ULP measure is not vacuous: a kernel off by 8 ULP is caught."""
    import refloss

    real = refloss.smooth_l1.value_and_grad.__call__

    class Off:
        def __call__(self, *a, **k):
            v, g = real(*a, **k)
            return v * (1 + 8 * np.finfo(v.dtype).eps), g

    monkeypatch.setattr(refloss.smooth_l1, "value_and_grad", Off())
    _, _, _, errs, _ = _verify.oracle_errors("smooth_l1", {"beta": 1.0}, "float64", "cpu", n_random=20)
    assert errs[:, 0].max() > _verify.MAX_ULP


def test_balanced_l1_small_residuals_keep_their_digits():
    """The textbook (1+u)ln(1+u) - u form loses every digit at |x| = 1e-8; the kernel must not."""
    from refloss.oracle import balanced_l1, ulp_error
    import refloss as rl

    x = np.array([1e-12, 1e-8, 3e-5, 1e-3])
    v = rl.balanced_l1(x, 0.0, beta=1 / 9)
    for xi, vi in zip(x, v):
        exact = balanced_l1(float(xi), 0.0, beta=1 / 9, alpha=0.5, gamma=1.5)[0]
        assert ulp_error(vi, exact, np.float64) <= 4
