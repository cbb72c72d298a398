"""``Branch.rare`` (issue 16): a branch few inputs take (operands beyond a range, overflow, a = 0) is left out of
the CPU block loops' vectorised form; its elements are flagged and computed again by the scalar kernel.  Where
only rare branches follow the last common one, that one is printed as the loop's ``else`` and its condition is
the flag."""
import sympy as sp

from refloss._derive.codegen import scalar_function
from refloss._derive.core import Branch, Kernel

x = sp.Symbol("x", real=True)


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
    assert "_xok = ((x > 0.0))" in text and "_xok = True" in text, text
    whole = scalar_function(_toy(False), "_f", "f64", ("value", "d_x"), None)
    assert "_xok" not in whole and "4.0*x" in whole and whole.count("elif") == 2, whole  # the scalar kernel: all


def test_fast_form_flags_a_rare_branch_among_common_ones():
    text = scalar_function(_toy(True), "_f", "f64", ("value", "d_x"), "fast")
    # the last common branch is the first one: no else to make of it; each rare branch a flag and zeros
    assert text.count("_xok = False") == 3 and "2.0*x" not in text and "if (x > 1.0)" in text, text
