"""Numba compilation options, read once (REFLOSS_NUMBA_CACHE=0 turns the disk cache off).

error_model="numpy": x/0 gives inf/NaN as in NumPy, no ZeroDivisionError check in
the loop; never fastmath (it would reassociate the evaluation forms the
derivations chose for accuracy).
"""
import os

import llvmlite.binding as _llvm

from . import _cpu_features

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

# 512-bit vectors on the CPUs where they pay (issue 16).  LLVM vectorises with 256-bit vectors on every
# AVX-512 CPU by default (the subtarget's "prefer-256-bit" tuning: on the Skylake server cores, code that uses
# 512-bit registers lowers the core's clock).  The box losses' loops are arithmetic-bound at 256 bits: on a
# 2-core AVX-512 machine ("rocketlake" to LLVM) 512-bit vectors took IoU's value and gradients at 10^6 float32
# pairs from 4.9 to 2.8-3.3 ms, GIoU's from 6.0 to 4.0-4.1 ms (docs/performance.md).  Set as Numba's CPU features
# for the process, by `import refloss` (refloss/_cpu_features.py: in Numba's configuration when it is imported) and
# again here: it changes the instructions, not one result (no fast-math: a 512-bit IEEE operation rounds each lane
# as the 256-bit one and the scalar one do).  REFLOSS_VECTOR_WIDTH=256 (read at `import refloss`: set it before)
# keeps LLVM's choice, =512 asks for 512 bits on any AVX-512 CPU; a user's NUMBA_CPU_NAME or NUMBA_CPU_FEATURES
# stands, and a process that defined a Numba
# function (any @njit, compiled or not: Numba makes its codegen, and fixes the features, at the first decorator)
# before `import refloss` keeps the features it started with (the numba cache keys its entries by them;
# `vectors()` says which holds).
VECTOR_WIDTH = _cpu_features.VECTOR_WIDTH
NARROW_CPUS = _cpu_features.NARROW_CPUS


def _wide_features() -> str | None:
    """Numba's CPU features for this process with LLVM's preference for 256-bit vectors turned off, or None
    where the CPU has no AVX-512, REFLOSS_VECTOR_WIDTH says 256 (or is not understood), or the user set
    Numba's CPU name or features (not refloss's own setting, refloss/_cpu_features.py)."""
    from numba.core import codegen, config

    if VECTOR_WIDTH not in ("auto", "256", "512"):
        import warnings

        warnings.warn(f"REFLOSS_VECTOR_WIDTH={VECTOR_WIDTH!r} is not 'auto', '256' or '512': LLVM's vector width kept",
                      RuntimeWarning, stacklevel=2)
    users = config.CPU_FEATURES is not None and config.CPU_FEATURES != _cpu_features.APPLIED
    if config.CPU_NAME is not None or users:
        return None
    # (honours NUMBA_ENABLE_AVX=0)
    return _cpu_features.wide(codegen.get_host_cpu_features(), _llvm.get_host_cpu_name(), VECTOR_WIDTH)


WIDE_FEATURES = _wide_features()
if WIDE_FEATURES is not None:
    from numba.core import config as _config

    _config.CPU_FEATURES = WIDE_FEATURES


def features_in_effect() -> str | None:
    """The CPU features this process's Numba compiles with (None if Numba does not say): Numba fixes them when it
    makes its codegen, at the first ``@njit`` of the process, so refloss's setting above holds only where refloss
    was imported before any Numba function was defined."""
    from numba.core.registry import cpu_target

    return getattr(cpu_target.target_context.codegen(), "_tm_features", None)


def vectors() -> str:
    """The vector setting of this process's CPU kernels, for a benchmark's record: the CPU as LLVM names it and
    the vectors its kernels compile with (refloss's 512-bit setting only where it took effect)."""
    if WIDE_FEATURES is None:
        width = "LLVM's vector width"
    elif features_in_effect() in (WIDE_FEATURES, None):
        width = "512-bit vectors (refloss)"
    else:
        width = "LLVM's vector width (refloss's 512-bit setting came after Numba's first function)"
    return f"{_llvm.get_host_cpu_name()}, {width}"


CACHE = os.environ.get("REFLOSS_NUMBA_CACHE", "1") != "0"
CPU_OPTIONS = {"cache": CACHE, "error_model": "numpy", "nogil": True}

# a row loss's driver runs a chunk of this many rows phase by phase (refloss/_derive/row_phases.py): the values
# one phase keeps for the next, a few arrays of it, stay in the first-level cache
ROW_CHUNK = 64

# below this many elements a driver loops on the calling thread: launching the
# thread pool costs a few microseconds, more than the work on small arrays
SERIAL_BELOW = 16384

# above SERIAL_BELOW, a driver runs blocks of this many elements in parallel: a block's inputs and
# outputs stay in cache for the second loop over it (the count of bad inputs)
BLOCK = 2048
