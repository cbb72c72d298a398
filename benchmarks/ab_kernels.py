"""This checkout's CPU kernels against another checkout's, in one process, interleaved: a kernel change's speed.

    git clone -q . /tmp/before && git -C /tmp/before checkout -q HEAD~1
    python benchmarks/ab_kernels.py --old /tmp/before qfl_loss [--param beta=2] [--zeros 0.9] [--n 1000000]
    python benchmarks/ab_kernels.py --old /tmp/before sigmoid_focal_loss --zeros 1 --logits -60 --value

Separate processes of ``benchmarks/float32.py`` differ by 10-15 % on this kind of machine for the same kernel
(docs/performance.md), more than many a kernel change moves; timed in one process, alternately, the two kernels
see the same machine.  For the losses whose ``value_and_grad_<p>`` drivers take two inputs (element-wise,
classification, row, box and rotated-box losses): value and both gradients, reduction "none", on
``benchmarks/float32.py``'s inputs (``4 N`` elements; the row losses ``softmax_cross_entropy`` and ``dfl_loss``: N
rows; box losses N pairs),
``--zeros F``: a fraction F of the targets set to 0 (a classification loss's background); ``--logits MU``: the
first input drawn from N(MU, 1) instead (a classification loss's logits far in a tail: easy negatives late in
training); ``--value``: the value alone (the ``value_<p>`` drivers).  The other checkout's
CPU module is loaded from its file under another name (as ``benchmarks/same_float32.py`` loads it), with this
checkout's kernel arguments.  Prints the best of ``--repeat`` rounds each, in ms, and new / old.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import refloss as rl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from float32 import inputs  # noqa: E402
from same_float32 import old_module  # noqa: E402


ROW_LOSSES = ("softmax_cross_entropy", "dfl_loss")  # (their drivers take two inputs too: rows, and targets)


def _param(text: str) -> tuple:
    name, _, value = text.partition("=")
    return name, (None if value == "None" else True if value == "True" else False if value == "False" else float(value))


def measure(old, new, args_of, x, t, repeat: int, value: bool = False) -> dict:
    """{precision: (old ms, new ms)}: the best of ``repeat`` rounds, the two modules' drivers called alternately
    (``value``: the value drivers, else value and gradients)."""
    out = {}
    for prec, dtype in (("f64", np.float64), ("f32", np.float32)):
        xs, ts = x.astype(dtype), t.astype(dtype)
        # (a row loss's value is one a row, its gradients the shapes of its two inputs)
        buffers = ([np.empty(xs.shape[0], dtype), np.empty_like(xs), np.empty_like(ts)] if xs.ndim == 2 else
                   [np.empty_like(xs) for _ in range(3)])
        args = args_of(prec)
        drivers = [getattr(m, f"value_{prec}" if value else f"value_and_grad_{prec}") for m in (old, new)]
        outputs = (buffers[0],) if value else (*buffers, dtype(1))
        best = [float("inf")] * 2
        for _ in range(repeat + 1):  # (the first round compiles)
            for k, f in enumerate(drivers):
                t0 = time.perf_counter()
                f(xs, ts, *outputs, *args)
                best[k] = min(best[k], time.perf_counter() - t0)
        out[prec] = tuple(b * 1e3 for b in best)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the other checkout (its repository root)")
    ap.add_argument("losses", nargs="+", help="element-wise, classification, row, box or rotated-box losses")
    ap.add_argument("--param", action="append", default=[], type=_param, metavar="NAME=VALUE",
                    help="a loss parameter (repeatable; the loss's default otherwise)")
    ap.add_argument("--zeros", type=float, default=None, metavar="F",
                    help="a fraction F of the targets set to 0 (classification losses)")
    ap.add_argument("--logits", type=float, default=None, metavar="MU",
                    help="the first input (logits) drawn from N(MU, 1) instead of the benchmark's")
    ap.add_argument("--value", action="store_true", help="the value alone (else value and gradients)")
    ap.add_argument("--n", type=int, default=1_000_000, help="box-pair equivalents: 4 N elements")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    allowed = (tuple(rl.ELEMENTWISE_LOSSES) + tuple(rl.CLASSIFICATION_LOSSES) + ROW_LOSSES + tuple(rl.BOX_LOSSES)
               + tuple(rl.ROTATED_LOSSES))
    unknown = [n for n in args.losses if n not in allowed]
    if unknown:
        ap.error(f"not element-wise, classification, row, box or rotated-box losses: {unknown}; these are: "
                 f"{', '.join(allowed)}")
    params = dict(args.param)
    names = {p.name for loss in args.losses for p in getattr(rl, loss).info.params}
    if set(params) - names:
        ap.error(f"no loss listed has the parameter(s) {sorted(set(params) - names)}; theirs: {sorted(names)}")
    print("| loss | float64 old, ms | float64 new, ms | new / old | float32 old, ms | float32 new, ms | new / old |")
    print("|---|---|---|---|---|---|---|")
    for loss in args.losses:
        fn = getattr(rl, loss)
        (x, t), given = inputs(loss, args.n)  # (given: parameters the inputs need, MPDIoU's image_size)
        if args.zeros is not None and x.ndim == 1:
            t = np.where(np.random.default_rng(1).random(t.shape) < args.zeros, 0.0, t)
        if args.logits is not None and x.ndim == 1:
            x = np.random.default_rng(2).normal(args.logits, 1.0, x.shape)
        mine = {**given, **{k: v for k, v in params.items() if k in {p.name for p in fn.info.params}}}
        got = measure(old_module(args.old, loss), fn._module("cpu"), lambda p: fn.kernel_args(mine, p), x, t,
                      args.repeat, args.value)
        cells = [f"{o:.2f} | {n:.2f} | {n / o:.2f}" for o, n in (got["f64"], got["f32"])]
        print(f"| `{loss}` | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
