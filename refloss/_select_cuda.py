"""``refloss._select.sel`` compiled for CUDA: one ``select`` instruction, as ``_sel`` is for the CPU.

Imported by the generated CUDA modules (``refloss/_generated/<loss>_cuda.py``) before their device
functions compile.  numba-cuda keeps its own typing and lowering registries (``numba.cuda.extending``), so
the CPU's overload does not reach it.  Under Numba's CUDA simulator nothing is registered: the simulator
runs the kernels in Python, where ``sel`` is the plain function.
"""
from numba import config

from refloss._select import sel

if not config.ENABLE_CUDASIM:
    from numba.cuda import types
    from numba.cuda.extending import intrinsic, overload

    @intrinsic
    def _sel_cuda(typingctx, cond, a, b):
        t = typingctx.unify_types(a, b)
        if t is None or not isinstance(t, (types.Number, types.Boolean)):
            return None

        def codegen(context, builder, sig, args):
            c = context.is_true(builder, sig.args[0], args[0])
            x = context.cast(builder, args[1], sig.args[1], sig.return_type)
            y = context.cast(builder, args[2], sig.args[2], sig.return_type)
            return builder.select(c, x, y)

        return t(cond, a, b), codegen

    @overload(sel)
    def _sel_cuda_overload(c, a, b):
        return lambda c, a, b: _sel_cuda(c, a, b)
