"""Every float32 input of the printed float32 sin and cos (refloss/_derive/trig.py) in [-LIMIT, LIMIT], against
float64 libm's result (itself within 2^-29 of a float32 ULP of the exact one): the largest error in float32 ULPs
and where.  Beyond LIMIT the kernels use libm (tests/test_trig.py checks that).

    python benchmarks/trig_exhaustive.py [--chunk-bits 24]

About 2.3e9 inputs a function; chunks of 2^chunk-bits bit patterns, so that memory stays small.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_trig import _printed, _ulp  # noqa: E402  (the printed function, compiled as the tests do)

from refloss._derive import trig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunk-bits", type=int, default=24)
    args = ap.parse_args(argv)
    top = int(np.array(trig.LIMIT["f32"], np.float32).view(np.int32))
    step = 1 << args.chunk_bits
    for name in ("sin", "cos"):
        _, many = _printed(name, "f32")
        worst, at, count, t0 = 0.0, None, 0, time.perf_counter()
        for lo in range(0, top + 1, step):
            bits = np.arange(lo, min(lo + step, top + 1), dtype=np.int64).astype(np.int32)
            for sign in (1, -1):
                xs = bits.view(np.float32) * np.float32(sign)
                got = np.empty_like(xs)
                many(xs, got)
                err = _ulp(got, getattr(np, name)(xs.astype(np.float64)), np.float32)
                k = int(np.argmax(err))
                count += xs.size
                if err[k] > worst:
                    worst, at = float(err[k]), float(xs[k])
        print(f"float32 {name}: {count:,} inputs in [-{trig.LIMIT['f32']:g}, {trig.LIMIT['f32']:g}], "
              f"max {worst:.4f} ULP at x = {at!r} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
