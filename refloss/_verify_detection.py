"""``refloss verify``'s rows for the whole YOLO losses (``yolov1_loss`` .. ``yolov4_loss``).

Each loss runs on a small batch (2 images on a 2 x 2 grid, one with two boxes, one with none;
inputs on a 1/256 grid, so float32 holds them exactly) and is compared with the oracle's own
composition (:mod:`refloss.oracle.yolo_losses`: its own assignment, IoU, CIoU, sigmoid, BCE,
written from the papers): the parts and the total (value error: the largest relative error),
and the gradient with respect to every head entry, from ``mpmath.diff`` with the oracle's
decisions held (gradient error: the largest absolute error over the largest exact entry).

The exact results are stored in ``reference_values/yolo_losses.json``; ``refloss verify --live``
recomputes them (mpmath), and ``python -m refloss._verify_detection`` rewrites the file.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

FILE = Path(__file__).resolve().parent / "reference_values" / "yolo_losses.json"
SCHEMA = "refloss-yolo-losses/1"
BARS = {"float64": (1e-14, 1e-14), "float32": (2e-6, 2e-5)}  # (value, gradient), relative
# the kernels' own parameters where the oracle's convention differs from the default: the oracle
# differentiates CIoU's alpha
CASES = (("yolov1_loss", {}), ("yolov1_loss", {"size_output": "sqrt"}), ("yolov2_loss", {}),
         ("yolov3_loss", {}), ("yolov3_loss", {"xy_loss": "sigmoid"}),
         ("yolov4_loss", {"box_params": {"alpha_grad": True}}))


def names() -> tuple:
    return tuple(dict.fromkeys(name for name, _ in CASES))


def _grid(x, step=256):
    return np.round(np.asarray(x, np.float64) * step) / step


def inputs(name: str) -> dict:
    """The batch of a loss: head(s), anchors, ground truth (all on a 1/256 grid)."""
    rng = np.random.default_rng(sum(map(ord, name)))
    gt = [np.array([[0.3125, 0.28125, 0.40625, 0.5], [0.6875, 0.59375, 0.5, 0.3125]]), np.zeros((0, 4))]
    labels = [np.array([0, 1]), np.array([], np.int64)]
    if name == "yolov1_loss":
        head = np.zeros((2, 2, 2, 12))
        head[..., 0:5] = [0.5, 0.5, 0.5, 0.5, 0.5]
        head[..., 5:10] = [0.4, 0.6, 0.2, 0.3, 0.2]
        head[..., 10:12] = [0.7, 0.3]
        return {"heads": [_grid(head + rng.uniform(-0.05, 0.05, head.shape))], "anchors": None, "gt": gt,
                "labels": labels}
    anchors = [np.array([[0.3125, 0.40625], [0.59375, 0.40625]])]
    return {"heads": [_grid(rng.normal(0, 0.5, (2, 2, 2, 2, 7)))], "anchors": anchors, "gt": gt, "labels": labels}


def _oracle(name: str, params: dict, heads, data, frozen=None):
    from .oracle import yolo_losses as o

    if name == "yolov1_loss":
        return o.oracle_v1(heads[0], data["gt"], data["labels"], size_output=params.get("size_output", "w"),
                           frozen=frozen)
    version = name[4:6]
    ok = {"pos_thr": 0.3} if version == "v2" else {}
    return o.oracle_anchor(version, heads, data["anchors"], data["gt"], data["labels"],
                           xy_loss=params.get("xy_loss"), frozen=frozen, **ok)


def exact(name: str, params: dict, with_grad: bool = True) -> dict:
    """The exact parts, total and (``with_grad``) gradients of one case (needs mpmath), as strings."""
    from mpmath import mp

    from .oracle.yolo_losses import gradient

    data = inputs(name)
    base = _oracle(name, params, data["heads"], data)
    grads = gradient(lambda hs: _oracle(name, params, hs, data, base["_decisions"])["total"], data["heads"]) \
        if with_grad else []
    text = lambda v: mp.nstr(v, 25, min_fixed=-mp.inf, max_fixed=mp.inf) if v else "0"  # noqa: E731
    part_names = {"coord": "box" if name == "yolov4_loss" else "coord", "cls": "class"}
    return {"loss": name, "params": params,
            "parts": {part_names.get(k, k): text(v) for k, v in base.items() if not k.startswith("_")},
            "grads": [[text(v) for v in g.ravel()] for g in grads]}


class Stale(LookupError):
    """The stored file does not match CASES: regenerate it."""


@lru_cache(maxsize=1)
def stored() -> list:
    data = json.loads(FILE.read_text())
    if data.get("schema") != SCHEMA or [(c["loss"], c["params"]) for c in data["cases"]] != \
            [(n, p) for n, p in CASES]:
        raise Stale(f"{FILE.name} does not match refloss._verify_detection.CASES: run "
                          "`python -m refloss._verify_detection`")
    return data["cases"]


def _call(name: str, params: dict, data: dict, dt):
    from . import _yolo_losses

    loss = getattr(_yolo_losses, name)
    heads = [h.astype(dt) for h in data["heads"]]
    gt = [g.astype(dt) for g in data["gt"]]
    if name == "yolov1_loss":
        res, grad = loss.value_and_grad(heads[0], gt, data["labels"], **params)
        return res, [grad]
    anchors = [a.astype(dt) for a in data["anchors"]]
    if name == "yolov2_loss":
        res, grad = loss.value_and_grad(heads[0], anchors[0], gt, data["labels"], **params)
        return res, [grad]
    return loss.value_and_grad(heads, anchors, gt, data["labels"], **params)


def rows(losses=None, dtypes=("float64", "float32"), live: bool = False, starting=None) -> list:
    """The rows (``refloss._verify.Row``) of the YOLO losses named in ``losses`` (all: None), CPU."""
    from ._verify import Row

    out = []
    cases = stored() if not live else None
    for i, (name, params) in enumerate(CASES):
        if losses is not None and name not in losses:
            continue
        if starting:
            starting(name)
        ref = exact(name, params) if live else cases[i]
        data = inputs(name)
        want_parts = {k: float(v) for k, v in ref["parts"].items()}
        want = [np.array([float(v) for v in g]).reshape(h.shape) for g, h in zip(ref["grads"], data["heads"])]
        for dtype in dtypes:
            res, got = _call(name, params, data, np.dtype(dtype))
            got_parts = dict(res.parts, total=res.total)
            verr = max(abs(float(got_parts[k]) - v) / (abs(v) or 1.0) for k, v in want_parts.items())
            scale = max(float(np.abs(w).max()) for w in want) or 1.0
            errs = [np.abs(g.astype(np.float64) - w) for g, w in zip(got, want)]
            gerr = max(float(e.max()) for e in errs) / scale
            k = int(np.argmax([e.max() for e in errs]))
            where = tuple(int(j) for j in np.unravel_index(int(np.argmax(errs[k])), errs[k].shape))
            worst = f"head {k} entry {where}: gradient {float(got[k][where])!r} vs {float(want[k][where])!r}"
            out.append(Row(name, params, "cpu", dtype, sum(w.size for w in want), verr, gerr, worst, None,
                           "rel", BARS[dtype], None,
                           ["rel (YOLO losses): the parts' and total's largest relative error; the gradient's largest "
                            "error over the largest exact entry, against the oracle's composition "
                            "(refloss/oracle/yolo_losses.py)"]))
    return out


def main() -> None:
    """Recompute the exact results with the oracle and rewrite reference_values/yolo_losses.json."""
    cases = [exact(name, params) for name, params in CASES]
    FILE.write_text(json.dumps({"schema": SCHEMA, "cases": cases}, indent=1) + "\n")
    stored.cache_clear()
    print(f"wrote {FILE} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
