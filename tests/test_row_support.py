"""A row kernel's ``support`` (refloss/_derive/core.py, Kernel.support): DFL's value and dL/dtarget sum over the two
bins where their terms can be non-zero, not over the whole row.  Against the same kernel printed without it (the
loop over every bin, as before): the same bits everywhere, except where that loop erred: at the target just below
1, j - t_c rounds to 1 at bin 2, whose weight derivative was then counted (dL/dy = z_0 - z_1 - z_2)."""
import importlib

import numpy as np
import pytest

pytest.importorskip("sympy")
numba = pytest.importorskip("numba")

import refloss as rl  # noqa: E402
from refloss._derive import codegen  # noqa: E402
from refloss._derive.core import Branch, Kernel  # noqa: E402


def _kernels(precision):
    """value_and_grad and value_work of DFL's kernel, printed with and without its support, compiled."""
    dfl = importlib.import_module("derivations.dfl_loss")
    module = importlib.import_module("refloss._generated.dfl_loss")
    arrays = (("logits", None, (dfl.z,)), ("target", 1, (dfl.y,)))
    out = []
    for support in ((), dfl.SUPPORT):
        kernel = Kernel(arrays=arrays, args=(dfl.clamp,), prelude=(), branches=(Branch(None, dict(dfl.OUTPUTS)),),
                        invalid=None, row=dfl.ROW, support=support)
        ns = dict(module.__dict__)
        exec(codegen.row_function(kernel, "vg", precision, True) + codegen.row_function(kernel, "v", precision, False,
                                                                                          work=True), ns)
        out.append((numba.njit(ns["vg"]), numba.njit(ns["v"])))
    return out


def _rows(rng, dt, width, n=3000):
    x = rng.normal(0, 3, (n, width))
    x[::7] *= 10.0 ** rng.uniform(-30, 30, (len(x[::7]), 1))
    x[::11, :width // 2] = 0.0
    if dt == np.float32:
        x = np.clip(x, -1e38, 1e38)
    y = rng.uniform(0, width - 1, n)
    y[::3] = rng.integers(0, width, len(y[::3]))  # integers, the last bin included
    y[::5] = width - 1
    y[::13] = rng.uniform(0, 1e-6, len(y[::13]))
    y[::17] = width - 1 - rng.uniform(0, 0.05, len(y[::17]))
    y = y.astype(dt)
    y[::19] = np.nextafter(np.floor(y[::19]), dt(-1)).clip(0)  # just below an integer
    return x.astype(dt), y


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_dfl_two_bin_sums_are_the_whole_row_sums(dt):
    p = "f64" if dt == np.float64 else "f32"
    (full_vg, full_v), (two_vg, two_v) = _kernels(p)
    rng = np.random.default_rng(3)
    below_one = np.nextafter(dt(1), dt(0))
    seen = 0
    for width in (1, 2, 3, 5, 17, 33):
        # (1 + 2 eps: n - 1 - clamp rounds up onto the integer n - 2, and the held target's bins start one lower)
        for clamp in (-1.0, 0.01, 0.1, 1 + 2 * float(np.finfo(dt).eps)):
            if clamp > width - 1:
                continue
            x, y = _rows(rng, dt, width)
            for i in range(len(y)):
                got = []
                for vg, v in ((full_vg, full_v), (two_vg, two_v)):
                    d_logits, d_target = np.empty(width, dt), np.empty(1, dt)
                    value = vg(x[i], y[i], d_logits, d_target, dt(1), dt(clamp))
                    got.append((dt(value), dt(v(x[i], y[i], np.empty(width, dt), dt(clamp))), d_logits, d_target[0]))
                (v0, w0, g0, t0), (v1, w1, g1, t1) = got
                assert v0.tobytes() == v1.tobytes() == w1.tobytes() == w0.tobytes(), (width, clamp, x[i], y[i])
                assert g0.tobytes() == g1.tobytes(), (width, clamp, x[i], y[i])
                if y[i] == below_one and width > 2:
                    seen += 1
                    # the whole row's loop counted bin 2 too; the two bins give the derivative, z_0 - z_1
                    assert t1 == (x[i, 0] - x[i, 1] if clamp < 0 or y[i] < width - 1 - clamp else 0), (width, clamp, x[i])
                else:
                    assert t0.tobytes() == t1.tobytes(), (width, clamp, x[i], y[i])
    assert seen > 100


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_dfl_target_gradient_just_below_one(dt):
    """The public loss: dL/dy at the largest float below 1 is z_0 - z_1 (the whole row's loop gave z_0 - z_1 - z_2)."""
    z = np.array([[0.5, -1.25, 3.0, 2.0, -0.75]], dtype=dt)
    y = np.array([np.nextafter(dt(1), dt(0))], dtype=dt)
    _, (_, gy) = rl.dfl_loss.value_and_grad(z, y)
    assert gy[0] == dt(0.5 + 1.25)
