"""Analytic gradients against finite differences (scipy.differentiate) away from kinks."""
import numpy as np
import pytest
from scipy.differentiate import derivative

import refloss as rl
from refloss import cases
from refloss._battery import kinks
from refloss._reference import REFERENCES

CASES = [(loss, params) for loss in rl.ELEMENTWISE_LOSSES for params in REFERENCES[loss].param_sets]


@pytest.mark.parametrize("loss,params", CASES, ids=repr)
def test_gradients_match_finite_differences(loss, params):
    fn = getattr(rl, loss)
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-4, 4, 150), 10.0 ** rng.uniform(-6, 6, 50) * rng.choice([-1, 1], 50)])
    x = x[~cases.near_kink(x, kinks(fn, params) + (0.0,), rel=1e-2)]
    target = rng.uniform(-1, 1, x.size)
    pred = target + x
    _, (gp, gt) = fn.value_and_grad(pred, target, **params)
    step = 1e-3 * np.abs(x)
    for which, g in (("pred", gp), ("target", gt)):
        def f(z, other):  # scipy passes the other input compressed alongside z
            return fn(z, other, **params) if which == "pred" else fn(other, z, **params)

        at, other = (pred, target) if which == "pred" else (target, pred)
        res = derivative(f, at, args=(other,), initial_step=step, step_factor=2.0,
                         tolerances=dict(atol=1e-10, rtol=1e-10))
        ok = res.success
        assert ok.mean() > 0.95, f"finite differences did not converge for {ok.size - ok.sum()} points"
        np.testing.assert_allclose(g[ok], res.df[ok], rtol=1e-7, atol=1e-9,
                                   err_msg=f"{loss} {params}: d/d{which}")
