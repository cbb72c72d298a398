"""Fill docs/exhaustive.md's tables: every element-wise and classification loss, at each
parameter set of refloss/_reference.py (the default and the documented ones), over float32
bit patterns (all 2**32 by default), float32 kernel against the float64 kernel with the
oracle re-checks (refloss sweep --exhaustive).

    python benchmarks/exhaustive_tables.py [--bits LO:HI] [--workers N | --scheduler ADDRESS]
                                           [--only LOSS ...] [--rows K,K,...] [--report] [-o table.md]
                                           [--results DIR]
    python benchmarks/exhaustive_tables.py --boxes N [--only LOSS ...] [--rows K,...] [--group K] [-o boxes.md] ...
    python benchmarks/exhaustive_tables.py --report --doc docs/exhaustive.md   # the page's table, in place
    python benchmarks/exhaustive_tables.py --samples N [--rows K,...] ...     # element-wise, classification: float64
    python benchmarks/exhaustive_tables.py --samples N --space soft_logits [--dtype float32|float64] ...  # soft targets

``--boxes N``: the box-loss table instead, N points of the ``boxes`` space (sizes 1e-6..1e6,
overlap classes, near-identical pairs) per box loss, metric and parameter set, float32 kernel
against the float64 kernel with the oracle re-checks (refloss sweep --samples N); the rows run
together, ``--group K`` at a time (refloss.sweep.run_many: each chunk's boxes drawn once for the
group), and ``--report`` gives the table from the results already there (rows never swept run then).
``--samples N``: the float64 kernels of the element-wise and classification losses, N points of each loss's
space per parameter set, against their double-double twins (refloss/_generated/<loss>_ref.py) with the oracle
re-checks (refloss sweep --dtype float64 --samples N).  With ``--space soft_logits``: the classification losses'
rows at soft targets (the float64 kernels against their twins, or with ``--dtype float32`` the float32 kernels
against the float64 ones), measured against the cancelling terms where the gradients cancel
(refloss/sweep/_floors.py); doc markers sampled-table-soft-float64 and sampled-table-soft-float32.

Classification losses run at the hard targets 0 and 1.  Each sweep's JSON (with its
``.chunks.jsonl``, so an interrupted run resumes) goes to ``--results`` (default
``sweep-results/``); the markdown table goes to ``-o`` (default: standard output), a row "pending" until its sweep
has finished (``--report``: only the table, from the results already there; ``--rows``: sweep only
these rows, e.g. to spread the table over several sessions or machines; ``--doc PAGE``: write the
table into PAGE between its ``<!-- exhaustive-table -->`` (``<!-- box-table -->`` with ``--boxes``) and
``<!-- /... -->`` markers, leaving the rest of the page as it is).  The
losses and their parameter sets come from the loss index and the reference table: no loss
name is written here.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from refloss import BOX_LOSSES, CLASSIFICATION_LOSSES, ELEMENTWISE_LOSSES, METRICS, sweep
from refloss._reference import REFERENCES


def _bits(text: str) -> tuple:
    lo, _, hi = text.partition(":")
    return int(lo, 0), int(hi, 0)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):  # (the JSON's "inf" and "nan")
        return v
    return "inf" if v == float("inf") else f"{v:.3g}"


def _params(p: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items()) or "-"


def runs() -> list:
    """(loss, params, target) of every table row, in a fixed order: a row's index names its results."""
    out = []
    # classification losses in the reference table's order, where new ones are appended: the rows
    # swept before a loss was added keep their numbers
    order = list(REFERENCES)
    classification = sorted(CLASSIFICATION_LOSSES, key=lambda n: order.index(n) if n in order else len(order))
    for loss in list(ELEMENTWISE_LOSSES) + classification:
        if loss not in REFERENCES:
            continue
        targets = (0.0, 1.0) if loss in CLASSIFICATION_LOSSES else (0.0,)
        for params in REFERENCES[loss].param_sets:
            for t in targets:
                out.append((loss, dict(params), t))
    return out


def _result_name(k: int, loss: str, target: float, bits: tuple) -> str:
    return f"{loss}-{k}-t{target:g}-{bits[0]:08x}-{bits[1]:08x}.json"


def box_runs(only=None) -> list:
    """(loss, params) of every row of the box table."""
    return [(loss, dict(params)) for loss in BOX_LOSSES + METRICS
            if (not only or loss in only) and loss in REFERENCES for params in REFERENCES[loss].param_sets]


def sampled_runs() -> list:
    """(loss, params) of every row of the sampled float64 table of the element-wise and classification losses:
    ``runs()`` without its targets (each loss's space draws them)."""
    out = []
    for loss, params, _ in runs():
        if (loss, params) not in out:
            out.append((loss, params))
    return out


def box_table(args) -> list:
    """The box table's lines (``--boxes N``), or with ``--samples N`` the float64 table of the element-wise and
    classification losses.  Its rows are swept together, ``--group`` rows at a time (each group one
    refloss.sweep.run_many: a chunk's boxes are drawn once for all of the group's rows)."""
    folder, start = Path(args.results), time.perf_counter()
    boxes = args.boxes is not None
    n, space = (args.boxes, "boxes") if boxes else (args.samples, args.space)
    soft = space == "soft_logits"
    todo = [(k, row) for k, row in enumerate(box_runs() if boxes else sampled_runs())
            if (not args.only or row[0] in args.only) and (args.rows is None or k in args.rows)
            and (not soft or row[0] in CLASSIFICATION_LOSSES)]
    group = args.group or len(todo) or 1
    times = []
    f64 = args.dtype == "float64"  # (float64: against the kernels' double-double twins; files of their own)
    path = {k: folder / (f"{loss}-{k}-boxes-{n}{'-float64' if f64 else ''}.json" if boxes
                         else f"{loss}-{k}-{'soft-' if soft else ''}samples-{n}-{args.dtype}.json")
            for k, (loss, _) in todo}
    chunk = args.chunk if boxes else min(args.chunk, sweep.DEFAULT_SAMPLE_CHUNK)
    for g in range(0, len(todo) if not args.report else 0, group):
        part = todo[g:g + group]
        for k, (loss, params) in part:
            print(f"[{k}] {loss} ({_params(params)}), {n} {'boxes' if boxes else 'samples'}", file=sys.stderr,
                  flush=True)
        t = time.perf_counter()
        specs = [dict(loss=loss, params=params, samples=n, space=space, chunk=chunk, output=path[k],
                      dtype=args.dtype) for k, (loss, params) in part]
        sweep.run_many(specs, workers=args.workers, scheduler=args.scheduler,
                       progress=sweep.print_progress(len(part) * -(-n // chunk)))
        times.append(f"{len(part)} rows in {time.perf_counter() - t:.0f} s")
    rows = []
    for k, (loss, params) in todo:
        if not path[k].exists():
            rows.append(f"| {k} | {loss} | {_params(params)} | pending | | | | |")
            continue
        r = json.loads(path[k].read_text())
        grads = [g for g in r["max_ulp"] if g != "value"]
        worst = next(iter(r["worst"]), None)
        where = "-" if worst is None else f"{worst['column']}"
        points = f"{r['points']}" + (f" ({r['measured']} measured)" if r["measured"] != r["points"] else "")
        rows.append(f"| {k} | {loss} | {_params(r['params'])} | {points} | {_fmt(r['max_ulp']['value'])} | "
                    + " / ".join(_fmt(r["max_ulp"][g]) for g in grads) + f" | {where} | {r['failures']} |")
    command = (f"python benchmarks/exhaustive_tables.py {'--boxes' if boxes else '--samples'} {n}"
               + (" --space soft_logits" if soft else "") + (f" --dtype {args.dtype}" if f64 or soft else ""))
    what = ("the `boxes` space" if boxes else "the `soft_logits` space (soft targets)" if soft
            else "each loss's space (`residuals`, `logits`)")
    grads = "d_pred / d_target" if boxes else "d_pred / d_target, d_logits / d_target(s)"
    return [f"{n} samples of {what} per row, {args.dtype} (`{command}`"
            + (f"; {', '.join(times)}; {time.perf_counter() - start:.0f} s in all on "
               f"{args.workers or 'all the'} workers" if times else "") + ").", "",
            f"| row | loss | parameters | points | max ULP{'64' if f64 else ''} value | max ULP{'64' if f64 else ''} "
            f"gradients ({grads}) | worst | over the bar |", "|---|---|---|---|---|---|---|---|", *rows]


def write_into(page: Path, marker: str, text: str) -> None:
    """Replace what lies between ``<!-- marker -->`` and ``<!-- /marker -->`` in ``page`` with ``text``."""
    doc = page.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if doc.count(start) != 1 or doc.count(end) != 1 or doc.index(start) > doc.index(end):
        raise SystemExit(f"{page}: needs exactly one {start} ... {end} pair")
    a, b = doc.index(start) + len(start), doc.index(end)
    page.write_text(doc[:a] + "\n" + text.rstrip("\n") + "\n" + doc[b:])
    print(f"wrote the table into {page}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=_bits, default=(0, 2**32), metavar="LO:HI")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--scheduler")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("-o", "--output")
    ap.add_argument("--results", default="sweep-results")
    ap.add_argument("--rows", type=lambda t: {int(v) for v in t.split(",")}, metavar="K,K,...",
                    help="only these rows (their indices in the table)")
    ap.add_argument("--report", action="store_true", help="sweep nothing: the table of the results already there")
    ap.add_argument("--boxes", type=int, metavar="N", help="the sampled box-loss table, N points per row")
    ap.add_argument("--group", type=int, metavar="K", help="--boxes: sweep K rows at a time (default all)")
    ap.add_argument("--chunk", type=int, default=2**20, help="--boxes: points per chunk (default 2**20)")
    ap.add_argument("--samples", type=int, metavar="N", help="the sampled float64 table of the element-wise and "
                    "classification losses, N points per row (against their double-double twins; --doc marker "
                    "sampled-table-f64)")
    ap.add_argument("--dtype", choices=("float32", "float64"),
                    help="--boxes (default float32): the kernels swept (float64: against their double-double twins; "
                    "--doc marker box-table-f64); --samples --space soft_logits (default float64): either")
    ap.add_argument("--space", choices=("soft_logits",), help="--samples: the classification losses at soft targets "
                    "(--doc marker sampled-table-soft-<dtype>)")
    ap.add_argument("--doc", type=Path, metavar="PAGE", help="write the table into PAGE between its markers")
    args = ap.parse_args(argv)
    if args.space and args.samples is None:
        ap.error("--space applies to --samples")
    if args.samples is not None:
        if args.boxes is not None:
            ap.error("--samples and --boxes are two tables: give one")
        if args.dtype == "float32" and not args.space:
            ap.error("--samples --dtype float32: only with --space soft_logits (the float32 kernels' table at hard "
                     "targets is the exhaustive one)")
        args.dtype = args.dtype or "float64"
    args.dtype = args.dtype or "float32"
    if args.boxes is not None or args.samples is not None:
        text = "\n".join(box_table(args)) + "\n"
        if args.doc:
            write_into(args.doc, f"sampled-table-soft-{args.dtype}" if args.space else
                       "sampled-table-f64" if args.samples is not None else
                       "box-table" if args.dtype == "float32" else "box-table-f64", text)
        if args.output:
            Path(args.output).write_text(text)
        print(text)
        return 0
    folder = Path(args.results)
    lo, hi = args.bits
    todo = [(k, row) for k, row in enumerate(runs()) if (not args.only or row[0] in args.only)
            and (args.rows is None or k in args.rows)]
    for k, (loss, params, target) in todo if not args.report else ():
        print(f"[{k}] {loss} ({_params(params)}), target {target:g}", file=sys.stderr, flush=True)
        sweep.run(loss, params, exhaustive=True, bits=args.bits, target=target, workers=args.workers,
                  scheduler=args.scheduler, output=folder / _result_name(k, loss, target, args.bits))
    rows, done = [], 0
    for k, (loss, params, target) in todo:
        path = folder / _result_name(k, loss, target, args.bits)
        if not path.exists():
            rows.append(f"| {k} | {loss} | {_params(params)} | {target:g} | pending | | | | | |")
            continue
        r = json.loads(path.read_text())
        done += 1
        grads = [g for g in r["max_ulp"] if g != "value"]
        worst = max(r["worst"], key=lambda e: e["ulp"], default=None)
        where = "-" if worst is None else (f"{worst['column']} at {next(iter(worst['inputs'].values()))!r}")
        rows.append(f"| {k} | {loss} | {_params(r['params'])} | {target:g} | {r['points']} | {_fmt(r['max_ulp']['value'])} | "
                    + " / ".join(_fmt(r["max_ulp"][g]) for g in grads) + f" | {where} | {r['failures']} | "
                    f"{r['bar']['value']:g} / {r['bar']['grad']:g} | {r['elapsed_s']:.0f} s |")
    head = [f"float32 bit patterns {lo:#010x}..{hi - 1:#010x} ({hi - lo} patterns, NaN and infinities left out); "
            f"{done} of {len(todo)} rows swept; `python benchmarks/exhaustive_tables.py --bits {lo:#x}:{hi:#x}`.",
            "",
            "| row | loss | parameters | target | points | max ULP value | max ULP gradients (per input: d_pred / d_target, "
            "d_logits / d_target(s)) | worst point | over the bar | bar (value / grad) | time |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    text = "\n".join(head + rows) + "\n"
    if args.doc:
        write_into(args.doc, "exhaustive-table", text)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
