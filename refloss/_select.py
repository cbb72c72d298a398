"""``_sel(c, a, b)``: ``a if c else b`` as one LLVM ``select``, for the generated CPU kernels.

Both arms are evaluated (the caller passes them as arguments) and no branch is made, so Numba's
IR of the function gains no block and no variable assigned twice: see
:mod:`refloss._derive.selects`, which writes the calls, for why that halves the compile time of
the largest kernels.  ``c`` is taken as a truth value (``bool(c)``); the arms are converted to
their common type, as the two arms of a conditional expression are.

``sel(c, a, b)``: the same for the scalar kernels (``refloss/_generated/<loss>.py``), which Python runs too
(the CUDA simulator, plain Python callers): there it is a function, ``a if c else b`` of arms evaluated
before the call; compiled by Numba for the CPU it is ``_sel`` (the overload below), and for CUDA the
intrinsic of :mod:`refloss._select_cuda`.  The scalar kernels' compile time on a GPU is Numba's front end
as for the CPU blocks (alpha-IoU's float64 gradient kernel took 140 s to compile to PTX with 547
conditional expressions, ``benchmarks/cuda_ptx.py``).

Numba's on-disk cache of a kernel does not follow changes to this function: a change here must
come with regenerated kernels (``python -m derivations``), whose new files invalidate the cache.
"""
from numba import types
from numba.extending import intrinsic, overload


def selection(numba_types):
    """The typing and lowering of ``_sel`` (one LLVM ``select``), for the ``@intrinsic`` of a target whose type
    classes are ``numba_types`` (Numba's CPU ``numba.types``; numba-cuda's ``numba.cuda.types``)."""

    def _sel(typingctx, cond, a, b):
        t = typingctx.unify_types(a, b)
        if t is None or not isinstance(t, (numba_types.Number, numba_types.Boolean)):
            return None

        def codegen(context, builder, sig, args):
            c = context.is_true(builder, sig.args[0], args[0])
            x = context.cast(builder, args[1], sig.args[1], sig.return_type)
            y = context.cast(builder, args[2], sig.args[2], sig.return_type)
            return builder.select(c, x, y)

        return t(cond, a, b), codegen

    return _sel


_sel = intrinsic(selection(types))


@intrinsic
def _sqrt(typingctx, x):
    """``math.sqrt(x)`` of a float as LLVM's ``llvm.sqrt`` intrinsic, which LLVM may evaluate speculatively.

    Numba lowers ``math.sqrt`` to a call of libm's ``sqrt``, which LLVM must not speculate (C's sqrt may set
    ``errno``): a branch of a kernel's loop that takes a square root then keeps the whole loop from being
    vectorised (GWD's and ProbIoU's: their if/elif branches could not be made selections).  Both are IEEE
    754's correctly rounded square root, NaN below 0: the same result bit for bit."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(sig.args[0])
        fn = builder.module.declare_intrinsic("llvm.sqrt", [ty])
        return builder.call(fn, args)

    return x(x), codegen


def sel(c, a, b):
    """``a if c else b``, both arms evaluated (by the caller): the scalar kernels' selection."""
    return a if c else b


@overload(sel)
def _sel_cpu(c, a, b):
    return lambda c, a, b: _sel(c, a, b)
