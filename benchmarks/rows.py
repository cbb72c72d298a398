"""The row losses' calls: softmax cross-entropy at 8 and 80 classes and DFL at 17 bins, the value alone and the
value with its gradients, float64 and float32, best of ``--repeat`` calls of the NumPy API (all threads).

    python benchmarks/rows.py [--logits 8000000] [--repeat 7]
    PYTHONPATH=<another checkout> python benchmarks/rows.py   # the same calls through another version

Rows: ``--logits`` divided by the row's width; logits N(0, 3), soft targets from a flat Dirichlet (DFL: a target
uniform on [0, C - 1.01]).  Prints one line per loss, width and dtype: ms for the value, and for value and gradients.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import refloss as rl

CASES = (("softmax_cross_entropy", 8), ("softmax_cross_entropy", 80), ("dfl_loss", 17))


def measure(logits: int, repeat: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for name, width in CASES:
        n = max(1, logits // width)
        x = rng.normal(0, 3, (n, width))
        y = rng.uniform(0, width - 1.01, n) if name == "dfl_loss" else rng.dirichlet(np.ones(width), n)
        loss = getattr(rl, name)
        for dtype in ("float64", "float32"):
            a, b = x.astype(dtype), y.astype(dtype)
            row = {"loss": name, "width": width, "dtype": dtype}
            for label, call in (("value_ms", lambda: loss(a, b)), ("value_and_grad_ms", lambda: loss.value_and_grad(a, b))):
                call()
                best = np.inf
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    call()
                    best = min(best, time.perf_counter() - t0)
                row[label] = best * 1e3
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logits", type=int, default=8_000_000, help="logits a call (default 8,000,000)")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    for r in measure(a.logits, a.repeat):
        print(f"{r['loss']:22s} C = {r['width']:3d} {r['dtype']}: value {r['value_ms']:8.2f} ms, "
              f"value and gradients {r['value_and_grad_ms']:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
