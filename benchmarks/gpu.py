"""Time refloss's fused CUDA kernels against PyTorch CUDA autograd in the same run.

    python benchmarks/gpu.py [--n 4000000] [--repeat 20]

Inputs live on the GPU for every contender (refloss takes torch tensors through
``__cuda_array_interface__``, zero copy; torch's leaf tensors are made once); each timed
call allocates its outputs and ends with a device synchronisation.  Contenders: smooth_l1 (torch.nn.functional), giou_loss and
ciou_loss (torchvision.ops), sigmoid_focal_loss (torchvision.ops), and yolo_decode of the
Scaled-YOLOv4 form against the same formula in torch.  Without a GPU torch is skipped and
refloss runs wherever numba.cuda runs (NUMBA_ENABLE_CUDASIM=1 for a smoke test).
"""
from __future__ import annotations

import argparse

import numpy as np

import refloss as rl
from _timing import best_ms
from boxes import boxes


def _torch():
    try:
        import torch
        import torchvision.ops as tvops
    except ImportError:
        return None, None
    return (torch, tvops) if torch.cuda.is_available() else (None, None)


def inputs(n, rng, dtype):
    p, t = boxes(n, rng, dtype)
    return {
        "x": rng.normal(size=n).astype(dtype), "y": rng.normal(size=n).astype(dtype),
        "logits": rng.normal(0, 3, n).astype(dtype), "targets": (rng.uniform(size=n) < 0.1).astype(dtype),
        "p": p, "t": t,
        "tt": rng.normal(0, 2, (n, 4)).astype(dtype), "anchors": np.exp(rng.uniform(0, 5, (n, 2))).astype(dtype),
        "grid": rng.integers(0, 80, (n, 2)).astype(dtype),
    }


def refloss_calls(d, dtype):
    from numba import cuda

    def timed(fn):
        def call():
            out = fn()
            cuda.synchronize()
            return out
        return call

    kw = dict(dtype=dtype, device="cuda", validate=False)
    return {
        "smooth_l1": timed(lambda: rl.smooth_l1.value_and_grad(d["x"], d["y"], beta=1 / 9, **kw)),
        "giou_loss": timed(lambda: rl.giou_loss.value_and_grad(d["p"], d["t"], eps=1e-7, **kw)),
        "ciou_loss": timed(lambda: rl.ciou_loss.value_and_grad(d["p"], d["t"], eps=1e-7, **kw)),
        "sigmoid_focal_loss": timed(lambda: rl.sigmoid_focal_loss.value_and_grad(d["logits"], d["targets"], **kw)),
        "yolo_decode scaled": timed(lambda: rl.yolo_decode.value_and_grad(d["tt"], d["anchors"], d["grid"],
                                                                          variant="scaled", **kw)),
    }


def torch_calls(torch, tvops, d):
    leaves = {k: v.detach().requires_grad_(True) for k, v in d.items()}  # made once, outside the timing

    def grad_of(fn, *names):
        def call():
            args = [leaves[n] for n in names]
            v = fn(*args)
            grads = torch.autograd.grad(v, args, grad_outputs=torch.ones_like(v))
            torch.cuda.synchronize()
            return v, grads
        return call

    def decode(t, anchors, grid):
        s = torch.sigmoid(t)
        return torch.cat([2 * s[:, :2] - 0.5 + grid, anchors * (2 * s[:, 2:]) ** 2], dim=1)

    F = torch.nn.functional
    return {
        "smooth_l1": grad_of(lambda a, b: F.smooth_l1_loss(a, b, beta=1 / 9, reduction="none"), "x", "y"),
        "giou_loss": grad_of(lambda a, b: tvops.generalized_box_iou_loss(a, b, eps=1e-7), "p", "t"),
        "ciou_loss": grad_of(lambda a, b: tvops.complete_box_iou_loss(a, b, eps=1e-7), "p", "t"),
        "sigmoid_focal_loss": grad_of(lambda a, b: tvops.sigmoid_focal_loss(a, b), "logits", "targets"),
        "yolo_decode scaled": grad_of(lambda t: decode(t, d["anchors"], d["grid"]), "tt"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    torch, tvops = _torch()
    rng = np.random.default_rng(0)
    if torch is not None:
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, N={args.n}; value + gradients, "
              "inputs on the GPU, best of", args.repeat)
    else:
        print(f"no CUDA torch: refloss only, N={args.n}")
    for dtype in (np.float64, np.float32):
        host = inputs(args.n, rng, dtype)
        if torch is not None:
            d = {k: torch.from_numpy(v).cuda() for k, v in host.items()}
        else:
            from numba import cuda

            d = {k: cuda.to_device(v) for k, v in host.items()}
        ours = {k: best_ms(fn, args.repeat) for k, fn in refloss_calls(d, dtype).items()}
        theirs = {k: best_ms(fn, args.repeat) for k, fn in torch_calls(torch, tvops, d).items()} if torch else {}
        for k, ms in ours.items():
            peer = f"   torch {theirs[k]:9.3f} ms   x{theirs[k] / ms:5.2f}" if k in theirs else ""
            print(f"  {np.dtype(dtype).name:<8} {k:<20} refloss {ms:9.3f} ms{peer}")


if __name__ == "__main__":
    main()
