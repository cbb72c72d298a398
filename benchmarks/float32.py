"""Is float32 faster than float64 for every loss? (issue 16: "float32 >= 1.6x faster than float64 for every loss")

    python benchmarks/float32.py [--n 1000000] [--repeat 7] [--loss NAME,...] [-o float32.json] [--doc docs/performance.md]

For every loss of ``refloss.ALL_LOSSES`` (metrics and box codings excluded: they share their loss's
kernel form), times ``value_and_grad`` (reduction "none", gradients with respect to every input) on
ordinary random inputs in float64 and in float32, interleaved (f64, f32, f64, ...), and reports the
best of ``--repeat`` rounds each and their ratio: as called plainly (new output arrays each call) and
with ``out=`` (outputs made once: the kernels' time without the operating system's zeroing of fresh
output pages, which on this kind of machine moves a plain call's time by up to 2x between runs). ``N`` counts the loss's elements: box pairs,
rotated box pairs, scalars (element-wise and classification losses: ``4 N``, as a box pair's four
coordinates), softmax rows of 8 classes, DFL rows of 17 bins (``reg_max`` 16).

``--doc`` writes the table into the page between its ``<!-- float32 -->`` markers.  Inputs are
ordinary (no edge cases: those take the same code path, a branch-free loop).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

import refloss as rl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_ms  # noqa: E402

TARGET = 1.6  # issue 16's bar: float32 at least this many times faster than float64
SOFTMAX_CLASSES = 8
DFL_BINS = 17


def losses() -> list[str]:
    """The losses timed: every loss of refloss (its metrics and codings share a loss's kernel form)."""
    return [n for n in rl.ALL_LOSSES if getattr(rl, n).info.kind == "loss"]


def _boxes(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    p = np.concatenate([xy, xy + rng.uniform(1, 50, (n, 2))], axis=1)
    t = p + rng.normal(0, 5, (n, 4))
    t[:, 2:] = np.maximum(t[:, 2:], t[:, :2] + 0.5)
    return p, t


def inputs(name: str, n: int, seed: int = 0) -> tuple[tuple, dict]:
    """(float64 inputs, parameters) of ``name`` with ``n`` elements, ordinary values."""
    rng = np.random.default_rng(seed)
    info = getattr(rl, name).info
    layout = info.layouts[0]
    if layout == "xyxy":
        return _boxes(rng, n), ({"image_size": (200.0, 200.0)} if name == "mpdiou_loss" else {})
    if layout == "xywh":
        return tuple(np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)
                     for b in _boxes(rng, n)), {}
    if layout == "xywhr":
        p = np.column_stack([rng.uniform(0, 100, (n, 2)), rng.uniform(1, 50, (n, 2)), rng.uniform(-np.pi, np.pi, n)])
        t = p + np.column_stack([rng.normal(0, 5, (n, 2)), rng.normal(0, 2, (n, 2)), rng.normal(0, 0.3, n)])
        t[:, 2:4] = np.abs(t[:, 2:4]) + 0.5
        return (p, t), {}
    if info.family == "elementwise":
        t = rng.normal(0, 1, 4 * n)
        return (t + rng.normal(0, 1, 4 * n), t), {}
    if info.family == "classification":
        x = rng.normal(0, 3, 4 * n)
        if name in ("bce_with_logits", "sigmoid_focal_loss"):
            return (x, (rng.random(4 * n) < 0.1).astype(np.float64)), {}
        q = rng.random(4 * n)  # soft (IoU) targets; a varifocal target is 0 on negatives
        return (x, np.where(rng.random(4 * n) < 0.9, 0.0, q) if name == "varifocal_loss" else q), {}
    if info.family == "softmax":
        x = rng.normal(0, 3, (n, SOFTMAX_CLASSES))
        y = rng.random((n, SOFTMAX_CLASSES))
        return (x, y / y.sum(axis=1, keepdims=True)), {}
    if info.family == "distribution":
        return (rng.normal(0, 3, (n, DFL_BINS)), rng.uniform(0, DFL_BINS - 1.01, n)), {}
    raise ValueError(f"{name}: no inputs for family {info.family!r}")


def _outputs(result) -> tuple:
    """Arrays shaped as ``value_and_grad``'s result (value, gradients), for its ``out=``."""
    value, grads = result
    return (np.empty_like(value), *(np.empty_like(g) for g in grads))


def measure(names, n: int, repeat: int) -> list[dict]:
    """Each loss's best time of ``repeat`` interleaved rounds a dtype: the call as written (new output arrays,
    whose pages the operating system zeroes on first touch above glibc's mmap threshold: docs/performance.md)
    and with ``out=`` (outputs made once and reused: the kernels' own time)."""
    rows = []
    for name in names:
        fn = getattr(rl, name).value_and_grad
        args64, params = inputs(name, n)
        args32 = tuple(a.astype(np.float32) for a in args64)
        out64, out32 = _outputs(fn(*args64, **params)), _outputs(fn(*args32, **params))  # (compiles)
        ms = {k: [] for k in ("float64", "float32", "float64_out", "float32_out")}
        for _ in range(repeat):  # interleaved rounds
            ms["float64"].append(best_ms(lambda: fn(*args64, **params), 1))
            ms["float32"].append(best_ms(lambda: fn(*args32, **params), 1))
            ms["float64_out"].append(best_ms(lambda: fn(*args64, **params, out=out64), 1))
            ms["float32_out"].append(best_ms(lambda: fn(*args32, **params, out=out32), 1))
        best = {k: min(v) for k, v in ms.items()}
        rows.append({"loss": name, "n": n, **{f"{k}_ms": v for k, v in best.items()},
                     "speedup": best["float64"] / best["float32"],
                     "speedup_out": best["float64_out"] / best["float32_out"]})
        r = rows[-1]
        print(f"{name:24s} f64 {best['float64']:8.2f} ms  f32 {best['float32']:8.2f} ms  {r['speedup']:5.2f}x   "
              f"out=: {best['float64_out']:8.2f} / {best['float32_out']:8.2f} ms  {r['speedup_out']:5.2f}x", flush=True)
    return rows


def _met(ratio: float) -> str:
    return "yes" if ratio >= TARGET else "**no**"


def table(rows) -> list[str]:
    lines = ["| loss | float64, ms | float32, ms | float64 / float32 | ≥ 1.6× | with `out=`: float64, ms | float32, ms "
             "| float64 / float32 | ≥ 1.6× |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['loss']}` | {r['float64_ms']:.2f} | {r['float32_ms']:.2f} | {r['speedup']:.2f} | "
                     f"{_met(r['speedup'])} | {r['float64_out_ms']:.2f} | {r['float32_out_ms']:.2f} | "
                     f"{r['speedup_out']:.2f} | {_met(r['speedup_out'])} |")
    return lines


def _at_least_one(text: str) -> int:
    try:
        v = int(float(text))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}") from None
    if v < 1 or v != float(text):
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}")
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=_at_least_one, default=1_000_000)
    ap.add_argument("--repeat", type=_at_least_one, default=7)
    ap.add_argument("--loss", default=None, help="comma-separated loss names (default: every loss)")
    ap.add_argument("-o", "--output", default=None, help="write the results as JSON")
    ap.add_argument("--doc", default=None, help="write the table into this page between <!-- float32 --> markers")
    a = ap.parse_args(argv)
    names = losses() if a.loss is None else [s.strip() for s in a.loss.split(",") if s.strip()]
    unknown = [s for s in names if s not in losses()]
    if unknown:
        ap.error(f"--loss: not a loss of refloss: {', '.join(unknown)} (choose from {', '.join(losses())})")
    start, end = "<!-- float32 -->", "<!-- /float32 -->"
    if a.doc and not (Path(a.doc).is_file() and start in Path(a.doc).read_text() and end in Path(a.doc).read_text()):
        ap.error(f"--doc: {a.doc} has no {start} ... {end} markers")  # (checked before measuring, not after)
    if a.output and not Path(a.output).resolve().parent.is_dir():
        ap.error(f"-o: no folder {str(Path(a.output).parent)!r}")
    rows = measure(names, a.n, a.repeat)
    lines = table(rows)
    print("\n".join(lines))
    if a.output:
        from refloss._numba_options import vectors

        Path(a.output).write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                              "vectors": vectors(), "n": a.n,
                                              "repeat": a.repeat, "results": rows}, indent=1) + "\n")
    if a.doc:
        page = Path(a.doc)
        text = page.read_text()
        head, rest = text.split(start, 1)
        page.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
