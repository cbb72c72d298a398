"""``Kernel.reciprocal`` (issue 16): a box loss's gradients multiply by the reciprocals of the
denominators they divide by repeatedly, where those reciprocals are normal numbers, and keep the
quotients elsewhere.  The CPU block loops (reciprocals in a vectorised loop, then the quotients for
the elements out of range) give what the scalar kernel gives element by element, bit for bit; an
element's result does not depend on its neighbours; and across the whole exponent range (where
1/area overflows or is subnormal) the gradients keep the scale invariance of the exact ones."""
import functools
import importlib
import math
from fractions import Fraction

import numba
import numpy as np
import pytest
import sympy as sp

import refloss as rl
from refloss._info import RESCALE_EXPONENT, length_params
from refloss._derive.codegen import scalar_function
from refloss._derive.core import Branch, Kernel
from refloss._reference import REFERENCES

BOXES = rl.BOX_LOSSES + rl.METRICS


def _cpu(name):
    return importlib.import_module(f"refloss._generated.{name}_cpu")


RECIPROCAL = [n for n in BOXES if "_far" in open(_cpu(n).__file__).read()]
CASES = [(n, d) for n in RECIPROCAL for d in ("float64", "float32")]


def test_the_box_losses_use_reciprocals():
    assert {"giou_loss", "diou_loss", "ciou_loss", "iou_loss", "eiou_loss", "giou"} <= set(RECIPROCAL)


def _pairs(dtype, n=600, seed=0):
    """Random pairs of every size from the subnormal-area to the overflowing-area range, nested,
    identical, degenerate and far apart."""
    rng = np.random.default_rng(seed)
    big = 1e150 if dtype == "float64" else 1e18
    small = 1e-160 if dtype == "float64" else 1e-21
    scale = np.exp(rng.uniform(np.log(small), np.log(big), n))
    xy = rng.normal(0, 1, (n, 2)) * scale[:, None]
    wh = rng.uniform(0.05, 2, (n, 2)) * scale[:, None]
    pred = np.concatenate([xy, xy + wh], 1)
    shift = rng.normal(0, 0.5, (n, 2)) * wh
    twh = wh * rng.uniform(0.3, 3, (n, 2))
    target = np.concatenate([xy + shift, xy + shift + twh], 1)
    target[::7] = pred[::7]  # identical
    target[1::7, :2] = pred[1::7, :2] + 0.25 * wh[1::7]  # nested
    target[1::7, 2:] = pred[1::7, 2:] - 0.25 * wh[1::7]
    pred[2::11, 2] = pred[2::11, 0]  # zero width
    target[3::13] += 1e3 * scale[3::13, None]  # far apart
    return pred.astype(dtype), target.astype(dtype)


@functools.cache
def _scalar_kernel(name, prec):
    """The scalar kernel (the CUDA kernels' device function).  float32: compiled by itself (once a loss, with
    Numba's disk cache).  float64: run by Python on NumPy float64 scalars, as the CUDA simulator runs it (the
    same IEEE operations; Python's math and the CPU's libm agree, tests/test_properties.py::test_cuda_equals_cpu):
    Numba's SSA pass is quadratic in a kernel's conditional expressions, and compiling alpha-IoU's 547 took
    100 s a precision here (2026-12-04), a third of this file's CI time."""
    kernel = getattr(importlib.import_module(f"refloss._generated.{name}"), f"value_and_grad_{prec}")
    return numba.njit(error_model="numpy", cache=True)(kernel) if prec == "f32" else kernel


def _scalar_at(scalar, dtype, p, t, args):
    """The scalar kernel at one pair: float64 inputs as NumPy scalars (x/0 gives inf as in Numba's numpy error
    model, not ZeroDivisionError), its outputs as an array of ``dtype``."""
    if dtype == "float64":
        p, t = map(np.float64, p), map(np.float64, t)
        args = tuple(np.float64(a) if isinstance(a, float) else a for a in args)
    with np.errstate(all="ignore"):
        return np.array(scalar(*p, *t, *args), np.float64)


@pytest.mark.parametrize("name,dtype", CASES, ids=repr)
def test_block_loops_equal_the_scalar_kernel_element_by_element(name, dtype):
    """The first two parameter sets of the loss's reference table, 600 pairs each (_pairs)."""
    fn = getattr(rl, name)
    p, t = _pairs(dtype)
    prec = "f64" if dtype == "float64" else "f32"
    scalar = _scalar_kernel(name, prec)
    for params in REFERENCES[name].param_sets[:2]:
        with np.errstate(all="ignore"):
            value, (dp, dt) = fn.value_and_grad(p, t, dtype=dtype, **params)
        args = fn.kernel_args(params, prec)
        # a pair beyond 2^+-RESCALE_EXPONENT is computed scaled by 2^-e (Loss._rescale): the scalar kernel at the
        # scaled pair, eps 0, its gradients scaled back
        big = np.ldexp(1.0, RESCALE_EXPONENT[prec])
        rescaled = fn._eps_at is not None
        eps = {**fn._defaults, **params}.get("eps")
        lengths = {fn.params[k].name for k in length_params(fn.info.properties, fn.params)}  # (NWD's c, MPDIoU's)
        full = {**fn._defaults, **params, "eps": 0.0}
        finfo = np.finfo(dtype)
        for i in range(len(p)):
            top = float(np.max(np.abs(np.concatenate([p[i], t[i]]))))
            e = np.frexp(top)[1]
            # the parameters in the boxes' units scaled with them, and eps 0; None where one leaves the normals
            scaled = {k: (tuple(np.ldexp(float(x), -e) for x in v) if isinstance(v, tuple)
                          else np.ldexp(float(v), -e)) if k in lengths else v for k, v in full.items()}
            normal = all(x == 0 or finfo.tiny <= abs(x) <= finfo.max for k in lengths
                         for x in (scaled[k] if isinstance(scaled[k], tuple) else (scaled[k],)))
            if rescaled and (top > big or (0 < top < 1 / big and eps == 0)) and normal:
                args0 = fn.kernel_args(scaled, prec)
                out = _scalar_at(scalar, dtype, np.ldexp(p[i], -e).astype(dtype), np.ldexp(t[i], -e).astype(dtype),
                                 args0)
                out = np.concatenate([out[:1], np.ldexp(out[1:], -e)])
            else:
                out = _scalar_at(scalar, dtype, p[i], t[i], args)
            got = np.concatenate([[value[i]], dp[i], dt[i]])
            np.testing.assert_array_equal(got, out.astype(dtype), err_msg=f"{params} element {i}: {p[i]} {t[i]}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_element_does_not_depend_on_its_neighbours(dtype):
    """A block holding one element out of the reciprocals' range takes the quotients for that one only."""
    p, t = _pairs(dtype, n=300, seed=1)
    for name in ("giou_loss", "ciou_loss", "eiou_loss"):
        fn = getattr(rl, name)
        with np.errstate(all="ignore"):
            v, (dp, dt) = fn.value_and_grad(p, t, dtype=dtype)
            for i in range(0, len(p), 7):
                vi, (dpi, dti) = fn.value_and_grad(p[i:i + 1], t[i:i + 1], dtype=dtype)
                np.testing.assert_array_equal(np.concatenate([vi, dpi[0], dti[0]]),
                                              np.concatenate([v[i:i + 1], dp[i], dt[i]]), err_msg=f"{name} {i}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["giou_loss", "diou_loss", "iou_loss", "eiou_loss", "ciou_loss"])
def test_gradients_keep_scale_invariance_across_the_exponent_range(name, dtype):
    """These losses (eps = 0) are invariant under scaling every coordinate by s, so their gradients scale
    by 1/s.  Scaling by a power of two is exact, and so is every operation of the quotients as long as
    nothing underflows or overflows: with the reciprocals, the gradients times s stay within a few units in
    the last place of the unscaled pair's largest component across 2^-500..2^500 in float64 and 2^-60..2^60
    in float32.  (Beyond about 2^+-512 and 2^+-64 an area is subnormal or infinite, docs/accuracy.md's scale
    table; GIoU's gradient stopped at 2^+-341 and 2^+-44, where a numerator was a length times an area, until
    its hand-written derivative divided the area first, 2026-12-02.)"""
    fn = getattr(rl, name)
    p = np.array([[0.1, 0.2, 1.3, 0.9], [0.0, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 0.625]], dtype)
    t = np.array([[0.3, 0.1, 1.1, 1.4], [2.0, 3.0, 2.5, 4.0], [0.0, 0.0, 1.0, 1.0]], dtype)
    _, (dp1, dt1) = fn.value_and_grad(p, t, dtype=dtype)
    big = np.maximum(np.abs(dp1).max(1), np.abs(dt1).max(1))[:, None]
    big[big == 0] = np.inf  # (IoU's gradient of boxes apart is 0)
    top, step = (500, 20) if dtype == "float64" else (60, 3)
    eps = np.finfo(dtype).eps
    for k in range(-top, top + 1, step):
        s = np.ldexp(np.ones((), dtype), k)
        _, (dp, dt) = fn.value_and_grad(p * s, t * s, dtype=dtype)
        for got, want in ((dp * s, dp1), (dt * s, dt1)):
            err = np.max(np.abs(got.astype(float) - want.astype(float)) / big)
            assert err <= 8 * eps, (k, err)


def test_a_reciprocal_kernel_keeps_its_float64_fallback_where_terms_cancel():
    # d_x = 1/y - 1/(y + x): its two terms cancel for |x| << |y|, where the float32 kernel's wide output falls
    # back to float64; y, a denominator used three times, becomes a reciprocal (focal_eiou_loss has both)
    x = sp.Symbol("x", real=True)
    y = sp.Symbol("y", real=True)
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(), prelude=(),
                    branches=(Branch(None, {"value": x / y, "d_x": 1 / y - 1 / (y + x), "d_y": -x / y**2}),),
                    wide=("d_x",), reciprocal=True)
    text = scalar_function(kernel, "f", "f32", kernel.output_names)
    assert "if _ok:" in text and "abs(d_x) > _f32(0.5)*(" in text and "_xok = " in text
    # the CPU block loops' vectorised form leaves the float64 to the scalar kernel: no float64 in it
    fast = scalar_function(kernel, "f", "f32", kernel.output_names, "fast")
    assert "_f64(" not in fast and "_xok = " in fast
    namespace = {"math": math, "_f32": np.float32, "_f64": np.float64}
    exec(text, namespace)
    xv, yv = np.float32(3e-4), np.float32(1.7)
    d_x = namespace["f"](xv, yv)[1]
    exact = 1 / Fraction(float(yv)) - 1 / (Fraction(float(yv)) + Fraction(float(xv)))
    assert d_x.dtype == np.float32 and abs(Fraction(float(d_x)) - exact) <= abs(exact) * Fraction(2 ** -23)


def test_a_denominator_used_once_stays_a_quotient_and_a_repeated_one_becomes_a_product():
    x = sp.Symbol("x", real=True)
    y = sp.Symbol("y", real=True)
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(), prelude=(),
                    branches=(Branch(None, {"value": x / y, "d_x": 1 / y + 1 / (x + y), "d_y": -x / y**2}),),
                    reciprocal=True)
    text = scalar_function(kernel, "f", "f64", kernel.output_names)
    assert "_ok = " in text and "if _ok:" in text and "else:" in text and "x/(y*y)" in text
    fast = scalar_function(kernel, "f", "f64", kernel.output_names, "fast")
    # the value x/y as it was, 1/(x + y) once (a quotient), y twice: one reciprocal, then products
    assert fast.count("/") == 3 and "= 1.0/y\n" in fast and "x/(y*y)" not in fast
    assert "_ok = " in fast and "if _ok" not in fast  # the condition, for the block loop's flag
