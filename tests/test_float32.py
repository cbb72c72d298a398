"""float32 kernels compute in float32: no float64 value anywhere in their typed IR (a
float64 literal would silently promote the whole kernel)."""
import io
from contextlib import redirect_stdout

import numpy as np
import pytest

import refloss as rl
from refloss._cpu import drivers


@pytest.mark.parametrize("name", rl.ELEMENTWISE_LOSSES)
def test_float32_kernels_have_no_float64(name):
    fn = getattr(rl, name)
    args = fn._kernel_args(tuple(p.default for p in fn.params), "f32")
    mod = drivers(name)
    for scalar in (mod._value_f32, mod._value_and_grad_f32):
        scalar(np.float32(0.5), np.float32(0.0), *args)  # compile for float32 (drivers may come from cache)
        buf = io.StringIO()
        with redirect_stdout(buf):
            scalar.inspect_types()
        typed = buf.getvalue()
        assert "float32" in typed
        # allowed: the float64 literal inside _f32(literal), converted at compile time
        bad = [line for line in typed.splitlines() if "float64" in line and "::" in line
               and "const(float" not in line and "(float64,) -> float32" not in line]
        assert not bad, f"{name}: float64 in a float32 kernel:\n" + "\n".join(bad[:5])
