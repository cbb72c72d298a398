"""Compile every generated CUDA kernel to PTX, with no GPU: the compile errors and compile times a GPU
session would meet first.

    python benchmarks/cuda_ptx.py [--loss giou_loss,ciou_loss] [--cc 9.0] [--jobs 2] [--json out.json]
    python benchmarks/cuda_ptx.py --warm --jobs 14      # on a GPU: fill numba-cuda's disk cache

The CUDA kernels run in CI only under Numba's simulator, which runs their Python and never compiles
them.  This script compiles them as a GPU would (numba-cuda's front end, then NVVM to PTX for the
compute capability ``--cc``; an H100/H200 is 9.0), on any machine with CUDA's NVVM library
(``libnvvm``; the ``cuda`` extra's toolkit packages, or a CUDA install) and no device.

The kernels' argument types are the ones the drivers launch them with: a first pass runs each loss
once under the simulator (a subprocess with ``NUMBA_ENABLE_CUDASIM=1``: value and value_and_grad,
float64 and float32, the loss's first parameter set of ``benchmarks/float32.py``'s inputs) and
records every launch; the second compiles each launched kernel once for its recorded types.  It
prints a line a kernel (seconds to PTX) and exits 1 if any kernel fails to compile.

A kernel's first call on a GPU costs about this time (Numba's front end, NVVM, then the driver's
PTX-to-cubin step, not measured here) unless numba-cuda's disk cache already holds it.  ``--warm``, on a
machine with a GPU, compiles each kernel through its dispatcher instead, which writes that cache: with
``--jobs`` processes in parallel, so that the first calls that follow (``refloss verify --device cuda``,
the tests) load what a single process would take minutes to compile (benchmarks/gpu_check.sh's
``compile`` stage).  Each compile is a kernel of its own, so the processes write separate cache files.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this checkout's refloss, in this process and in the recording subprocess alike (an installed one elsewhere, or the
# directory it is run from, would otherwise answer one of them)
sys.path.insert(0, str(HERE.parent))


def _record(names: list[str], path: str) -> None:
    """Under the simulator: every kernel launch of ``names``' CUDA paths, as (module, kernel, arg types)."""
    import numba
    import numpy as np
    from numba.cuda.simulator import kernel as sim

    import refloss as rl
    sys.path.insert(0, str(HERE))
    from float32 import inputs

    seen: dict = {}
    call = sim.FakeCUDAKernel.__call__

    def recording(self, *args):
        if not (self._device or sim._kernel_context):
            types = []
            for a in args:
                t = numba.typeof(getattr(a, "_ary", a))  # a simulator device array: its host array's type
                # a device array is never read-only (a read-only host input is copied to the device)
                types.append(t.copy(readonly=False) if isinstance(t, numba.types.Array) else t)
            seen.setdefault((self.fn.__module__, self.fn.__name__, tuple(types)), None)
        return call(self, *args)

    sim.FakeCUDAKernel.__call__ = recording
    for name in names:
        fn = getattr(rl, name)
        (p, t), params = inputs(name, 4)
        for dtype in (np.float64, np.float32):
            with np.errstate(all="ignore"):
                fn(p, t, dtype=dtype, device="cuda", **params)
                fn.value_and_grad(p, t, dtype=dtype, device="cuda", **params)
    with open(path, "wb") as f:
        pickle.dump(list(seen), f)


def _launches(names: list[str]) -> list:
    """The recorded launches, from a subprocess under the simulator."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"refloss_cuda_launches_{os.getpid()}.pkl"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    code = (f"import sys; sys.path[:0] = [{str(HERE.parent)!r}, {str(HERE)!r}]; import cuda_ptx; "
            f"cuda_ptx._record({names!r}, {str(path)!r})")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    finally:
        path.unlink(missing_ok=True)


def _compile_one(launch: tuple, cc: tuple, warm: bool) -> dict:
    """One launched kernel compiled: to PTX for ``cc`` (no GPU needed), or through its dispatcher (``warm``:
    the current GPU's, written to numba-cuda's disk cache)."""
    from numba import cuda
    from numba.cuda import dispatcher

    if not warm:
        class _Device:  # what a device function's compile asks of the current device: its compute capability
            compute_capability = cc

        dispatcher.get_current_device = lambda: _Device  # no GPU here to ask
    module, kernel, types = launch
    jitted = getattr(importlib.import_module(module), kernel)
    start = time.perf_counter()
    ptx, error = "", None
    try:
        if warm:
            jitted.compile(types)
        else:
            ptx, _ = cuda.compile_ptx(jitted.py_func, types, cc=cc)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported with its type
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    seconds = time.perf_counter() - start
    row = {"module": module.rsplit(".", 1)[-1], "kernel": kernel, "seconds": round(seconds, 2),
           "ptx_lines": ptx.count("\n"), "error": error}
    print(f"{row['module']:32s} {kernel:22s} {seconds:7.1f} s  {row['ptx_lines']:7d} PTX lines"
          + (f"  FAILED {error}" if error else ""), flush=True)
    return row


def compile_all(names: list[str], cc: tuple, jobs: int = 1, warm: bool = False) -> list[dict]:
    """Each launched kernel of ``names`` compiled (:func:`_compile_one`), in ``jobs`` processes: a row a kernel."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise SystemExit("cuda_ptx.py compiles for a GPU: run it without NUMBA_ENABLE_CUDASIM=1")
    if not warm:
        try:
            from numba.cuda.cudadrv import nvvm
            nvvm.NVVM()
        except Exception as exc:  # noqa: BLE001 - NvvmSupportError and its kin: one line, not one a kernel
            raise SystemExit(f"cuda_ptx.py needs CUDA's libNVVM, not found here ({type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None
    launches = _launches(names)
    if jobs <= 1:
        return [_compile_one(launch, cc, warm) for launch in launches]
    import multiprocessing

    # spawned, not forked: a worker that compiles through a dispatcher opens its own CUDA context; the
    # biggest kernels first, so that the last one started is not the longest
    def size(launch):  # the scalar kernels' module (the device functions) by its size, gradient kernels first
        scalar = importlib.util.find_spec(launch[0].removesuffix("_cuda")).origin
        return -Path(scalar).stat().st_size, "grad" not in launch[1]

    order = sorted(launches, key=size)
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        rows = pool.starmap(_compile_one, [(launch, cc, warm) for launch in order])
    index = {(m, k): i for i, (m, k, _) in enumerate(launches)}
    return sorted(rows, key=lambda r: index.get(("refloss._generated." + r["module"], r["kernel"]), 0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", help="comma-separated loss names (default: every loss, metric and coding)")
    parser.add_argument("--cc", default="9.0", help="compute capability to compile for (default 9.0: H100/H200)")
    parser.add_argument("--jobs", type=int, default=1, help="compile in this many processes (default 1)")
    parser.add_argument("--warm", action="store_true",
                        help="on a GPU: compile through the kernels' dispatchers, filling numba-cuda's disk cache")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    import refloss as rl

    names = args.loss.split(",") if args.loss else [n for n in rl.ALL_LOSSES if n != "yolo_decode"]
    unknown = [n for n in names if not hasattr(rl, n)]
    if unknown:
        parser.error(f"unknown loss {unknown[0]!r}; the losses: {', '.join(rl.ALL_LOSSES)}")
    try:
        cc = tuple(int(x) for x in args.cc.split("."))
    except ValueError:
        cc = ()
    if len(cc) != 2:
        parser.error(f"--cc {args.cc!r}: a compute capability as major.minor, e.g. 9.0 (H100/H200) or 8.0 (A100)")
    start = time.perf_counter()
    rows = compile_all(names, cc, args.jobs, args.warm)
    failed = [r for r in rows if r["error"]]
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} kernels, {len(failed)} failed, {total:.0f} s compiling "
          f"({time.perf_counter() - start:.0f} s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
