"""Are this checkout's row-loss drivers (softmax_cross_entropy, dfl_loss) bit for bit another checkout's?

    git clone -q . /tmp/before && git -C /tmp/before checkout -q HEAD~1
    python benchmarks/same_rows.py --old /tmp/before [--sizes 1,63,64,65,130,20000] [--loss dfl_loss]

A change to how the row drivers run the row kernels (docs/performance.md, "Row losses in phases") must not move an
output.  This calls both checkouts' CPU drivers (value; value and gradients, divided by 3; softmax
cross-entropy's class-index drivers) on the same inputs and compares every output bit for bit (the sign of zero
too; a NaN equal to any NaN: its sign and payload are not results) and the returned count of bad rows: rows of
1-80 classes and 2-33 bins, ``--sizes`` rows a call (both sides of a 64-row chunk and the parallel drivers'
threshold by default), one-hot, soft, huge and spread logits, NaN, infinite and out-of-range inputs among them,
class indices (in range), label smoothing 0, 0.1 and 1, DFL's clamps None, 0, 1, 3 and 15.99.  Float64 and float32.  Exits 1 if any call
differs.  The other checkout's CPU module is loaded from its file under another name (as
``benchmarks/same_float32.py`` loads it), with this checkout's kernel arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import refloss as rl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from same_float32 import old_module  # noqa: E402

SIZES = (1, 63, 64, 65, 130, 20000)


def same(a, b) -> bool:
    """Bit for bit (the sign of zero too), a NaN equal to any NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return a[~np.isnan(a)].tobytes() == b[~np.isnan(b)].tobytes()


def softmax_cases(rng, sizes, dt):
    for c in (1, 2, 3, 5, 8, 17, 33, 80):
        for n in sizes:
            kind = rng.integers(0, 4)
            z = rng.normal(0, 3, (n, c))
            if kind == 0:
                y = np.zeros((n, c))
                y[np.arange(n), rng.integers(0, c, n)] = 1
            elif kind == 1:
                y = rng.random((n, c))
                y /= y.sum(1, keepdims=True)
            elif kind == 2:
                z, y = rng.normal(0, 40, (n, c)), rng.random((n, c)) * (rng.random((n, c)) < 0.3)
            else:
                z, y = np.exp(rng.uniform(-30, 30, (n, c))) * rng.choice([-1, 1], (n, c)), rng.random((n, c))
            if n > 5:
                z[rng.integers(0, n, 3), rng.integers(0, c, 3)] = [np.nan, np.inf, -np.inf]
                y[rng.integers(0, n, 2), rng.integers(0, c, 2)] = [1.5, -0.2]
            for ls in (0.0, 0.1, 1.0):
                yield z.astype(dt), y.astype(dt), {"label_smoothing": ls}


def dfl_cases(rng, sizes, dt):
    for c in (2, 3, 5, 17, 33):
        for n in sizes:
            z, t = rng.normal(0, 3, (n, c)), rng.uniform(0, c - 1, n)
            t[: n // 4] = np.round(t[: n // 4])
            if n > 5:
                z[rng.integers(0, n, 2), rng.integers(0, c, 2)] = [np.nan, np.inf]
                t[rng.integers(0, n, 3)] = [np.nan, -0.5, c + 1.0]
            for clamp in (None, 0.0, 1.0, 3.0, 15.99):
                yield z.astype(dt), t.astype(dt), {"clamp": clamp}


def _call(module, name, prec, x, t, args):
    """(bad count, outputs...) of one driver."""
    dt = x.dtype.type
    out = np.full(x.shape[0], 7, dt)
    if name.startswith("value_and_grad"):
        grads = [np.full_like(x, 7)] + ([] if name.endswith("index") else [np.full_like(t, 7)])
        return (getattr(module, f"{name}_{prec}")(x, t, out, *grads, dt(3), *args), out, *grads)
    return getattr(module, f"{name}_{prec}")(x, t, out, *args), out


CASES = {"softmax_cross_entropy": softmax_cases, "dfl_loss": dfl_cases}


def compare(old_root: Path, sizes, losses=tuple(CASES), seed: int = 7) -> tuple:
    """(calls that differ, calls)."""
    rng = np.random.default_rng(seed)
    differ = total = 0
    for loss in losses:
        cases = CASES[loss]
        old, new, fn = old_module(old_root, loss), rl.loss_named(loss)._module("cpu"), getattr(rl, loss)
        for prec, dt in (("f64", np.float64), ("f32", np.float32)):
            for x, t, params in cases(rng, sizes, dt):
                args = fn.kernel_args(params, prec)
                calls = [("value", t), ("value_and_grad", t)]
                if loss == "softmax_cross_entropy":
                    k = rng.integers(0, x.shape[1], x.shape[0]).astype(np.int64)
                    calls += [("value_index", k), ("value_and_grad_index", k)]
                for name, targets in calls:
                    a, b = (_call(m, name, prec, x, targets, args) for m in (old, new))
                    total += 1
                    if a[0] != b[0] or not all(same(u, v) for u, v in zip(a[1:], b[1:])):
                        differ += 1
                        print(f"differs: {loss} {prec} {name} rows {x.shape} {params}", flush=True)
    return differ, total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the other checkout (its repository root)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="rows a call, comma-separated")
    ap.add_argument("--loss", choices=sorted(CASES), action="append", help="one row loss (repeatable; default both)")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        ap.error(f"--sizes: whole numbers, comma-separated, got {args.sizes!r}")
    if not sizes or min(sizes) < 0:
        ap.error("--sizes: at least one size, each 0 or more")
    differ, total = compare(args.old, sizes, tuple(args.loss or CASES))
    print(f"{differ} of {total} calls differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
