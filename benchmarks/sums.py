"""What the compensated sums of the reductions cost (refloss/_sums.py, docs/accuracy.md "Reductions and
broadcast gradients"): refloss's sums against NumPy's ``sum`` on the same arrays, and whole loss calls that sum.

    python benchmarks/sums.py [--n 1000000] [--repeat 9]

Best of ``--repeat`` calls (all threads), ms; the two columns of a line alternate within each round:

- ``axis 0 of (n, 4)``: a box input's gradient summed over the boxes (a target broadcast), NumPy's plain sum along
  axis 0 against ``_sums.sum_axes``;
- ``total of 4n``: reduction "sum"/"mean" of 4n element values, NumPy's pairwise sum against ``_sums.total``;
- ``total of 10``: the same at 10 elements (the fixed cost);
- the calls ``smooth_l1.value_and_grad(pred (n, 4), target (4,), reduction="mean")`` and GIoU's (one box target
  broadcast), the refloss call and, for scale, the same call without the broadcast (target given in full) and
  reduction "none".
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import refloss as rl
from refloss import _sums


def _best(calls, repeat: int) -> list[float]:
    for c in calls:
        c()
    best = [np.inf] * len(calls)
    for _ in range(repeat):
        for k, c in enumerate(calls):
            t0 = time.perf_counter()
            c()
            best[k] = min(best[k], time.perf_counter() - t0)
    return [b * 1e3 for b in best]


def measure(n: int, repeat: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for dtype in ("float64", "float32"):
        g = rng.normal(size=(n, 4)).astype(dtype)
        v = g.reshape(-1)
        small = v[:10].copy()
        for what, a, b in (("axis 0 of (n, 4)", lambda: g.sum(axis=0), lambda: _sums.sum_axes(g, (0,))),
                           ("total of 4n", lambda: v.sum(), lambda: _sums.total(v)),
                           ("total of 10", lambda: small.sum(), lambda: _sums.total(small))):
            numpy_ms, refloss_ms = _best([a, b], repeat)
            rows.append({"what": what, "dtype": dtype, "numpy_ms": numpy_ms, "refloss_ms": refloss_ms})
        lo = rng.uniform(0, 10, (n, 2))
        boxes = np.concatenate([lo, lo + rng.uniform(0.5, 5, (n, 2))], axis=1).astype(dtype)
        one = np.array([2.0, 2.0, 6.0, 7.0], dtype)
        full = np.broadcast_to(one, boxes.shape).copy()
        for name, p in (("smooth_l1", g), ("giou_loss", boxes)):
            loss = getattr(rl, name)
            broadcast_ms, full_ms = _best([lambda: loss.value_and_grad(p, one, reduction="mean"),
                                           lambda: loss.value_and_grad(p, full)], repeat)
            rows.append({"what": f"{name} value_and_grad, target (4,), mean", "dtype": dtype,
                         "refloss_ms": broadcast_ms, "full_none_ms": full_ms})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="boxes (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=9)
    a = ap.parse_args(argv)
    print(f"n = {a.n:,}, best of {a.repeat}, ms")
    for r in measure(a.n, a.repeat):
        if "numpy_ms" in r:
            print(f"{r['what']:45s} {r['dtype']}: numpy.sum {r['numpy_ms']:9.4f}, refloss {r['refloss_ms']:9.4f}")
        else:
            print(f"{r['what']:45s} {r['dtype']}: {r['refloss_ms']:9.4f} (target in full, reduction none: "
                  f"{r['full_none_ms']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
