"""Do two settings of this checkout's process give the same outputs, bit for bit?

    python benchmarks/same_outputs.py --a REFLOSS_VECTOR_WIDTH=256 --b REFLOSS_VECTOR_WIDTH=512
    python benchmarks/same_outputs.py --a REFLOSS_VECTOR_WIDTH=256 --loss giou_loss,softmax_cross_entropy --n 2000

A setting that should change the machine code and not one result (the vector width, refloss/_numba_options.py)
is checked here: each setting (environment variables, ``NAME=VALUE`` separated by commas; none for ``--b``: the
default) runs in a process of its own, which evaluates every loss (or ``--loss``) at its default parameters on
``--n`` ordinary inputs (benchmarks/float32.py's) and on three harder copies of them (scaled by 2^-60 and 2^60, a
target equal to the prediction, and NaN and inf in every 97th element), ``value_and_grad`` with reduction "none", in
float64 and float32, and saves every value and gradient.  The outputs are then compared as bytes (the sign of zero
and NaN payloads included), except for the sign bit of a NaN, which IEEE 754 leaves unspecified for the operations
that make one (inf - inf gives x86's "default NaN", sign bit set, and a vector loop's lanes and its scalar
remainder may then carry it through different operand orders): such elements are counted and reported, not
failed.  Prints one line per loss and dtype and exits 1 if any array differs otherwise.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _variants(arrays: tuple) -> list[tuple]:
    """The ordinary inputs and three harder copies of them."""
    out = [arrays]
    for scale in (2.0**-60, 2.0**60):
        out.append(tuple(a * scale for a in arrays))
    out.append((arrays[0], arrays[0].copy()) + tuple(arrays[2:]) if arrays[0].shape == arrays[1].shape else arrays)
    special = tuple(a.copy() for a in arrays)
    flat = special[0].reshape(-1)
    flat[::97] = np.nan
    flat[48::97] = np.inf
    out.append(special)
    return out


def dump(names: list[str], n: int, path: str) -> None:
    """(run in the setting's process) every loss's values and gradients, to ``path`` (.npz)."""
    sys.path.insert(0, str(HERE))
    import float32 as f32

    import refloss as rl

    saved = {}
    for name in names:
        loss = getattr(rl, name)
        arrays, params = f32.inputs(name, n)
        for k, inputs in enumerate(_variants(arrays)):
            for dtype in ("float64", "float32"):
                cast = [np.ascontiguousarray(a, dtype) for a in inputs]
                value, grads = loss.value_and_grad(*cast, reduction="none", validate=False, **params)
                saved[f"{name}/{k}/{dtype}/value"] = np.asarray(value)
                for j, g in enumerate(grads):
                    if g is not None:
                        saved[f"{name}/{k}/{dtype}/grad{j}"] = np.asarray(g)
    np.savez(path, **saved)


def _bits(a: np.ndarray, nan_sign_cleared: bool = True) -> np.ndarray:
    """The array's bit patterns (as unsigned integers), with the sign bit of every NaN cleared."""
    a = np.ascontiguousarray(a)
    bits = a.view(np.uint64 if a.dtype == np.float64 else np.uint32).copy() if a.dtype.kind == "f" else a
    if nan_sign_cleared and a.dtype.kind == "f":
        bits[np.isnan(a)] &= np.array(np.iinfo(bits.dtype).max >> 1, bits.dtype)
    return bits


def _env(setting: str) -> dict:
    env = dict(os.environ)
    for item in filter(None, setting.split(",")):
        key, _, value = item.partition("=")
        env[key.strip()] = value.strip()
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", default="", help="the first setting: NAME=VALUE[,NAME=VALUE...]")
    ap.add_argument("--b", default="", help="the second setting (default: the environment as it is)")
    ap.add_argument("--loss", default="", help="comma-separated loss names (default: every loss)")
    ap.add_argument("--n", type=int, default=5000, help="ordinary inputs a loss (default 5000)")
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dump:
        dump(args.loss.split(","), args.n, args.dump)
        return 0
    sys.path.insert(0, str(HERE))
    import float32 as f32

    names = [s for s in args.loss.split(",") if s] or f32.losses()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, setting in (("a", args.a), ("b", args.b)):
            path = os.path.join(tmp, f"{label}.npz")
            cmd = [sys.executable, __file__, "--dump", path, "--loss", ",".join(names), "--n", str(args.n)]
            done = subprocess.run(cmd, env=_env(setting), capture_output=True, text=True)
            if done.returncode != 0:
                print(f"the setting {setting or '(default)'!r} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                return 2
            results.append(dict(np.load(path)))
    a, b = results
    differ = 0
    if a.keys() != b.keys():
        print(f"different outputs: {sorted(a.keys() ^ b.keys())[:5]}")
        return 1
    nan_signs = 0
    for name in names:
        for dtype in ("float64", "float32"):
            keys = [k for k in a if k.startswith(name + "/") and f"/{dtype}/" in k]
            bad = [k for k in keys if a[k].shape != b[k].shape or _bits(a[k]).tobytes() != _bits(b[k]).tobytes()]
            signs = sum(int(np.count_nonzero(_bits(a[k], False) != _bits(b[k], False))) for k in keys if k not in bad)
            count = sum(a[k].size for k in keys)
            note = f" ({signs} NaN of the other sign)" if signs else ""
            print(f"{name:24s} {dtype}  {count:9d} outputs  "
                  + ("same" + note if not bad else "DIFFERENT: " + ", ".join(bad[:3])))
            differ += len(bad)
            nan_signs += signs
    print(f"{'all the same' if not differ else f'{differ} arrays differ'} ({args.a or '(default)'} against "
          f"{args.b or '(default)'}; {nan_signs} NaN of the other sign)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
