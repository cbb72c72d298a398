"""fma(a, b, c) = a b + c rounded once, for Numba code (CPU and CUDA): LLVM's ``llvm.fma`` intrinsic, which is
correctly rounded on every target (an FMA instruction where the CPU has one, libm's ``fma`` where it has not; PTX's
``fma.rn``).  Python 3.11's ``math`` has no fma, and Numba exposes none.

Used by refloss/_dd_functions.py's error-free product (a b - fl(a b) = fma(a, b, -fl(a b)) exactly, where a b
neither overflows nor underflows): two operations where Dekker's product with Veltkamp's splits takes seventeen.
Never imported by ``import refloss``."""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding, for three floats of one type (float32 or float64)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = context.get_value_type(sig.return_type)
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t])), args)

    return a(a, b, c), codegen
