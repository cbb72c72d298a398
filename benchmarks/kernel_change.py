"""What a change to a loss's kernels did, against the 50-digit oracle: the same box pairs through this
checkout's kernels and another checkout's (e.g. a clone at the commit before), the pairs whose gradients
changed most measured against the oracle, and the share of pairs that changed at all.

    git clone -q . /tmp/before && git -C /tmp/before checkout -q HEAD~1
    python benchmarks/kernel_change.py --old /tmp/before focal_eiou_loss --param weight_grad=True

Pairs: about ``--n`` (drawn class by class, ties dropped) from the box sweep's space (refloss/sweep/_spaces.py: random, nested, near-identical,
thin, far-apart classes; for a rotated-box loss the rotated space's; float32-valued, as in the float32 sweep, and evaluated in ``--dtype``). Each
checkout runs in a process of its own (PYTHONPATH), so the two versions of the generated modules never
meet. Prints, per loss: pairs, pairs changed, the largest change relative to the pair's gradient scale,
and the errors before and after at the ``--top`` most changed pairs (max and median, relative to the
exact gradient's largest component, the box bar's measure).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def dump(loss: str, params: dict, n: int, seed: int, dtype: str, out: str) -> None:
    """(run in the checkout's process) the pairs and this checkout's gradients, to ``out`` (.npz)."""
    import refloss as rl
    from refloss.sweep._spaces import _boxes, _rotated

    rotated = getattr(rl, loss)._info.family == "rotated"
    _, _, (p, t) = (_rotated if rotated else _boxes)(np.random.default_rng(seed), n, np.float32)
    p, t = p.astype(dtype), t.astype(dtype)
    _, (gp, gt) = getattr(rl, loss).value_and_grad(p, t, reduction="none", **params)
    np.savez(out, p=p, t=t, g=np.concatenate([gp, gt], axis=1).astype(np.float64))


def _run(root: Path, args, out: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, __file__, "--dump", out, args.loss, "--n", str(args.n), "--seed", str(args.seed),
           "--dtype", args.dtype] + [x for k, v in args.param for x in ("--param", f"{k}={json.dumps(v)}")]
    done = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), stderr=subprocess.PIPE, text=True)
    if done.returncode:  # (the child's own message, not its traceback and CalledProcessError)
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"kernel_change.py: the checkout at {root} failed: {last}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("loss")
    ap.add_argument("--old", type=Path, help="the other checkout (its root)")
    ap.add_argument("--param", action="append", default=[], type=lambda s: (s.split("=", 1)[0], _value(s.split("=", 1)[1])),
                    metavar="NAME=VALUE")
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    params = dict(args.param)
    if args.dump:
        return dump(args.loss, params, args.n, args.seed, args.dtype, args.dump)
    if args.old is None:
        ap.error("--old: the checkout to compare with")
    if not (args.old / "refloss" / "__init__.py").is_file():
        ap.error(f"--old {args.old}: not a refloss checkout (no refloss/__init__.py there)")
    if args.n < 1:
        ap.error(f"--n: at least 1, got {args.n}")
    import refloss as rl

    loss = getattr(rl, args.loss, None)
    if getattr(getattr(loss, "info", None), "family", None) not in ("box", "rotated"):
        import difflib

        boxes = [n for n in rl.ALL_LOSSES if getattr(getattr(rl, n).info, "family", None) in ("box", "rotated")]
        guess = difflib.get_close_matches(args.loss, boxes, n=1)
        ap.error(f"{args.loss}: not a box or rotated-box loss of refloss (this compares box pairs' gradients)"
                 + (f"; did you mean {guess[0]}?" if guess else ""))
    try:  # the parameters, checked here once (the checkouts' processes would each fail with a traceback)
        width = 5 if loss.info.family == "rotated" else 4
        loss.value_and_grad(np.ones((1, width)) + np.arange(width) % 2, np.ones((1, width)) + 1, **params)
    except (TypeError, ValueError) as e:
        ap.error(f"--param: {e}")
    from refloss.oracle import oracle

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for label, root in (("old", args.old.resolve()), ("new", HERE)):
            files[label] = os.path.join(tmp, f"{label}.npz")
            _run(root, args, files[label])
        old, new = np.load(files["old"]), np.load(files["new"])
        p, t, go, gn = old["p"], old["t"], old["g"], new["g"]
    if not (np.array_equal(p, new["p"]) and np.array_equal(t, new["t"])):
        raise SystemExit("the two checkouts drew different pairs (refloss/sweep/_spaces.py differs): compare at one space")
    scale = np.max(np.abs(go), axis=1)
    ok = np.isfinite(scale) & (scale > 0)
    change = np.zeros(len(p))
    change[ok] = np.max(np.abs(gn[ok] - go[ok]), axis=1) / scale[ok]
    print(f"{args.loss} {params} {args.dtype}: {len(p):,} pairs, {np.count_nonzero(change):,} changed "
          f"({np.count_nonzero(change) / len(p):.2%}), largest change {change.max():.3g} of the scale")
    if not np.count_nonzero(change):
        return  # (nothing changed: no pair to measure; unchanged pairs whose exact gradient is 0 gave "median nan")
    exact = oracle(args.loss)
    errors = {"old": [], "new": []}
    for i in np.argsort(change)[::-1][:min(args.top, np.count_nonzero(change))]:
        _, ep, et = exact(p[i].astype(float), t[i].astype(float), **params)
        ex = np.concatenate([np.ravel(ep), np.ravel(et)]).astype(float)
        s = np.max(np.abs(ex))
        if not s > 0:  # (an exact gradient of 0: no scale to measure against)
            continue
        for label, g in (("old", go[i]), ("new", gn[i])):
            errors[label].append(np.max(np.abs(g - ex)) / s)
    for label, e in errors.items():
        if not e:
            continue
        print(f"  {label}: at the {len(e)} most changed pairs, error max {max(e):.3g}, median {np.median(e):.3g}"
              " (of the exact gradient's largest component)")


if __name__ == "__main__":
    main()
