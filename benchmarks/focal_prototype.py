"""How fast could sigmoid_focal_loss's common path be, vectorised? (issue 16; docs/performance.md)

    python benchmarks/focal_prototype.py [--n 4000000] [--repeat 7]

A measurement, not a kernel of refloss: the hard-target path of the alpha-weighted loss written as ONE
branch in the signed logit z = (1 - 2y) x (targets 0 and 1 alike), with exp, log1p, expm1 and pow printed
as refloss prints them (refloss/_derive/expo.py, through ``KernelPrinter``; pow without its libm fallback,
as the CPU block loops' vectorised form defers those elements), so that LLVM vectorises the loop. Its value
and d/dlogits are checked against refloss's kernel (a few ulps apart: the functions are not libm's); its
d/dtargets has the main and the wrong-side forms' operation count but is not refloss's (the float32
kernel's cancellation guard and float64 forms are left out), so the float32 figure is a lower bound.
It times both against ``refloss.sigmoid_focal_loss.value_and_grad`` on the float32 benchmark's inputs
(logits N(0, 3), 10 % targets 1).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types

import numpy as np

import refloss._numba_options  # noqa: F401 - refloss's CPU settings before the prototype's @njit (Numba fixes them then)
import refloss as rl
from refloss._derive.codegen import KernelPrinter


# the prototype agrees with refloss's value and d/dlogits to within a few ulps (relative), or it times another loss
_AGREE = {"f64": 1e-14, "f32": 1e-5}


def _function(prec: str, kind: str) -> str:
    p = KernelPrinter(prec, width=100, libm=False)
    p.deferred_libm = True  # pow: no libm fallback (its out-of-range elements would be computed again)
    result = p._pow("x", "y") if kind == "pow" else p._math(kind, "x")
    body = "\n".join("    " + s for s in p.take_statements())
    args = "x, y" if kind == "pow" else "x"
    return f"@njit(inline='always', error_model='numpy')\ndef _{kind}_{prec}({args}):\n{body}\n    return {result}\n"


_KERNEL = '''
@njit(error_model="numpy")
def _block_{p}(xs, ys, out, dx, dy, alpha, g):
    for i in range(_u(out.shape[0])):
        x = xs[i]
        y = ys[i]
        s = {F}(1.0) - {F}(2.0)*y
        z = s*x
        t = abs(x)
        e = _exp_{p}(-t)
        d = {F}(1.0) + e
        c = (e - (d - {F}(1.0)))/d
        l = _log1p_{p}(e)
        neg = z < {F}(0.0)
        pe = _pow_{p}(e, g) if neg else {F}(1.0)
        a = alpha*y + ({F}(1.0) - alpha)*({F}(1.0) - y)
        p0 = pe*_pow_{p}(d, -g)
        ap = a*(p0 - p0*(g*c))
        zl = z + l
        value = (l if neg else zl)*ap
        g1 = g + {F}(1.0)
        p1 = pe*_pow_{p}(d, -g1)
        q = a*(p1 - p1*(g1*c))
        w = (e + g*l) if neg else ({F}(1.0) + g*(zl*e))
        out[i] = value
        dx[i] = s*w*q
        om = -_expm1_{p}(-t)
        rn = t + g*((l/e if e > {F}(0.0) else {F}(1.0))*om)
        r = (-ap*rn) if neg else (ap*z + g*(ap*(zl*om)))
        wrong = value*(({F}(2.0)*alpha - {F}(1.0))*s) - a*s*value*(l/zl + g*e)
        main = -s*r + ({F}(2.0)*alpha - {F}(1.0))*value/a
        dy[i] = wrong if z > {F}(1.0) else main


@njit(parallel=True, error_model="numpy")
def vg_{p}(xs, ys, out, dx, dy, alpha, g):
    n = out.shape[0]
    for b in prange((n + 2047) // 2048):
        lo = b*2048
        hi = min(lo + 2048, n)
        _block_{p}(xs[lo:hi], ys[lo:hi], out[lo:hi], dx[lo:hi], dy[lo:hi], alpha, g)
'''


def prototype() -> types.ModuleType:
    src = ["import math", "from numba import njit, prange",
           "from numpy import float32 as _f32, float64 as _f64, int32 as _i32, int64 as _i64, uint64 as _u"]
    for prec, ft in (("f64", "_f64"), ("f32", "_f32")):
        src += [_function(prec, k) for k in ("exp", "log1p", "expm1", "pow")]
        src.append(_KERNEL.format(p=prec, F=ft))
    path = os.path.join(tempfile.mkdtemp(prefix="refloss-focal-"), "focal_prototype_kernels.py")
    with open(path, "w") as f:
        f.write("\n".join(src))
    module = types.ModuleType("focal_prototype_kernels")
    module.__file__ = path
    exec(compile("\n".join(src), path, "exec"), module.__dict__)
    return module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    proto = prototype()
    rng = np.random.default_rng(0)
    ms, ok = {}, True
    print(f"sigmoid_focal_loss value and gradients, alpha 0.25, gamma 2, N = {args.n:,} logits, best of {args.repeat}:")
    for dt, prec in ((np.float64, "f64"), (np.float32, "f32")):
        x = rng.normal(0, 3, args.n).astype(dt)
        y = (rng.random(args.n) < 0.1).astype(dt)
        out = [np.empty(args.n, dt) for _ in range(3)]
        kernel = getattr(proto, f"vg_{prec}")
        ours = lambda: rl.sigmoid_focal_loss.value_and_grad(x, y)  # noqa: E731
        proto_call = lambda: kernel(x, y, *out, dt(0.25), dt(2.0))  # noqa: E731
        value, (d_logits, _) = ours()
        proto_call()
        rel_v = float(np.max(np.abs(out[0] - value) / np.abs(value)))
        rel_d = float(np.max(np.abs(out[1] - d_logits) / np.abs(d_logits)))
        times = {"refloss": [], "prototype": []}
        for _ in range(args.repeat):
            for name, f in (("refloss", ours), ("prototype", proto_call)):
                start = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - start)
        ms[prec] = {k: min(v) * 1e3 for k, v in times.items()}
        ok &= max(rel_v, rel_d) < _AGREE[prec]
        print(f"  {prec}: refloss {ms[prec]['refloss']:.1f} ms, prototype {ms[prec]['prototype']:.1f} ms "
              f"(value within {rel_v:.2g}, d/dlogits within {rel_d:.2g} of refloss's, relative)")
    for name in ("refloss", "prototype"):
        print(f"  float64 / float32, {name}: {ms['f64'][name] / ms['f32'][name]:.2f}")
    if not ok:
        print(f"the prototype's value or d/dlogits is not within {_AGREE} of refloss's: it computes another loss")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
