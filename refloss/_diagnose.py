"""What ``check_loss`` says an implementation computes instead: its diagnoses (NumPy only).

A diagnosis is ``(code, text)``: the code is stable (tests, tools and people key on it), the
text says what was found at these inputs.  :data:`CODES` lists every code with its meaning and
the losses it applies to (the table in :mod:`refloss.testing`'s docstring and the README).

Two sources, both judged from the implementation's *behaviour* on the battery (its values and
gradients, where they are NaN and what those inputs have in common), never from its source:

* **variants** the loss's derivation declares (``loss.info.variants``, generated from
  ``Variant(code, ...)`` in ``derivations/``): this loss with other parameters, a formula
  generated next to it, or another refloss loss; and refloss's own float32 kernel
  (``float32_inside``).  An implementation that agrees with one (values and gradients at the
  check's tolerances) is given its code.
* **recognisers** (:data:`RECOGNISERS`), for what refloss does not implement, each saying which
  families or box forms it applies to (a box loss's form, e.g. ("CIoU", "loss"), is found by
  evaluating the refloss loss on a few probe boxes, not from its name): *patterns* (NaN at
  identical boxes, NaN gradients with right values, digits lost for confident logits) claim the
  points whose failures they explain; *formulas* (an eps placement, another loss of the same
  name) are small NumPy evaluations of the alternative.

An alternative (variant or formula) explains the failures left by the patterns when, wherever
it differs from refloss, the implementation agrees with it (formulas: and is clearly closer to
it than to refloss where values failed); points where it agrees with refloss say nothing about
it.  Of those that explain, the one leaving fewest failures over comes first, then the
patterns, then ``unexplained`` for what is left over (``convention_only`` where the failures
are all gradients at convention points).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Evidence", "Recogniser", "RECOGNISERS", "CODES", "BOX_FORMS", "diagnose", "box_values",
           "extended_iou_loss"]


@dataclass
class Evidence:
    """What check_loss measured: the battery, the implementation's and refloss's results, the
    failures, and how they were compared (``compare`` is check_loss's comparison)."""

    ref: object  # the refloss Loss
    params: dict
    inputs: tuple  # float64 arrays, as the implementation saw them
    names: np.ndarray
    convention: np.ndarray
    got_v: np.ndarray
    got_g: object  # list of arrays, (list, error estimates) for finite differences, or None
    want_v: np.ndarray
    want_g: object
    failures: list
    vtol: float
    gtol: float
    fw: str
    dt: str
    compare: Callable
    float32_vtol: float = 2e-4  # the value tolerance of float32 checks (float32_inside is judged at it)
    claimed: np.ndarray = field(default=None)  # points a pattern explained

    def __post_init__(self):
        if self.want_g is not None:
            self.want_g = list(self.want_g)  # a tuple of gradients is (gradients, error estimates)
        if self.claimed is None:
            self.claimed = np.zeros(len(self.names), bool)

    @property
    def n(self) -> int:
        return len(self.names)

    def failing_rows(self, values_only=False) -> np.ndarray:
        rows = np.zeros(self.n, bool)
        for f in self.failures:
            if not values_only or f.component.startswith("value"):
                rows[f.index] = True
        return rows

    def asked(self, name):
        """The value of parameter ``name`` checked (the loss's default where not given)."""
        if name in self.params:
            return self.params[name]
        return next((p.default for p in self.ref.params if p.name == name), None)


# ------------------------------------------------------------------ the variants refloss implements


def _variant_candidates(ev: Evidence):
    """(code, text, compute, vtol, gtol or None, everywhere) of the variants the derivation declares
    (other parameters first, then formulas, then other losses), then float32 arithmetic inside
    (which applies at every point: ``everywhere``)."""
    from ._loss import loss_named

    ref, params = ev.ref, ev.params
    order = {"params": 0, "kernel": 1, "loss": 2}
    out = []
    # values with float32 rounding at ordinary points (float32 arithmetic inside, or a float32 result of float64
    # inputs): a variant is judged at float32's value tolerance, and says so (a float64 torchvision GIoU returned as
    # float32 was "unexplained": its eps variant missed the float64 tolerance by float32's rounding)
    noisy = _float32_values(ev)
    vtol = max(ev.vtol, ev.float32_vtol) if noisy else ev.vtol
    rounded = ("; its values carry float32 rounding (a float32 result, or float32 arithmetic inside)" if noisy
               else "")
    for v in ref.info.variants:
        if v.params is not None:
            if all(params.get(k, _MISSING) == val for k, val in v.params.items()):
                continue  # the parameters checked already
            what = {**params, **v.params}
            checked = ", ".join(f"{k}={ev.asked(k)!r}" for k in v.params)
            text = f"agrees with refloss's {ref.name} with {v.text}, not with the {checked} checked{rounded}"
            out.append((order["params"], v.code, text,
                        lambda what=what: ref.value_and_grad(*ev.inputs, **what), vtol, ev.gtol, False))
        elif v.kernel is not None:
            out.append((order["kernel"], v.code, f"agrees with refloss's {ref.name} with {v.text}{rounded}",
                        lambda k=v.kernel: (_variant_values(ref, k, ev.inputs, params), None), vtol, None, False))
        else:
            def other(name=v.loss):
                loss = loss_named(name)
                shared = {p.name for p in loss.params}
                return loss.value_and_grad(*ev.inputs, **{k: val for k, val in params.items() if k in shared})

            out.append((order["loss"], v.code, f"agrees with refloss.{v.loss} instead: {v.text}{rounded}", other,
                        vtol, ev.gtol, False))
    out = [c[1:] for c in sorted(out, key=lambda c: c[0])]
    if ev.dt == "float64" and _float32_noise(ev):
        out.append(("float32_inside", "agrees with refloss's {0} with float32 arithmetic inside (values agree with "
                    "refloss's float32 kernel at float32 tolerance)".format(ref.name),
                    lambda: (ref.value_and_grad(*ev.inputs, **{**params, "dtype": np.float32})[0], None),
                    ev.float32_vtol, None, True))
    return out


_MISSING = object()


def _float32_noise(ev: Evidence) -> bool:
    """Whether the values carry float32 rounding at ordinary points: off by more than 2^-30
    relative at a quarter of the points or more (a formula that loses digits only somewhere,
    e.g. for confident logits, is not float32 inside)."""
    got = np.asarray(ev.got_v, np.float64).reshape(ev.n, -1)
    want = np.asarray(ev.want_v, np.float64).reshape(ev.n, -1)
    with np.errstate(invalid="ignore"):
        rel = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    return bool(np.mean(np.nanmax(np.where(np.isnan(rel), np.inf, rel), axis=1) > 2.0**-30) >= 0.25)


def _float32_values(ev: Evidence) -> bool:
    """Whether a float64 check's values are float32 numbers (a float32 result of float64 inputs, or float32
    arithmetic inside) where refloss's are not: at 95 % of the finite points or more, against half of refloss's
    at most."""
    if ev.dt != "float64":
        return False
    got = np.asarray(ev.got_v, np.float64).ravel()
    want = np.asarray(ev.want_v, np.float64).ravel()
    fin = np.isfinite(got) & np.isfinite(want)
    if fin.sum() < 8:
        return False
    got, want = got[fin], want[fin]
    return bool(np.mean(got.astype(np.float32) == got) >= 0.95 and np.mean(want.astype(np.float32) == want) <= 0.5)


def _rounding_only(ev: Evidence, rows) -> np.ndarray:
    """The points of the mask ``rows`` whose failures are values alone, within float32's value tolerance of
    refloss's."""
    got = np.asarray(ev.got_v, np.float64).reshape(ev.n, -1)
    want = np.asarray(ev.want_v, np.float64).reshape(ev.n, -1)
    with np.errstate(invalid="ignore"):
        close = (np.abs(got - want) <= ev.float32_vtol * np.maximum(1.0, np.abs(want))).all(axis=1)
    gradient = np.zeros(ev.n, bool)
    for f in ev.failures:
        if not f.component.startswith("value"):
            gradient[f.index] = True
    return rows & close & ~gradient


def _variant_values(ref, code: str, inputs, params) -> np.ndarray:
    """The values of the variant formula ``code`` the derivation generated next to the loss
    (plain Python, float64), point by point."""
    fn = getattr(ref._module("scalar"), f"variant_{code}_f64")
    args = ref.kernel_args(params)
    with np.errstate(all="ignore"):  # NumPy scalars: x/0 -> inf as in the compiled kernels
        return np.array([float(fn(*(v for a in inputs for v in np.atleast_1d(np.float64(a[i]))), *args))
                         for i in range(len(inputs[0]))])


# ------------------------------------------------------------------ box formulas refloss does not implement

# the textbook formulas the box recognisers evaluate, as (form, shape): "loss" = 1 - metric, "metric",
# "log" = -ln IoU.  Which one a refloss loss is, is found from its values (:func:`box_form`), not its name
BOX_FORMS = (("IoU", "loss"), ("IoU", "metric"), ("IoU", "log"), ("GIoU", "loss"), ("GIoU", "metric"),
             ("DIoU", "loss"), ("DIoU", "metric"), ("CIoU", "loss"), ("CIoU", "metric"), ("EIoU", "loss"),
             ("SIoU", "loss"))
# overlapping, not nested, of different sizes and aspect ratios: every form gives other values here
_PROBE_PRED = np.array([[0.0, 0.0, 2.0, 1.0], [0.3, -0.2, 1.1, 2.5], [-1.0, 0.5, 0.5, 0.9], [2.0, 3.0, 5.5, 3.7]])
_PROBE_TARGET = np.array([[0.5, 0.2, 1.7, 2.2], [0.1, 0.4, 2.0, 1.0], [-0.4, 0.2, 0.3, 1.6], [2.6, 2.5, 4.0, 4.4]])
_FORM_OF: dict = {}


def box_form(loss) -> tuple:
    """(form, shape) of BOX_FORMS whose textbook values (at the loss's default eps) are the refloss
    box loss's own on a few probe pairs, or (None, None) (e.g. Focal-EIoU): found once per loss."""
    if loss.name not in _FORM_OF:
        found = (None, None)
        # (a loss with a required parameter, MPDIoU's image_size, has no default values to compare)
        if loss.info.family == "box" and loss.info.layouts[:2] == ("xyxy", "xyxy") \
                and not any(p.kind == "size" for p in loss.params):
            eps = next((float(p.default) for p in loss.params if p.name == "eps"), 0.0)
            with np.errstate(all="ignore"):
                mine = np.asarray(loss.value_and_grad(_PROBE_PRED, _PROBE_TARGET)[0], np.float64)
            for form, shape in BOX_FORMS:
                if np.allclose(box_values(_PROBE_PRED, _PROBE_TARGET, form, shape, eps), mine, rtol=1e-12, atol=0):
                    found = (form, shape)
                    break
        _FORM_OF[loss.name] = found
    return _FORM_OF[loss.name]


def box_values(pred, target, form: str, shape: str = "loss", eps: float = 0.0, *, size=(0.0, 0.0), union=None,
               c2=None, area=None, alpha=None, diagonal: str = "c2", floor: bool = False,
               iou_floor: float = 0.0) -> np.ndarray:
    """The textbook value of a box loss on xyxy boxes (float64), with each eps where a peer puts
    it: ``size`` (added to every box's width and height before areas and aspect ratios are
    formed), ``union`` (IoU = I / (U + union)), ``area`` (GIoU: (C - U) / (C + area)), ``c2``
    (rho^2 / (c^2 + c2)), ``alpha`` (v / (1 - IoU + v + alpha)); each defaults to ``eps``, as
    refloss places it.  ``floor``: the union and the enclosing area floored at theirs
    (max(U, union), max(C, area)) instead; ``iou_floor``: the IoU clamped below at it.
    ``diagonal="area"`` puts the enclosing box's area where its squared diagonal belongs."""
    if form == "SIoU":
        return siou_values(pred, target, eps)
    union, c2, area, alpha = (eps if e is None else e for e in (union, c2, area, alpha))
    plus = np.maximum if floor else np.add
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    with np.errstate(all="ignore"):
        wp, hp = p[:, 2] - p[:, 0] + size[0], p[:, 3] - p[:, 1] + size[1]
        wt, ht = t[:, 2] - t[:, 0] + size[0], t[:, 3] - t[:, 1] + size[1]
        iw = np.maximum(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0.0)
        ih = np.maximum(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0.0)
        inter = iw * ih
        u = wp * hp + wt * ht - inter
        iou = np.maximum(inter / plus(u, union), iou_floor)
        loss = 1 - iou
        cw = np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])
        ch = np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1])
        if form == "GIoU":
            enclosing = np.maximum(cw * ch, area) if floor else cw * ch + area
            loss = loss + ((enclosing - np.maximum(u, union)) if floor else (cw * ch - u)) / enclosing
        if form in ("DIoU", "CIoU", "EIoU"):
            rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) ** 2 + (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) ** 2) / 4
            d2 = cw * cw + ch * ch if diagonal == "c2" else cw * ch
            loss = loss + rho2 / (d2 + c2)
        if form == "CIoU":
            v = 4 / np.pi**2 * (np.arctan2(wt, ht) - np.arctan2(wp, hp)) ** 2
            loss = loss + np.where(v == 0, 0.0, v * v / (1 - iou + v + alpha))
        if form == "EIoU":
            loss = loss + (wp - wt) ** 2 / (cw * cw + eps) + (hp - ht) ** 2 / (ch * ch + eps)
        if shape == "metric":
            return 1 - loss
        return -np.log(iou) if shape == "log" else loss


def siou_values(pred, target, eps: float = 0.0, *, reward: bool = False, yolov6: bool = False,
                theta: float = 4.0) -> np.ndarray:
    """The SIoU loss (Gevorgyan, arXiv:2205.12740) on xyxy boxes (float64): 1 - IoU + (Delta + Omega) / 2,
    with refloss's eps (U + eps, c^2 + eps in rho, max(w, w_gt) + eps in omega; Delta = 0 at coincident
    centres); ``reward``: Delta = sum(1 - exp(+gamma rho)), mmdetection's default; ``yolov6``: YOLOv6's eps
    placement, which mmdetection copies: eps added to both centre offsets and both heights (the areas keep
    theirs), the enclosing sides clamped at eps (rho = (offset / max(c, eps))^2), none in omega, and the
    SIoU clamped to [-1, 1]."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    with np.errstate(all="ignore"):
        iw = np.maximum(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0.0)
        ih = np.maximum(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0.0)
        inter = iw * ih
        wp, hp = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        wt, ht = t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
        iou = inter / (wp * hp + wt * ht - inter + eps)
        cw = np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])
        ch = np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1])
        shift = eps if yolov6 else 0.0
        ox = (t[:, 0] + t[:, 2] - p[:, 0] - p[:, 2]) / 2 + shift
        oy = (t[:, 1] + t[:, 3] - p[:, 1] - p[:, 3]) / 2 + shift
        sigma = np.hypot(ox, oy)
        sin_a = np.abs(oy) / sigma
        x = np.where(sin_a <= np.sqrt(0.5), sin_a, np.abs(ox) / sigma)
        gamma = 1 + 2 * np.sin(np.arcsin(x) - np.pi / 4) ** 2  # 2 - Lambda
        if yolov6:
            rho = [(ox / np.maximum(cw, eps)) ** 2, (oy / np.maximum(ch, eps)) ** 2]
            hp, ht = hp + eps, ht + eps
        else:
            rho = [ox * ox / (cw * cw + eps), oy * oy / (ch * ch + eps)]
        sign = 1.0 if reward else -1.0
        distance = sum(1 - np.exp(sign * gamma * r) for r in rho)
        distance = np.where(sigma == 0, 0.0, distance)
        omega_eps = 0.0 if yolov6 else eps
        shape = sum((1 - np.exp(-np.abs(a - b) / (np.maximum(a, b) + omega_eps))) ** theta
                    for a, b in ((wp, wt), (hp, ht)))
        metric = iou - (distance + shape) / 2
        return 1 - (np.clip(metric, -1.0, 1.0) if yolov6 else metric)


def extended_iou_loss(pred, target, eps: float = 1e-7, smooth_point: float = 0.1) -> np.ndarray:
    """The Extended-IoU loss (Peng et al., 2021; libfacedetection, mmdetection's ``eiou_loss``):
    the intersection extended to boxes that do not overlap (with E the common top-left corner and
    I1 = max of the top-left corners, I2 = min of the bottom-right ones, it is
    (I2 - E)_x (I2 - E)_y + (min(I1, I2) - E)_x (min(I1, I2) - E)_y - (I1 - E)_x (max(I1, I2) - E)_y
    - (max(I1, I2) - E)_x (I1 - E)_y, the plain intersection when the boxes overlap), x = 1 - I / (U + eps)
    with U = the two areas - I, then smooth L1 of x at ``smooth_point``."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    with np.errstate(all="ignore"):
        e = np.minimum(p[:, :2], t[:, :2])
        i1 = np.maximum(p[:, :2], t[:, :2])
        i2 = np.minimum(p[:, 2:], t[:, 2:])
        lo, hi = np.minimum(i1, i2), np.maximum(i1, i2)
        inter = ((i2[:, 0] - e[:, 0]) * (i2[:, 1] - e[:, 1]) + (lo[:, 0] - e[:, 0]) * (lo[:, 1] - e[:, 1])
                 - (i1[:, 0] - e[:, 0]) * (hi[:, 1] - e[:, 1]) - (hi[:, 0] - e[:, 0]) * (i1[:, 1] - e[:, 1]))
        areas = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
        x = 1 - inter / (areas - inter + eps)
        return np.where(x < smooth_point, 0.5 * x * x / smooth_point, x - 0.5 * smooth_point)


def _eps_values(ev: Evidence) -> list:
    """The eps values to try: the one checked, then those the derivation declares as peers'."""
    asked = ev.asked("eps")
    declared = [v.params["eps"] for v in ev.ref.info.variants if v.params and "eps" in v.params]
    out = [] if asked is None else [float(asked)]
    return out + [float(e) for e in declared if e not in out]


def _box_form(ev):
    return box_form(ev.ref)


def _eps_in_box_size(ev):
    form, shape = _box_form(ev)
    for e in _eps_values(ev):
        if e <= 0:
            continue
        for where, size in (("heights", (0.0, e)), ("widths and heights", (e, e))):
            yield (f"eps={e:g} is added to the boxes' {where} (h = y2 - y1 + eps) before areas and aspect ratios are "
                   f"formed, besides the union and the enclosing box (as ultralytics and YOLOv5 bbox_iou with "
                   f"xyxy boxes): no eps refloss implements reproduces that; the error is ~eps/h, large for small "
                   f"boxes", lambda p, t, e=e, size=size: box_values(p, t, form, shape, e, size=size))


def _eps_as_floor(ev):
    form, shape = _box_form(ev)
    for e in _eps_values(ev):
        if e <= 0:
            continue
        for clamp, what in ((0.0, ""), (e, ", the IoU also clamped below at eps (mmdetection's iou_loss)")):
            yield (f"eps={e:g} is a floor, not an addend, as in mmdetection's bbox_overlaps: max(U, eps) for the union "
                   f"(and max(C, eps) for GIoU's enclosing area){what}; it differs from refloss's U + eps for boxes "
                   f"whose areas are near eps", lambda p, t, e=e, clamp=clamp: box_values(
                       p, t, form, shape, e, floor=True, iou_floor=clamp))


def _siou_yolov6(ev):
    for e in _eps_values(ev):
        if e <= 0:
            continue
        for reward in (False, True):
            sign = ("and the distance term a reward, 2 - e^(gamma rho_x) - e^(gamma rho_y) with gamma = 2 - Lambda > 0 "
                    "(mmdetection's default neg_gamma=False, siou_distance_reward)" if reward else
                    "with the paper's distance cost")
            yield (f"SIoU with YOLOv6's eps placement (eps={e:g}; mmdetection's siou_loss copies it): eps added to both "
                   f"centre offsets and both heights, the enclosing box's sides clamped at eps, the SIoU clamped to "
                   f"[-1, 1], {sign}; no refloss eps reproduces the placement, the error is ~eps over the boxes' size",
                   lambda p, t, e=e, reward=reward: siou_values(p, t, e, reward=reward, yolov6=True))


def _eps_in_c2_only(ev):
    form, shape = _box_form(ev)
    for e in _eps_values(ev):
        if e <= 0:
            continue
        yield (f"eps={e:g} is added to the enclosing diagonal c^2 only, not to the union (IoU = I / U; as "
               f"torchvision's pairwise distance_box_iou and complete_box_iou): no eps refloss implements reproduces "
               f"that, and the result depends on the boxes' scale",
               lambda p, t, e=e: box_values(p, t, form, shape, e, union=0.0, area=0.0))


def _eps_ignored_in_part(ev):
    form, shape = _box_form(ev)
    asked = float(ev.asked("eps") or 0.0)
    for e in _eps_values(ev):
        if e == asked:
            continue
        yield (f"the eps asked for (eps={asked:g}) is ignored in the IoU and distance terms, which use eps={e:g}; "
               f"alpha uses the eps asked for (as torchvision's complete_box_iou_loss, whose DIoU part is called "
               f"without eps): the loss depends on the boxes' scale where eps={e:g} shows",
               lambda p, t, e=e: box_values(p, t, form, shape, e, alpha=asked))


def _area_for_diagonal(ev):
    form, shape = _box_form(ev)
    for e in _eps_values(ev):
        yield (f"the distance term divides by the enclosing box's area cw*ch (eps={e:g}) where DIoU has its squared "
               f"diagonal c^2 = cw^2 + ch^2", lambda p, t, e=e: box_values(p, t, form, shape, e, diagonal="area"))


def _extended_iou(ev):
    for e in _eps_values(ev):
        yield ("agrees with the Extended-IoU loss (Peng et al. 2021, libfacedetection; mmdetection's eiou_loss: smooth "
               f"L1 at 0.1 of 1 - IoU with the intersection extended to disjoint boxes, eps={e:g}), not the "
               "Efficient-IoU loss of Zhang et al. (arXiv:2101.08158) that refloss.eiou_loss implements: the names "
               "collide", lambda p, t, e=e: extended_iou_loss(p, t, eps=e))


def _formula_explains(ev: Evidence, fn):
    """Whether the alternative ``fn(pred, target)`` (values, float64) explains the failures (see
    :func:`_explains`): with value failures by its values (agreement at 2 x the value tolerance,
    and at every explained point clearly closer, half the distance, to the implementation than
    refloss is); with gradient failures only by its gradients (central differences of ``fn``,
    judged only where their own error is below a tenth of the tolerance)."""
    alt_v = np.asarray(fn(*ev.inputs[:2]), np.float64)
    if (ev.failing_rows(values_only=True) & ~ev.claimed).any():
        return _explains(ev, alt_v, None, 2 * ev.vtol, None, closer=True)
    if ev.got_g is None:
        return None
    fds = _formula_gradients(ev, fn)
    unreliable = np.zeros(ev.n, bool)
    for (_, est), w in zip(fds, ev.want_g):
        scale = np.maximum(np.nanmax(np.abs(np.asarray(w, np.float64).reshape(ev.n, -1)), axis=1, initial=0.0), 1e-3)
        unreliable |= ~(est.reshape(ev.n, -1).max(axis=1) <= 0.1 * ev.gtol * scale)
    return _explains(ev, alt_v, [g for g, _ in fds], 2 * ev.vtol, 2 * ev.gtol, closer=True,
                     ignore=unreliable | ev.convention)


def _explains(ev: Evidence, alt_v, alt_g, vtol, gtol, closer=False, everywhere=False, ignore=None):
    """Whether an alternative (values, and gradients or None: values only) explains the failures:
    wherever it differs from refloss (at the check's tolerances; ``everywhere``: at every point),
    the implementation agrees with it (at ``vtol``, ``gtol``; at 100 times that at one failing
    point in ten at most), and some failing point is such a place.  Points where the alternative and
    refloss agree say nothing about it, nor do the points in ``ignore``.  Returns None, or the mask
    of the failing points it leaves over (those it was judged at)."""
    keep = ~ev.claimed if ignore is None else ~ev.claimed & ~ignore
    rows = np.nonzero(keep)[0]
    if not len(rows):
        return None
    n = ev.n
    alt_v = np.asarray(alt_v, np.float64).reshape(n, -1)
    if ev.got_g is None:  # values only were checked
        alt_g = None
    names, inputs = ev.names[rows], tuple(a[rows] for a in ev.inputs)

    def sub(g):
        return None if g is None else [np.asarray(x)[rows] for x in g]

    def mask(failures):
        m = np.zeros(n, bool)
        m[rows[[f.index for f in failures]]] = True
        return m

    if everywhere:
        differs = keep.copy()
    else:
        differs = mask(ev.compare(names, inputs, ev.ref.grad_inputs, alt_v[rows], sub(alt_g),
                                  np.asarray(ev.want_v)[rows], None if alt_g is None else sub(ev.want_g), ev.vtol,
                                  ev.gtol))
    got_g = None if alt_g is None else ev.got_g
    if isinstance(got_g, tuple):  # finite differences of the implementation: their error counts
        alt_g, got_g = (sub(alt_g), [np.asarray(e)[rows] for e in got_g[1]]), sub(got_g[0])
    else:
        alt_g, got_g = sub(alt_g), sub(got_g)

    def off(scale):
        return mask(ev.compare(names, inputs, ev.ref.grad_inputs, alt_v[rows], alt_g, np.asarray(ev.got_v)[rows],
                               got_g, scale * vtol, None if gtol is None else scale * gtol))

    failing = ev.failing_rows(values_only=got_g is None) & ~ev.claimed
    off_strict = off(1.0) & differs
    explained = failing & differs & ~off_strict
    # agreement everywhere the alternative differs from refloss: to 100 x the tolerance, and to it at
    # nine in ten failing points (a textbook form of the alternative loses digits where refloss's
    # would, e.g. Focal-L1 of 1 - IoU near identical boxes: left over, not held against it)
    if (off(100.0) & differs).any() or not explained.any() or (off_strict & failing).sum() > 0.1 * (
            failing & differs).sum():
        return None
    if closer:
        got = np.asarray(ev.got_v, np.float64).reshape(n, -1)
        want = np.asarray(ev.want_v, np.float64).reshape(n, -1)
        bad = explained & ev.failing_rows(values_only=True)
        if bad.any() and not (_distance(got, alt_v)[bad] <= 0.5 * _distance(got, want)[bad]).all():
            return None
    return failing & ~explained & (True if ignore is None else ~ignore)  # unjudged points are not held over


def _distance(a, b) -> np.ndarray:
    """|a - b|, 0 where both are NaN or equal (infinities), inf where only one is NaN."""
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
        d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
        return np.where(a == b, 0.0, np.where(np.isnan(d), np.inf, d))


def _formula_gradients(ev: Evidence, fn) -> list:
    """[(gradient, error estimate)] of the box formula ``fn`` w.r.t. pred and target: central
    differences at 1e-4 of the smallest box extent (the formula is float64 and smooth away from
    ties: Richardson extrapolation leaves ~1e-16 there), in whole ULPs of the largest coordinate."""
    from . import _fd, _measures

    p, t = (np.asarray(a, np.float64) for a in ev.inputs[:2])
    ext = np.concatenate([p[:, 2:] - p[:, :2], t[:, 2:] - t[:, :2]], axis=1)
    h = 1e-4 * np.where(ext > 0, ext, np.inf).min(axis=1)
    h = np.where(np.isfinite(h), h, 1e-6)
    quantum = _measures.ulp(np.maximum(np.abs(p).max(axis=1), np.abs(t).max(axis=1)), np.float64)
    return [_fd.gradient(fn, [p, t], k, h, quantum=quantum) for k in (0, 1)]


# ------------------------------------------------------------------ patterns


def _nan_at_identical_boxes(ev):
    p, t = ev.inputs[:2]
    same = np.all(np.asarray(p) == np.asarray(t), axis=-1) if np.ndim(p) == 2 else np.zeros(ev.n, bool)
    rows = np.zeros(ev.n, bool)
    for f in ev.failures:
        if same[f.index] and not np.isfinite(f.got) and np.isfinite(f.expected):
            rows[f.index] = True
    if not rows.any():
        return None
    return (f"NaN at identical boxes ({int(rows.sum())} points), where the loss is defined: a 0/0 there, e.g. CIoU's "
            "alpha = v / (1 - IoU + v) with v = 0 and IoU = 1 (also with eps once 1 - IoU + eps rounds to 0, as in "
            "float32); refloss evaluates alpha*v as v^2 / ((1 - IoU) + v), 0 there", rows & ev.failing_rows())


def _nan_gradient_from_where(ev):
    value_rows = ev.failing_rows(values_only=True)
    got_v = np.asarray(ev.got_v, np.float64).reshape(ev.n, -1)
    rows = np.zeros(ev.n, bool)
    where = None
    for f in ev.failures:
        i = f.index
        if (not f.component.startswith("value") and np.isnan(f.got) and np.isfinite(f.expected)
                and not ev.convention[i] and not value_rows[i] and np.isfinite(got_v[i]).all()):
            rows[i] = True
            where = where or f
    if where is None:
        return None
    at = ", ".join(f"{n}={v}" for n, v in zip(ev.ref.inputs, where.inputs))
    return (f"NaN gradients where the value is right ({int(rows.sum())} points, e.g. {where.component} at {at}): a "
            "where/select whose untaken branch is NaN or infinite there (e.g. 0.5 * x**2 / beta at beta = 0): "
            "autograd multiplies that branch's NaN or infinite gradient by 0 and gets NaN; make the untaken branch "
            "finite (e.g. divide by a safe beta) or select the inputs before the arithmetic", rows)


def _vfl_abs_weight(ev):
    """Only d/dtarget differs, at q = 0, by the derivative of alpha |sigma(x) - q|^gamma's q:
    -gamma alpha sigma^(gamma - 1) softplus(x) (times BCE(x, 0) = softplus(x))."""
    alpha, gamma = ev.asked("alpha"), ev.asked("gamma")
    if alpha is None or gamma is None:  # (a classification loss without both: not this weight)
        return None
    alpha, gamma = float(alpha), float(gamma)
    rows, bad = np.zeros(ev.n, bool), np.zeros(ev.n, bool)
    for f in ev.failures:
        x, q = (float(np.asarray(v).reshape(-1)[0]) for v in f.inputs[:2])
        if f.component != "d/dtarget" or q != 0:
            bad[f.index] = True
            continue
        with np.errstate(all="ignore"):
            sigma = 0.5 * (1 + np.tanh(0.5 * x))
            extra = -gamma * alpha * sigma ** (gamma - 1) * np.logaddexp(0.0, x)
        if abs(f.got - (f.expected + extra)) <= 2 * ev.gtol * max(abs(f.got), abs(extra), 1e-300):
            rows[f.index] = True
        else:
            bad[f.index] = True
    rows &= ~bad
    if not rows.any() or bad.any():
        return None
    return (f"only d/dtarget differs, at q = 0 ({int(rows.sum())} points), by -gamma alpha sigma(x)^(gamma - 1) "
            "softplus(x): the negatives' weight is written alpha |sigma(x) - q|^gamma (mmdetection's varifocal_loss, "
            "PaddleDetection's PicoDet), equal to the paper's alpha p^gamma at q = 0, whose q-derivative autograd adds; "
            "values and d/dlogits agree", rows)


def _log_sigmoid_overflow(ev):
    x = np.abs(np.asarray(ev.inputs[0], np.float64))
    eps = float(np.finfo(ev.dt).eps)
    q = np.exp(-x)  # the probability of the other class, which a subtraction 1 - sigmoid(|x|) forms
    got = np.asarray(ev.got_v, np.float64)
    want = np.asarray(ev.want_v, np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.where(np.isfinite(got), np.abs(got - want), np.inf)
        lost = (err <= 16 * eps / q * np.maximum(1.0, np.abs(want))) | (~np.isfinite(got) & (q < 16 * eps))
    rows = ev.failing_rows() & ~ev.claimed
    if not rows.any() or not (ev.failing_rows(values_only=True) & rows).any():
        return None
    if not ((x[rows] >= 6.5) & lost[rows]).all():
        return None
    return (f"digits lost for confident logits only (|x| >= {x[rows].min():.3g}), by about eps*exp(|x|), and inf or "
            "NaN once exp(-|x|) is below eps: -log(sigmoid(x)) or -log(1 - sigmoid(x)) computed directly forms the "
            "other class's probability as 1 - sigmoid(|x|); use log-sigmoid (-log sigmoid(x) = softplus(-x), "
            "binary_cross_entropy_with_logits)", rows)


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Recogniser:
    """One diagnosis refloss has no variant for: its ``code``, what it means and the losses it
    applies to (for the docs), and ``recognise(ev)``: for a pattern, ``(text, points it
    explains)`` or None; for a formula, the candidates ``(text, fn(pred, target) -> values)`` to
    try in order."""

    code: str
    kind: str  # "pattern" or "formula"
    meaning: str
    applies: str
    recognise: Callable
    families: tuple = ()  # applies to these families (empty: any) ...
    forms: tuple = ()  # ... and, for box formulas, to the losses whose box_form is one of these (form, shape)
    frameworks: tuple = ()  # only for implementations differentiated this way (empty: any)
    dtypes: tuple = ()

    def applies_to(self, ev: Evidence) -> bool:
        if self.frameworks and ev.fw not in self.frameworks:
            return False
        if self.dtypes and ev.dt not in self.dtypes:
            return False
        if self.forms:
            return _box_form(ev) in self.forms
        return not self.families or ev.ref.info.family in self.families


def _forms(*names) -> tuple:
    return tuple(f for f in BOX_FORMS if f[0] in names)


RECOGNISERS = (
    Recogniser("nan_at_identical_boxes", "pattern",
               "NaN (value or gradient) where refloss's is finite, at identical boxes only: a 0/0 such as CIoU's "
               "alpha = v / (1 - IoU + v)", "box losses", _nan_at_identical_boxes, families=("box", "yolo")),
    Recogniser("nan_gradient_from_where", "pattern",
               "NaN gradients where the value is right and finite (away from convention points): a where whose "
               "untaken branch is NaN or infinite, e.g. textbook smooth L1 at beta = 0",
               "every loss (autograd: torch, jax)", _nan_gradient_from_where, frameworks=("torch", "jax")),
    Recogniser("log_sigmoid_overflow", "pattern",
               "values off by about eps*exp(|x|), or inf/NaN, at confident logits only: -log(sigmoid(x)) or "
               "-log(1 - sigmoid(x)) computed directly", "bce_with_logits, sigmoid_focal_loss", _log_sigmoid_overflow,
               families=("classification",)),
    Recogniser("vfl_abs_weight", "pattern",
               "only d/dtarget differs, at q = 0, by -gamma alpha sigma^(gamma - 1) softplus(x): the Varifocal "
               "negatives' weight written alpha |sigma - q|^gamma (mmdetection, PicoDet), differentiated in q",
               "Varifocal", _vfl_abs_weight, families=("classification",)),
    Recogniser("eps_in_box_size", "formula",
               "values of the textbook formula with eps added to the boxes' heights (or widths and heights), as "
               "ultralytics/YOLOv5 bbox_iou", "iou, giou, diou, ciou, eiou (metrics and losses)", _eps_in_box_size,
               forms=_forms("IoU", "GIoU", "DIoU", "CIoU", "EIoU")),
    Recogniser("siou_yolov6_eps", "formula",
               "values of SIoU with YOLOv6's eps placement (mmdetection's siou_loss): eps added to the centre "
               "offsets and the heights, the enclosing sides clamped at eps, the SIoU clamped to [-1, 1]; with the "
               "paper's distance cost or mmdetection's default reward", "the SIoU loss", _siou_yolov6,
               forms=(("SIoU", "loss"),)),
    Recogniser("eps_as_floor", "formula",
               "values of the textbook IoU/GIoU with the union (and enclosing area) floored at eps, max(U, eps), "
               "instead of U + eps, the IoU also clamped at eps or not (mmdetection's bbox_overlaps and iou_loss)",
               "iou, giou (metrics and losses)", _eps_as_floor, forms=_forms("IoU", "GIoU")),
    Recogniser("eps_in_c2_only", "formula",
               "values of DIoU/CIoU with eps in the enclosing diagonal c^2 but not in the union (torchvision's "
               "pairwise distance_box_iou, complete_box_iou)", "diou, ciou (metrics and losses)", _eps_in_c2_only,
               forms=_forms("DIoU", "CIoU")),
    Recogniser("eps_ignored", "formula",
               "the eps given is not the one used (also: refloss's variant with another eps); here: the IoU and "
               "distance terms use a fixed eps, alpha the one given (torchvision's complete_box_iou_loss)",
               "box losses with eps; the partial form: ciou, ciou_loss", _eps_ignored_in_part, forms=_forms("CIoU")),
    Recogniser("enclosing_area_for_diagonal", "formula",
               "DIoU/CIoU dividing rho^2 by the enclosing box's area where its squared diagonal belongs",
               "diou, ciou, eiou (metrics and losses)", _area_for_diagonal, forms=_forms("DIoU", "CIoU", "EIoU")),
    Recogniser("extended_iou_not_efficient_iou", "formula",
               "values of the Extended-IoU loss (Peng et al. 2021; mmdetection's eiou_loss), not Zhang et al.'s "
               "Efficient-IoU: the names collide", "the EIoU loss", _extended_iou, forms=(("EIoU", "loss"),)),
)

# every code a diagnosis can carry: code -> (meaning, losses it applies to); the variants' codes are
# declared in derivations/ (Variant(code, ...)) and checked against this table by the tests
CODES = {
    **{r.code: (r.meaning, r.applies) for r in RECOGNISERS},
    "float32_inside": ("values agree with refloss's float32 kernel (at float32 tolerance) but not with float64, with "
                       "float32 rounding at ordinary points: the inputs are cast to float32 inside", "every loss"),
    "eps_ignored": ("agrees with refloss at another eps than the one checked (the eps given is ignored, or a fixed "
                    "one used); also the partial form above", "box losses with eps"),
    "ciou_alpha_grad": ("alpha differentiated (the exact derivative), where alpha_grad=False was checked",
                        "ciou, ciou_loss"),
    "ciou_alpha_constant": ("alpha a constant (no_grad, the official code), where alpha_grad=True was checked",
                            "ciou, ciou_loss"),
    "ciou_alpha_gate": ("alpha = 0 unless IoU > 0.5 (mmdetection, YOLACT)", "ciou, ciou_loss"),
    "ciou_darknet_gradient": ("the DIoU paper's dv/dw, dv/dh without the 1/(w^2 + h^2) factor (darknet)",
                              "ciou, ciou_loss"),
    "ciou_without_alpha_v": ("the alpha*v term is missing: DIoU", "the CIoU loss"),
    "diou_giou_mixup": ("GIoU where DIoU was checked, or DIoU where GIoU was", "diou_loss, giou_loss"),
    "focal_eiou_v1_v2": ("the other version of Focal-EIoU: v1 (Focal-L1 of the EIoU loss) or v2 (IoU^gamma * EIoU)",
                         "focal_eiou_loss, focal_l1_eiou_loss"),
    "copied_balanced_l1_form": ("the widely copied (b|x|+1) Balanced L1 form, right only at beta = 1",
                                "Balanced L1"),
    "siou_distance_reward": ("SIoU's distance cost with exp(+gamma rho) (mmdetection's SIoULoss default "
                             "neg_gamma=False): a reward for moving the centres apart, not the paper's cost",
                             "SIoU"),
    "wiou_enclosing_grad": ("Wise-IoU's W_g^2 + H_g^2 differentiated, where the paper detaches it (*)", "Wise-IoU"),
    "vfl_weight_detached": ("the Varifocal weight (q, alpha p^gamma) held constant in the gradient (RT-DETR, "
                            "D-FINE), where detach_weight=False was checked", "Varifocal"),
    "vfl_weight_differentiated": ("the Varifocal weight differentiated (the paper's formula; ultralytics, "
                                  "mmdetection), where detach_weight=True was checked", "Varifocal"),
    "dfl_clamp_ultralytics": ("the DFL target clamped to n_bins - 1.01 (ultralytics' DFLoss: reg_max - 1 - 0.01, "
                              "reg_max its number of bins)", "DFL"),
    "dfl_clamp_dfine": ("the DFL target clamped to n_bins - 1.1 (D-FINE: reg_max - 0.1, reg_max + 1 bins)", "DFL"),
    "probiou_ultralytics_eps": ("ultralytics' probiou: eps = 1e-7 in both denominators, the log and the square root, "
                                "B_D clamped to [1e-7, 100] (identical boxes: 4.5e-4)", "ProbIoU"),
    "probiou_ultralytics_floor": ("ultralytics' RotatedBboxLoss: probiou with eps = 1e-7 and 0.01 added to both "
                                  "variances (floor=0.01, 8.4.190)", "ProbIoU"),
    "kld_reversed": ("the KLD of the other direction, KL(N_t || N_p) for KL(N_p || N_t) or the reverse (the authors' "
                     "code and mmrotate's GDLoss invert the prediction's covariance)", "KLD"),
    "convention_only": ("only gradients at convention points (kinks, ties, touching or degenerate boxes) differ: "
                        "another one-sided derivative, not an error", "every loss"),
    "unexplained": ("matches no variant refloss implements and no recogniser", "every loss"),
}


# ------------------------------------------------------------------ the diagnosis


def diagnose(ev: Evidence) -> list:
    """The diagnoses ``[(code, text)]`` of an implementation with failures (see the module docstring)."""
    patterns = []
    for r in RECOGNISERS:
        if r.kind == "pattern" and r.applies_to(ev):
            found = r.recognise(ev)
            if found is not None:
                text, rows = found
                patterns.append((r.code, text))
                ev.claimed = ev.claimed | rows
    left = [f for f in ev.failures if not ev.claimed[f.index]]
    if not left:
        return patterns
    value_failures = any(f.component.startswith("value") for f in left)
    # every alternative that explains the failures; the first that explains them all, else the one
    # that leaves the fewest over
    found = []
    for code, text, compute, vtol, gtol, everywhere in _variant_candidates(ev):
        if gtol is None and not value_failures:
            continue  # a values-only explanation for gradient-only differences explains nothing
        values, grads = compute()
        rest = _explains(ev, values, None if gtol is None else list(grads), vtol, gtol, everywhere=everywhere)
        if rest is not None:
            found.append(((code, text), rest))
            if not rest.any():
                break
    if not any(not rest.any() for _, rest in found):
        for r in RECOGNISERS:
            if r.kind == "formula" and r.applies_to(ev):
                # its candidates in order: the first that explains every failure, else the one that leaves fewest
                best = None
                for text, fn in r.recognise(ev):
                    rest = _formula_explains(ev, fn)
                    if rest is not None and (best is None or rest.sum() < best[1].sum()):
                        best = ((r.code, text), rest)
                        if not rest.any():
                            break
                if best is not None:
                    found.append(best)
    found = min(found, key=lambda c: int(c[1].sum()), default=None)  # min keeps the first of equals
    noisy = _float32_values(ev)
    if found is not None:
        (code, text), rest = found
        out = [(code, text)] + patterns
        if rest.any() and noisy:  # points left over by float32 rounding alone: named, not "unexplained"
            rounded = _rounding_only(ev, rest)
            if rounded.any():
                out.append(("float32_inside", f"besides, {int(rounded.sum())} points differ from refloss by float32 "
                            "rounding of the values alone (a float32 result, or float32 arithmetic inside)"))
                rest = rest & ~rounded
        if rest.any():
            cases = ", ".join(sorted({str(c) for c in ev.names[rest]}))
            out.append(("unexplained", f"besides, {int(rest.sum())} points differ from refloss and from that "
                        f"alike ({cases}): matches no variant refloss implements there"))
        return out
    if all(not f.component.startswith("value") and ev.convention[f.index] for f in left):
        at = ", ".join(sorted({f.case for f in left}))
        return patterns + [("convention_only", f"only gradients at convention points differ ({at}), values agree: "
                            "another one-sided derivative there, not an error (refloss's choice: docs/derivations)")]
    return patterns + [("unexplained", "matches no variant refloss implements")]
