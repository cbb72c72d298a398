"""The ``refloss`` command.

``refloss verify``: check every kernel (CPU, and CUDA when a GPU or the
simulator is present) against the 50-digit oracle and finite differences and
print a table; exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction


def _verify(args) -> int:
    try:
        import mpmath  # noqa: F401
    except ImportError:
        print("refloss verify needs mpmath: pip install 'refloss[verify]'", file=sys.stderr)
        return 2
    from . import _verify
    known = (tuple(_verify.PARAM_SETS) + tuple(_verify.BOX_PARAM_SETS) + tuple(_verify.CLASSIFICATION_PARAM_SETS)
             + ("yolo_decode",))
    unknown = set(args.loss or ()) - set(known)
    if unknown:
        print(f"unknown loss(es) {sorted(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    devices = args.device or None
    print(f"refloss verify: backends {devices or _verify.backends()}, dtypes {args.dtype}", flush=True)
    rows = _verify.run(args.loss or None, tuple(args.dtype), devices, args.random,
                       progress=(lambda r: print(".", end="", flush=True)) if not args.quiet else None)
    print()
    print(_verify.format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _parse_params(items) -> dict:
    """``["beta=0.11", "alpha_grad=false", "eps=none"]`` -> ``{"beta": 0.11, "alpha_grad": False, "eps": None}``."""
    params = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"refloss: --param must be NAME=VALUE, got {item!r}")
        low = text.strip().lower()
        if low in ("true", "false"):
            params[key] = low == "true"
        elif low == "none":
            params[key] = None
        else:
            try:
                params[key] = float(Fraction(text.strip()))  # 0.11, 1e-7 and 1/9 alike
            except (ValueError, ZeroDivisionError):
                raise SystemExit(f"refloss: --param {key}: not a number, true/false or none: {text!r}") from None
    return params


def _vectors(args) -> int:
    from . import vectors

    data = vectors.golden_vectors(args.loss, dtype=args.dtype, cases=args.cases, **_parse_params(args.param))
    path = vectors.write_vectors(data, args.output, args.format)
    print(f"refloss vectors: {data['meta']['points']} points of {args.loss}{data['meta']['params']} "
          f"({args.dtype}, cases {args.cases}) -> {path}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="refloss", description="refloss: reference detection losses")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check every kernel against the oracle and finite differences")
    v.add_argument("--loss", action="append", help="only this loss (repeatable)")
    v.add_argument("--dtype", action="append", choices=("float64", "float32"), default=None)
    v.add_argument("--device", action="append", choices=("cpu", "cuda"), help="backends (default: all available)")
    v.add_argument("--random", type=int, default=200, help="random points per battery (default 200)")
    v.add_argument("-q", "--quiet", action="store_true")
    g = sub.add_parser("vectors", help="write golden vectors (inputs, values, gradients, tolerances) for other languages")
    g.add_argument("loss")
    g.add_argument("--param", action="append", metavar="NAME=VALUE", help="a loss parameter (repeatable)")
    g.add_argument("--format", choices=("json", "npz", "csv"), help="default: from the file's suffix")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="inputs rounded to this dtype")
    g.add_argument("--cases", choices=("standard", "edge", "all"), default="all")
    g.add_argument("-o", "--output", required=True, help="output file")
    args = ap.parse_args(argv)
    if args.command == "vectors":
        try:
            return _vectors(args)
        except (ValueError, TypeError) as e:
            print(f"refloss vectors: {e}", file=sys.stderr)
            return 2
    if args.command == "verify":
        args.dtype = args.dtype or ["float64", "float32"]
        return _verify(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
