"""The CUDA kernels' accuracy under fused multiply-adds, checked on the CPU (no GPU needed).

    python benchmarks/fma_emulate.py [--loss a,b] [--dtype float64] [--jobs N]

NVVM, which compiles refloss's CUDA kernels, contracts a*b + c into one fused multiply-add by
default (numba-cuda passes no ``-fma=0``), so a kernel's arithmetic on a GPU is not its arithmetic
on the CPU or in the simulator: where an evaluation form relies on a product being rounded (two
equal products cancelling exactly, say), the GPU's result differs.  On an H200 this broke
alpha-IoU's gradient at identical boxes (0.53 of the largest component, alpha = 1/2, form="ciou":
the aspect term's cross product w_t h_p - h_t w_p left the rounding error of one product instead
of 0, and (beta v)^alpha's kink at 0 took its sign), which no CPU test could see.

This script runs ``refloss verify --device cuda`` under Numba's CUDA simulator (the kernels'
grid-stride loops as Python) with each loss's scalar kernels, which the CUDA kernels call as
device functions, compiled for the CPU with LLVM's ``contract`` flag: x86-64's FMA then fuses
products into additions where LLVM finds them, as NVVM does (the compiler's choice of which
products to fuse may differ; the alpha-IoU fault above reproduced to the digit, 1.79e-33 for the
value).  The oracle rows, bars and table are verify's.  Exit 1 if a row fails.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

_KERNELS = ("value_f64", "value_and_grad_f64", "value_f32", "value_and_grad_f32")


def contract(name: str) -> None:
    """The CUDA module of ``name`` calling its scalar kernels compiled with FMA contraction (under the
    simulator its kernels look the device functions up as module globals at each call)."""
    import numba

    module = importlib.import_module(f"refloss._generated.{name}_cuda")
    for kernel in _KERNELS:
        if hasattr(module, "_" + kernel):
            # not cached: Numba's cache key leaves out fastmath, so a cached plain compile could be loaded
            setattr(module, "_" + kernel, _on_host(numba.njit(fastmath={"contract"}, error_model="numpy")(getattr(module._scalar, kernel))))


def _on_host(compiled):
    """``compiled`` called with the simulator's device arrays (a row kernel's rows) as the NumPy arrays they wrap,
    which it writes in place."""
    def call(*args):
        return compiled(*[getattr(a, "_ary", a) for a in args])
    return call


def contraction_active() -> bool:
    """Whether Numba's ``contract`` flag fuses a multiply-add on this CPU: a*a - fl(a*a) for a = 1 + 2^-30 is
    2^-60 fused, 0 rounded (no FMA unit, or a CPU target without it: the emulation would check nothing)."""
    import refloss._numba_options  # noqa: F401 - refloss's CPU settings before this @njit (Numba fixes them then)
    import numba

    a = 1.0 + 2.0**-30
    return numba.njit(fastmath={"contract"})(lambda x, y: x * x - y)(a, a * a) != 0.0


def check(name: str, dtypes: tuple) -> tuple:
    """(verify's rows of ``name`` on the simulated CUDA backend with contracted scalar kernels, None), or
    ([], the error) where checking it raised."""
    from refloss import _verify

    try:
        contract(name)
        return _verify.run([name], dtypes, devices=["cuda"]), None
    except Exception as exc:  # noqa: BLE001 - one loss's failure is reported with the others' rows
        return [], f"{name}: {type(exc).__name__}: {exc}"


def main(argv=None) -> int:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before Numba is imported, here and in the spawned workers
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", help="comma-separated losses (default: every loss with a CUDA kernel)")
    parser.add_argument("--dtype", choices=("float64", "float32"), help="one dtype (default: both)")
    parser.add_argument("--jobs", type=int, default=1, help="check the losses in this many processes")
    args = parser.parse_args(argv)
    from refloss import _verify
    from refloss._loss import loss_named

    known = _verify.names()
    names = args.loss.split(",") if args.loss else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown loss {unknown[0]!r}; the losses verify checks: {', '.join(known)}")
    names = [n for n in names if importlib.util.find_spec(f"refloss._generated.{loss_named(n).info.name}_cuda")]
    dtypes = (args.dtype,) if args.dtype else ("float64", "float32")
    if not contraction_active():
        print("fma_emulate.py: Numba does not fuse multiply-adds on this CPU (no FMA unit?): nothing to emulate")
        return 2
    print("FMA contraction active: checking", ", ".join(names), flush=True)
    start = time.perf_counter()
    if args.jobs <= 1:
        results = [check(name, dtypes) for name in names]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(check, names, [dtypes] * len(names)))
    rows = [row for found, _ in results for row in found]
    errors = [error for _, error in results if error]
    print(_verify.format_table(rows))
    for error in errors:
        print("ERROR", error)
    failed = [r for r in rows if not r.ok]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed, {len(errors)} losses not checked (an error) "
          f"(FMA contraction emulated; {time.perf_counter() - start:.0f} s)")
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
