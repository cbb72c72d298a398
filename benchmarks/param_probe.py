"""A probe for accuracy bugs outside the swept parameter sets (docs/accuracy.md, "Parameters outside the swept
sets"): the element-wise and classification losses at random parameter sets, float32 against float64 on random
inputs, and the worst point of each loss checked against the 50-digit oracle.

    python benchmarks/param_probe.py [--sets 12] [--n 200000] [--seed 0] [--loss focal_l1,balanced_l1]

The exhaustive tables and the battery check the parameter sets of refloss/_reference.py; this draws others:
each real parameter within its bounds (unbounded ones log-uniform over 1e-12..1e6, mostly 1e-3..10), the
focusing exponents (gamma, beta) up to 6 and now and then far beyond, and rounds them to float32 first (a
float32 kernel computes with its parameters in float32: the loss at the rounded parameter).  Inputs: residuals
N(0, 1) 10^U(-30, 30) against targets 0, 10^-3 or 1 of that size (element-wise), logits N(0, 1) 10^U(-8, 2.3)
at hard and soft targets (classification).  The float64 kernel is the screen's reference: a line's ``oracle``
figures (ULP of float32 and of float64 at that point) say whether the float32 kernel or both are off.
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

import refloss as rl
from refloss.oracle import classification as _classification, elementwise as _elementwise

ELEMENTWISE = ("balanced_l1", "focal_l1", "huber", "smooth_l1")
CLASSIFICATION = ("qfl_loss", "sigmoid_focal_loss", "varifocal_loss")


def _ulps(got, ref, dtype) -> np.ndarray:
    """|got - ref| in ulps of ref rounded to ``dtype`` (0 where both are NaN or the same infinity)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    with np.errstate(all="ignore"):
        r = ref.astype(dtype)
        step = np.maximum(np.spacing(np.abs(r)).astype(np.float64), float(np.finfo(dtype).smallest_subnormal))
        e = np.abs(got - ref) / step
    e[np.isnan(got) & np.isnan(ref)] = 0
    e[(got == ref)] = 0
    e[np.isnan(e)] = np.inf
    return e


def _draw(rng, name: str, p) -> float | bool | None:
    if p.kind == "bool":
        return bool(rng.integers(2))
    if name == "sigmoid_focal_loss" and p.name == "alpha":
        return float(rng.uniform(0, 1)) if rng.random() < 0.8 else None
    if p.name in ("gamma", "beta") and name in CLASSIFICATION:
        return float(rng.uniform(0, 6)) if rng.random() < 0.8 else float(10 ** rng.uniform(-4, 1.3))
    if name == "varifocal_loss" and p.name == "alpha":
        return float(rng.uniform(0, 1))
    lo, hi = p.lower, getattr(p, "upper", None)
    if lo is not None and hi is not None:
        return float(rng.uniform(lo, hi))
    r = rng.random()
    return float(10 ** (rng.uniform(-12, -3) if r < 0.15 else rng.uniform(1, 6) if r < 0.3 else rng.uniform(-3, 1)))


def _inputs(rng, name: str, n: int):
    if name in ELEMENTWISE:
        scale = 10 ** rng.uniform(-30, 30, n)
        x = rng.normal(size=n) * scale
        return x.astype(np.float32), (rng.normal(size=n) * scale * rng.choice([0, 1e-3, 1], n)).astype(np.float32)
    x = (rng.normal(size=n) * 10 ** rng.uniform(-8, 2.3, n)).astype(np.float32)
    if name == "varifocal_loss":
        return x, np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 1, n)).astype(np.float32)
    return x, np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.uniform(0, 1, n)).astype(np.float32)


def probe(name: str, sets: int, n: int, seed: int) -> dict:
    """The worst float32 error against the float64 kernel over ``sets`` parameter sets (outputs where the float64
    result is beyond float32's range left out), and at that point both kernels against the oracle."""
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    loss = getattr(rl, name)
    worst = {"loss": name, "ulp": 0.0}
    for _ in range(sets):
        params = {p.name: _draw(rng, name, p) for p in loss.info.params}
        params = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in params.items()}
        x, t = _inputs(rng, name, n)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            v32, g32 = loss.value_and_grad(x, t, **params)
            v64, g64 = loss.value_and_grad(x.astype(np.float64), t.astype(np.float64), **params)
        for k, (a, b) in enumerate(zip((v32, *g32), (v64, *g64))):
            e = np.where(np.abs(b) < 3e38, _ulps(a, b, np.float32), 0.0)
            i = int(np.argmax(e))
            if e[i] > worst["ulp"]:
                worst.update(ulp=float(e[i]), output=k, params=params, x=float(x[i]), t=float(t[i]))
    if worst["ulp"] > 0:
        oracle = getattr(_elementwise if name in ELEMENTWISE else _classification, name)
        exact = float(oracle(worst["x"], worst["t"], **worst["params"])[worst["output"]])
        for dtype in (np.float32, np.float64):
            out = loss.value_and_grad(np.array([worst["x"]], dtype), np.array([worst["t"]], dtype), **worst["params"])
            got = (out[0], *out[1])[worst["output"]][0]
            worst[f"oracle_{np.dtype(dtype).name}"] = float(_ulps(np.array([got]), np.array([exact]), dtype)[0])
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=12, help="parameter sets a loss (default 12)")
    ap.add_argument("--n", type=int, default=200_000, help="inputs a set (default 200,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", default=",".join(ELEMENTWISE + CLASSIFICATION), help="comma-separated losses")
    a = ap.parse_args(argv)
    names = a.loss.split(",")
    unknown = [n for n in names if n not in ELEMENTWISE + CLASSIFICATION]
    if unknown:
        ap.error(f"not an element-wise or classification loss with parameters: {', '.join(unknown)}")
    for name in names:
        w = probe(name, a.sets, a.n, a.seed)
        if w["ulp"] == 0:
            print(f"{name:20s} float32 = float64 everywhere")
            continue
        what = ("value", *(f"d_{i}" for i in getattr(rl, name).inputs))[w["output"]]
        print(f"{name:20s} worst {w['ulp']:10.3g} ULP32 against float64 ({what} at x = {w['x']!r}, target = "
              f"{w['t']!r}, {w['params']}); oracle: float32 {w['oracle_float32']:.3g} ULP, "
              f"float64 {w['oracle_float64']:.3g} ULP64", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
