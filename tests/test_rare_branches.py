"""``Branch.rare`` (issue 16): a branch few inputs take (operands beyond a range, overflow, a = 0) is left out of
the CPU block loops' vectorised form; its elements are flagged and computed again by the scalar kernel.  Where
only rare branches follow the last common one, that one is printed as the loop's ``else`` and its condition is
the flag.  The block loops give what the scalar kernel gives element by element, bit for bit, whatever an
element's neighbours (tests/test_vectorisation.py: balanced_l1's loops, the first with rare branches, vectorise)."""
import functools
import importlib
import re

import numba
import numpy as np
import pytest
import sympy as sp

import refloss as rl
from refloss._derive.codegen import SPARSE_RUN, scalar_function
from refloss._derive.core import Branch, Kernel

x, y, c = sp.symbols("x y c", real=True)


def _toy(rare_middle: bool) -> Kernel:
    """value = x (x > 1), 2x (x > 0, common), 3x (x == 0, rare), 4x (else, rare); the middle branch rare too
    with ``rare_middle``."""
    branches = (Branch(x > 1, {"value": x, "d_x": sp.Integer(1)}, "one"),
                Branch(x > 0, {"value": 2 * x, "d_x": sp.Integer(2)}, "two", rare_middle),
                Branch(sp.Eq(x, 0), {"value": 3 * x, "d_x": sp.Integer(3)}, "three", True),
                Branch(None, {"value": 4 * x, "d_x": sp.Integer(4)}, "four", True))
    return Kernel(arrays=(("x", 1, (x,)),), args=(), prelude=(), branches=branches)


def test_fast_form_prints_the_last_common_branch_as_the_else_with_its_condition_as_the_flag():
    text = scalar_function(_toy(False), "_f", "f64", ("value", "d_x"), "fast")
    assert "elif" not in text and text.count("else:") == 1, text
    assert "3.0*x" not in text and "4.0*x" not in text, text  # the rare branches' statements are not there
    assert "_xok = (x > 0.0)" in text and "_xok = True" in text, text
    whole = scalar_function(_toy(False), "_f", "f64", ("value", "d_x"), None)
    assert "_xok" not in whole and "4.0*x" in whole and whole.count("elif") == 2, whole  # the scalar kernel: all


def test_fast_form_with_one_common_branch_is_its_body_alone_its_condition_the_flag():
    text = scalar_function(_toy(True), "_f", "f64", ("value", "d_x"), "fast")
    # the last common branch is the first one: the loop's body, no if; the rare branches not printed at all
    assert "if" not in text and "else" not in text and "_xok = False" not in text, text
    assert "2.0*x" not in text and "3.0*x" not in text and "_xok = (x > 1.0)" in text, text


def test_fast_form_flags_the_elements_of_a_rare_branch_among_common_ones_in_the_common_branches_after_it():
    """A rare branch between common ones is not printed (zeros and ``_xok = False`` among the common branches made
    an if-converted chain LLVM left scalar: yolo_decode's decode 1.4-1.7x slower); its elements take the common
    branches after it, whose flag says "not (its condition)"; a common branch before it is not flagged."""
    branches = (Branch(x > 1, {"value": x, "d_x": sp.Integer(1)}, "one"),
                Branch(sp.And(x < 0.5, x > -0.5), {"value": 3 * x, "d_x": sp.Integer(3)}, "rare", True),
                Branch(x > -1, {"value": 2 * x, "d_x": sp.Integer(2)}, "two"),
                Branch(None, {"value": 4 * x, "d_x": sp.Integer(4)}, "four"))
    kernel = Kernel(arrays=(("x", 1, (x,)),), args=(), prelude=(), branches=branches)
    text = scalar_function(kernel, "_f", "f64", ("value", "d_x"), "fast")
    assert "3.0*x" not in text and "_xok = False" not in text and " and " not in text, text
    one, two, four = text.split("if (x > 1.0)")[1].split("elif (x > -1.0)")[0], *text.split("elif (x > -1.0)")[1].split("else:")
    assert "_xok = True" in one and "2.0*x" in two and "4.0*x" in four, text
    flag = "_xok = (not ((x > -0.5) & (x < 0.5)))"  # (& and |, not and / or: no branch to if-convert)
    assert flag in two and flag in four, text
    whole = scalar_function(kernel, "_f", "f64", ("value", "d_x"), None)
    assert "3.0*x" in whole and whole.count("elif") == 2 and "_xok" not in whole, whole


def _with_exp(libm: bool) -> Kernel:
    """value = exp(x) (x > 0, common), exp(2x) (else, rare; printed with libm's functions where ``libm``)."""
    branches = (Branch(x > 0, {"value": sp.exp(x), "d_x": sp.exp(x)}, "common"),
                Branch(None, {"value": sp.exp(2 * x), "d_x": 2 * sp.exp(2 * x)}, "rare", True, libm=libm))
    return Kernel(arrays=(("x", 1, (x,)),), args=(), prelude=(), branches=branches)


@pytest.mark.parametrize("prec", ["f64", "f32"])
def test_a_rare_branch_with_libm_prints_libm_calls_there_alone(prec):
    """``Branch.libm``: the rare branch's exp is libm's in the scalar kernel; the common branch keeps the printed
    exp (refloss/_derive/expo.py), and the vectorised form, which prints no statements for a rare branch, no libm
    call at all.  Without the mark the rare branch's exp is printed too."""
    whole = scalar_function(_with_exp(True), "_f", prec, ("value", "d_x"), None)
    common, rare = whole.split("else:")
    assert "math.exp" not in common and "math.exp" in rare, whole
    assert "math." not in scalar_function(_with_exp(True), "_f", prec, ("value", "d_x"), "fast")
    assert "math.exp" not in scalar_function(_with_exp(False), "_f", prec, ("value", "d_x"), None)


def test_libm_in_a_common_branch_is_refused():
    with pytest.raises(ValueError, match="libm=True needs rare=True"):
        Branch(x > 0, {"value": sp.exp(x)}, "common", libm=True)


@functools.cache
def _scalar_kernel(prec):
    return numba.njit(error_model="numpy")(getattr(importlib.import_module("refloss._generated.balanced_l1"),
                                                   f"value_and_grad_{prec}"))


def _residuals(dtype, n=2000, seed=0):
    """Residuals of every size (subnormal to near overflow), zeros of both signs, NaN and infinities."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    e = rng.uniform(np.log2(info.smallest_subnormal), np.log2(info.max) - 1, n)
    r = (np.exp2(e) * rng.choice([-1.0, 1.0], n)).astype(dtype)
    r[::13] = 0
    r[1::13] = -0.0
    r[2::97] = np.nan
    r[3::97] = np.inf
    return r


# the documented parameter sets, and ones whose rare branches the ordinary ones do not reach: u = b a / beta
# beyond 2^30 (float64 2^60) below a = beta (gamma/alpha large: b = e^(gamma/alpha) - 1 huge), c_u = b/beta
# overflowing, and float32 operands beyond the pairs' split range (beta above 2^100)
PARAMS = [dict(), dict(beta=1 / 9), dict(beta=2.0, alpha=1.0, gamma=1.0), dict(beta=1.0, alpha=0.02, gamma=1.5),
          dict(beta=1e-3, alpha=0.01, gamma=5.0), dict(beta=1e35, alpha=0.5, gamma=1.5),
          dict(beta=1e35, alpha=0.01, gamma=1.0)]


@pytest.mark.parametrize("params", PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_balanced_l1_block_loops_equal_the_scalar_kernel_element_by_element(params, dtype):
    r = _residuals(dtype)
    _equal_to_the_scalar_kernel(rl.balanced_l1, _scalar_kernel, (r, np.zeros_like(r)), params, dtype)


def _equal_to_the_scalar_kernel(fn, scalar_kernel, inputs, params, dtype):
    """``fn.value_and_grad`` (the CPU block loops) equals ``scalar_kernel(prec)`` element by element, bit for bit, the
    sign of a zero included (a NaN's sign bit is not a result)."""
    with np.errstate(all="ignore"):
        value, grads = fn.value_and_grad(*inputs, validate=False, **params)
    prec = "f64" if dtype == "float64" else "f32"
    scalar, args = scalar_kernel(prec), fn.kernel_args(params, prec)
    for i in range(len(value)):
        want = np.array(scalar(*(a[i] for a in inputs), *args), dtype)
        got = np.array([value[i], *(g[i] for g in grads)])
        number = ~np.isnan(want)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got[number]),
                                                                            np.signbit(want[number])), \
            (i, [a[i] for a in inputs], got, want)


@functools.cache
@functools.lru_cache(maxsize=None)  # (compiled once a worker: a rotated float32 kernel takes ~25 s)
def _scalar_of(name, prec):
    return numba.njit(error_model="numpy")(getattr(importlib.import_module(f"refloss._generated.{name}"),
                                                   f"value_and_grad_{prec}"))


def _focal_scalar(prec):
    return _scalar_of("sigmoid_focal_loss", prec)


def _logits(dtype, n=3000, seed=1):
    """Logits of every size, dense around the roots of d/dtargets (|x| < 2, where the float32 kernel's terms
    cancel and the element's float64 lines are computed again alone), the far tails, zeros, NaN and infinities."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    e = rng.uniform(np.log2(info.smallest_subnormal), np.log2(info.max) - 1, n)
    x = np.exp2(e) * rng.choice([-1.0, 1.0], n)
    x[: n // 2] = rng.uniform(-2, 2, n // 2)
    x[n // 2: n // 2 + 200] = rng.uniform(-120, 120, 200)
    x = x.astype(dtype)
    x[::17] = 0
    x[1::17] = -0.0
    x[2::101] = np.nan
    x[3::101] = np.inf
    x[4::101] = -np.inf
    return x


FOCAL_PARAMS = [dict(), dict(alpha=None), dict(alpha=0.5, gamma=0.5), dict(alpha=0.25, gamma=0.0),
                dict(alpha=0.25, gamma=1.0), dict(alpha=0.75, gamma=5.5), dict(alpha=0.1, gamma=40.0)]


@pytest.mark.parametrize("params", FOCAL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_focal_block_loops_equal_the_scalar_kernel_element_by_element(params, dtype):
    """The hard targets' common branch is vectorised; the far tail a sparse branch (rare in these blocks, few of
    them), the soft targets rare branches; in
    float32 an element whose d/dtargets terms cancel gets d/dtargets' float64 lines alone again (flag 2), any
    other flagged element the whole scalar kernel: every element as the scalar kernel gives it, bit for bit."""
    x = _logits(dtype)
    y = np.random.default_rng(2).choice([0.0, 1.0, 0.0, 1.0, 0.3], x.size).astype(dtype)
    _equal_to_the_scalar_kernel(rl.sigmoid_focal_loss, _focal_scalar, (x, y), params, dtype)


def test_float32_wide_outputs_alone_in_a_loop_of_their_own():
    """sigmoid focal loss's float32 gradient block: an element whose d/dtargets terms cancel (flag 2) gets
    d/dtargets' float64 lines alone, over gathered copies of the inputs (a loop LLVM vectorises), not the whole
    scalar kernel; the float64 block (no wide outputs) and the value blocks have no such loop."""
    import inspect
    from refloss._generated import sigmoid_focal_loss_cpu as cpu
    text = inspect.getsource(cpu._value_and_grad_block_f32.py_func)
    assert "_flags[_q] == 2" in text and "_g_logits[_j] = _logits[" in text and "_xw" in text, text[:2000]
    for other in (cpu._value_and_grad_block_f64, cpu._value_block_f32):
        assert "== 2" not in inspect.getsource(other.py_func)


VARIFOCAL_PARAMS = [dict(), dict(detach_weight=True), dict(alpha=0.25, gamma=0.5), dict(iou_weighted=False),
                    dict(gamma=0.0), dict(alpha=0.75, gamma=14.1, detach_weight=True), dict(gamma=40.0),
                    dict(alpha=0.5, gamma=1e4)]


@pytest.mark.parametrize("params", VARIFOCAL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_varifocal_block_loops_equal_the_scalar_kernel_element_by_element(params, dtype):
    """varifocal_loss's negatives (q = 0): sigma(x)^gamma from x (ScaledSigmoidPow) with its power and exponential
    printed, so that the loop vectorises; the arms beyond the exponential's range (gamma |x| past 1500, float32 220,
    an overflowed split, NaN) are rare, those elements computed again by the scalar kernel: every element as the
    scalar kernel gives it, bit for bit (gamma = 1e4: the split of gamma |x| overflows for float32 logits beyond
    ~1e34).  (Without ScaledSigmoidPow's own guard this still passes: the value's FocalCE flags the same elements
    from the same split of gamma |x|, and beyond its range both arms give 0.)"""
    x = _logits(dtype, seed=3)
    y = np.random.default_rng(4).choice([0.0, 0.0, 0.0, 1.0, 0.3, 1e-30], x.size).astype(dtype)
    _equal_to_the_scalar_kernel(rl.varifocal_loss, functools.partial(_scalar_of, "varifocal_loss"), (x, y), params,
                                dtype)


QFL_PARAMS = [dict(), dict(beta=0.0), dict(beta=0.125), dict(beta=0.3), dict(beta=0.5), dict(beta=1.0),
              dict(beta=1.1), dict(beta=1.9), dict(beta=2.4), dict(beta=3.5), dict(beta=16.9)]


@pytest.mark.parametrize("params", QFL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_qfl_block_loops_equal_the_scalar_kernel_element_by_element(params, dtype):
    """qfl_loss: the hard targets one common branch in the signed logit (vectorised), the soft targets another
    (if-converted into the same loop, their float64 or double-double parts guarded: flagged), the deep tail and
    the soft targets beyond beta's and the logit's ranges rare; in float32 an element whose d/dtarget terms
    cancel at a hard target gets d/dtarget's float64 lines alone again (flag 2), any other flagged element the
    whole scalar kernel: every element as the scalar kernel gives it, bit for bit.  Soft targets include ones
    at the optimum sigma(x) = y (D cancels: the guarded parts), subnormal and tiny ones."""
    x = _logits(dtype, seed=5)
    rng = np.random.default_rng(6)
    y = rng.choice([0.0, 1.0, 0.0, 0.3, 0.75, 1e-30, 1 - 2.0**-20], x.size)
    near = rng.random(x.size) < 0.2  # targets at the optimum of their logit (finite logits only)
    with np.errstate(all="ignore"):
        opt = 1 / (1 + np.exp(-x.astype(np.float64)))
    y = np.where(near & np.isfinite(opt) & (opt > 0) & (opt < 1), opt, y).astype(dtype)
    _equal_to_the_scalar_kernel(rl.qfl_loss, functools.partial(_scalar_of, "qfl_loss"), (x, y), params, dtype)


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38, 1e30, -1e30, 2.0**100, -(2.0**100), 50.0,
           -50.0, 25.0, -25.0, 100.0, -100.0, 1.5, -1.5]


def _sparse_layout(layout, dtype, hot):
    """(logits, targets) of 2048 or 4096 elements: targets 0 but for a few ``hot`` ones (the sparse branch's)
    placed as ``layout`` says; logits uniform in (-8, 8), and for "sparse" every 64th one a special value (NaN,
    infinities, zeros, subnormal, the tails: few enough that the counts, which take the rare branches' elements
    too, stay under the bar)."""
    n = 2048 if "of" in layout else 4096
    rng = np.random.default_rng(8)
    x = rng.uniform(-8, 8, n)
    y = np.zeros(n)
    if layout == "sparse":
        x[::64] = np.resize(SPECIAL, x[::64].size)
        few = rng.random(n) < 0.02
        y[few] = rng.choice(hot, few.sum())
    elif layout == "run":
        y[:256] = rng.random(256)
    else:
        y[rng.choice(np.arange(SPARSE_RUN, n), int(layout.split()[0]), replace=False)] = 0.4
    with np.errstate(over="ignore"):
        return x.astype(dtype), y.astype(dtype)


def _far_layout(layout, dtype):
    """(logits, targets) as :func:`_sparse_layout`'s, for sigmoid focal loss's sparse branch, the far tail: hard
    targets 0 and 1, signed logits z = (1 - 2y) x uniform in (-8, 8) but for the layout's far ones (z from -50 to
    -1000: beyond both kernels' far-tail limits, -45 and -20)."""
    x, _ = _sparse_layout(layout, "float64", [0.0])
    n = x.size
    rng = np.random.default_rng(9)
    y = rng.choice([0.0, 1.0], n)
    z = x
    if layout == "sparse":
        hot = rng.random(n) < 0.02
    elif layout == "run":
        hot = np.arange(n) < SPARSE_RUN
    else:
        hot = np.zeros(n, bool)
        hot[rng.choice(np.arange(SPARSE_RUN, n), int(layout.split()[0]), replace=False)] = True
    z = np.where(hot, -rng.uniform(50, 1000, n), z)
    with np.errstate(over="ignore", invalid="ignore"):
        return (z * (1 - 2 * y)).astype(dtype), y.astype(dtype)


LAYOUTS = ["sparse", "run", "127 of 2048", "128 of 2048"]
# the sparse loop kept: "sparse" (2 % and the specials), "127 of 2048" (after the first run, under the bar); the
# kernel's loop: "run" (the first run's count), "128 of 2048" (the sparse loop's count of its flags, at the bar)
SPARSE_LOOP = {"sparse": True, "run": False, "127 of 2048": True, "128 of 2048": False}


def _takes_dense(name, fn, prec):
    """Whether the block function runs the kernel's own loop (``_dense``), as a function of the block's arguments:
    the generated function's statements up to that loop (the first run's count, the sparse loop and the count of
    its flags), compiled alone."""
    import inspect
    cpu = importlib.import_module(f"refloss._generated.{name}_cpu")
    block = f"_{fn}_block_{prec}"
    lines = inspect.getsource(getattr(cpu, block).py_func).splitlines()
    end = lines.index("    if _dense:")
    namespace = dict(vars(cpu))
    exec("\n".join([ln for ln in lines[:end] if not ln.startswith("@")] + ["    return _dense"]), namespace)
    return numba.njit(error_model="numpy")(namespace[block])


def _assert_loop(name, layout, inputs, params, dtype, rare_hot=False):
    """The block ends in the loop the layout says it does (``SPARSE_LOOP``): the tests' layouts test the loop they
    mean to.  ``rare_hot``: the hot elements take a rare branch at these parameters (QFL's soft targets at beta >=
    5/2, float32 beta > 2 or < 1/4), flagged in both loops: neither count takes them, and the block keeps the
    sparse loop in every layout."""
    prec = "f64" if dtype == "float64" else "f32"
    fn = getattr(rl, name)
    x, y = inputs
    out = [np.empty_like(x) for _ in range(3)]
    with np.errstate(all="ignore"):
        dense = _takes_dense(name, "value_and_grad", prec)(x, y, *out, x.dtype.type(1), *fn.kernel_args(params, prec))
    assert (not dense) == (SPARSE_LOOP[layout] or rare_hot), (layout, dense, x.size)


@pytest.mark.parametrize("params", QFL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_qfl_sparse_form_equals_the_scalar_kernel_element_by_element(params, dtype, layout):
    """qfl_loss's soft targets are a sparse branch (``Branch.sparse``): a block where they and the rare branches'
    elements are fewer than 1/16 takes a loop in which they are rare (flagged, computed again by the scalar
    kernel).  Background targets (0) with a few soft or 1 targets ("sparse": 2 %), soft ones in a run ("run":
    the first 256 of 4096 elements soft, the rest 0: the kernel's own loop, from the count of the first run of
    256), and at the bar (127 and 128 soft targets of 2048 after the first run: the sparse loop kept, and the
    kernel's loop again after it, from the sparse loop's count of its flags): every element as the scalar kernel
    gives it, bit for bit."""
    inputs = _sparse_layout(layout, dtype, [1.0, 0.3, 0.75, 1e-30, 1 - 2.0**-20])
    beta = params.get("beta", 2.0)
    rare_hot = beta >= 2.5 if dtype == "float64" else (beta > 2 or beta < 0.25)
    _assert_loop("qfl_loss", layout, inputs, params, dtype, rare_hot)
    _equal_to_the_scalar_kernel(rl.qfl_loss, functools.partial(_scalar_of, "qfl_loss"), inputs, params, dtype)


@pytest.mark.parametrize("params", VARIFOCAL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_varifocal_sparse_form_equals_the_scalar_kernel_element_by_element(params, dtype, layout):
    """varifocal_loss's positives (q > 0) are a sparse branch of its float32 kernel: negatives with a few positives,
    a run of them, and 127 or 128 of 2048 at the bar, as qfl_loss's above (float64: one loop): every element as
    the scalar kernel gives it."""
    inputs = _sparse_layout(layout, dtype, [1.0, 0.3, 0.75, 1e-30, 1 - 2.0**-20])
    if dtype == "float32":  # (the float64 kernel has one loop)
        _assert_loop("varifocal_loss", layout, inputs, params, dtype)
    _equal_to_the_scalar_kernel(rl.varifocal_loss, functools.partial(_scalar_of, "varifocal_loss"), inputs, params,
                                dtype)


@pytest.mark.parametrize("params", FOCAL_PARAMS, ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sigmoid_focal_far_tail_sparse_form_equals_the_scalar_kernel_element_by_element(params, dtype, layout):
    """sigmoid_focal_loss's far tail (z < -45, float32 -20) is a sparse branch: a block of far-tail hard targets
    (easy negatives late in training) runs the kernel's loop, the far tail vectorised there; others keep it rare.
    The layouts of qfl_loss's test above with far-tail logits as the hot elements: every element as the scalar
    kernel gives it, bit for bit, the loop the layout means asserted."""
    inputs = _far_layout(layout, dtype)
    _assert_loop("sigmoid_focal_loss", layout, inputs, params, dtype)
    _equal_to_the_scalar_kernel(rl.sigmoid_focal_loss, _focal_scalar, inputs, params, dtype)


@pytest.mark.parametrize("name, precisions, functions", [("qfl_loss", ("f32", "f64"), ("value", "value_and_grad")),
                                                         ("varifocal_loss", ("f32",), ("value", "value_and_grad")),
                                                         ("sigmoid_focal_loss", ("f32", "f64"), ("value_and_grad",))])
def test_block_functions_with_a_sparse_branch_choose_between_two_loops_by_a_count(name, precisions, functions):
    """The generated block functions: a count of the first run, the sparse form's loop where it is under the bar
    and a count of that loop's flags, then the kernel's own loop where either count reached it, in the functions
    whose branches hold a sparse one (varifocal loss's float64 kernel has none; sigmoid focal loss's value leaves
    out its far tail, whose value is the hard targets'): one loop otherwise; the scalar kernel once, after them,
    for the flagged elements."""
    import inspect
    from refloss._derive.codegen import SPARSE_BELOW, SPARSE_RUN
    cpu = importlib.import_module(f"refloss._generated.{name}_cpu")
    for fn in ("value", "value_and_grad"):
        for prec in ("f32", "f64"):
            text = inspect.getsource(getattr(cpu, f"_{fn}_block_{prec}").py_func)
            counted = f"    _hi = min({SPARSE_RUN}, _m)\n" in text
            assert counted == (prec in precisions and fn in functions), (fn, prec, text[:1500])
            if counted:
                assert f"    _dense = _c * {SPARSE_BELOW} >= _hi\n    if not _dense:\n        for " in text
                assert f"            _dense = _n * {SPARSE_BELOW} >= _m\n    if _dense:\n        _far = False\n        for " in text
            assert len(re.findall(r"for _j\w* in range\(_k\):", text)) == 1


def test_a_sparse_rare_branch_is_refused():
    with pytest.raises(ValueError, match="sparse=True is for a common branch"):
        Branch(x > 0, {"value": x}, "both", True, sparse=True)


@pytest.mark.parametrize("variant,kw", [("v3", {}), ("v4", {"scale_xy": 1.2}), ("v4", {"scale_xy": 3.0}),
                                        ("scaled", {})], ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_yolo_decode_block_loops_equal_the_scalar_kernel_element_by_element(variant, kw, dtype):
    """yolo_decode's centre in cell 0 cancels near t = log((s - 1)/(s + 1)) (a rare branch, one before each size
    form, its centre one precision up); the vectorised form prints the size forms alone and flags those elements,
    whose boxes and gradients the scalar kernel gives: every element as the scalar kernel gives it, bit for bit,
    beside common ones, in both size forms, with non-finite inputs among them."""
    rng = np.random.default_rng(5)
    s = kw.get("scale_xy", 2.0 if variant == "scaled" else 1.0)
    root = np.log((s - 1) / (s + 1)) if s > 1 else -3.0
    n = 600
    t = rng.normal(0, 3, (n, 4))
    t[: n // 2, 0] = root + rng.normal(0, 1e-3, n // 2) * rng.choice([1.0, 1e-6, 1e-12], n // 2)
    t[n // 4: 3 * n // 4, 1] = root + rng.normal(0, 1e-4, n // 2)
    t[::37, 2] = np.nan
    t[1::41, 0] = np.inf
    t[2::43, 3] = 800.0  # beyond exp's range
    grid = rng.integers(0, 3, (n, 2)).astype(np.float64)
    grid[: n // 2] *= rng.integers(0, 2, (n // 2, 1))  # cell 0 for many
    anchors = rng.uniform(0.5, 40, (n, 2))
    ct = rng.normal(size=(n, 4))
    t, grid, anchors, ct = (a.astype(dtype) for a in (t, grid, anchors, ct))
    with np.errstate(all="ignore"):
        boxes, d_t = rl.yolo_decode.value_and_grad(t, anchors, grid, variant, cotangent=ct, validate=False, **kw)
    from refloss._yolo import _variant_args
    prec = "f64" if dtype == "float64" else "f32"
    args = tuple(np.dtype(dtype).type(a) for a in _variant_args(variant, kw.get("scale_xy", 1.0), 1.0))
    scalar = _scalar_of("yolo_decode", prec)
    for i in range(n):
        want = np.array(scalar(*t[i], *anchors[i], *grid[i], *ct[i], *args), dtype)
        got = np.concatenate([boxes[i], d_t[i]])
        number = ~np.isnan(want)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got[number]),
                                                                            np.signbit(want[number])), \
            (i, t[i], grid[i], got, want)


def test_unswitch_prints_the_main_loop_twice_under_the_parameters_condition():
    """``Kernel.unswitch`` (yolo_decode's size form): the block function's main loop twice, under ``if scaled_wh ==
    1.0:`` and its ``else:``, the same statements in both (LLVM folds the size form's branch in each copy: the value
    and VJP of 10^6 boxes 0.71x the time, float64); a condition on anything but the parameters is refused."""
    import dataclasses
    import inspect
    from refloss._derive.codegen import _main_loop
    from refloss._generated import yolo_decode_cpu as cpu
    text = inspect.getsource(cpu._value_and_grad_block_f64.py_func)
    head, rest = text.split("    if scaled_wh == 1.0:\n", 1)
    first, second = rest.split("\n    else:\n", 1)
    assert "for _i in range(" not in head and first.count("for _i in range(_unsigned(_m)):") == 1, text[:3000]
    same = re.sub(r"_w\d+\b", "", second.split("\n    if _far:")[0]).strip()  # (its locals renamed: _i_w1 ...)
    assert first.strip() == same  # the same loop
    kernel = Kernel(arrays=(("x", 1, (x,)),), args=(c,), prelude=(),
                    branches=(Branch(sp.Eq(c, 1), {"value": x, "d_x": sp.Integer(1)}, "one"),
                              Branch(None, {"value": 2 * x, "d_x": sp.Integer(2)}, "two")), unswitch=sp.Eq(c, 1))
    lines, _ = _main_loop(kernel, "f32", ("value", "d_x"), set(), True)
    assert lines[0] == "    if c == _f32(1.0):" and lines.count("    else:") == 1, lines
    with pytest.raises(ValueError, match="a condition on the kernel's parameters"):
        _main_loop(dataclasses.replace(kernel, unswitch=x > 0), "f64", ("value", "d_x"), set(), True)


def test_a_later_rare_branchs_flag_is_printed_as_the_scalar_kernel_prints_its_condition():
    """The flag of a rare branch after the first is its condition printed inline in the rare branch's printer state,
    as the scalar kernel's ``elif`` prints it (printed in the common branches' state, sin is the vectorised form,
    which near the boundary chose another branch than the scalar kernel's libm sin: an element neither flagged nor
    the scalar kernel's; a review found it)."""
    y = sp.Symbol("y", real=True)
    branches = (Branch(x > 5, {"value": x, "d_x": sp.Integer(1)}, "a"),
                Branch(sp.sin(x) > y, {"value": 3 * x, "d_x": sp.Integer(3)}, "r", True),
                Branch(None, {"value": 2 * x, "d_x": sp.Integer(2)}, "b"))
    kernel = Kernel(arrays=(("x", 1, (x,)),), args=(y,), prelude=(), branches=branches)
    whole = scalar_function(kernel, "_f", "f64", ("value", "d_x"), None)
    condition = re.search(r"elif (.*):  # r", whole).group(1)
    fast = scalar_function(kernel, "_f", "f64", ("value", "d_x"), "fast")
    assert f"_xok = (not ({condition.strip('()')}))" in fast or f"(not {condition})" in fast, (condition, fast)


def test_a_float32_part_in_a_common_condition_and_a_rare_branchs_outputs_is_evaluated_before_the_branches():
    """A float32 kernel's float64 part that a common branch's condition reads and a rare branch's outputs use: with
    the rare branch left out of the fast form, the part is still evaluated before the branches (it was printed after
    the if that reads it: "_xd0 may be read before it is assigned"; a review found it)."""
    from refloss._derive.functions import Eval64
    e = Eval64(sp.log(x + c), sp.Abs(x) - sp.Rational(1, 8))
    branches = (Branch(e > 1, {"value": x, "d_x": sp.Integer(1)}, "a"),
                Branch(x > 0, {"value": e * x, "d_x": e}, "r", True),
                Branch(None, {"value": 2 * x, "d_x": sp.Integer(2)}, "b"))
    kernel = Kernel(arrays=(("x", 1, (x,)),), args=(c,), prelude=(), branches=branches)
    fast = scalar_function(kernel, "_f", "f32", ("value", "d_x"), "fast")
    assert fast.index("_xd0 = ") < fast.index("if (_xd0 >"), fast


def _rotated_pairs(dtype, n=1500, seed=7):
    """Rotated pairs (cx, cy, w, h, angle): ordinary ones, one box far smaller than the other (side ratios down to
    float32's subnormals), thin boxes, zero sides, tiny and huge boxes, centres far apart, NaN and infinities."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    p = np.column_stack([rng.normal(0, 3, n), rng.normal(0, 3, n), rng.uniform(1, 20, n), rng.uniform(1, 20, n),
                         rng.uniform(-np.pi, np.pi, n)])
    t = np.column_stack([rng.normal(0, 3, n), rng.normal(0, 3, n), rng.uniform(1, 20, n), rng.uniform(1, 20, n),
                         rng.uniform(-np.pi, np.pi, n)])
    e = rng.uniform(np.log2(info.smallest_subnormal), np.log2(info.max) / 2, (n, 4))
    k = n // 5
    p[:k, 2:4] *= np.exp2(e[:k, :1])  # one box scaled by 2^e: far smaller or larger than the other
    t[k:2 * k, 2:4] *= np.exp2(e[k:2 * k, 1:2])
    p[2 * k:3 * k, 3] *= np.exp2(e[2 * k:3 * k, 2])  # thin
    both = np.exp2(e[3 * k:4 * k, 3:4])
    p[3 * k:4 * k, :4] *= both  # both boxes and their offset scaled alike: tiny or huge
    t[3 * k:4 * k, :4] *= both
    p[4 * k:, :2] *= np.exp2(rng.uniform(0, np.log2(info.max) / 2, (n - 4 * k, 1)))  # centres far apart
    p[::11, 2] = 0
    t[1::13, 3] = 0
    p[2::17, 2:4] = 0
    t[3::97, 0] = np.nan
    p[4::97, 2] = np.inf
    p[5::53, 4] = t[5::53, 4]  # equal angles (F = 0 for perpendicular segments)
    return p.astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("name,params", [("gwd_loss", {}), ("gwd_loss", {"fun": "sqrt"}), ("gwd_loss", {"tau": 2.0}),
                                         ("kld_loss", {}), ("kld_loss", {"fun": "sqrt", "reverse": True}),
                                         ("probiou_loss", {}), ("probiou_loss", {"mode": "bd"})], ids=repr)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rotated_block_loops_equal_the_scalar_kernel_element_by_element(name, params, dtype):
    """GWD's, KLD's and ProbIoU's float32 kernels take their rare float64 branches where the sides or the distance leave
    float32's range (one box far smaller than the other, thin, tiny or huge boxes, far centres): the block loops
    flag those elements and the scalar kernel computes them: value and gradients as the scalar kernel gives them,
    bit for bit, beside ordinary pairs, zero sides and non-finite inputs."""
    p, t = _rotated_pairs(dtype)
    fn = getattr(rl, name)
    with np.errstate(all="ignore"):
        value, (gp, gt) = fn.value_and_grad(p, t, validate=False, **params)
        alone = fn(p, t, validate=False, **params)
    prec = "f64" if dtype == "float64" else "f32"
    scalar, args = _scalar_of(name, prec), fn.kernel_args(params, prec)
    assert np.array_equal(alone, value, equal_nan=True)
    for i in range(len(value)):
        want = np.array(scalar(*p[i], *t[i], *args), dtype)
        got = np.concatenate([[value[i]], gp[i], gt[i]])
        number = ~np.isnan(want)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got[number]),
                                                                            np.signbit(want[number])), \
            (i, p[i], t[i], got, want)
