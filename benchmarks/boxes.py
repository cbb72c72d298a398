"""Time refloss's fused box-loss kernels (value + gradients w.r.t. all 8 coordinates)
against torchvision's eager autograd in the same run.

    python benchmarks/boxes.py [--n 1000000] [--repeat 10]
"""
from __future__ import annotations

import argparse

import numpy as np

import refloss as rl
from _timing import best_ms


def boxes(n, rng, dtype):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 50, (n, 2))
    p = np.concatenate([xy, xy + wh], axis=1)
    t = p + rng.normal(0, 5, (n, 4))
    t[:, 2:] = np.maximum(t[:, 2:], t[:, :2] + 0.5)
    return p.astype(dtype), t.astype(dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    try:
        import torch
        import torchvision.ops as tvops
    except ImportError:
        torch = None
    print(f"box losses, value + gradients w.r.t. pred and target, N={args.n}")
    for dtype in (np.float64, np.float32):
        p, t = boxes(args.n, rng, dtype)
        for ours, theirs in (("giou_loss", "generalized_box_iou_loss"), ("diou_loss", "distance_box_iou_loss"),
                             ("ciou_loss", "complete_box_iou_loss")):
            fn = getattr(rl, ours)
            r = best_ms(lambda: fn.value_and_grad(p, t, dtype=dtype, eps=1e-7), args.repeat)
            line = f"  {np.dtype(dtype).name:<8} {ours:<10} refloss {r:9.2f} ms"
            if torch is not None:
                tp, tt = torch.from_numpy(p), torch.from_numpy(t)

                def peer():
                    a = tp.clone().requires_grad_(True)
                    b = tt.clone().requires_grad_(True)
                    v = getattr(tvops, theirs)(a, b, reduction="none", eps=1e-7)
                    v.backward(torch.ones_like(v))
                    return v, a.grad, b.grad

                m = best_ms(peer, args.repeat)
                line += f"   torchvision {torch.__version__} eager {m:9.2f} ms   x{m / r:5.2f}"
            print(line)


if __name__ == "__main__":
    main()
