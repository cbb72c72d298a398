"""Time refloss's fused CUDA kernels against PyTorch CUDA autograd in the same run.

    python benchmarks/gpu.py [--n 4000000] [--repeat 20]

Inputs live on the GPU for every contender (refloss takes torch tensors through
``__cuda_array_interface__``, zero copy; torch's leaf tensors are made once); each timed
call allocates its outputs and ends with a device synchronisation.  Contenders: smooth_l1 (torch.nn.functional), giou_loss and
ciou_loss (torchvision.ops), sigmoid_focal_loss (torchvision.ops), softmax_cross_entropy on rows of 80 classes
(torch.nn.functional.cross_entropy with probabilities; N logits in N/80 rows), and yolo_decode of the
Scaled-YOLOv4 form against the same formula in torch.  With torch on a GPU, two more columns: the
device-to-device copy of the bytes the call reads and writes (``torch.Tensor.copy_``, the roofline:
"of copy" is the copy's time over refloss's), and with ``--compile`` ``torch.compile`` of the box losses
(forward compiled, backward by AOTAutograd; printed after the table, its compile time excluded).
Without a GPU torch is skipped and refloss runs wherever numba.cuda runs (NUMBA_ENABLE_CUDASIM=1 for a
smoke test).
"""
from __future__ import annotations

import argparse
import traceback

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


CLASSES = 80  # softmax_cross_entropy's row width (COCO's classes)


def inputs(n, rng, dtype):
    p, t = boxes(n, rng, dtype)
    rows = max(n // CLASSES, 1)
    probs = rng.uniform(size=(rows, CLASSES))
    return {
        "sx": rng.normal(0, 3, (rows, CLASSES)).astype(dtype), "sy": (probs / probs.sum(1, keepdims=True)).astype(dtype),
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
        "softmax_cross_entropy": timed(lambda: rl.softmax_cross_entropy.value_and_grad(d["sx"], d["sy"], **kw)),
        "yolo_decode scaled": timed(lambda: rl.yolo_decode.value_and_grad(d["tt"], d["anchors"], d["grid"],
                                                                          variant="scaled", **kw)),
    }


def torch_calls(torch, tvops, d, only=None):
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
    if only is not None:
        return {k: grad_of(fn, "p", "t") for k, fn in only.items()}
    return {
        "smooth_l1": grad_of(lambda a, b: F.smooth_l1_loss(a, b, beta=1 / 9, reduction="none"), "x", "y"),
        "giou_loss": grad_of(lambda a, b: tvops.generalized_box_iou_loss(a, b, eps=1e-7), "p", "t"),
        "ciou_loss": grad_of(lambda a, b: tvops.complete_box_iou_loss(a, b, eps=1e-7), "p", "t"),
        "sigmoid_focal_loss": grad_of(lambda a, b: tvops.sigmoid_focal_loss(a, b), "logits", "targets"),
        "softmax_cross_entropy": grad_of(lambda a, b: F.cross_entropy(a, b, reduction="none"), "sx", "sy"),
        "yolo_decode scaled": grad_of(lambda t: decode(t, d["anchors"], d["grid"]), "tt"),
    }


# elements each value_and_grad reads and writes, a row of boxes being 4: (x, y) -> value, dx, dy;
# (pred, target) -> value, dpred, dtarget; (logits, targets) -> value, dlogits, dtargets; softmax rows: 4 a logit
# and a value a row
MOVED = {"smooth_l1": 5, "giou_loss": 17, "ciou_loss": 17, "sigmoid_focal_loss": 5,
         "softmax_cross_entropy": 4 + 1 / CLASSES}


def copy_ms(torch, n_elements, dtype, repeat):
    """A device-to-device copy moving ``n_elements`` in all (half read, half written)."""
    src = torch.ones(int(n_elements) // 2, dtype=getattr(torch, np.dtype(dtype).name), device="cuda")
    dst = torch.empty_like(src)

    def call():
        dst.copy_(src)
        torch.cuda.synchronize()
    return best_ms(call, repeat)


def compiled_calls(torch, tvops, d):
    """``torch.compile`` of torchvision's GIoU and CIoU losses, forward and backward."""
    fwd = {"giou_loss": torch.compile(lambda a, b: tvops.generalized_box_iou_loss(a, b, eps=1e-7)),
           "ciou_loss": torch.compile(lambda a, b: tvops.complete_box_iou_loss(a, b, eps=1e-7))}
    return torch_calls(torch, tvops, d, fwd)


def detail(torch, d, dtype, repeat):
    """Where refloss's time goes, for GIoU and Smooth L1: the generated kernel alone (outputs allocated
    once), the NumPy API's call (outputs allocated each call by Numba), and refloss.torch forward +
    backward (PyTorch's caching allocator)."""
    from numba import cuda

    import refloss.torch as rt
    from refloss import _cuda

    precision = "f32" if dtype == np.float32 else "f64"
    for name, names, params in (("giou_loss", ("p", "t"), {"eps": 1e-7}), ("smooth_l1", ("x", "y"), {"beta": 1 / 9})):
        loss = getattr(rl, name)
        views = [cuda.as_cuda_array(d[k]) for k in names]
        n = views[0].shape[0]
        out = cuda.device_array(n, dtype=dtype)
        grads = [cuda.device_array(v.shape, dtype=dtype) for v in views]
        values = loss._param_values(params)
        args = loss._cuda_args(values, precision, loss._checked_args(values, precision))
        kernel = getattr(loss._module("cuda"), f"value_and_grad_{precision}")
        blocks = _cuda._blocks(n)

        def launch():
            kernel[blocks, _cuda.THREADS](*views, out, *grads, dtype(1), *args)
            cuda.synchronize()

        def alloc():
            [cuda.device_array(v.shape, dtype=dtype) for v in (out, *grads)]
            cuda.synchronize()

        leaves = [d[k].detach().requires_grad_(True) for k in names]

        def trained():
            v = getattr(rt, name)(*leaves, reduction="sum", **params)
            torch.autograd.grad(v, leaves)
            torch.cuda.synchronize()

        api = best_ms(lambda: (loss.value_and_grad(*[d[k] for k in names], dtype=dtype, device="cuda",
                                                   validate=False, **params), cuda.synchronize()), repeat)
        copy = copy_ms(torch, MOVED[name] * n, dtype, repeat)
        row = {"kernel alone": best_ms(launch, repeat), "outputs allocated (Numba)": best_ms(alloc, repeat),
               "NumPy API call": api, "refloss.torch fwd+bwd (sum)": best_ms(trained, repeat)}
        print(f"  {np.dtype(dtype).name:<8} {name:<12} " + "   ".join(f"{k} {v:.3f} ms" for k, v in row.items())
              + f"   copy {copy:.3f} ms: kernel alone {copy / row['kernel alone']:.1%} of copy", flush=True)


def run(n: int, repeat: int = 20, compile: bool = False, details: bool = False) -> int:
    """The comparison at N = ``n`` (printed), float64 then float32; 2 where there is no GPU to run on."""
    from refloss._backends import cuda_unavailable

    why = cuda_unavailable()
    if why:
        print(f"no GPU to benchmark here: {why}")
        return 2
    torch, tvops = _torch()
    rng = np.random.default_rng(0)
    if torch is not None:
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, N={n}; value + gradients, "
              "inputs on the GPU, best of", repeat)
    else:
        print(f"no CUDA torch: refloss only, N={n}")
    for dtype in (np.float64, np.float32):
        host = inputs(n, rng, dtype)
        if torch is not None:
            d = {k: torch.from_numpy(v).cuda() for k, v in host.items()}
        else:
            from numba import cuda

            d = {k: cuda.to_device(v) for k, v in host.items()}
        ours = {k: best_ms(fn, repeat) for k, fn in refloss_calls(d, dtype).items()}
        theirs = {k: best_ms(fn, repeat) for k, fn in torch_calls(torch, tvops, d).items()} if torch else {}
        for k, ms in ours.items():
            peer = f"   torch {theirs[k]:9.3f} ms   x{theirs[k] / ms:6.2f}" if k in theirs else ""
            if torch is not None and k in MOVED:
                copy = copy_ms(torch, MOVED[k] * n, dtype, repeat)
                peer += f"   copy {copy:8.3f} ms   {copy / ms:6.1%} of copy"
            print(f"  {np.dtype(dtype).name:<8} {k:<20} refloss {ms:9.3f} ms{peer}", flush=True)
        if torch is not None and compile:
            for k, fn in compiled_calls(torch, tvops, d).items():
                try:
                    fn()  # compiles, outside the timing
                    ms = best_ms(fn, repeat)
                    print(f"  {np.dtype(dtype).name:<8} {k:<20} torch.compile {ms:9.3f} ms   refloss x{ms / ours[k]:6.2f}",
                          flush=True)
                except Exception as exc:  # noqa: BLE001 - a peer failing is a row, not the end of the run
                    print(f"  {np.dtype(dtype).name:<8} {k:<20} torch.compile failed: {type(exc).__name__}: {exc}"[:300])
        if torch is not None and details:
            try:
                detail(torch, d, dtype, repeat)
            except Exception:  # noqa: BLE001 - the table above stands; the traceback says what to fix
                traceback.print_exc()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--detail", action="store_true", help="also where the time goes (kernel alone, allocation, "
                    "refloss.torch) for GIoU and Smooth L1")
    ap.add_argument("--compile", action="store_true", help="also torch.compile of the box losses (slow to compile)")
    args = ap.parse_args(argv)
    return run(args.n, args.repeat, args.compile, args.detail)


if __name__ == "__main__":
    raise SystemExit(main())
