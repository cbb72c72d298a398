"""Which backends can run here, and the CUDA backend behind a clear error.

``device="cuda"`` on a machine without a GPU (or without numba-cuda) raises one RuntimeError
that says why and what to do, instead of Numba's CudaSupportError from deep inside a launch.
"""
from __future__ import annotations

import os


def cuda_unavailable() -> str | None:
    """Why ``device="cuda"`` cannot run here, or None if it can (a GPU with a driver, or
    Numba's simulator with NUMBA_ENABLE_CUDASIM=1)."""
    try:
        from numba import cuda
    except ImportError:
        return "device='cuda' needs numba-cuda: pip install 'refloss[cuda]'"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        if cuda.is_available():
            return None
    except Exception:  # noqa: BLE001 - a broken driver install counts as no device
        pass
    return ("device='cuda': no CUDA device or driver was found (NUMBA_ENABLE_CUDASIM=1 runs the CUDA kernels "
            "in Numba's simulator instead, slowly)")


def cuda():
    """The CUDA backend module (:mod:`refloss._cuda`); RuntimeError saying why when it cannot run."""
    why = cuda_unavailable()
    if why:
        raise RuntimeError(why)
    from . import _cuda

    return _cuda
