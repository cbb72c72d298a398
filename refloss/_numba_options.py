"""Numba compilation options, read once (REFLOSS_NUMBA_CACHE=0 turns the disk cache off).

error_model="numpy": x/0 gives inf/NaN as in NumPy, no ZeroDivisionError check in
the loop; never fastmath (it would reassociate the evaluation forms the
derivations chose for accuracy).
"""
import os

import llvmlite.binding as _llvm

# LLVM's loop vectoriser gives up on a loop whose run-time alias checks need more than 16 (its default)
# SCEV predicates ("Too many SCEV assumptions need to be made and checked at runtime"): the rotated-box
# kernels' gradient loops, which load and store four arrays at a stride of 5, need more, and ran scalar
# (GWD's value and gradients 3x slower, issue 16).  This raises the limit for the compilations of this
# process: it only lets the vectoriser version more loops behind checks made at run time, and changes no
# result (no fast-math: vectorised IEEE operations round as the scalar ones).
SCEV_CHECK_THRESHOLD = 64
_llvm.set_option("refloss", f"-vectorize-scev-check-threshold={SCEV_CHECK_THRESHOLD}")

# The CPU modules call x**y as a function of refloss/_generated/_pow_cpu.py (one copy for Numba to compile, not
# one per pow of every kernel), and the loops vectorise only where LLVM inlines it: it costs more than LLVM's
# default threshold at -O3 (275; a loop calling it ran 4-7x slower, scalar).  This raises the threshold for the
# compilations of this process; inlining changes no result, and the kernels' block functions stay far above it.
INLINE_THRESHOLD = 1500
_llvm.set_option("refloss", f"-inline-threshold={INLINE_THRESHOLD}")

CACHE = os.environ.get("REFLOSS_NUMBA_CACHE", "1") != "0"
CPU_OPTIONS = {"cache": CACHE, "error_model": "numpy", "nogil": True}

# below this many elements a driver loops on the calling thread: launching the
# thread pool costs a few microseconds, more than the work on small arrays
SERIAL_BELOW = 16384

# above SERIAL_BELOW, a driver runs blocks of this many elements in parallel: a block's inputs and
# outputs stay in cache for the second loop over it (the count of bad inputs)
BLOCK = 2048
