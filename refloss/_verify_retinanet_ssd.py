"""``refloss verify`` rows of RetinaNet's and SSD's whole losses: ``retinanet_loss`` and ``ssd_loss`` against
the independent mpmath composition of :mod:`refloss.oracle.detection`, values and gradients.

The cases are small batches (the worked example of docs/retinanet-ssd.md and two random ones,
each with an image without boxes); the matching is the loss's own (``matched_idxs=None``), given
to the oracle as it is (the matching is a step function, checked against torchvision in the
tests).  Measure "rel": the largest relative error of total and parts, and of the gradients the
largest absolute error relative to the largest exact component of that output.  CPU only
(the losses compose CPU kernels).
"""
from __future__ import annotations

import numpy as np

from ._verify import Row

NAMES = ("retinanet_loss", "ssd_loss")
PARAM_SETS = {"retinanet_loss": tuple({"bbox_reg_loss_type": k} for k in ("l1", "smooth_l1", "giou", "diou", "ciou")),
              "ssd_loss": ({},)}
BARS = {"float64": (1e-14, 1e-13), "float32": (2e-6, 2e-5)}
NOTE = ("retinanet_loss, ssd_loss (measure rel): total and parts relative to the 50-digit composition of "
        "refloss.oracle.detection, gradients' largest error relative to their largest exact component; "
        "3 batches each (docs/retinanet-ssd.md)")


def names() -> tuple:
    """The losses of these rows."""
    return NAMES


def cases() -> list:
    """(targets, head_outputs, anchors) of the batches: the worked example and two random ones."""
    anchors = [np.array([[0, 0, 4, 4], [3, 0, 7, 4], [4, 0, 8, 4], [0, 4, 4, 8], [1, 1, 7, 7]], float)] * 2
    targets = [{"boxes": np.array([[0.5, 0.5, 4.5, 4.0], [4.0, 0.5, 8.0, 4.5]]), "labels": np.array([1, 2])},
               {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)}]
    logits = np.array([[[1.0, -0.5, 0.25], [0.0, 0.5, -1.0], [-0.75, 0.0, 1.5], [0.5, 0.25, 0.0], [-1.0, 1.0, 0.5]],
                       [[0.25, -0.25, 0.0], [1.25, 0.0, -0.5], [0.0, 0.0, 0.75], [-0.5, 1.0, 0.0], [0.5, -1.0, 0.25]]])
    reg = np.full((2, 5, 4), 0.1)
    reg[0] = [[0.1, 0.0, -0.05, 0.0], [0.0, 0.2, 0.1, -0.1], [0.05, 0.1, 0.02, 0.1], [0.0, 0.0, 0.0, 0.0],
              [0.3, -0.2, 0.1, 0.0]]
    out = [(targets, {"cls_logits": logits, "bbox_regression": reg}, anchors)]
    for seed, counts in ((1, (3, 0)), (2, (2, 1))):
        rng = np.random.default_rng(seed)
        anchors, targets = [], []
        for g in counts:
            xy = rng.uniform(0, 10, (12, 2))
            a = np.concatenate([xy, xy + rng.uniform(1, 4, (12, 2))], axis=1)
            b = a[rng.choice(12, g, replace=False)] + rng.normal(0, 0.3, (g, 4))
            b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
            anchors.append(a)
            targets.append({"boxes": b, "labels": rng.integers(1, 4, g)})
        head = {"cls_logits": rng.normal(0, 1.5, (2, 12, 4)), "bbox_regression": rng.normal(0, 0.3, (2, 12, 4))}
        out.append((targets, head, anchors))
    return out


def _rel(got, exact) -> float:
    got, exact = np.asarray(got, np.float64), np.asarray(exact, np.float64)
    scale = np.abs(exact).max(initial=0.0)
    err = np.abs(got - exact).max(initial=0.0)
    return float(err / scale) if scale else float(err)


def check(name: str, params: dict, dtype: str) -> Row:
    """One row: ``name`` with ``params`` in ``dtype`` on every case."""
    from . import _retinanet_ssd
    from .oracle import detection

    loss = getattr(_retinanet_ssd, name)
    dt = np.dtype(dtype)
    v_err = g_err = 0.0
    worst = "-"
    for index, (targets, head, anchors) in enumerate(cases()):
        head = {k: v.astype(dt) for k, v in head.items()}
        targets = [{"boxes": t["boxes"].astype(dt), "labels": t["labels"]} for t in targets]
        anchors = [a.astype(dt) for a in anchors]
        result, grads = loss.value_and_grad(targets, head, anchors, None, **params)
        matched = result.details["matched_idxs"]
        if name == "retinanet_loss":
            cls, box, d_cls, d_reg = detection.retinanet(targets, head["cls_logits"], head["bbox_regression"], anchors,
                                                         matched, box=params.get("bbox_reg_loss_type", "l1"))
        else:
            cls, box, d_cls, d_reg = detection.ssd(targets, head["cls_logits"], head["bbox_regression"], anchors,
                                                   matched)
        exact = {"total": cls + box, "classification": cls, "bbox_regression": box}
        got = {"total": result.total, **result.parts}
        ve = max(_rel(got[k], float(exact[k])) for k in exact)
        ge = max(_rel(grads["cls_logits"], np.array(d_cls, dtype=float)),
                 _rel(grads["bbox_regression"], np.array(d_reg, dtype=float)))
        if max(ve / BARS[dtype][0], ge / BARS[dtype][1]) >= max(v_err / BARS[dtype][0], g_err / BARS[dtype][1]):
            worst = f"batch {index}: errors (value, grad) = ({ve:.3g}, {ge:.3g})"
        v_err, g_err = max(v_err, ve), max(g_err, ge)
    return Row(name, dict(params), "cpu", dtype, len(cases()), v_err, g_err, worst, None, "rel", BARS[dtype], None,
               [NOTE])


def rows(losses=None, dtypes=("float64", "float32"), live: bool = True, starting=None) -> list:
    """The rows (``refloss._verify.Row``) of ``losses`` (all: None), CPU.  The references are always
    computed with mpmath (``live`` is accepted for the same call as the other row sources)."""
    out = []
    for name in names():
        if losses is not None and name not in losses:
            continue
        if starting:
            starting(name)
        out += [check(name, p, d) for p in PARAM_SETS[name] for d in dtypes]
    return out
