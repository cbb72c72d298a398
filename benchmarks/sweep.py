"""Time ``refloss sweep`` over a slice of the float32 bit patterns and extrapolate to all 2**32.

    python benchmarks/sweep.py [--loss smooth_l1] [--log2 28] [--start 0x3C000000] [--workers 1 2]
                               [--chunk-log2 22]

For each worker count: one warm-up chunk (Numba's disk cache, the workers' start), then the
sweep of ``2**log2`` patterns from ``start`` (value and every gradient, float32, against the
float64 kernel with the oracle re-checks on), in a fresh process pool (``workers`` > 1) or
in this process (1).  Prints points per second and the extrapolation to the 2**32 - 2**24
finite patterns, and the CPU time (this process and the pool's workers): on a machine shared
with other jobs the wall time says little, the points per CPU-second say what idle cores do.  The default slice, 0x3C000000.., covers |x| from 2**-7 to 2**25: both
branches of smooth_l1 and the binades where its float32 results round.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import time

from refloss import sweep
from refloss.sweep import _spaces


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (a pool's workers, once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", default="smooth_l1")
    ap.add_argument("--log2", type=int, default=28)
    ap.add_argument("--start", type=lambda s: int(s, 0), default=0x3C000000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk-log2", type=int, default=sweep.DEFAULT_CHUNK_BITS)
    args = ap.parse_args()
    bits = (args.start, args.start + 2**args.log2)
    chunk = 2**args.chunk_log2
    total = _spaces.finite_count(0, 2**32)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.loss} float32 value+grad, bits {bits[0]:#x}:{bits[1]:#x} "
          f"(2**{args.log2}), chunks of 2**{args.chunk_log2}")
    for w in args.workers:
        sweep.run(args.loss, exhaustive=True, bits=(bits[0], bits[0] + chunk), chunk=chunk, workers=1)  # warm
        t, cpu = time.perf_counter(), _cpu_seconds()
        r = sweep.run(args.loss, exhaustive=True, bits=bits, chunk=chunk, workers=w)
        dt, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        rate = r.points / dt
        print(f"  workers {w}: {r.points} points in {dt:.1f} s = {rate / 1e6:.1f} M points/s "
              f"(load average now {os.getloadavg()[0]:.1f}); all 2**32 ({total} finite) extrapolated: "
              f"{total / rate:.0f} s; CPU time {cpu:.1f} s = {r.points / cpu / 1e6:.1f} M points per CPU-second "
              f"(all 2**32 on {w} idle core(s): {total / (r.points / cpu) / w:.0f} s); max ULP {r.max_ulp}")


if __name__ == "__main__":
    main()
