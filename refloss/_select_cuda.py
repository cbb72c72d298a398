"""``refloss._select.sel`` compiled for CUDA: one ``select`` instruction, as ``_sel`` is for the CPU.

Imported by the generated CUDA modules (``refloss/_generated/<loss>_cuda.py``) before their device
functions compile.  numba-cuda keeps its own typing and lowering registries (``numba.cuda.extending``), so
the CPU's overload does not reach it.  Under Numba's CUDA simulator nothing is registered: the simulator
runs the kernels in Python, where ``sel`` is the plain function.
"""
from numba import config

from refloss._select import sel, selection

if not config.ENABLE_CUDASIM:
    from numba.cuda import types
    from numba.cuda.extending import intrinsic, overload

    _sel_cuda = intrinsic(selection(types))

    @overload(sel)
    def _sel_cuda_overload(c, a, b):
        return lambda c, a, b: _sel_cuda(c, a, b)
