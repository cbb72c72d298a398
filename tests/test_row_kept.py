"""What a row kernel keeps in its row between loops (refloss/_derive/codegen.py, ``_kept_product``): the exp of
the sums' terms times the factors that the sums' terms and the gradients share -- softmax's and DFL's
exp(z_j - m) (1 + e_j), e_j the rounding error of z_j - m.  The correction is then computed once, in the exp's own
loop (which vectorises), rather than in the sum's loop (scalar) and again in the gradient's.  Against the same
kernels keeping the exp alone (as before): DFL's results the same bits, on rows of every kind."""
import importlib
import re

import numpy as np
import pytest

sp = pytest.importorskip("sympy")
numba = pytest.importorskip("numba")

from refloss._derive import codegen  # noqa: E402
from refloss._derive.core import Branch, Kernel  # noqa: E402


def test_kept_product_is_the_shared_factors():
    z, m, w, s, e = sp.symbols("z m w s e", real=True)
    ex = sp.exp(z - m)
    corr = 1 + sp.Function("NanTo0")(e)
    mask = sp.Heaviside(m - z)
    assert codegen._kept_product(ex, [mask * ex * corr, w * corr * ex / s]) == ex * corr
    # the gradient holds the exp without the correction too: the exp alone is kept
    assert codegen._kept_product(ex, [mask * ex * corr, w * corr * ex / s + ex]) == ex
    # nothing shared beyond the exp
    assert codegen._kept_product(ex, [mask * ex, w * corr * ex / s]) == ex


def _dfl_kernels(precision, monkeypatch, alone):
    dfl = importlib.import_module("derivations.dfl_loss")
    module = importlib.import_module("refloss._generated.dfl_loss")
    arrays = (("logits", None, (dfl.z,)), ("target", 1, (dfl.y,)))
    kernel = Kernel(arrays=arrays, args=(dfl.clamp,), prelude=(), branches=(Branch(None, dict(dfl.OUTPUTS)),),
                    invalid=None, row=dfl.ROW, support=dfl.SUPPORT)
    with monkeypatch.context() as mp:
        if alone:
            mp.setattr(codegen, "_kept_product", lambda kept_exp, exprs: kept_exp)
        vg = codegen.row_function(kernel, "vg", precision, True)
        v = codegen.row_function(kernel, "v", precision, False, work=True)
    ns = dict(module.__dict__)
    exec(vg + v, ns)
    return vg, numba.njit(ns["vg"]), numba.njit(ns["v"])


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_dfl_keeping_the_corrected_exp_changes_no_bit(dt, monkeypatch):
    p = "f64" if dt == np.float64 else "f32"
    src_new, vg_new, v_new = _dfl_kernels(p, monkeypatch, alone=False)
    src_old, vg_old, v_old = _dfl_kernels(p, monkeypatch, alone=True)
    # the correction (1 + e_j, e_j NaN-guarded) formed once, in the exp's loop, where the sum's and the
    # gradient's loops formed it each
    corrections = re.compile(r"\((_s\d+) if \1 == \1 else ")
    assert (len(corrections.findall(src_new)), len(corrections.findall(src_old))) == (1, 2)
    rng = np.random.default_rng(5)
    for width in (1, 2, 5, 17, 33):
        x = rng.normal(0, 3, (400, width))
        x[::7] *= 10.0 ** rng.uniform(-30, 30, (len(x[::7]), 1))
        x[::5] = np.round(x[::5])  # ties with the maximum
        x[3, 0], x[4, -1], x[6] = np.nan, np.inf, -np.inf
        if dt == np.float32:
            x = np.clip(x, -1e38, 1e38)
        x = x.astype(dt)
        y = rng.uniform(0, width - 1, len(x)).astype(dt)
        y[::3] = np.floor(y[::3])
        for clamp in (-1.0, 0.01):
            for i in range(len(x)):
                got = []
                for vg, v in ((vg_new, v_new), (vg_old, v_old)):
                    d_logits, d_target = np.empty(width, dt), np.empty(1, dt)
                    value = vg(x[i], y[i], d_logits, d_target, dt(1), dt(clamp))
                    got.append((dt(value).tobytes(), dt(v(x[i], y[i], np.empty(width, dt), dt(clamp))).tobytes(),
                                d_logits.tobytes(), d_target.tobytes()))
                assert got[0] == got[1], (width, clamp, x[i], y[i])
