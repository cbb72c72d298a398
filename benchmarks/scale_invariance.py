"""Over which scales do the box losses keep their scale invariance? Every power of two, both dtypes.

    python benchmarks/scale_invariance.py [--pairs 64] [--loss NAME,...]

A box loss of refloss's (NWD and MPDIoU excepted: they compare lengths with a length parameter) is a
function of the boxes' shapes alone: L(s·p, s·t) = L(p, t) and s·∇L(s·p, s·t) = ∇L(p, t) for every
s > 0. Scaling by s = 2^k is exact, so a kernel keeps the invariance exactly as long as no
intermediate (an area, a length times an area) leaves the normal range. For each loss (its default
parameters: eps = 0) and dtype, this evaluates ``value_and_grad`` on ``--pairs`` ordinary pairs (sides
0.05..1, overlapping, disjoint and nested among them) scaled by 2^k for every k where 2^k and the
boxes are finite, and reports the widest interval of k around 0 where every value is within 64 ε
(relative, or equal where not finite, NaN where NaN) of the unscaled one and every rescaled gradient within 64,000 ε of
the pair's largest component (or equal where not finite).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import refloss as rl

NOT_SCALE_INVARIANT = ("nwd_loss", "mpdiou_loss")  # a length parameter (NWD's C, MPDIoU's image size)


def losses() -> list[str]:
    return [n for n in rl.ALL_LOSSES if getattr(rl, n).info.layouts[0] == "xyxy" and n not in NOT_SCALE_INVARIANT]


def pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (n, 2))
    p = np.concatenate([xy, xy + rng.uniform(0.1, 1, (n, 2))], axis=1)
    t = p + rng.normal(0, 0.2, (n, 4))
    t[:, 2:] = np.maximum(t[:, 2:], t[:, :2] + 0.05)
    return p, t


def invariant_at(name: str, p, t, k: int) -> bool:
    """Whether the loss at the pairs scaled by 2^k equals the unscaled one (values within 64 eps, gradients
    times 2^k within 64,000 eps of the pair's largest component; non-finite results equal)."""
    fn = getattr(rl, name).value_and_grad
    dt = p.dtype.type
    eps = np.finfo(dt).eps
    s = dt(np.ldexp(1.0, k))
    with np.errstate(all="ignore"):
        v0, g0 = fn(p, t)
        v, g = fn(p * s, t * s, validate=False)
        g0, g = np.concatenate(g0, axis=1), np.concatenate(g, axis=1) * s
        big = np.max(np.abs(np.where(np.isfinite(g0), g0, 0)), axis=1, keepdims=True)
        same = lambda a, b: (a == b) | (np.isnan(a) & np.isnan(b))  # noqa: E731
        ok_v = same(v, v0) | (np.abs(v - v0) <= 64 * eps * np.maximum(1, np.abs(v0)))
        ok_g = same(g, g0) | (np.abs(g - g0) <= 64_000 * eps * big)
    return bool(ok_v.all() and ok_g.all())


def interval(name: str, dtype, n: int = 64) -> tuple[int, int]:
    """(lo, hi): the loss is scale invariant at every 2^k, lo <= k <= hi, on the pairs (k walked out from 0)."""
    p, t = (a.astype(dtype) for a in pairs(n))
    fi = np.finfo(dtype)
    top = int(np.log2(fi.max)) - 1  # boxes up to ~2: 2^top stays finite
    bottom = int(np.log2(fi.smallest_subnormal))
    hi = 0
    while hi + 1 <= top and invariant_at(name, p, t, hi + 1):
        hi += 1
    lo = 0
    while lo - 1 >= bottom and invariant_at(name, p, t, lo - 1):
        lo -= 1
    return lo, hi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--loss", default=None, help="comma-separated loss names (default: every scale-invariant box loss)")
    a = ap.parse_args(argv)
    names = losses() if a.loss is None else [s.strip() for s in a.loss.split(",") if s.strip()]
    unknown = [s for s in names if s not in losses()]
    if unknown:
        ap.error(f"--loss: not a scale-invariant box loss of refloss: {', '.join(unknown)} (choose from "
                 f"{', '.join(losses())})")
    print("| loss | float64: 2^k for k in | float32: 2^k for k in |")
    print("|---|---|---|")
    for name in names:
        (a64, b64), (a32, b32) = interval(name, np.float64, a.pairs), interval(name, np.float32, a.pairs)
        print(f"| `{name}` | {a64} .. {b64} | {a32} .. {b32} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
