"""The ``refloss`` command.

``refloss verify``: check every kernel (CPU, and CUDA when a GPU or the
simulator is present) against the 50-digit oracle and finite differences and
print a table; exit status 1 on any failure.

``refloss verify PEER`` (torch, torchvision, fvcore, optax): check that library's losses
against refloss; ``refloss verify module:function --loss NAME [--param k=v]``: check your
own function. Exit status 0 when everything agrees, 1 otherwise, 2 on a usage error.

``refloss vectors LOSS -o FILE``: golden vectors for ports in other languages.
``refloss conformance -o docs/conformance.md``: the conformance matrix of every installed peer.
"""
from __future__ import annotations

import argparse
import os
import sys
from fractions import Fraction


def _load_callable(spec: str):
    """``package.module:function`` (or ``path/to/file.py:function``) -> the function."""
    import importlib
    import importlib.util

    mod_name, _, attr = spec.partition(":")
    if mod_name.endswith(".py"):
        ispec = importlib.util.spec_from_file_location("_refloss_user_module", mod_name)
        module = importlib.util.module_from_spec(ispec)
        ispec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _verify_target(args) -> int:
    """refloss verify PEER | module:function --loss NAME [--param k=v]."""
    from . import peers

    if ":" in args.target:
        if not args.loss or len(args.loss) != 1:
            print("refloss verify module:function needs exactly one --loss NAME (the refloss loss it should equal)",
                  file=sys.stderr)
            return 2
        from . import testing

        try:
            impl = _load_callable(args.target)
        except (ImportError, AttributeError, FileNotFoundError) as e:
            print(f"refloss verify: cannot load {args.target}: {e}", file=sys.stderr)
            return 2
        dtypes = args.dtype or ["float64"]
        ok = True
        for dt in dtypes:
            try:
                report = testing.check_loss(impl, args.loss[0], framework=args.framework, cases=args.cases, dtype=dt,
                                            **_parse_params(args.param))
            except (ValueError, TypeError) as e:
                print(f"refloss verify: {e}", file=sys.stderr)
                return 2
            print(report)
            ok &= report.ok
        return 0 if ok else 1
    if args.target not in peers.PEERS:
        print(f"refloss verify: unknown peer {args.target!r}; built-in peers: {', '.join(peers.PEERS)}; "
              "or give module:function --loss NAME", file=sys.stderr)
        return 2
    try:
        results = peers.run(args.target, only=args.loss,
                            progress=None if args.quiet else (lambda r: print(".", end="", flush=True)))
    except ImportError as e:
        print(f"refloss verify: {e}", file=sys.stderr)
        return 2
    print()
    print(peers.format_results(args.target, results))
    return 0 if all(r.ok for r in results) else 1


def _conformance(args) -> int:
    from . import peers
    from .peers import conformance

    names = args.peer or list(peers.PEERS)
    text = conformance.markdown(names, progress=lambda p: print(f"  {p}", flush=True))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"refloss conformance: wrote {args.output}")
    else:
        print(text)
    return 0


def _verify(args) -> int:
    if args.target:
        return _verify_target(args)
    from . import _stored, _verify

    live = args.live or args.random != _stored.N_RANDOM
    if live:
        try:
            import mpmath  # noqa: F401
        except ImportError:
            print("refloss verify --live (or --random) recomputes the references with mpmath: "
                  "pip install 'refloss[verify]'", file=sys.stderr)
            return 2
    known = _verify.names()
    unknown = sorted(set(args.loss or ()) - set(known))
    if unknown:
        print(f"refloss verify: unknown loss(es) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    devices = args.device or None
    losses = tuple(dict.fromkeys(args.loss)) if args.loss else known
    print(f"refloss verify: {len(losses)} losses, backends {devices or _verify.backends()}, dtypes "
          f"{', '.join(args.dtype)}, references {'recomputed with mpmath (--live)' if live else 'stored'}", flush=True)
    jobs = args.jobs
    if jobs is None:
        cold = sum(not _verify.cached(n) for n in losses)
        jobs = (os.cpu_count() or 1) if cold > 1 else 1
        if cold > 1 and not args.quiet:
            print(f"refloss verify: compiling the kernels of {cold} losses (once; cached on disk), "
                  f"{jobs} processes", flush=True)
    progress = _progress(losses, args.quiet)
    try:
        rows = _verify.run(losses, tuple(args.dtype), devices, args.random, live=live, starting=progress,
                           workers=jobs)
    except _stored.Stale as e:
        print(f"refloss verify: {e}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    print(_verify.format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


class _progress:
    """Says which loss is being checked (on a first run: compiled, about a second per kernel):
    a tqdm bar on a terminal when tqdm is installed, else a line per loss; nothing with --quiet."""

    def __init__(self, losses, quiet: bool):
        self.losses, self.quiet, self.bar = list(losses), quiet, None
        if quiet:
            return
        try:
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=len(self.losses), unit="loss", file=sys.stderr, leave=False)
        except ImportError:
            pass

    def __call__(self, name: str) -> None:
        """Called before each loss."""
        if self.quiet:
            return
        k = self.losses.index(name) if name in self.losses else 0
        if self.bar is not None:
            self.bar.n = k
            self.bar.set_description(f"{name} (first run: compiling)")
        else:
            print(f"  [{k + 1}/{len(self.losses)}] {name}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
            except ZeroDivisionError:
                raise SystemExit(f"refloss: --param {key}: division by zero in {text!r}") from None
            except ValueError:  # a word (yolo_decode's variant=scaled): the loss checks its own parameters
                params[key] = text.strip()
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
    v = sub.add_parser("verify", help="check every kernel against the oracle and finite differences, or check a "
                                      "peer library or your own function against refloss")
    v.add_argument("target", nargs="?", help="a built-in peer (torch, torchvision, fvcore, optax) or module:function; "
                                            "omitted: refloss's own kernels against the oracle")
    v.add_argument("--loss", action="append", help="only this loss (repeatable); with module:function, the refloss "
                                                    "loss it should equal")
    v.add_argument("--param", action="append", metavar="NAME=VALUE", help="a refloss parameter, with module:function")
    v.add_argument("--framework", default="auto", choices=("auto", "numpy", "torch", "jax"),
                   help="with module:function: how its gradients are taken")
    v.add_argument("--cases", default="standard", choices=("standard", "edge", "all"),
                   help="with module:function: which battery")
    v.add_argument("--dtype", action="append", choices=("float64", "float32"), default=None)
    v.add_argument("--device", action="append", choices=("cpu", "cuda"), help="backends (default: all available)")
    v.add_argument("--random", type=int, default=200, help="random points per battery (default 200; another number "
                                                           "recomputes the references with mpmath)")
    v.add_argument("-j", "--jobs", type=int, default=None,
                   help="processes checking losses in parallel (default: one per core when kernels must be "
                        "compiled, as on a first run, else 1)")
    v.add_argument("--live", action="store_true", help="recompute the exact references with the 50-digit oracle "
                                                       "(mpmath) instead of reading the stored ones")
    v.add_argument("-q", "--quiet", action="store_true")
    g = sub.add_parser("vectors", help="write golden vectors (inputs, values, gradients, tolerances) for other languages")
    g.add_argument("loss")
    g.add_argument("--param", action="append", metavar="NAME=VALUE", help="a loss parameter (repeatable)")
    g.add_argument("--format", choices=("json", "npz", "csv"), help="default: from the file's suffix")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="inputs rounded to this dtype")
    g.add_argument("--cases", choices=("standard", "edge", "all"), default="all")
    g.add_argument("-o", "--output", required=True, help="output file")
    c = sub.add_parser("conformance", help="check every installed peer and write the conformance matrix (markdown)")
    c.add_argument("peer", nargs="*", help="peers (default: all built-in)")
    c.add_argument("-o", "--output", help="file (default: standard output), e.g. docs/conformance.md")
    args = ap.parse_args(argv)
    if args.command == "conformance":
        return _conformance(args)
    if args.command == "vectors":
        try:
            return _vectors(args)
        except (ValueError, TypeError) as e:
            print(f"refloss vectors: {e}", file=sys.stderr)
            return 2
    if args.command == "verify":
        if not args.target:
            args.dtype = args.dtype or ["float64", "float32"]
        return _verify(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
