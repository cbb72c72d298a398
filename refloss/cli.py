"""The ``refloss`` command (also ``python -m refloss``).

``refloss verify``: check every kernel (CPU, and CUDA when a GPU or the
simulator is present) against the 50-digit oracle's exact results and finite
differences and print a table; exit status 1 on any failure.

``refloss verify PEER`` (torch, torchvision, fvcore, optax, ultralytics, mmdetection, mmrotate): check that library's
losses against refloss (torchvision: also RetinaNet's and SSD's compute_loss and its Matcher, on
detection batches); ``refloss verify module:function --loss NAME [--param k=v]
[--impl-param k=v]``: check your own function. Exit status 0 when everything agrees, 1
otherwise, 2 on a usage error (one line on standard error, never a traceback).

``refloss vectors LOSS -o FILE``: golden vectors for ports in other languages.
``refloss sweep LOSS --exhaustive | --samples N [-o result.json]``: the largest error of a kernel,
or of your function (``--impl``), over every float32 bit pattern or a sampled space (exit status
1 when a point is over the loss's bar; docs/sweep.md).
``refloss conformance -o docs/conformance.md``: the conformance matrix of every installed peer.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from fractions import Fraction


class UsageError(Exception):
    """A mistake in the command line: one line on standard error, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the whole usage first)
        raise UsageError(f"{message} (see {self.prog} --help)")


def _load_callable(spec: str):
    """``package.module:function`` or ``path/to/file.py:function`` -> the function (refloss._impl)."""
    from ._impl import LoadError, load_callable

    try:
        return load_callable(spec)
    except LoadError as e:
        raise UsageError(str(e)) from None


def _verify_target(args) -> int:
    """refloss verify PEER | module:function --loss NAME [--param k=v]."""
    from . import peers

    module = ":" in args.target
    # (options of refloss's own kernels' verification: accepted and ignored silently before)
    ignored = [o for o, given in (("--random", args.random is not None), ("--live", args.live),
                                  ("-j", args.jobs is not None), ("--device", bool(args.device) and not module)) if given]
    if ignored:
        what = ("module:function runs check_loss's battery (--cases, --dtype, --framework, --device)" if module
                else f"peer {args.target} runs its own checks")
        raise UsageError(f"{', '.join(ignored)}: apply to refloss's own kernels (refloss verify without a target); "
                         f"{what}")
    if module and args.device and len(set(args.device)) > 1:
        raise UsageError("--device: module:function checks on one device (where check_loss makes its tensors)")
    if module:
        if not args.loss or len(args.loss) != 1:
            raise UsageError("module:function needs exactly one --loss NAME (the refloss loss it should equal)")
        from functools import partial

        from . import testing

        impl = _load_callable(args.target)
        if args.impl_param:
            impl = partial(impl, **_parse_params(args.impl_param, ints=True))
            impl.__qualname__ = args.target
        params = _parse_params(args.param)
        ok = True
        for dt in args.dtype or ["float64"]:
            try:
                report = testing.check_loss(impl, args.loss[0], framework=args.framework or "auto",
                                            cases=args.cases or "standard", dtype=dt,
                                            device=args.device[0] if args.device else None, **params)
            except testing.ImplementationError as e:  # the function under test failed: that is a finding
                print(f"refloss verify: {args.target}: {e}", file=sys.stderr)
                return 1
            except (ValueError, TypeError) as e:  # refloss's arguments (loss, params, dtype)
                raise UsageError(str(e)) from None
            print(report)
            ok &= report.ok
        return 0 if ok else 1
    if args.param or args.impl_param:
        raise UsageError("--param and --impl-param apply to module:function (a peer runs the parameters it documents)")
    given = [o for o, v in (("--dtype", args.dtype), ("--framework", args.framework), ("--cases", args.cases)) if v]
    if given:  # (accepted and ignored silently before: a peer's rows always run float64, float32 and edge)
        raise UsageError(f"{', '.join(given)}: apply to module:function (check_loss's battery); peer {args.target} "
                         "runs its own checks, float64, float32 and the convention points")
    if args.target not in peers.PEERS:
        raise UsageError(f"unknown peer {args.target!r}; built-in peers: {', '.join(peers.PEERS)}; "
                         "or give module:function --loss NAME")
    dot = None if args.quiet else (lambda r: print(".", end="", flush=True))
    try:
        results = peers.run(args.target, only=args.loss, progress=dot)
        detectors = peers.run_detectors(args.target, only=args.loss, progress=dot)
    except ImportError as e:
        raise UsageError(str(e)) from None
    if args.loss and not results and not detectors:
        raise UsageError(f"peer {args.target} has no function for --loss {', '.join(args.loss)}")
    print()
    print(peers.format_results(args.target, results, detectors))
    return 0 if all(r.ok for r in [*results, *detectors]) else 1


def _conformance(args) -> int:
    from . import peers
    from .peers import conformance

    from pathlib import Path

    names = args.peer or list(peers.PEERS)
    unknown = [n for n in names if n not in peers.PEERS]
    if unknown:
        raise UsageError(f"unknown peer(s) {', '.join(unknown)}; built-in peers: {', '.join(peers.PEERS)}")
    _output(args.output)  # the folder first: fail before the work, not after it
    command = "refloss conformance" + "".join(f" {n}" for n in args.peer) + (f" -o {args.output}" if args.output else "")
    text = conformance.markdown(names, progress=lambda p: print(f"  {p}", file=sys.stderr, flush=True),
                                command=command)
    if args.output:
        Path(args.output).write_text(text)
        print(f"refloss conformance: wrote {args.output}")
    else:
        print(text)
    return 0


def _verify(args) -> int:
    if args.target:
        return _verify_target(args)
    if args.param or args.impl_param:
        raise UsageError("--param and --impl-param apply to module:function; refloss's own kernels run the "
                         "parameter sets of their table (refloss/_reference.py)")
    given = [o for o, v in (("--framework", args.framework), ("--cases", args.cases)) if v]
    if given:  # (accepted and ignored silently before)
        raise UsageError(f"{', '.join(given)}: apply to module:function (check_loss's battery); refloss's own "
                         "kernels run their stored batteries")
    from . import _stored, _verify

    if "cuda" in (args.device or ()):
        from ._backends import cuda_unavailable

        why = cuda_unavailable()
        if why:
            raise UsageError(why)
    random = _stored.N_RANDOM if args.random is None else args.random
    live = args.live or random != _stored.N_RANDOM
    if live:
        try:
            import mpmath  # noqa: F401
        except ImportError:
            raise UsageError("refloss verify --live (or --random) recomputes the references with mpmath: "
                             "pip install 'refloss[verify]'") from None
    from . import _verify_detection, _verify_retinanet_ssd

    kernels = _verify.names()
    yolo_wholes = _verify_detection.names()  # whole detector losses: CPU rows against the oracle's composition
    wholes = yolo_wholes + _verify_retinanet_ssd.names()
    known = kernels + wholes
    unknown = sorted(set(args.loss or ()) - set(known))
    if unknown:
        guesses = [g for name in unknown for g in difflib.get_close_matches(name, known, n=1)]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        raise UsageError(f"unknown loss(es) {', '.join(unknown)}{hint}; known: {', '.join(known)}")
    devices = args.device or None
    losses = tuple(dict.fromkeys(args.loss)) if args.loss else known
    wholes = tuple(n for n in losses if n in wholes) if devices is None or "cpu" in devices else ()
    kernels = tuple(n for n in losses if n in kernels)
    print(f"refloss verify: {len(losses)} losses, backends {devices or _verify.backends()}, dtypes "
          f"{', '.join(args.dtype)}, references {'recomputed with mpmath (--live)' if live else 'stored'}", flush=True)
    jobs = args.jobs
    if jobs is None:
        cold = sum(not _verify.cached(n) for n in kernels)
        jobs = (os.cpu_count() or 1) if cold > 1 else 1
        if cold > 1 and not args.quiet:
            print(f"refloss verify: compiling the kernels of {cold} losses (once; cached on disk), "
                  f"{jobs} processes", flush=True)
    progress = _progress(losses, args.quiet)
    try:
        rows = _verify.run(kernels, tuple(args.dtype), devices, random, live=live, starting=progress,
                           workers=jobs) if kernels else []
        yolo = tuple(n for n in wholes if n in yolo_wholes)
        rows += _verify_detection.rows(yolo, tuple(args.dtype), live=live, starting=progress) if yolo else []
        rows += _retinanet_ssd_rows(tuple(n for n in wholes if n not in yolo_wholes), args.dtype, progress)
    except (_stored.Stale, _verify_detection.Stale) as e:
        raise UsageError(str(e)) from None
    finally:
        progress.close()
    print(_verify.format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _retinanet_ssd_rows(losses, dtypes, progress) -> list:
    """retinanet_loss's and ssd_loss's rows: their references are computed with mpmath (the verify extra)."""
    if not losses:
        return []
    from . import _verify_retinanet_ssd

    try:
        import mpmath  # noqa: F401
    except ImportError:
        print(f"refloss verify: {', '.join(losses)} not checked: their references are computed with mpmath "
              "(pip install 'refloss[verify]')", flush=True)
        return []
    return _verify_retinanet_ssd.rows(losses, tuple(dtypes), starting=progress)


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


def _number(key: str, text: str, ints: bool):
    """One number of --param/--impl-param: 0.11, 1e-7 and 1/9 alike; with ``ints``, 3 as the int 3."""
    text = text.strip()
    if ints and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(Fraction(text))
    except ZeroDivisionError:
        raise UsageError(f"--param {key}: division by zero in {text!r}") from None


def _parse_params(items, ints: bool = False) -> dict:
    """``["beta=0.11", "alpha_grad=false", "eps=none", "image_size=(640, 480)", "reduction=none"]`` -> ``{"beta":
    0.11, "alpha_grad": False, "eps": None, "image_size": (640.0, 480.0), "reduction": "none"}`` (``reduction`` stays
    a word: torch's and refloss's "none"); ``ints``: whole numbers as ints (--impl-param: the user's function)."""
    params = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param must be NAME=VALUE, got {item!r}")
        low = text.strip().lower()
        if key == "reduction":
            params[key] = text.strip()
        elif low in ("true", "false"):
            params[key] = low == "true"
        elif low == "none":
            params[key] = None
        elif "," in low:  # a pair or a list: image_size=(640, 480), [640, 480] or 640,480
            parts = [t for t in low.strip("()[] ").split(",") if t.strip()]
            try:
                params[key] = tuple(_number(key, t, ints) for t in parts)
            except ValueError:
                raise UsageError(f"--param {key}: expected numbers separated by commas, got {text!r}") from None
        else:
            try:
                params[key] = _number(key, text, ints)
            except ValueError:  # a word (yolo_decode's variant=scaled): the loss checks its own parameters
                params[key] = text.strip()
    return params


def _output(path: str | None) -> None:
    """-o PATH checked (and its folder made) before the work, not after it: not a folder, its folder makeable."""
    if not path:
        return
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"-o {path}: is a folder; give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"-o {path}: cannot make its folder {p.parent} ({e.strerror or e})") from None
    if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"-o {path}: not writable")


def _finite_params(items, option: str = "--param", ints: bool = False) -> dict:
    """_parse_params, with a number beyond float64's range (beta=1e400) a usage error naming it."""
    for item in items or ():
        try:
            _parse_params([item], ints)
        except OverflowError:
            raise UsageError(f"{option} {item}: beyond float64's range") from None
    return _parse_params(items, ints)


def _vectors(args) -> int:
    from . import vectors

    params = _finite_params(args.param)
    _known(args.loss)
    _output(args.output)
    data = vectors.golden_vectors(args.loss, dtype=args.dtype, cases=args.cases, **params)
    path = vectors.write_vectors(data, args.output, args.format)
    print(f"refloss vectors: {data['meta']['points']} points of {args.loss}{data['meta']['params']} "
          f"({args.dtype}, cases {args.cases}) -> {path}")
    return 0


def _bits(text: str) -> tuple:
    """``LO:HI`` (integers, 0x.. hex allowed) -> (lo, hi)."""
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(lo, 0), int(hi, 0)
    except ValueError:
        raise UsageError(f"--bits must be LO:HI (e.g. 0:0x1000000), got {text!r}") from None


def _sweep(args) -> int:
    from . import sweep

    params = _finite_params(args.param)
    if args.bits is not None and not args.exhaustive:
        raise UsageError("--bits applies to --exhaustive")
    if args.exhaustive == (args.samples is not None):
        raise UsageError("give --exhaustive or --samples N (one of them)")
    if args.chunk is not None and args.chunk < 1:
        raise UsageError(f"--chunk must be at least 1, got {args.chunk}")
    if args.target is not None and not abs(args.target) < 2.0**128 * (1 - 2.0**-25):  # (from there: float32's inf)
        raise UsageError(f"--target must be a finite float32 number (|target| <= 3.4028235e+38: the sweep's inputs "
                         f"are float32), got {args.target}")
    if args.space and args.exhaustive:
        raise UsageError("--space applies to --samples")
    if args.target is not None and not args.exhaustive:
        raise UsageError("--target applies to --exhaustive (the fixed target of the residual or logit)")
    if args.impl_param and not args.impl:
        raise UsageError("--impl-param applies to --impl")
    if args.framework != "auto" and not args.impl:
        raise UsageError("--framework applies to --impl (refloss's own kernel has no framework)")
    if args.workers is not None and args.scheduler:
        raise UsageError("give --workers or --scheduler, not both")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    impl = args.impl
    if impl is not None:
        _load_callable(impl)  # a bad --impl is a usage error here, before any worker starts
    if args.target is not None and _known(args.loss):  # the loss's own rule for a target (bce: in [0, 1])
        from ._loss import loss_named

        try:
            loss_named(args.loss)(0.0, args.target, **params)
        except (ValueError, TypeError) as e:
            if str(e).startswith("target"):
                raise UsageError(f"--target {args.target!r}: {e}") from None
    _output(args.output)
    kwargs = dict(dtype=args.dtype, exhaustive=args.exhaustive, bits=_bits(args.bits) if args.bits else None,
                  target=args.target if args.target is not None else 0.0, samples=args.samples, space=args.space,
                  seed=args.seed, impl=impl, impl_params=_finite_params(args.impl_param, "--impl-param", ints=True), framework=args.framework,
                  workers=args.workers, scheduler=args.scheduler, chunk=args.chunk, top_k=args.top,
                  output=args.output, resume=not args.no_resume)
    try:
        space, chunks = sweep.plan(args.loss, params, args.dtype, args.exhaustive, kwargs["bits"], kwargs["target"],
                                   args.samples, args.space, args.seed, args.chunk) if _known(args.loss) else (None, [])
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    progress = None if args.quiet else sweep.print_progress(len(chunks))
    from .sweep._chunk import ImplementationError

    try:
        result = sweep.run(args.loss, params, progress=progress, **kwargs)
    except ImplementationError as e:  # the function under test failed: that is a finding
        print(f"refloss sweep: {args.impl}: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    # (--quiet: the summary lines, not the worst points' table; the JSON holds them)
    print(result.text(worst=not args.quiet))
    if args.output:
        print(f"refloss sweep: wrote {args.output}")
    return 0 if result.ok else 1


def _at_least(low: int):
    """An argparse type: an int >= ``low`` (argparse names the option in its message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _known(loss: str) -> bool:
    from ._generated._index import LOSSES

    if loss not in LOSSES:
        guess = difflib.get_close_matches(loss, list(LOSSES), n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        raise UsageError(f"unknown loss {loss!r}{hint}; known: {', '.join(LOSSES)}")
    return True


def _parser() -> argparse.ArgumentParser:
    from . import peers
    from ._version import __version__

    peer_names = ", ".join(peers.PEERS)
    ap = _Parser(prog="refloss", description="refloss: reference losses for object detection, value and gradient")
    ap.add_argument("--version", action="version", version=f"refloss {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    v = sub.add_parser("verify", help="check every kernel against the oracle and finite differences, or check a "
                                      "peer library or your own function against refloss")
    v.add_argument("target", nargs="?", help=f"a built-in peer ({peer_names}) or module:function or "
                                            "file.py:function; omitted: refloss's own kernels against the oracle")
    v.add_argument("--loss", action="append", help="only this loss (repeatable, or comma-separated); with "
                                                    "module:function, the refloss loss it should equal")
    v.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="with module:function: a parameter of the refloss loss (only refloss's; the function gets "
                        "its own with --impl-param)")
    v.add_argument("--impl-param", action="append", metavar="NAME=VALUE",
                   help="with module:function: a keyword argument passed to your function")
    v.add_argument("--framework", default=None, choices=("auto", "numpy", "torch", "jax"),
                   help="with module:function: how its gradients are taken (default auto)")
    v.add_argument("--cases", default=None, choices=("standard", "edge", "all"),
                   help="with module:function: which battery (default standard)")
    v.add_argument("--dtype", action="append", choices=("float64", "float32"), default=None)
    v.add_argument("--device", action="append", choices=("cpu", "cuda"), help="backends (default: all available)")
    v.add_argument("--random", type=_at_least(0), default=None, help="random points per battery (default 200; another number "
                                                           "recomputes the references with mpmath)")
    v.add_argument("-j", "--jobs", type=_at_least(1), default=None,
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
    w = sub.add_parser("sweep", help="the largest error of a kernel (or of your function) over every float32 bit "
                                     "pattern or millions of samples, on this machine's cores or a dask cluster")
    w.add_argument("loss")
    w.add_argument("--param", action="append", metavar="NAME=VALUE", help="a loss parameter (repeatable)")
    w.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    w.add_argument("--exhaustive", action="store_true",
                   help="every finite float32 bit pattern as the residual (element-wise) or logit (classification)")
    w.add_argument("--bits", metavar="LO:HI", help="with --exhaustive: only the bit patterns LO..HI-1 (default all 2**32)")
    w.add_argument("--target", type=float, default=None,
                   help="with --exhaustive: the fixed target (default 0; classification: e.g. 0 or 1)")
    w.add_argument("--samples", type=int, metavar="N", help="N points drawn from --space")
    w.add_argument("--space", help="residuals (element-wise), boxes, rotated, logits (hard targets), soft_logits (soft "
                   "targets, measured against the cancelling terms where they cancel) (default: the loss family's)")
    w.add_argument("--seed", type=_at_least(0), default=0)
    w.add_argument("--impl", metavar="MODULE:FUNCTION", help="sweep your function instead of refloss's kernel "
                                                             "(module:function or file.py:function)")
    w.add_argument("--impl-param", action="append", metavar="NAME=VALUE", help="a keyword argument for --impl")
    w.add_argument("--framework", default="auto", choices=("auto", "numpy", "torch", "jax"),
                   help="with --impl: torch and jax give gradients by autograd; numpy: values only")
    w.add_argument("--workers", type=int, help="local processes (default: one per core)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="a dask.distributed scheduler, e.g. tcp://host:8786")
    w.add_argument("--chunk", type=int, help="points per chunk (default 2**22 exhaustive, 2**18 samples)")
    w.add_argument("--top", type=_at_least(0), default=8, help="worst points kept per component (default 8)")
    w.add_argument("--no-resume", action="store_true", help="ignore the chunks recorded in OUTPUT.chunks.jsonl")
    w.add_argument("-o", "--output", help="result JSON (finished chunks go to OUTPUT.chunks.jsonl as they finish)")
    w.add_argument("-q", "--quiet", action="store_true", help="no progress and no table of the worst points (the "
                                                              "summary only; -o keeps them)")
    c = sub.add_parser("conformance", help="check every installed peer and write the conformance matrix (markdown)")
    c.add_argument("peer", nargs="*", help=f"peers (default: all built-in: {peer_names})")
    c.add_argument("-o", "--output", help="file (default: standard output), e.g. docs/conformance.md")
    return ap


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "conformance":
            return _conformance(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "vectors":
            try:
                return _vectors(args)
            except (ValueError, TypeError) as e:
                raise UsageError(str(e)) from None
        if not args.target:
            args.dtype = args.dtype or ["float64", "float32"]
        if args.loss:  # --loss a,b as --loss a --loss b
            args.loss = [name.strip() for item in args.loss for name in item.split(",") if name.strip()]
        return _verify(args)
    except UsageError as e:
        print(f"refloss: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refloss: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
