"""Every kernel against its exact reference values: every row of the hand-written table
(refloss/_reference.py: the oracle, parameter sets and bar of each loss), float64 and
float32, on the CPU.  The references are the stored ones; tests/test_stored.py recomputes
them with the 50-digit oracle and compares."""
import numpy as np
import pytest

from refloss import _verify
from refloss._reference import REFERENCES

ROWS = [(name, i, dtype) for name in _verify.names() for i in range(len(REFERENCES[name].param_sets))
        for dtype in ("float64", "float32")]


@pytest.mark.parametrize("name,index,dtype", ROWS, ids=repr)
def test_cpu_kernel_meets_its_bar(name, index, dtype):
    row, verr, gerr, names, inputs, got = _verify.check(name, index, dtype, "cpu")
    assert row.points > 0
    assert row.ok, (f"{name}({_verify.format_params(row.params)}) {dtype}: value {row.value_err:.3g}, gradient "
                    f"{row.grad_err:.3g} ({row.measure}; bar {row.bar}), fd {row.fd_rel}; worst at {row.worst}")


def test_the_measure_catches_a_kernel_off_by_8_ulp(monkeypatch):
    """The ULP measure is not vacuous: a kernel off by 8 ULP is caught."""
    import refloss

    real = refloss.smooth_l1.value_and_grad.__call__

    class Off:
        def __call__(self, *a, **k):
            v, g = real(*a, **k)
            return v * (1 + 8 * np.finfo(v.dtype).eps), g

    monkeypatch.setattr(refloss.smooth_l1, "value_and_grad", Off())
    row, verr, *_ = _verify.check("smooth_l1", 0, "float64")
    assert not row.ok and verr.max() > REFERENCES["smooth_l1"].bar.value


def test_the_box_measure_catches_a_gradient_off_by_1e_12(monkeypatch):
    import refloss

    real = refloss.giou_loss.value_and_grad.__call__

    class Off:
        def __call__(self, *a, **k):
            v, (gp, gt) = real(*a, **k)
            return v, (gp * (1 + 1e-12), gt)

    monkeypatch.setattr(refloss.giou_loss, "value_and_grad", Off())
    row, verr, gerr, *_ = _verify.check("giou_loss", 0, "float64")
    assert not row.ok and gerr.max() > 1e-13 and verr.max() <= 1e-14


def test_balanced_l1_small_residuals_keep_their_digits():
    """The textbook (1+u)ln(1+u) - u form loses every digit at |x| = 1e-8; the kernel must not."""
    from refloss.oracle import balanced_l1, ulp_error
    import refloss as rl

    x = np.array([1e-12, 1e-8, 3e-5, 1e-3])
    v = rl.balanced_l1(x, 0.0, beta=1 / 9)
    for xi, vi in zip(x, v):
        exact = balanced_l1(float(xi), 0.0, beta=1 / 9, alpha=0.5, gamma=1.5)[0]
        assert ulp_error(vi, exact, np.float64) <= 4
