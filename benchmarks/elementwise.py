"""Time refloss's fused value+gradient kernels against peers in the same run.

    python benchmarks/elementwise.py [--n 4000000] [--repeat 20]

Peers: NumPy (value and gradient as separate array expressions, always available),
PyTorch eager autograd and JAX jit(value_and_grad) when installed. Reports the best of
``--repeat`` runs in milliseconds and the ratio peer/refloss; outputs are allocated on
every call for every contender (as a caller would get them).
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

import refloss as rl
from _timing import best_ms


def numpy_smooth_l1(p, t, beta):
    x = p - t
    a = np.abs(x)
    inner = a < beta
    v = np.where(inner, 0.5 * x * x / beta, a - 0.5 * beta)
    g = np.where(inner, x / beta, np.sign(x))
    return v, g, -g


def contenders(p, t, beta):
    out = {
        "refloss": lambda: rl.smooth_l1.value_and_grad(p, t, beta=beta, dtype=p.dtype),
        "refloss (validate=False)": lambda: rl.smooth_l1.value_and_grad(p, t, beta=beta, dtype=p.dtype, validate=False),
        "numpy": lambda: numpy_smooth_l1(p, t, p.dtype.type(beta)),
    }
    try:
        import torch

        tp, tt = torch.from_numpy(p), torch.from_numpy(t)

        def torch_eager():
            a = tp.clone().requires_grad_(True)
            b = tt.clone().requires_grad_(True)
            v = torch.nn.functional.smooth_l1_loss(a, b, beta=beta, reduction="none")
            v.backward(torch.ones_like(v))
            return v, a.grad, b.grad

        out[f"torch {torch.__version__} eager"] = torch_eager
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def total(a, b):
            x = a - b
            ax = jnp.abs(x)
            return jnp.sum(jnp.where(ax < beta, 0.5 * x * x / beta, ax - 0.5 * beta))

        f = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))
        jp, jt = jnp.asarray(p), jnp.asarray(t)
        out[f"jax {jax.__version__} jit"] = lambda: jax.block_until_ready(f(jp, jt))
    except ImportError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"smooth_l1 value+grad, N={args.n}, beta=1/9; {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}")
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        p = rng.normal(size=args.n).astype(dtype)
        t = rng.normal(size=args.n).astype(dtype)
        results = {name: best_ms(fn, args.repeat) for name, fn in contenders(p, t, 1 / 9).items()}
        base = results["refloss"]
        for name, ms in results.items():
            print(f"  {np.dtype(dtype).name:<8} {name:<28} {ms:9.3f} ms   x{ms / base:5.2f} vs refloss")
    small = np.ones(10), np.zeros(10)
    us = best_ms(lambda: rl.smooth_l1.value_and_grad(*small), 2000) * 1e3
    print(f"  fixed cost of one call at N=10: {us:.1f} us (value_and_grad, float64)")


if __name__ == "__main__":
    main()
