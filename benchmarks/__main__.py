"""One benchmark command (issue 16): refloss against its peers and its baselines, in one process.

    python -m benchmarks [--n 10,1000,100000,1000000] [--dtype float64,float32] [--repeat 7]
                         [--loss giou_loss,...] [-o results.json] [--doc docs/performance.md] [--check]
                         [--memory 10000000] [--device cuda]

For each loss (GIoU, DIoU, CIoU on N box pairs; Smooth L1 on 4N elements), each N and dtype, the
best of ``--repeat`` interleaved rounds of:

- ``refloss`` value only and ``refloss`` value + gradients (w.r.t. pred and target), the NumPy API, and value +
  gradients written into outputs made once (``out=``; the copy below reuses its buffer too);
- ``refloss.torch``: forward + ``backward()`` (when torch is installed);
- ``baseline``: a plain hand-fused Numba kernel of the textbook formula (``benchmarks/_baselines.py``),
  value + gradients, the speed issue 16 asks refloss to beat;
- ``torch eager``: torchvision.ops / torch.nn.functional with autograd, forward + backward;
- ``torch.compile``: the same function compiled (default mode), forward + backward;
- ``jax jit``: ``jax.jit(jax.value_and_grad)`` of the textbook formula, when JAX is installed;
- ``copy``: the memory roofline, a parallel copy reading and writing as many bytes as the fused
  pass does (both inputs read; the value and both gradients written).

Prints a table per loss (time, elements/s, GB/s of the fused pass's bytes, each row's time over
refloss value+grad's) and writes the JSON (``-o``); ``--doc`` writes the table and a log-log plot
of time against N into the page between its ``<!-- performance -->`` markers.  ``--check``
compares the baselines' values and gradients with refloss's first; ``--memory N`` adds the peak memory
one ``value_and_grad`` call allocates at N (tracemalloc), against its inputs and outputs.  First of all,
the fixed cost of one call at N = 10, timed back to back before any peer runs (:func:`fixed_cost`).
``--device cuda`` runs ``benchmarks/gpu.py``'s comparison on the GPU instead, at each ``--n``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import refloss as rl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines  # noqa: E402

BOX_PEERS = {"giou_loss": "generalized_box_iou_loss", "diou_loss": "distance_box_iou_loss",
             "ciou_loss": "complete_box_iou_loss"}
LOSSES = ("giou_loss", "diou_loss", "ciou_loss", "smooth_l1")


def inputs(loss: str, n: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    if loss == "smooth_l1":
        t = rng.normal(0, 1, 4 * n)
        return (t + rng.normal(0, 1, 4 * n)).astype(dtype), t.astype(dtype)
    xy = rng.uniform(0, 100, (n, 2))
    p = np.concatenate([xy, xy + rng.uniform(1, 50, (n, 2))], axis=1)
    t = p + rng.normal(0, 5, (n, 4))
    t[:, 2:] = np.maximum(t[:, 2:], t[:, :2] + 0.5)
    return p.astype(dtype), t.astype(dtype)


def _jax_fn(loss):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def box(p, t):
        wp, hp, wt, ht = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        iw = jnp.clip(jnp.minimum(p[:, 2], t[:, 2]) - jnp.maximum(p[:, 0], t[:, 0]), 0)
        ih = jnp.clip(jnp.minimum(p[:, 3], t[:, 3]) - jnp.maximum(p[:, 1], t[:, 1]), 0)
        inter = iw * ih
        union = wp * hp + wt * ht - inter
        iou = inter / union
        cw = jnp.maximum(p[:, 2], t[:, 2]) - jnp.minimum(p[:, 0], t[:, 0])
        ch = jnp.maximum(p[:, 3], t[:, 3]) - jnp.minimum(p[:, 1], t[:, 1])
        if loss == "giou_loss":
            return jnp.sum(1 - iou + (cw * ch - union) / (cw * ch))
        rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) ** 2 + (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) ** 2) / 4
        value = 1 - iou + rho2 / (cw**2 + ch**2)
        if loss == "ciou_loss":
            v = 4 / jnp.pi**2 * (jnp.arctan(wt / ht) - jnp.arctan(wp / hp)) ** 2
            value = value + jax.lax.stop_gradient(v / (1 - iou + v)) * v
        return jnp.sum(value)

    def smooth(p, t):
        x = jnp.abs(p - t)
        return jnp.sum(jnp.where(x < 1.0, 0.5 * x * x, x - 0.5))

    f = jax.jit(jax.value_and_grad(smooth if loss == "smooth_l1" else box, argnums=(0, 1)))
    return lambda p, t: jax.block_until_ready(f(p, t))


def contenders(loss: str, p, t, with_peers: bool) -> dict:
    fn = getattr(rl, loss)
    out = {"refloss value": lambda: fn(p, t),
           "refloss value+grad": lambda: fn.value_and_grad(p, t)}
    # the same call writing into outputs made once (out=): no fresh pages for the operating system to zero
    outs = (np.empty(p.shape if loss == "smooth_l1" else p.shape[:-1], p.dtype), np.empty_like(p), np.empty_like(t))
    out["refloss value+grad, out="] = lambda: fn.value_and_grad(p, t, out=outs)
    base = _baselines.smooth_l1 if loss == "smooth_l1" else _baselines.BOXES[loss]
    out["baseline value+grad"] = lambda: base(p, t)
    out["copy"] = _copy(fused_bytes(loss, p, t))
    if not with_peers:
        return out
    try:
        import torch
        import refloss.torch as rt
    except ImportError:
        return out
    tp, tt = torch.from_numpy(p), torch.from_numpy(t)
    if loss == "smooth_l1":
        peer = lambda a, b: torch.nn.functional.smooth_l1_loss(a, b, reduction="sum")  # noqa: E731
    else:
        import torchvision.ops as ops

        peer_fn = getattr(ops, BOX_PEERS[loss])
        peer = lambda a, b: peer_fn(a, b, reduction="sum")  # noqa: E731

    def backward(f):
        def run():
            a = tp.detach().requires_grad_(True)
            b = tt.detach().requires_grad_(True)
            f(a, b).backward()
            return a.grad, b.grad
        return run

    ours = getattr(rt, loss)
    out["refloss.torch fwd+bwd"] = backward(lambda a, b: ours(a, b, reduction="sum"))
    out["torch eager fwd+bwd"] = backward(peer)
    out["torch.compile fwd+bwd"] = backward(torch.compile(peer))
    try:
        jf = _jax_fn(loss)
        out["jax jit value+grad"] = lambda: jf(p, t)
    except ImportError:
        pass
    return out


def fused_bytes(loss: str, p, t) -> int:
    """What the fused pass moves: it reads both inputs and writes the value and both gradients."""
    values = p.size if loss == "smooth_l1" else p.shape[0]
    return 2 * (p.nbytes + t.nbytes) + values * p.itemsize


def _copy(n_bytes: int):
    """The memory roofline: a parallel copy (all cores, as refloss's kernels) reading and writing
    n_bytes in all."""
    src = np.ones(max(n_bytes // 16, 1))
    dst = np.empty_like(src)
    return lambda: _baselines.parallel_copy(src, dst)


def best(fns: dict, repeat: int) -> dict:
    for f in fns.values():
        f()  # compile, warm up
    times = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k] = min(times[k], time.perf_counter() - start)
    return times


def fixed_cost(losses, dtypes, number: int = 2000, repeat: int = 7) -> list:
    """The fixed cost of a call: one call at N = 10, timed back to back (``timeit``, best of ``repeat``
    runs of ``number`` calls), before any peer is imported or run.  The interleaved rounds time single
    calls right after the peers' (torch's and JAX's worker threads still spin on the other core then),
    which at N = 10 measures them more than refloss."""
    import timeit

    rows = []
    for loss in losses:
        fn = getattr(rl, loss)
        for dtype in dtypes:
            p, t = inputs(loss, 10, np.dtype(dtype))
            fn.value_and_grad(p, t)
            row = {"loss": loss, "dtype": dtype}
            for name, f in (("value", lambda: fn(p, t)), ("value+grad", lambda: fn.value_and_grad(p, t))):
                row[name] = min(timeit.repeat(f, number=number, repeat=repeat)) / number
            rows.append(row)
    return rows


def fixed_cost_table(rows: list) -> list:
    lines = ["**One call at N = 10**, the fixed cost: back-to-back calls of the NumPy API (`timeit`, best of 7 runs "
             "of 2,000 calls), before the peers run", "", "| loss | dtype | value | value + gradients |", "|---|---|---|---|"]
    lines += [f"| {r['loss']} | {r['dtype']} | {_time(r['value'])} | {_time(r['value+grad'])} |" for r in rows]
    return lines


def check() -> None:
    for loss in LOSSES:
        p, t = inputs(loss, 1000, np.float64, seed=3)
        value, grads = getattr(rl, loss).value_and_grad(p, t)
        base = (_baselines.smooth_l1 if loss == "smooth_l1" else _baselines.BOXES[loss])(p, t)
        for a, b in zip(base, (value, *grads)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"baseline {loss}")
    print("baselines agree with refloss (1e-9) on 1,000 ordinary pairs a loss")


def memory(losses, n: int) -> list:
    """Peak memory NumPy allocates during one value_and_grad call at N (tracemalloc; the inputs made
    before), against the outputs' bytes and the inputs' plus outputs'."""
    import tracemalloc

    lines = [f"Peak memory allocated during one `value_and_grad` call, N = {n:,}, float64 (tracemalloc, inputs "
             "allocated before):", "",
             "| loss | inputs | outputs | peak allocated in the call | extra beyond the outputs, of inputs + outputs |",
             "|---|---|---|---|---|"]
    for loss in losses:
        p, t = inputs(loss, n, np.float64)
        fn = getattr(rl, loss)
        fn.value_and_grad(p[:10], t[:10])  # compile outside the measurement
        tracemalloc.start()
        value, grads = fn.value_and_grad(p, t)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out = np.asarray(value).nbytes + sum(g.nbytes for g in grads)
        inp = p.nbytes + t.nbytes
        lines.append(f"| {loss} | {inp / 1e6:.0f} MB | {out / 1e6:.0f} MB | {peak / 1e6:.0f} MB | "
                     f"{(peak - out) / (inp + out):.1%} |")
        del value, grads
    return lines


def table(results: list, loss: str, dtype: str) -> list:
    rows = [r for r in results if r["loss"] == loss and r["dtype"] == dtype]
    ns = sorted({r["n"] for r in rows})
    names = list(dict.fromkeys(r["impl"] for r in rows))
    lines = [f"**{loss}**, {dtype} (N {'box pairs' if loss != 'smooth_l1' else 'x 4 elements'}): time, and its "
             "ratio to refloss value+grad; GB/s counts the bytes the fused pass moves (for every row)", "",
             "| implementation | " + " | ".join(f"N = {n:,}" for n in ns) + f" | GB/s, elements/s at N = {ns[-1]:,} |",
             "|---|" + "---|" * (len(ns) + 1)]
    for name in names:
        cells = []
        for n in ns:
            r = next((r for r in rows if r["impl"] == name and r["n"] == n), None)
            ref = next(r for r in rows if r["impl"] == "refloss value+grad" and r["n"] == n)
            cells.append("–" if r is None else f"{_time(r['seconds'])} ({r['seconds'] / ref['seconds']:.2f}x)")
        top = next((r for r in rows if r["impl"] == name and r["n"] == ns[-1]), None)
        cells.append("–" if top is None else f"{top['gb_per_s']:.1f}, {top['elements_per_s']:.3g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _time(s: float) -> str:
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def plot(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = list(dict.fromkeys(r["loss"] for r in results))
    fig, axes = plt.subplots(1, len(losses), figsize=(4.2 * len(losses), 3.8), squeeze=False)
    for ax, loss in zip(axes[0], losses):
        rows = [r for r in results if r["loss"] == loss and r["dtype"] == "float64"]
        for name in dict.fromkeys(r["impl"] for r in rows):
            pts = sorted((r["n"], r["seconds"]) for r in rows if r["impl"] == name)
            ax.loglog(*zip(*pts), marker="o", ms=3, label=name, ls="--" if name == "copy" else "-")
        ax.set_title(f"{loss}, float64")
        ax.set_xlabel("N")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("seconds (best of the rounds)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def write_doc(page: Path, text: str) -> None:
    old = page.read_text() if page.exists() else "# Performance\n\n<!-- performance -->\n<!-- /performance -->\n"
    head, _, rest = old.partition("<!-- performance -->")
    if "<!-- /performance -->" not in rest:  # (else everything after the opening marker would be dropped)
        raise SystemExit(f"{page}: needs both markers <!-- performance --> and <!-- /performance -->")
    _, _, tail = rest.partition("<!-- /performance -->")
    page.write_text(f"{head}<!-- performance -->\n{text}<!-- /performance -->{tail}")


def _sizes(text: str) -> list:
    """--n: comma-separated sizes, each a whole number >= 1 (1e6 allowed)."""
    sizes = []
    for v in text.split(","):
        try:
            n = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated sizes >= 1 (e.g. 10,1e6), got {v!r}") from None
        if not (n >= 1 and n < 2**62 and n == int(n)):
            raise argparse.ArgumentTypeError(f"each size must be a whole number >= 1, got {v!r}")
        sizes.append(int(n))
    return sizes


def _at_least_one(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _names(*allowed):
    """A comma-separated list of ``allowed`` names, every one checked before any work."""
    def parse(text: str) -> list:
        names = text.split(",")
        bad = [n for n in names if n not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"one of {', '.join(allowed)} (comma-separated), got "
                                             f"{', '.join(map(repr, bad))}")
        return names
    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="10,1000,100000,1000000", type=_sizes,
                    help="comma-separated N (1e7 works, slowly)")
    ap.add_argument("--dtype", default="float64,float32", type=_names("float64", "float32"))
    ap.add_argument("--loss", default=",".join(LOSSES), type=_names(*LOSSES))
    ap.add_argument("--repeat", type=_at_least_one, default=7)
    ap.add_argument("--no-peers", action="store_true", help="refloss, the baselines and the copy only")
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--doc", type=Path)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--memory", type=_at_least_one, metavar="N",
                    help="also the peak memory of one call at N (e.g. 10000000)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: benchmarks/gpu.py on the GPU at each --n (inputs on the device; torch eager, "
                         "torch.compile unless --no-peers, the copy roofline, where the time goes)")
    args = ap.parse_args(argv)
    for option, path in (("-o", args.output), ("--doc", args.doc)):  # (checked before the work, not after it)
        if path is not None and not path.parent.is_dir():
            ap.error(f"{option}: no folder {str(path.parent)!r}")
    if args.device == "cuda":
        import gpu

        codes = [gpu.run(n, args.repeat, compile=not args.no_peers, details=True) for n in args.n]
        return max(codes)
    if args.check:
        check()
    ns = args.n
    fixed = fixed_cost(args.loss, args.dtype)
    results = []
    for loss in args.loss:
        for dtype in args.dtype:
            for n in ns:
                p, t = inputs(loss, n, np.dtype(dtype))
                moved = fused_bytes(loss, p, t)
                elements = n * (4 if loss == "smooth_l1" else 1)
                times = best(contenders(loss, p, t, not args.no_peers), args.repeat)
                for name, s in times.items():
                    results.append({"loss": loss, "dtype": dtype, "n": n, "impl": name, "seconds": s,
                                    "elements_per_s": elements / s, "gb_per_s": moved / s / 1e9})
                print(f"{loss} {dtype} N={n:,}: " + ", ".join(f"{k} {_time(s)}" for k, s in times.items()),
                      file=sys.stderr)
    from refloss._numba_options import vectors

    meta = {"machine": platform.machine(), "processor": platform.processor(), "vectors": vectors(),
            "python": platform.python_version(),
            "numpy": np.__version__, "refloss": rl.__version__, "repeat": args.repeat, "fixed_cost": fixed}
    text = "\n".join(fixed_cost_table(fixed)) + "\n\n"
    text += "".join("\n".join(table(results, loss, dtype)) + "\n\n"
                   for loss in dict.fromkeys(r["loss"] for r in results)
                   for dtype in dict.fromkeys(r["dtype"] for r in results))
    if args.memory:
        text += "\n".join(memory(args.loss, args.memory)) + "\n\n"
    print(text)
    if args.output:
        args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    if args.doc:
        img = args.doc.with_suffix(".svg")  # (not docs/img/: the derivations' generated figures live there)
        plot(results, img)
        write_doc(args.doc, f"Measured with `python -m benchmarks {' '.join(argv or sys.argv[1:])}` "
                  f"({meta['machine']}, {meta['vectors']}, Python {meta['python']}, NumPy {meta['numpy']}).\n\n"
                  f"![time against N]({img.name})\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
