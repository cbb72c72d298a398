"""What keeps a first call's compile short: names of their own for independent values
(refloss/_derive/webs.py), branch-free selections for cheap conditional expressions
(refloss/_derive/selects.py) and parallel drivers compiled only for large batches (codegen's
``_dispatch``); none changes a result."""
import ast
import importlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import refloss as rl
from refloss._derive.selects import selects
from refloss._derive.webs import unique_names
from refloss._numba_options import BLOCK, SERIAL_BELOW

SOURCE = textwrap.dedent("""\
    def f(x, n, flag):
        acc = 0.0
        for i in range(n):
            t = x * i
            u = t + 1.0
            acc += u if t > 1.0 else -u
        if flag:
            for i in range(n):
                t = x - i
                u = t * t
                acc = acc - u
        if x > 0.5:
            t = x * 3.0
            out = t + 1.0
        else:
            t = x / 3.0
            out = t - 1.0
        t = out * acc
        return t, acc, out""")


def _run(source, *args):
    ns = {}
    exec(source, ns)
    return ns["f"](*args)


def _multiply_defined(source) -> set:
    seen, twice = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            (twice if node.id in seen else seen).add(node.id)
    return twice


def test_independent_values_get_names_of_their_own_and_the_function_computes_the_same():
    renamed = unique_names(SOURCE)
    assert _multiply_defined(SOURCE) == {"i", "t", "u", "acc", "out"}
    # left: acc (a loop's accumulator: its definitions reach common uses) and out (a branch's output, read after)
    assert _multiply_defined(renamed) == {"acc", "out"}
    assert "t_w1" in renamed and "u_w1" in renamed and "i_w1" in renamed
    for args in [(0.25, 3, True), (0.75, 5, False), (2.0, 0, True), (-1.5, 4, True)]:
        assert _run(renamed, *args) == _run(SOURCE, *args)


def test_names_kept_and_unsupported_functions():
    assert "out_w" not in unique_names(SOURCE, keep=("out",))
    assert "t_w1" not in unique_names(SOURCE, keep=("t",))
    with_break = SOURCE.replace("            acc = acc - u", "            acc = acc - u\n            break")
    assert unique_names(with_break) == with_break  # (not analysed: left as it is)
    with pytest.raises(ValueError):
        unique_names("x = 1\ny = 2")


@pytest.mark.parametrize("name", ["giou_loss", "ciou_loss", "smooth_l1", "sigmoid_focal_loss"])
def test_generated_functions_have_one_name_for_each_independent_value(name):
    """Renaming a generated function again changes nothing: the generator wrote it with the webs apart."""
    for suffix in ("", "_cpu"):
        mod = importlib.import_module(f"refloss._generated.{name}{suffix}")
        text = open(mod.__file__).read()
        lines = text.split("\n")
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and ("_block_" in node.name or node.name.startswith("value")):
                source = "\n".join(lines[node.lineno - 1:node.end_lineno])
                keep = () if "_block_" in node.name else tuple(set().union(*(
                    {t.id for t in ast.walk(r.value) if isinstance(t, ast.Name)}
                    for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None)))
                assert unique_names(source, keep=keep) == source, f"{name}{suffix}.{node.name}"


@pytest.mark.parametrize("name", ["l1", "giou_loss", "dfl_loss"])
def test_the_parallel_driver_gives_the_block_by_block_results(name):
    """Above SERIAL_BELOW elements the drivers run blocks in parallel: the same numbers as calls on
    slices small enough to run on the calling thread."""
    fn = getattr(rl, name)
    n = SERIAL_BELOW + 3 * BLOCK + 17
    rng = np.random.default_rng(3)
    if name == "giou_loss":
        xy = rng.uniform(0, 1, (n, 2))
        args = (np.concatenate([xy, xy + rng.uniform(0.1, 1, (n, 2))], 1),
                np.concatenate([xy + 0.2, xy + 0.2 + rng.uniform(0.1, 1, (n, 2))], 1))
        args[1][::997] = [1e300, 1e300, 2e300, 2e300]  # far: the quotients' loop in some blocks
    elif name == "dfl_loss":
        args = (rng.normal(0, 2, (n, 9)), rng.uniform(0, 8, n))
    else:
        args = (rng.normal(0, 1, n), rng.normal(0, 1, n))
    with np.errstate(all="ignore"):
        whole = fn.value_and_grad(*args)
        step = SERIAL_BELOW // 2
        parts = [fn.value_and_grad(*(a[lo:lo + step] for a in args)) for lo in range(0, n, step)]
    np.testing.assert_array_equal(whole[0], np.concatenate([p[0] for p in parts]))
    for k, g in enumerate(whole[1]):
        np.testing.assert_array_equal(g, np.concatenate([p[1][k] for p in parts]))


def test_a_small_call_compiles_no_parallel_driver(tmp_path):
    script = textwrap.dedent("""\
        import numpy as np, refloss as rl
        rl.l1.value_and_grad(np.ones(10), np.zeros(10))
        mod = rl.l1._module("cpu")
        assert mod._value_and_grad_block_f64.signatures, "the block did not compile"
        assert not mod._value_and_grad_blocks_f64.signatures, "a parallel driver compiled for 10 elements"
        print("ok")""")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_name_some_path_leaves_unassigned_is_an_error():
    """The CPU block loops write a kernel's body in and read ``_ok`` and the outputs after it: a renaming
    that left one branch's ``_ok`` under another name read a stale value there (2026-12-02, caught by
    tests/test_reciprocal.py); such a read is now refused when the function is generated."""
    source = "def f(x):\n    if x > 0.0:\n        ok = True\n    else:\n        ok_w1 = False\n    return ok\n"
    with pytest.raises(ValueError, match="ok may be read before it is assigned"):
        unique_names(source)


SELECTS = textwrap.dedent("""\
    def f(x, y, flag):
        a = (1.0 if x > 0.0 else 0.0)
        b = max(x, (y if flag else x)) + (math.pow(x, y) if x > 0.0 else 0.0)
        c = abs(x if y > 0.0 else -x) + (1.0 if x > 0.0 else (0.5 if x == 0.0 else
            0.0))
        d = (y / x if x != 0.0 else y)
        e = (_f64(1.0) if z[0] > 1.0 else _f64(0.0))
        g = (z[0] if x > 0.0 else 0.0) + (1.0 if x > 0.0 and y > 0.0 else 0.0)
        return a, b, c, d, e, g""")


def test_cheap_conditional_expressions_become_selections_and_the_rest_stays_as_written():
    out = selects(SELECTS)
    assert "a = _sel(x > 0.0, 1.0, 0.0)" in out
    assert "max(x, _sel(flag, y, x)) + (math.pow(x, y) if x > 0.0 else 0.0)" in out  # pow: a call that costs
    assert "abs(_sel(y > 0.0, x, -x)) + _sel(x > 0.0, 1.0, _sel(x == 0.0, 0.5, 0.0))" in out  # a call's argument
    assert "d = _sel(x != 0.0, y / x, y)" in out  # x / 0 in the arm not taken: an unused inf (error_model numpy)
    assert "e = _sel(z[0] > 1.0, _f64(1.0), _f64(0.0))" in out  # an element in the condition: read anyway
    assert "(z[0] if x > 0.0 else 0.0)" in out and "_sel(x > 0.0 and y > 0.0, 1.0, 0.0)" in out  # an element in an arm
    assert out.split("\n")[0] == "def f(x, y, flag):" and out.endswith("return a, b, c, d, e, g")
    assert selects(out) == out


def test_selections_compute_what_the_branches_compute():
    """Compiled with Numba, bit for bit, float64 and float32, conditions of every kind (NaN included)."""
    from numba import njit

    from refloss._select import _sel

    source = SELECTS.replace("math.pow(x, y)", "x ** 3")
    funcs = []
    for text in (source, selects(source)):
        ns = {"math": __import__("math"), "_f64": np.float64, "_sel": _sel, "z": np.array([2.0])}
        exec(text, ns)
        funcs.append(njit(error_model="numpy")(ns["f"]))
    assert "_sel(" in selects(source) and "_sel(" not in source
    values = [0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-310]
    for cast in (np.float64, np.float32):
        for x in values:
            for y in values:
                for flag in (True, False):
                    with np.errstate(all="ignore"):
                        want, got = (f(cast(x), cast(y), flag) for f in funcs)
                    for w, g in zip(want, got):
                        assert type(w) is type(g) and (w == g or (np.isnan(w) and np.isnan(g))), (x, y, flag, w, g)
                        assert np.signbit(w) == np.signbit(g)


@pytest.mark.parametrize("name", ["giou_loss", "alpha_iou_loss"])
def test_generated_blocks_branch_only_where_an_arm_would_cost(name):
    """The CPU blocks keep a conditional expression only where an arm calls a function that costs
    (``math.pow``...) or reads an array: rewriting them again changes nothing."""
    mod = importlib.import_module(f"refloss._generated.{name}_cpu")
    text = open(mod.__file__).read()
    assert "_sel(" in text
    lines = text.split("\n")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and "_block_" in node.name:
            source = "\n".join(lines[node.lineno - 1:node.end_lineno])
            assert selects(source) == source, f"{name}_cpu.{node.name}"


def test_scalar_kernels_convert_only_arms_python_can_evaluate():
    """A scalar kernel runs in Python too (the CUDA simulator), where ``sel``'s arms are evaluated before the
    call: a division (a Python float divided by zero raises) or an integer cast stays a conditional expression."""
    source = SELECTS.replace("e = (_f64(1.0)", "e = (_i64(x) if x == x else _f64(0.0))\n    e2 = (_f64(1.0)")
    out = selects(source, python=True)
    assert "a = _sel(x > 0.0, 1.0, 0.0)" in out and "abs(_sel(y > 0.0, x, -x))" in out
    assert "d = (y / x if x != 0.0 else y)" in out and "(_i64(x) if x == x else _f64(0.0))" in out
    from refloss._select import sel

    ns = {"math": __import__("math"), "_f64": np.float64, "_i64": np.int64, "_sel": sel, "z": np.array([2.0])}
    exec(out, ns)
    assert ns["f"](0.0, 0.0, True)[3] == 0.0  # no ZeroDivisionError: the division kept its branch


def test_scalar_kernel_selections_compile_for_the_cpu_and_run_in_python():
    """``sel`` (the scalar kernels' selection) in Python and compiled by Numba: the branches' bits."""
    from numba import njit

    from refloss._select import sel

    source = SELECTS.replace("math.pow(x, y)", "x ** 3")
    text = selects(source, python=True)
    assert "_sel(" in text
    ns = {"math": __import__("math"), "_f64": np.float64, "_sel": sel, "z": np.array([2.0])}
    exec(text, ns)
    ns0 = dict(ns)
    exec(source, ns0)
    funcs = [ns0["f"], ns["f"], njit(error_model="numpy")(ns["f"])]
    values = [0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan]
    for cast in (np.float64, np.float32):
        for x in values:
            for y in values:
                for flag in (True, False):
                    with np.errstate(all="ignore"):
                        want, *gots = (f(cast(x), cast(y), flag) for f in funcs)
                    for got in gots:
                        for w, g in zip(want, got):
                            assert w == g or (np.isnan(w) and np.isnan(g)), (x, y, flag, w, g)
                            assert np.signbit(w) == np.signbit(g)
