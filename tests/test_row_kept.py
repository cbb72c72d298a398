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


@pytest.mark.parametrize("precision", ["f64", "f32"])
def test_value_work_and_gradient_kernels_keep_the_same_product(precision):
    """A row kernel whose sum's term holds the corrected exp times a real factor (not a 0/1 mask), and a second sum
    that the gradient alone needs: the value kernel (no row to keep in), the work kernel and the gradient kernel
    choose the same kept product and multiply in the same order, so their values are the same bits (a review found
    them apart, 12-56 rows of 3,000, when the choice depended on the variant)."""
    from refloss._derive.core import RowStep

    sce = importlib.import_module("derivations.softmax_cross_entropy")
    module = importlib.import_module("refloss._generated.softmax_cross_entropy")
    factor = 1 + sce.y / 3
    extra = sp.Symbol("s_extra", real=True)
    # (the sum of the exps is s_1K, the exps kept times 2^K since 2026-12-07; s_1 is 2^-K s_1K, a "let")
    row = tuple(RowStep(st.symbol, st.op, st.expr * factor) if st.symbol == sce.s1k else st for st in sce.ROW)
    row += (RowStep(extra, "sum", sce._exp_below_scaled(sce.z)),)
    outputs = dict(sce.OUTPUTS)
    outputs["d_z"] = sce.UNSCALE * (sce.w * sce._exp_below_scaled(sce.z) * factor / sce.s) + extra
    kernel = Kernel(arrays=(("logits", None, (sce.z,)), ("targets", None, (sce.y,))), args=(sce.eps,), prelude=(),
                    branches=(Branch(None, outputs),), invalid=None, row=row)
    ns = dict(module.__dict__)
    exec(codegen.row_function(kernel, "v", precision, False) + codegen.row_function(kernel, "vw", precision, False, work=True)
         + codegen.row_function(kernel, "vg", precision, True), ns)
    v, vw, vg = (numba.njit(ns[n]) for n in ("v", "vw", "vg"))
    dt = np.float64 if precision == "f64" else np.float32
    rng = np.random.default_rng(1)
    for _ in range(1500):
        c = int(rng.integers(2, 20))
        x, t = rng.normal(0, 3, c).astype(dt), rng.uniform(0, 1, c).astype(dt)
        a = dt(v(x, t, dt(0)))
        b = dt(vw(x, t, np.empty(c, dt), dt(0)))
        g = dt(vg(x, t, np.empty(c, dt), np.empty(c, dt), dt(1), dt(0)))
        assert a.tobytes() == b.tobytes() == g.tobytes(), (x, t)


def test_a_power_of_the_product_keeps_the_exp_alone():
    from refloss._derive.functions import NanTo0, Step, TwoSum

    z, m, w, s, a = sp.symbols("z m w s a", real=True)
    ex, corr, mask = sp.exp(TwoSum(z, -m, 0)), 1 + NanTo0(TwoSum(z, -m, 1)), Step(m - z)
    assert codegen._kept_product(ex, [mask * ex * corr, w * ex * corr / s]) == ex * corr
    # the product squared, or its reciprocal, in the gradient: it would be kept as a power of itself -- the exp alone is
    assert codegen._kept_product(ex, [mask * ex * corr, w * ex * corr / s + a * (ex * corr) ** 2]) == ex
    assert codegen._kept_product(ex, [mask * ex * corr, w * ex * corr / s + a / (ex * corr)]) == ex
