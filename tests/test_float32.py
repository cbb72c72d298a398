"""float32 kernels compute in float32: no float64 value anywhere in their typed IR (a
float64 literal would silently promote the whole kernel), but in the blocks a kernel's ``wide``
outputs evaluate in float64 where their terms cancel (``Kernel.wide``: the source lines indented
under ``if not abs(output) > _f32(<margin>)*(...)``) and its ``double`` outputs everywhere
(``Kernel.double``: from the first ``_w_<input> = _f64(<input>)`` outside such a guard to the
branch's end or ``return``), the float64 decisions (``Decide64``: the lines assigning a name that
starts with ``_x``), and a row kernel's float64 accumulators (``_acc64_``) and the row drivers' arrays that
keep them between phases (``_keep__acc64_``)."""
import numba
import numpy as np
import pytest
from numba.core import compiler, registry
from numba.core.compiler_machinery import FunctionPass, PassManager, register_pass
from numba.core.typed_passes import AnnotateTypes

import refloss as rl
from refloss._reference import REFERENCES


@register_pass(mutates_CFG=False, analysis_only=True)
class _StopAfterTyping(FunctionPass):
    _name = "refloss_stop_after_typing"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        raise compiler._EarlyPipelineCompletion(state.type_annotation)


class _TypingOnly(compiler.CompilerBase):
    """Numba's nopython pipeline up to the typed IR (what ``inspect_types`` prints), without lowering
    to LLVM: half of a block's compile time, and these functions are never run."""

    def define_pipelines(self):
        pm = PassManager("typing only")
        pm.passes.extend(compiler.DefaultPassBuilder.define_untyped_pipeline(self.state).passes)
        pm.passes.extend(compiler.DefaultPassBuilder.define_typed_pipeline(self.state).passes)
        pm.add_pass(AnnotateTypes, "annotate types")
        pm.add_pass(_StopAfterTyping, "stop")
        pm.finalize()
        return [pm]


def _typed_ir(py_func, inputs) -> str:
    """The typed IR of ``py_func`` on ``inputs`` (its argument values), as ``inspect_types`` prints it."""
    flags = compiler.Flags()
    flags.nrt = True
    flags.error_model = "numpy"
    target = registry.cpu_target
    annotation = compiler.compile_extra(target.typing_context, target.target_context, py_func,
                                        tuple(numba.typeof(a) for a in inputs), None, flags, {},
                                        pipeline_class=_TypingOnly)
    return str(annotation)


def _float64_lines(typed: str) -> list:
    """The float64 lines of a typed IR, but those of a kernel's wide and double outputs."""
    assert "float32" in typed
    # the typed IR of a source line is printed before it: a line's offending IR waits in ``pending``
    # wide: the indentation of the guard of the float64 block; double: that of the double outputs' block
    out, pending, wide, double = [], [], None, None
    for line in typed.splitlines():
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#"):  # a source line (its typed IR precedes it as comments)
            indent = len(line) - len(stripped)
            if wide is not None and indent <= wide:
                wide = None
            if stripped.startswith("if not abs(") and ") > _f32(" in stripped:
                wide = indent
            if double is not None and (indent < double or stripped.startswith("return ")):
                double = None
            if wide is None and double is None and stripped.startswith("_w_") and " = _f64(" in stripped:
                double = indent  # the double outputs, up to the branch's end or return
            # _x<name>: a float64 decision (Decide64); _keep__acc64_<name>: a row driver's array of a float64
            # accumulator, kept between the phases of a chunk of rows (refloss/_derive/row_phases.py)
            if double is None and not stripped.startswith(("_x", "_keep__acc64_")):
                out.extend(pending)
            pending = []
            continue
        if wide is not None and len(line) - len(stripped) > wide:
            continue  # a wide output's float64 evaluation
        # allowed: the float64 literal (or math.inf / math.nan) inside _f32(...), converted at compile time, and a
        # row kernel's float64 accumulators (_acc64_: float32 terms summed in float64, rounded once after the loop)
        if ("float64" in line and "::" in line and "const(float" not in line and "(float64,) -> float32" not in line
                and "attr=inf)" not in line and "attr=nan)" not in line and "_acc64_" not in line):
            pending.append(line)
    out.extend(pending)
    return out


def _block_calls(mod, widths, grad_widths, values, args):
    """The typed IR of the drivers' float32 block functions (where the kernels are written into the
    loop) on flat arrays (typed afresh: a function loaded from Numba's cache has no typed IR)."""
    arrays = [np.full(3 * w, 0.5, np.float32) for w in widths]
    out = np.empty(3 * values, np.float32)
    grads = [np.empty(3 * w, np.float32) for w in grad_widths]
    calls = ((mod._value_block_f32, arrays + [out]),
             (mod._value_and_grad_block_f32, arrays + [out] + grads + [np.float32(1)]))
    return [_typed_ir(block.py_func, [*inputs, *args]) for block, inputs in calls]



@pytest.mark.parametrize("name", rl.ALL_LOSSES)
def test_float32_kernels_have_no_float64(name):
    fn = getattr(rl, name)
    # the first parameter set of the reference table (a required parameter, MPDIoU's image_size, has no default)
    args = fn.kernel_args(dict(REFERENCES[name].param_sets[0]) if name in REFERENCES else {}, "f32")
    mod = fn._module("cpu")
    if None in fn.info.widths:  # a row loss: its block functions (the row kernel written into their loops) take
        # arrays of rows (an input of width 1: one number a row), and rows lo..hi
        widths = dict(zip(fn.info.inputs, fn.info.widths))
        rows = [np.full((3, 3) if w is None else 3, 0.5, np.float32) for w in fn.info.widths]
        grads = [np.empty((3, 3) if widths[n] is None else 3, np.float32) for n in fn.info.grad_inputs]
        out = [np.empty(3, np.float32)]
        calls = ((mod._value_block_f32, rows + out + list(args) + [0, 3]),
                 (mod._value_and_grad_block_f32, rows + out + grads + [np.float32(1)] + list(args) + [0, 3]))
        kernels = [_typed_ir(block.py_func, inputs) for block, inputs in calls]
    else:
        widths = dict(zip(fn.info.inputs, fn.info.widths))
        kernels = _block_calls(mod, fn.info.widths, [widths[n] for n in fn.info.grad_inputs], 1, args)
    for kernel in kernels:
        bad = _float64_lines(kernel)
        assert not bad, f"{name}: float64 in a float32 kernel:\n" + "\n".join(bad[:5])


def test_float32_yolo_decode_has_no_float64():
    mod = rl.loss_named("yolo_decode")._module("cpu")
    args = (np.float32(1.1), np.float32(0.0), np.float32(8.0))
    for kernel in _block_calls(mod, (4, 2, 2, 4), (4,), 4, args):  # t, anchors, grid, cotangent
        bad = _float64_lines(kernel)
        assert not bad, "yolo_decode: float64 in a float32 kernel:\n" + "\n".join(bad[:5])


def _planted(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * 0.5  # a float64 literal: the product is float64, rounded to float32 when stored


def _clean(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] * np.float32(0.5)


def test_the_typed_ir_check_finds_a_float64_literal():
    x, out = np.ones(3, np.float32), np.empty(3, np.float32)
    assert _float64_lines(_typed_ir(_planted, [x, out]))
    assert not _float64_lines(_typed_ir(_clean, [x, out]))


def test_a_decide64_argument_outside_a_step_is_evaluated_once_with_the_same_roundings():
    """Inner-IoU's pattern: D = ((1 + r) d1 + (1 - r) d2)/2 in max(D, 0) of the value and, through its derivative,
    of the gradients.  Unmarked, the value's and the gradients' common-subexpression passes each write D in a form
    of their own (d1 (r/2 + 1/2) + ..., (r + 1)(d1/2) + ...): four temporaries that are sums of two products for
    two D's.  Marked, each such temporary is the one name ``_dec<k>`` (codegen._shared_marks; a D inside a larger
    temporary keeps its form: the float32 gradients' max(...) here), and the results are the same bits (halving
    is exact above the subnormal range: the inputs here are far from it)."""
    import math
    import re

    import sympy as sp
    from refloss._derive.codegen import scalar_function
    from refloss._derive.core import Branch, Kernel
    from refloss._derive.functions import Decide64, Sub, TMax

    a1, a2, b1, b2, r = (sp.Symbol(n, real=True) for n in ("a1", "a2", "b1", "b2", "r"))

    def kernel(marked):
        m = Decide64 if marked else (lambda e: e)
        lo = m(((1 + r) * Sub(a1, b1) + (1 - r) * Sub(a2, b2)) / 2)
        hi = m(((1 - r) * Sub(a1, b1) + (1 + r) * Sub(a2, b2)) / 2)
        v = (TMax(hi, 0) + TMax(-lo, 0)) * Sub(a2, a1) + (TMax(-hi, 0) + TMax(lo, 0)) * r
        outputs = {"value": v, **{f"d_{s}": sp.diff(v, s) for s in (a1, a2, b1, b2)}}
        return Kernel(arrays=(("pred", 2, (a1, a2)), ("target", 2, (b1, b2))), args=(r,), prelude=(),
                      branches=(Branch(None, outputs),))

    forms = re.compile(r"= _t\d+\*_t\d+ \+ _t\d+\*_t\d+\n")
    rng = np.random.default_rng(3)
    args = rng.normal(0, 10, (4, 2000))
    for precision, dtype in (("f64", np.float64), ("f32", np.float32)):
        functions = {}
        for marked in (False, True):
            text = scalar_function(kernel(marked), "f", precision, kernel(marked).output_names)
            assert len(forms.findall(text)) == (0 if marked else 4), text
            assert ("_dec0 = " in text and "_dec1 = " in text) == marked
            namespace = {"math": math, "_f32": np.float32, "_f64": np.float64}
            exec(text, namespace)
            functions[marked] = namespace["f"]
        for ratio in (0.75, 1.3, 0.01, 100.0, 0.37):
            for a in args.T.astype(dtype):
                got, want = functions[True](*a, dtype(ratio)), functions[False](*a, dtype(ratio))
                assert np.array(got, dtype).tobytes() == np.array(want, dtype).tobytes(), (precision, ratio, a)


def test_decide64_and_eval64_are_float64_in_the_float32_kernel_and_decide64_invisible_in_the_float64_one():
    import math
    from fractions import Fraction

    import sympy as sp
    from refloss._derive.codegen import scalar_function
    from refloss._derive.core import Branch, Kernel
    from refloss._derive.functions import Decide64, Eval64, Group, Step

    x, z, y = (sp.Symbol(n, real=True) for n in "xzy")

    def kernel(marked, evaluate=True):
        d, e = (Decide64, Eval64 if evaluate else (lambda a: a)) if marked else (lambda a: a, lambda a: a)
        return Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(z,), prelude=(),
                      branches=(Branch(None, {"value": Step(d(Group(x + z) - y)) + e(Group(x + z) - y) * 4, "d_x": 4 * z,
                                              "d_y": -4 * z}),))

    # (an Eval64 is double-double in the float64 kernel: tests/test_double_double.py)
    assert (scalar_function(kernel(True, evaluate=False), "f", "f64", ("value",))
            == scalar_function(kernel(False), "f", "f64", ("value",)))
    text = scalar_function(kernel(True), "f", "f32", ("value",))
    assert "_xd0 = _f32(" in text and "_xd1 = _f32(" in text
    namespace = {"math": math, "_f32": np.float32, "_f64": np.float64}
    exec(text, namespace)
    plain = {"math": math, "_f32": np.float32, "_f64": np.float64}
    exec(scalar_function(kernel(False), "f", "f32", ("value",)), plain)
    # 1 + 2^-24 rounds to 1 in float32: (x + z) - y is 0 there and 2^-24 exactly
    args = np.float32(1.0), np.float32(1.0), np.float32(2.0 ** -24)
    assert plain["f"](*args) == 0
    got = namespace["f"](*args)
    assert got.dtype == np.float32 and Fraction(float(got)) == 1 + 4 * Fraction(1, 2 ** 24)


@pytest.mark.parametrize("precision", ["f32", "f64"])
def test_precision_constants_are_the_kernel_precision_s_own(precision):
    # SmallestNormal and UnitRoundoff: guard bounds that mean the same in either kernel (alpha-IoU's power and D);
    # float32's figures in the float64 kernel sent pairs of one size at two places into double-double (8x the time)
    import math

    import sympy as sp
    from refloss._derive.codegen import scalar_function
    from refloss._derive.core import Branch, Kernel
    from refloss._derive.functions import SmallestNormal, UnitRoundoff

    x, y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    kernel = Kernel(arrays=(("pred", 1, (x,)), ("target", 1, (y,))), args=(), prelude=(),
                    branches=(Branch(None, {"value": x * SmallestNormal() + y * UnitRoundoff(), "d_x": SmallestNormal(),
                                            "d_y": UnitRoundoff()}),))
    namespace = {"math": math, "_f32": np.float32, "_f64": np.float64}
    exec(scalar_function(kernel, "f", precision, ("value",)), namespace)
    dtype = np.float32 if precision == "f32" else np.float64
    info = np.finfo(dtype)
    tiny_value = namespace["f"](dtype(1.0), dtype(0.0))
    unit_value = namespace["f"](dtype(0.0), dtype(1.0))
    assert tiny_value == info.tiny and unit_value == info.eps / 2
    assert np.asarray(tiny_value).dtype == dtype and np.asarray(unit_value).dtype == dtype
