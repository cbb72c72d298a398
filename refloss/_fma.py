"""fma(a, b, c) = a b + c rounded once, for Numba code (CPU and CUDA): LLVM's ``llvm.fma`` intrinsic, which is
correctly rounded on every target (an FMA instruction where the CPU has one, libm's ``fma`` where it has not; PTX's
``fma.rn``).  Python 3.11's ``math`` has no fma, and Numba exposes none.

Used by refloss/_dd_functions.py's error-free product (a b - fl(a b) = fma(a, b, -fl(a b)) exactly, where a b
neither overflows nor underflows): two operations where Dekker's product with Veltkamp's splits takes seventeen.
Never imported by ``import refloss``."""
import math
from fractions import Fraction

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


def fma(a, b, c):
    """a * b + c with one rounding (float64; Python's own, exact through fractions, where Numba does not compile:
    ``NUMBA_DISABLE_JIT=1``); in compiled code, LLVM's intrinsic for three floats of one type."""
    a, b, c = float(a), float(b), float(c)
    if not all(map(math.isfinite, (a, b, c))):
        return a * b + c
    try:
        return float(Fraction(a) * Fraction(b) + Fraction(c))
    except OverflowError:  # (beyond the largest float: the float sum's infinity)
        return a * b + c


@intrinsic
def _llvm_fma(typingctx, a, b, c):
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = context.get_value_type(sig.return_type)
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t])), args)

    return a(a, b, c), codegen


@overload(fma)
def _fma_overload(a, b, c):
    if isinstance(a, types.Float) and a == b == c:
        return lambda a, b, c: _llvm_fma(a, b, c)
    return None
