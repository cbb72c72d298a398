"""refloss.torch against refloss's NumPy API and torchvision, in one process (issue 17).

    python benchmarks/torch_adapter.py [--n 1000000] [--repeat 9]

Two tables:

- the fixed cost a call through ``refloss.torch`` adds over the NumPy call, at N = 10 (value
  only; value and gradients: ``L.value_and_grad`` against forward + ``backward()``);
- forward + backward at N (default 10**6) on the CPU, float64: ``refloss.torch`` against the
  NumPy API's ``value_and_grad``, torchvision eager autograd and ``torch.compile`` of the
  torchvision function.

Best of ``--repeat`` interleaved rounds.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import refloss as rl
import refloss.torch as rt

PAIRS = [("giou_loss", "generalized_box_iou_loss"), ("diou_loss", "distance_box_iou_loss"),
         ("ciou_loss", "complete_box_iou_loss")]


def boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 50], dim=1)


def best(fns: dict, repeat: int, inner: int = 1) -> dict:
    """Best time of each function in seconds (per call), rounds interleaved."""
    for f in fns.values():
        f()  # compile, warm
    out = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            out[k] = min(out[k], (time.perf_counter() - t) / inner)
    return out


def overhead(repeat: int) -> None:
    p, t = boxes(10, 1), boxes(10, 2)
    pn, tn = p.numpy(), t.numpy()
    pg = p.clone().requires_grad_()

    def torch_vg():
        pg.grad = None
        rt.giou_loss(pg, t, reduction="sum").backward()

    grad = torch.zeros_like(p)

    class Floor(torch.autograd.Function):  # PyTorch's own cost of a custom autograd function, no work
        @staticmethod
        def forward(ctx, x, y):
            ctx.grad = grad  # a gradient made beforehand: the floor includes its accumulation into x.grad
            return x.new_zeros(())

        @staticmethod
        def backward(ctx, g):
            return ctx.grad, None

    def floor_fb():
        pg.grad = None
        Floor.apply(pg, t).backward()

    times = best({"numpy value": lambda: rl.giou_loss(pn, tn, reduction="sum"),
                  "torch value": lambda: rt.giou_loss(p, t, reduction="sum"),
                  "numpy value_and_grad": lambda: rl.giou_loss.value_and_grad(pn, tn, reduction="sum"),
                  "torch forward (recording)": lambda: rt.giou_loss(pg, t, reduction="sum"),
                  "torch forward + backward": torch_vg,
                  "floor: forward": lambda: Floor.apply(pg, t),
                  "floor: forward + backward": floor_fb}, repeat, inner=2000)
    print("giou_loss, N = 10, float64, per call (floor: a torch.autograd.Function that does nothing):")
    for k, v in times.items():
        print(f"  {k:28s} {v * 1e6:8.1f} us")
    us = {k: v * 1e6 for k, v in times.items()}
    print(f"  added by refloss.torch: value {us['torch value'] - us['numpy value']:.1f} us; "
          f"forward recording for autograd {us['torch forward (recording)'] - us['numpy value_and_grad']:.1f} us "
          f"(PyTorch's floor {us['floor: forward']:.1f}); forward + backward "
          f"{us['torch forward + backward'] - us['numpy value_and_grad']:.1f} us "
          f"(PyTorch's floor {us['floor: forward + backward']:.1f})")


def throughput(n: int, repeat: int) -> None:
    import torchvision.ops as ops

    p, t = boxes(n, 1), boxes(n, 2)
    print(f"\nforward + backward, N = {n:,}, float64, CPU ({torch.get_num_threads()} torch threads), ms:")
    print(f"  {'loss':10s} {'refloss.torch':>14s} {'NumPy API':>10s} {'torchvision':>12s} {'compiled tv':>12s}"
          f" {'tv / refloss.torch':>19s}")
    for ours, theirs in PAIRS:
        fn, peer = getattr(rt, ours), getattr(ops, theirs)
        compiled = torch.compile(peer)
        pg = p.clone().requires_grad_()

        def run(f):
            def go():
                pg.grad = None
                f(pg, t, reduction="sum").backward()
            return go

        times = best({"ours": run(fn), "numpy": lambda: getattr(rl, ours).value_and_grad(p.numpy(), t.numpy(),
                                                                                         reduction="sum"),
                      "tv": run(peer), "compiled": run(compiled)}, repeat)
        ms = {k: v * 1e3 for k, v in times.items()}
        print(f"  {ours:10s} {ms['ours']:14.1f} {ms['numpy']:10.1f} {ms['tv']:12.1f} {ms['compiled']:12.1f}"
              f" {ms['tv'] / ms['ours']:19.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    overhead(args.repeat)
    throughput(args.n, args.repeat)


if __name__ == "__main__":
    main()
