"""Numba compilation options, read once (REFLOSS_NUMBA_CACHE=0 turns the disk cache off).

error_model="numpy": x/0 gives inf/NaN as in NumPy, no ZeroDivisionError check in
the loop; never fastmath (it would reassociate the evaluation forms the
derivations chose for accuracy).
"""
import os

CACHE = os.environ.get("REFLOSS_NUMBA_CACHE", "1") != "0"
CPU_OPTIONS = {"cache": CACHE, "error_model": "numpy", "nogil": True}

# below this many elements a driver loops on the calling thread: launching the
# thread pool costs a few microseconds, more than the work on small arrays
SERIAL_BELOW = 16384

# above SERIAL_BELOW, a driver runs blocks of this many elements in parallel: a block's inputs and
# outputs stay in cache for the second loop over it (the count of bad inputs)
BLOCK = 2048
