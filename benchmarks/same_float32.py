"""Are this checkout's float32 element-wise and classification kernels bit for bit another checkout's, over every
float32 input of docs/exhaustive.md's rows?

    git clone -q . /tmp/before && git -C /tmp/before checkout -q HEAD~1
    python benchmarks/same_float32.py --old /tmp/before balanced_l1 focal_l1 [--bits LO:HI]
    python benchmarks/same_float32.py --old /tmp/before qfl_loss [--rows 27,28]

docs/exhaustive.md's float32 rows were swept at target 0 over all 2**32 bit patterns (about 5 minutes a row on
2 cores, and 15 for the classification losses).  A change to a kernel that cannot move those outputs (a term
that is 0 at target 0, a renamed temporary) need not be swept again if its outputs are the same, bit for bit:
this compares value and both gradients of the two checkouts' ``value_and_grad_f32`` drivers at target 0 (the
element-wise losses) for every parameter set of refloss/_reference.py (the classification losses: every logit at the targets 0 and 1, the
table's rows; ``--rows`` picks rows by the table's numbers), and exits 1 if any bit pattern differs (NaN payloads
and the sign of zero included).  The other checkout's CPU module is loaded from its file under another name; its imports
(refloss._numba_options, refloss._select, ...) resolve to this checkout, and its kernel arguments are this
checkout's ``kernel_args`` (a change to the arguments is not a change this tool can judge).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import refloss as rl
from refloss._reference import REFERENCES

STEP = 1 << 24


def _bits(text: str) -> tuple:
    lo, _, hi = text.partition(":")
    return int(lo, 0), int(hi, 0)


def old_module(checkout: Path, loss: str):
    import atexit
    import shutil
    import tempfile

    # a copy in a folder of its own: Numba's on-disk cache is per file path, and a cached function of this
    # checkout's module (the same path when --old is this checkout) would not load under the other name;
    # the folder is removed when the process ends (each run left one behind)
    folder = tempfile.mkdtemp(prefix="same_float32_")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / f"_old_{loss}_cpu.py"
    shutil.copyfile(checkout / "refloss" / "_generated" / f"{loss}_cpu.py", path)
    spec = importlib.util.spec_from_file_location(f"_old_{loss}_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differing(old, new, args, lo: int, hi: int, target: float = 0.0, stride: int = 1, nan_inputs: bool = True) -> int:
    """How many bit patterns in [lo, hi) (every ``stride``-th) give a different value or gradient (at
    ``target``); ``nan_inputs=False``: NaN inputs count only where one checkout's value is NaN and the other's
    not (the table's rows are the finite inputs)."""
    count = 0
    for start in range(lo, hi, STEP * stride):
        x = np.arange(start, min(hi, start + STEP * stride), stride, dtype=np.uint64).astype(np.uint32).view(np.float32)
        t = np.full_like(x, target)
        outs = []
        for m in (old, new):
            o = [np.empty_like(x) for _ in range(3)]
            m.value_and_grad_f32(x, t, o[0], o[1], o[2], np.float32(1), *args)
            outs.append(o)
        diff = np.zeros(len(x), bool)
        for a, b in zip(*outs):
            diff |= a.view(np.uint32) != b.view(np.uint32)
        if not nan_inputs:  # a NaN input's NaN outputs may differ in sign or payload (NaN in both: the same result)
            diff &= np.isfinite(x) | (np.isnan(outs[0][0]) != np.isnan(outs[1][0]))
        count += int(diff.sum())
    return count


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from exhaustive_tables import runs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the other checkout (its repository root)")
    ap.add_argument("losses", nargs="+", help="element-wise or classification losses (their drivers take two "
                                              "inputs)")
    ap.add_argument("--bits", type=_bits, default=(0, 2**32), metavar="LO:HI")
    ap.add_argument("--rows", default=None, metavar="K,K,...", help="only these rows of the exhaustive table")
    ap.add_argument("--finite", action="store_true", help="NaN inputs differ only where one value is NaN and the "
                                                               "other not (the sign and payload of a NaN result aside)")
    ap.add_argument("--stride", type=int, default=1, help="every K-th bit pattern only (a quick screen, not the "
                                                          "whole row)")
    args = ap.parse_args(argv)
    allowed = tuple(rl.ELEMENTWISE_LOSSES) + tuple(rl.CLASSIFICATION_LOSSES)
    unknown = [n for n in args.losses if n not in allowed]
    if unknown:
        ap.error(f"not element-wise or classification losses: {unknown}; these are: {', '.join(allowed)}")
    rows = None if args.rows is None else {int(k) for k in args.rows.split(",")}
    total = 0
    for loss in args.losses:
        old, fn = old_module(args.old, loss), getattr(rl, loss)
        for k, (name, params, target) in enumerate(runs()):
            if name != loss or (rows is not None and k not in rows):
                continue
            t0 = time.perf_counter()
            n = differing(old, fn._module("cpu"), fn.kernel_args(params, "f32"), *args.bits, target=target,
                          stride=args.stride, nan_inputs=not args.finite)
            total += n
            count = len(range(args.bits[0], args.bits[1], args.stride))
            print(f"row {k}: {loss} {params} target {target:g}: {n} of {count} bit patterns differ "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
