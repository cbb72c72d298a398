"""The second kind of peer check: whole detector losses and anchor matching on batches.

An element-wise peer check (:class:`refloss.peers.PeerCheck`) calls the peer on a battery of
(pred, target) points.  A detector check (:class:`DetectorPeerCheck`) calls it on a small
deterministic battery of detection batches (:func:`battery`: 2 images, 8 or 20 anchors,
K = 3..5 classes, an image without boxes, tied IoUs, an image crowded with positives), with the
matched indices given (the same for both), and compares what its *kind* says:

- ``"loss"``: the peer returns ``({"total", parts...}, {head output: gradient})`` (autograd) and
  refloss's ``<loss>.value_and_grad(targets, head_outputs, anchors, matched_idxs, **params)`` the
  same; every part and every gradient is compared as ``max |peer - refloss| / max |peer|``;
- ``"matcher"``: the peer maps one IoU matrix (G, A) to (A,) matched indices, refloss's
  ``<loss>(iou_matrix, **params)`` too; one item per image, compared index by index.

Float64, bar :data:`RTOL` (relative).  An item that differs is *known* when the check's trace
explains it there: refloss with ``known_params`` agrees with the peer (e.g. SSD's mining of
more positives than negatives), or the peer raised ``known_raises`` (e.g. torchvision's
``Matcher`` on an image without boxes).  Anything else is a failure.  The peer adapters import
torch only when called; the battery is NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

RTOL = 1e-13  # float64: measured agreement with torchvision is <= 1e-15 (docs/retinanet-ssd.md)


# --- the battery ---------------------------------------------------------------------------------

def make_batch(seed, n_anchors=20, n_classes=4, boxes_per_image=(3, 0), ssd=False):
    """Anchors on a 0..16 square; ground truths near some anchors (so that some match above 0.5 and
    some fall in the 0.4..0.5 band); the second image without boxes by default.  ``ssd``: labels
    1..K-1 (class 0 is SSD's background), else 0..K-1.  Returns (targets, head_outputs, anchors)."""
    rng = np.random.default_rng(seed)
    anchors, targets = [], []
    for g in boxes_per_image:
        xy = rng.uniform(0, 12, (n_anchors, 2))
        wh = rng.uniform(1, 4, (n_anchors, 2))
        a = np.concatenate([xy, xy + wh], axis=1)
        pick = rng.choice(n_anchors, g, replace=False)
        jitter = rng.normal(0, 1, (g, 4)) * rng.uniform(0.1, 0.6, (g, 1))
        b = a[pick] + jitter
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 0.5)
        lo = 1 if ssd else 0
        targets.append({"boxes": b, "labels": rng.integers(lo, n_classes, g)})
        anchors.append(a)
    n = len(boxes_per_image)
    head = {"cls_logits": rng.normal(0, 1.5, (n, n_anchors, n_classes)),
            "bbox_regression": rng.normal(0, 0.3, (n, n_anchors, 4))}
    return targets, head, anchors


def battery() -> list:
    """[(name, targets, head_outputs, anchors)]: the detection batches every detector check runs on
    (labels 1..K-1, valid for RetinaNet and SSD alike)."""
    out = [(f"seed {s} K={k} boxes {g[0]}+{g[1]}", *make_batch(s, n_classes=k, boxes_per_image=g, ssd=True))
           for s, k, g in ((4, 4, (3, 0)), (10, 5, (3, 0)), (6, 3, (3, 2)))]
    # ties in IoU: ground truth 1 a copy of ground truth 0 with another label (a tie between ground
    # truths in every column), anchor 5 a copy of anchor 4 (a tie in every row), a ground truth equal
    # to an anchor (IoU exactly 1)
    targets, head, anchors = make_batch(3, n_classes=3, boxes_per_image=(3, 2), ssd=True)
    anchors[0][5] = anchors[0][4]
    targets[0]["boxes"][1] = targets[0]["boxes"][0]
    targets[0]["labels"][:2] = (1, 2)
    targets[0]["boxes"][2] = anchors[0][4]
    targets[1]["boxes"][0] = anchors[1][7]
    out.append(("ties K=3", targets, head, anchors))
    # crowded: 8 anchors, 6 ground truths each almost on its anchor: SSD wants 3 x 6 negatives and
    # has 2 (A <= 16: torch's sort keeps the positives in index order); the second image empty
    targets, head, anchors = make_batch(8, n_anchors=8, n_classes=4, boxes_per_image=(6, 0), ssd=True)
    targets[0]["boxes"] = anchors[0][:6] + 0.05
    out.append(("crowded K=4 6 boxes on 8 anchors", targets, head, anchors))
    return out


def retinanet_matching(boxes, anchors):
    """RetinaNet's matched indices: ``match_by_iou(iou, 0.5, 0.4, allow_low_quality_matches=True)``,
    all -1 for an image without boxes (as torchvision's RetinaNet.compute_loss)."""
    from .._matching import match_by_iou
    from .._retinanet_ssd import _iou_matrix

    return match_by_iou(_iou_matrix(boxes, anchors), 0.5, 0.4, True) if len(boxes) else np.full(len(anchors), -1)


def ssd_matching(boxes, anchors):
    """SSD's: torchvision's SSDMatcher(0.5) rule (``ssd_match``), all -1 for an image without boxes."""
    from .._retinanet_ssd import _iou_matrix, ssd_match

    return ssd_match(_iou_matrix(boxes, anchors), 0.5) if len(boxes) else np.full(len(anchors), -1)


MATCHINGS = {"retinanet": retinanet_matching, "ssd": ssd_matching}


# --- torchvision adapters (torch imported when called) ---------------------------------------------

def torch_inputs(targets, head, anchors, matched, dtype=None):
    """The four compute_loss arguments as torch tensors (head outputs with requires_grad)."""
    import torch

    dtype = dtype or torch.float64
    t = [{"boxes": torch.tensor(d["boxes"], dtype=dtype), "labels": torch.tensor(d["labels"], dtype=torch.int64)}
         for d in targets]
    h = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in head.items()}
    a = [torch.tensor(x, dtype=dtype) for x in anchors]
    m = [torch.tensor(x, dtype=torch.int64) for x in matched]
    return t, h, a, m


def tv_matches(targets, anchors, matcher):
    """matched_idxs as torchvision's models compute them (an image without boxes: all -1)."""
    import torch
    from torchvision.ops import box_iou

    out = []
    for d, a in zip(targets, anchors):
        if len(d["boxes"]) == 0:
            out.append(np.full(len(a), -1, np.int64))
        else:
            out.append(matcher(box_iou(torch.tensor(d["boxes"]), torch.tensor(a))).numpy())
    return out


def _backward(parts, h):
    total = parts["classification"] + parts["bbox_regression"]
    total.backward()
    return ({k: v.item() for k, v in parts.items()} | {"total": total.item()},
            {k: v.grad.numpy() for k, v in h.items()})


def tv_retinanet(targets, head, anchors, matched, loss_type="l1", dtype=None):
    """torchvision's RetinaNetHead.compute_loss: ({"total", parts} as floats, {head output: grad})."""
    from torchvision.models.detection.retinanet import RetinaNetHead

    net = RetinaNetHead(1, 1, head["cls_logits"].shape[2])
    net.regression_head._loss_type = loss_type
    t, h, a, m = torch_inputs(targets, head, anchors, matched, dtype)
    return _backward(net.compute_loss(t, h, a, m), h)


def tv_ssd(targets, head, anchors, matched, dtype=None, neg_to_pos_ratio=3.0):
    """torchvision's SSD.compute_loss, on an object with the attributes it reads (BoxCoder weights
    (10, 10, 5, 5), neg_to_pos_ratio 3 unless given)."""
    from types import SimpleNamespace

    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.ssd import SSD

    ssd = SimpleNamespace(box_coder=det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)),
                          neg_to_pos_ratio=neg_to_pos_ratio)
    t, h, a, m = torch_inputs(targets, head, anchors, matched, dtype)
    return _backward(SSD.compute_loss(ssd, t, h, a, m), h)


def tv_matcher(high, low, allow_low_quality_matches):
    """A detector-check ``make``: torchvision's det_utils.Matcher on one IoU matrix (NumPy in, out)."""
    def make():
        import torch
        from torchvision.models.detection import _utils as det_utils

        matcher = det_utils.Matcher(high, low, allow_low_quality_matches=allow_low_quality_matches)
        return lambda iou: matcher(torch.from_numpy(np.array(iou))).numpy()

    return make


def rel(a, b) -> float:
    """max |a - b| / max |b| (absolute where b is all 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale else float(np.max(np.abs(a - b), initial=0.0))


# refloss.<name> -> the module defining it (looked up at each call: this package does not import refloss's root)
DEFINED_IN = {"retinanet_loss": "refloss._retinanet_ssd", "ssd_loss": "refloss._retinanet_ssd",
              "match_by_iou": "refloss._matching"}


def refloss_function(name: str):
    """The function ``refloss.<name>`` of a detector check."""
    import importlib

    if name not in DEFINED_IN:
        raise ValueError(f"loss: no detector check for refloss.{name}; known: {', '.join(DEFINED_IN)}")
    return getattr(importlib.import_module(DEFINED_IN[name]), name)


# --- the kinds ------------------------------------------------------------------------------------

class _LossKind:
    """Whole losses: one item per batch; total, parts and the gradients of the total."""

    @staticmethod
    def items(check, batches):
        matching = MATCHINGS[check.matching]
        for name, targets, head, anchors in batches:
            matched = [matching(d["boxes"], a) for d, a in zip(targets, anchors)]
            yield name, (targets, head, anchors, matched)

    @staticmethod
    def reference(check, inputs, params):
        result, grads = refloss_function(check.loss).value_and_grad(*inputs, **params)
        values = {"total": float(result.total)} | {k: float(v) for k, v in result.parts.items()}
        return values, grads

    @staticmethod
    def compare(got, want) -> dict:
        (values, grads), (ref_values, ref_grads) = got, want
        out = {k: rel(ref_values[k], v) for k, v in values.items()}
        return out | {f"d {k}": rel(ref_grads[k], g) if ref_grads[k].shape == g.shape else float("inf")
                      for k, g in grads.items()}


class _MatcherKind:
    """Matching: one item per image (its IoU matrix, refloss's IoU of its boxes and anchors)."""

    @staticmethod
    def items(check, batches):
        from .._retinanet_ssd import _iou_matrix

        for name, targets, _, anchors in batches:
            for i, (d, a) in enumerate(zip(targets, anchors)):
                yield f"{name} / image {i}", (_iou_matrix(d["boxes"], a),)

    @staticmethod
    def reference(check, inputs, params):
        return refloss_function(check.loss)(*inputs, **params)

    @staticmethod
    def compare(got, want) -> dict:
        got, want = np.asarray(got), np.asarray(want)
        return {"indices": float(got.shape != want.shape or (got != want).any())}


KINDS = {"loss": _LossKind, "matcher": _MatcherKind}


# --- checks and results ---------------------------------------------------------------------------

@dataclass
class DetectorPeerCheck:
    """One peer function of a whole detector loss or of matching, against ``refloss.<loss>(**params)``
    on the detection battery (the module docstring says what is compared)."""

    peer: str
    function: str  # the peer call, as a user would write it
    loss: str  # the refloss function it should equal (refloss.<loss>)
    params: dict  # its parameters
    make: Callable  # () -> the peer: loss kind (targets, head, anchors, matched) -> (values, grads); matcher: iou -> idx
    kind: str = "loss"  # "loss" or "matcher"
    matching: str = "retinanet"  # loss kind: how the battery's matched indices are made (MATCHINGS)
    note: str = ""
    known: str = ""  # the explanation of a known difference (docs), where there is one
    known_params: dict = field(default_factory=dict)  # refloss's params that reproduce the peer where it differs
    known_raises: str = ""  # or: the peer's error message where it differs


@dataclass
class ItemResult:
    """One battery item (a batch, or one image's IoU matrix) of a :class:`DetectorResult`."""

    name: str
    errors: dict  # component -> relative difference (matcher: 1 where any index differs)
    status: str  # "agrees", "known" (traced), "differs"
    raised: str = ""  # the peer's error


@dataclass
class DetectorResult:
    """What :func:`run_check` found: one :class:`ItemResult` per battery item."""

    check: DetectorPeerCheck
    items: list = field(default_factory=list)
    error: str = ""  # the adapter or refloss raised outside the items

    @property
    def status(self) -> str:
        """"agrees", "known" (every difference traced), "differs" or "error"."""
        if self.error:
            return "error"
        got = {r.status for r in self.items}
        return "differs" if "differs" in got else "known" if "known" in got else "agrees"

    @property
    def ok(self) -> bool:
        return self.status == "agrees"

    def worst(self, known=False) -> dict:
        """component -> the largest difference over the items that agree (``known``: over the known ones)."""
        out = {}
        for r in self.items:
            if (r.status == "known") == known:
                for k, v in r.errors.items():
                    out[k] = max(out.get(k, 0.0), v)
        return out

    def names(self, status: str) -> list:
        return [r.name for r in self.items if r.status == status]


def run_check(check: DetectorPeerCheck, batches=None, rtol: float = RTOL) -> DetectorResult:
    """Run one detector check on ``batches`` (default: :func:`battery`)."""
    kind = KINDS[check.kind]
    res = DetectorResult(check)
    try:
        peer = check.make()
        for name, inputs in kind.items(check, battery() if batches is None else batches):
            try:
                got = peer(*inputs)
                raised = ""
            except Exception as e:  # noqa: BLE001 - a peer that raises on an item is a finding
                got, raised = None, f"{type(e).__name__}: {e}"
            want = kind.reference(check, inputs, check.params)
            errors = kind.compare(got, want) if got is not None else {}
            if got is not None and all(v <= rtol for v in errors.values()):
                status = "agrees"
            elif raised:
                status = "known" if check.known_raises and check.known_raises in raised else "differs"
            elif check.known_params:
                traced = kind.compare(got, kind.reference(check, inputs, check.params | check.known_params))
                status = "known" if all(v <= rtol for v in traced.values()) else "differs"
            else:
                status = "differs"
            res.items.append(ItemResult(name, errors, status, raised))
    except Exception as e:  # noqa: BLE001
        res.error = f"{type(e).__name__}: {e}"
    return res


def _fmt(errors: dict) -> str:
    return ", ".join(f"{k} {v:.2g}" for k, v in errors.items())


def summary(res: DetectorResult) -> str:
    """One line: what agreed, with the worst differences, and what was traced or differs."""
    if res.error:
        return f"error: {res.error}"
    agree = res.names("agrees")
    if res.check.kind == "matcher":
        line = f"indices equal on {len(agree)} of {len(res.items)} images"
    else:
        line = f"{len(agree)} of {len(res.items)} batches agree (worst rel: {_fmt(res.worst())})"
    known, bad = res.names("known"), res.names("differs")
    if known:
        traced = {r.name: r for r in res.items if r.status == "known"}
        line += "; known difference at " + "; ".join(
            n + (f" (rel {_fmt({k: v for k, v in traced[n].errors.items() if v})})" if traced[n].errors else
                 " (peer raised)") for n in known)
    if bad:
        worst = {r.name: r for r in res.items if r.status == "differs"}
        line += "; DIFFERS at " + "; ".join(f"{n} ({worst[n].raised or _fmt(worst[n].errors)})" for n in bad)
    return line
