"""Check someone else's loss against refloss: values and gradients, with a diagnosis.

>>> import numpy as np, refloss.testing as rt
>>> def my_smooth_l1(p, t):
...     x = np.abs(p - t)
...     return np.where(x < 0.5, 0.5 * x**2 / 0.5, x - 0.5 * 0.5)
>>> rt.check_loss(my_smooth_l1, "smooth_l1", beta=0.5).ok
True

``check_loss(impl, loss, framework="auto", cases="standard", dtype=None, grad=True,
rtol=None, **params)`` evaluates ``impl`` (taking the same array inputs as the refloss
loss ``loss`` and returning per-element values; bind its own parameters and
``reduction="none"`` beforehand, e.g. with ``functools.partial``; ``params`` are refloss's)
on the loss's built-in battery and compares
values and gradients with refloss's kernels (themselves checked against a 50-digit oracle
by ``refloss verify``).  Gradients come from the framework's autograd ("torch", "jax") or,
for "numpy", from Richardson-extrapolated central differences whose own error estimate is
added to the tolerance (kinks are skipped there).  Tolerances default per dtype:

==========  =====================================  ==========================================
dtype       value                                  gradient
==========  =====================================  ==========================================
float64     1e-9 x max(1, |expected|)              1e-7 x (the element's largest component, >= 1/scale)
float32     2e-4 x max(1, |expected|)              2e-3 x (same)
==========  =====================================  ==========================================

With finite differences ("numpy") the gradient tolerance is ten times larger, plus the
differences' own error estimate; steps never cross a kink (a quarter of the distance to the
nearest one) nor a thin box (a fraction of the smallest box extent), and are whole ULPs of the
element's largest input magnitude (a step on ``target`` below ``pred``'s ULP would leave
``pred - target`` unchanged); where no such step exists the component is not checked and
``report.unchecked`` counts it.  The tolerances are fair to a straightforward textbook formula
(which may lose digits where the loss cancels, e.g. GIoU near IoU = 1) and still catch real
faults.  The batteries are dense where textbook forms lose digits: confident logits (every 0.25
over 4..30, where ``-log(sigmoid(x))`` does) and, element-wise, targets up to 2.3e6 (where
``p*p - 2*p*t + t*t`` does).  float32 checks leave out the box groups float32 cannot
resolve (:data:`FLOAT32_UNRESOLVED_GROUPS`).

The report (:class:`Report`) lists every failing point: case, index, inputs, component
("value", "d/dpred[k]", ...), got, expected, relative error and error in ULPs of the checked
dtype (of max(|expected|, the scale the relative error is taken against), so that an expected
0 is measured against the size of its terms); ``str(report)`` is a table in which mirrored
failures (the same |got| and |expected| at +x and -x, or as d/dpred and d/dtarget) share a row.
Where only gradients at convention points (kinks, ties, touching or degenerate boxes) differ,
``report.convention_only`` is set: another one-sided derivative, not an error.

Diagnoses: ``report.diagnoses`` is a list of ``(code, text)`` (``report.diagnosis`` is the
first text, ``report.codes`` the codes), in ``report.to_json()`` and ``str(report)``.  Each is
recognised from the implementation's behaviour on the battery, never from its source: agreement
with a variant the loss's derivation declares (``Variant(code, ...)`` in ``derivations/``), or a
recogniser of :mod:`refloss._diagnose` (a pattern of NaN or lost digits, or a small NumPy
formula of what refloss does not implement).  The codes are stable:

==================================  ========================================================  ==========================
code                                meaning                                                   losses
==================================  ========================================================  ==========================
``eps_in_box_size``                 eps added to the boxes' heights (or widths and heights)   IoU, GIoU, DIoU, CIoU,
                                    before areas and aspect ratios are formed                 EIoU
                                    (ultralytics/YOLOv5 ``bbox_iou``)
``eps_in_c2_only``                  eps in the enclosing diagonal c^2 but not in the union    DIoU, CIoU
                                    (torchvision's pairwise ``distance_box_iou``)
``eps_as_floor``                    the union (and GIoU's enclosing area) floored at eps,     IoU, GIoU
                                    max(U, eps), not U + eps; the IoU also clamped at eps
                                    or not (mmdetection's ``bbox_overlaps``, ``iou_loss``)
``siou_yolov6_eps``                 SIoU with YOLOv6's eps placement (mmdetection's           SIoU loss
                                    ``siou_loss``): eps in the centre offsets and heights,
                                    enclosing sides clamped at eps; says which distance sign
``eps_ignored``                     the eps given is not the one used: agrees with refloss    box losses with eps
                                    at another eps, or (CIoU) the IoU and distance terms
                                    keep a fixed eps (torchvision's
                                    ``complete_box_iou_loss``)
``nan_at_identical_boxes``          NaN where refloss is finite, at identical boxes only: a   box losses
                                    0/0 such as CIoU's alpha = v / (1 - IoU + v)
``enclosing_area_for_diagonal``     rho^2 divided by the enclosing box's area instead of its  DIoU, CIoU, EIoU
                                    squared diagonal
``extended_iou_not_efficient_iou``  the Extended-IoU loss (Peng et al.; mmdetection's         the EIoU loss
                                    ``eiou_loss``), not Zhang et al.'s Efficient-IoU: the
                                    names collide
``log_sigmoid_overflow``            digits lost (~eps exp(|x|)), inf or NaN at confident      BCE, sigmoid focal loss
                                    logits only: ``-log(sigmoid(x))`` computed directly
``nan_gradient_from_where``         NaN gradients where the value is right: a ``where``       every loss (torch, jax)
                                    whose untaken branch is NaN (textbook smooth L1 at beta
                                    = 0)
``float32_inside``                  values agree with refloss's float32 kernel, with float32  every loss
                                    rounding at ordinary points
``copied_balanced_l1_form``         the copied (b|x|+1) Balanced L1 form, right only at beta  Balanced L1
                                    = 1
``ciou_alpha_grad``                 alpha differentiated (alpha_grad=False was checked)       CIoU
``ciou_alpha_constant``             alpha a constant, no_grad (alpha_grad=True was checked)   CIoU
``ciou_alpha_gate``                 alpha = 0 unless IoU > 0.5 (mmdetection, YOLACT)          CIoU
``ciou_darknet_gradient``           darknet's dv/dw, dv/dh without 1/(w^2 + h^2)              CIoU
``ciou_without_alpha_v``            the alpha*v term missing: DIoU                            CIoU loss
``diou_giou_mixup``                 GIoU where DIoU was checked, or DIoU where GIoU was       DIoU, GIoU losses
``focal_eiou_v1_v2``                the other version of Focal-EIoU (v1: Focal-L1 of EIoU;    Focal-EIoU (v1, v2)
                                    v2: IoU^gamma * EIoU)
``siou_distance_reward``            SIoU's distance cost with exp(+gamma rho) (mmdetection's  SIoU loss
                                    default neg_gamma=False): a reward, not the paper's cost
``wiou_enclosing_grad``             Wise-IoU's W_g^2 + H_g^2 differentiated (the paper        Wise-IoU loss
                                    detaches it)
``vfl_weight_detached``             the Varifocal weight (q, alpha p^gamma) held constant     Varifocal
                                    (RT-DETR, D-FINE; detach_weight=False was checked)
``vfl_weight_differentiated``       the Varifocal weight differentiated (ultralytics,         Varifocal
                                    mmdetection; detach_weight=True was checked)
``vfl_abs_weight``                  only d/dtarget differs, at q = 0: the Varifocal           Varifocal
                                    negatives' weight written alpha |sigma - q|^gamma
                                    (mmdetection, PicoDet), differentiated in q
``dfl_clamp_ultralytics``           the DFL target clamped to n_bins - 1.01 (ultralytics'     DFL
                                    DFLoss)
``dfl_clamp_dfine``                 the DFL target clamped to n_bins - 1.1 (D-FINE)           DFL
``probiou_ultralytics_eps``         ultralytics' probiou: eps = 1e-7 in the denominators,     ProbIoU
                                    the log and the square root, B_D clamped to [1e-7, 100]
``probiou_ultralytics_floor``       ultralytics' RotatedBboxLoss: probiou with 0.01 added to  ProbIoU
                                    both variances (floor=0.01)
``kld_reversed``                    the KLD of the other direction, KL(N_t || N_p) (the       KLD
                                    authors' code, mmrotate's GDLoss)
``convention_only``                 only gradients at convention points differ: another one-  every loss
                                    sided derivative, not an error
``unexplained``                     matches no variant and no recogniser (also: the failures  every loss
                                    an explanation leaves over)
==================================  ========================================================  ==========================

Built-in adapters for peer libraries: :mod:`refloss.peers`.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _battery, _diagnose, _fd, _measures
from ._loss import Loss, loss_named

__all__ = ["check_loss", "assert_loss_matches", "Report", "Failure", "ImplementationError", "DIAGNOSIS_CODES"]


class ImplementationError(Exception):
    """The implementation under test raised, or returned what cannot be compared per point (e.g.
    a reduced loss): a finding about it, not a mistake in check_loss's arguments."""

TOLERANCES = {"float64": (1e-9, 1e-7), "float32": (2e-4, 2e-3)}
# every code report.diagnoses can carry -> (meaning, losses it applies to)
DIAGNOSIS_CODES = _diagnose.CODES
# box groups whose geometry is finer than a finite-difference step (boxes 1e-9 apart, or
# 1e-6 boxes at coordinate 1): numpy implementations get no gradient check there
FD_UNRESOLVED_GROUPS = frozenset({"near_identical", "small_far_from_origin"})
# box groups float32 cannot resolve, left out of float32 checks: sizes ~1e-6 or 1e-5 of the
# coordinates (rounding the inputs' sums and differences alone moves the loss by percents), and
# boxes 1e-9 apart (in float32 they become identical or tied: convention points)
FLOAT32_UNRESOLVED_GROUPS = frozenset({"small_far_from_origin", "far_apart", "near_identical"})


@dataclass
class Failure:
    case: str
    index: int
    inputs: list
    component: str
    got: float
    expected: float
    rel: float  # |got - expected| / max(1, |expected|) for values; / the element's largest component for gradients
    ulp: float  # |got - expected| in ULPs, in the checked dtype, of max(|expected|, the scale of rel)


@dataclass
class Report:
    loss: str
    impl: str
    framework: str
    dtype: str
    params: dict
    points: int
    inputs: tuple = ()  # the loss's input names
    failures: list = field(default_factory=list)
    diagnosis: str = ""  # the text of the first diagnosis (kept for compatibility)
    convention_only: bool = False  # every failure is a gradient at a convention point (values agree)
    diagnoses: list = field(default_factory=list)  # [(code, text)], codes in DIAGNOSIS_CODES
    # finite differences only: gradient components that could not be checked, per component (a step
    # below the inputs' resolution or across a kink, or a group finer than any step)
    unchecked: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def worst(self):
        return max(self.failures, key=lambda f: f.rel) if self.failures else None

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, default=float)

    @property
    def codes(self) -> list:
        """The diagnosis codes, in order."""
        return [code for code, _ in self.diagnoses]

    def __str__(self) -> str:
        head = (f"check_loss: {self.impl} vs refloss.{self.loss}({', '.join(f'{k}={v!r}' for k, v in self.params.items())}) "
                f"[{self.framework}, {self.dtype}, {self.points} points]")
        per_input: dict = {}  # d/dpred[0..3] -> d/dpred, at the most points of its components
        for comp, k in self.unchecked.items():
            per_input[comp.split("[")[0]] = max(k, per_input.get(comp.split("[")[0], 0))
        unchecked = ("  not checked by finite differences: " + ", ".join(f"{c} at {k} points" for c, k in
                                                                         per_input.items())
                     + " (a step below the inputs' resolution or across a kink, or boxes finer than a step)"
                     if per_input else "")
        if self.ok:
            return head + ": OK" + ("\n" + unchecked if unchecked else "")
        by_component: dict = {}
        for f in self.failures:
            by_component.setdefault(f.component, []).append(f)
        lines = [head + f": {len(self.failures)} failures", "",
                 f"  {'component':<14} {'bad':>5}  {'max rel':>9}  {'max ULP':>9}  worst at"]
        for comp, fs in by_component.items():
            w = max(fs, key=lambda f: f.rel)
            lines.append(f"  {comp:<14} {len(fs):>5}  {w.rel:9.3g}  {_fmt_ulp(max(f.ulp for f in fs)):>9}  "
                         f"{w.case}[{w.index}]")
        groups = _mirror_groups(self.failures)
        lines += ["", f"  {'case[index]':<30} {'component':<14} {'got':>24} {'expected':>24} {'ULP':>9} {'rel':>9}"
                      f"  {'n':>5}"]
        for g in groups[:_SHOWN]:
            f = g[0]
            lines.append(f"  {f'{f.case}[{f.index}]':<30} {f.component:<14} {f.got:>24.17g} {f.expected:>24.17g} "
                         f"{_fmt_ulp(f.ulp):>9} {f.rel:9.3g}  {len(g):>5}")
        if len(groups) > _SHOWN:
            lines.append(f"  ... and {len(groups) - _SHOWN} more (report.failures has them all)")
        if len(groups) < len(self.failures):
            lines.append(f"  ({len(self.failures)} failures in {len(groups)} rows: a row shows the worst of the n "
                         "failures with its |got| and |expected|, mirrored in sign (+x, -x) or between the inputs)")
        lines += ["", "  inputs of the worst: " + ", ".join(f"{n}={v}" for n, v in zip(self.inputs, self.worst.inputs))]
        lines += [f"  diagnosis [{code}]: {text}" for code, text in self.diagnoses]
        if not self.diagnoses and self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        if unchecked:
            lines.append(unchecked)
        return "\n".join(lines)


_SHOWN = 20


def _mirror_groups(failures) -> list:
    """The failures grouped by (value or gradient, |got|, |expected| to 6 digits): one failure
    seen at +x and -x, or as d/dpred and d/dtarget, is one group; groups worst first, each with
    its worst failure first."""
    groups: dict = {}
    for f in failures:
        kind = "value" if f.component.startswith("value") else "gradient"
        groups.setdefault((kind, f"{abs(f.got):.6g}", f"{abs(f.expected):.6g}"), []).append(f)
    out = [sorted(g, key=lambda f: -f.rel) for g in groups.values()]
    return sorted(out, key=lambda g: -g[0].rel)


def _fmt_ulp(u: float) -> str:
    return "inf" if not np.isfinite(u) else (f"{u:.3g}" if u < 1e6 else f"{u:.1e}")


def _detect(impl, inputs) -> str:
    mod = getattr(impl, "__module__", "") or ""
    for fw in ("torch", "jax"):
        if mod.split(".")[0] in (fw, f"{fw}vision") or mod.startswith(fw):
            return fw
    few = tuple(a[:2] for a in inputs)
    try:
        out = impl(*few)
    except Exception:  # noqa: BLE001 - the numpy call is only a probe
        # torch where a call with tensors works; else numpy, whose call then reports the function's own error
        # (not torch's, for a NumPy function with a bug of its own)
        try:
            import torch
        except ImportError:
            return "numpy"
        try:
            with warnings.catch_warnings():  # (NumPy's functions on tensors warn; only a probe)
                warnings.simplefilter("ignore")
                out = impl(*(torch.tensor(a) for a in few))
        except Exception:  # noqa: BLE001 - a probe too
            return "numpy"
        return "torch" if isinstance(out, torch.Tensor) else "numpy"
    if out is not None and type(out).__module__.split(".")[0] in ("torch", "jax", "jaxlib"):
        return type(out).__module__.split(".")[0].replace("jaxlib", "jax")
    return "numpy"


class _Returned(Exception):
    """What the implementation returned is not a loss per element (its type or shape): reported as such, not as
    an error the implementation raised."""


def _returned(v, n: int, shape: tuple, kind: str):
    """``v`` (what the implementation returned) checked: an array of ``shape`` (n points); ``kind`` the array type
    expected ("a torch tensor", "an array")."""
    if v is None or isinstance(v, (str, bytes, dict)):
        raise _Returned(f"returned {type(v).__name__}, not {kind} of losses (one per element)")
    got = tuple(np.shape(v))
    if got == tuple(shape):
        return
    if len(got) == 0 or int(np.prod(got)) == 1 < n:
        raise _Returned(
            f"returned shape {got} for {n} points: check_loss needs one loss per element, not a reduced (mean or "
            "sum) loss; pass reduction='none' to it, e.g. functools.partial(fn, reduction='none') (the CLI: "
            "--impl-param reduction=none)")
    raise _Returned(f"returned shape {got} for {n} points: check_loss needs one loss per element, shape {tuple(shape)}")


def _evaluate(impl, framework, inputs, dtype, grad, layouts=(), kinks=None, device=None, wrt=None, shape=None):
    """(values, grads or None) of the implementation, as float64 numpy arrays: the gradients of
    the sum of the values (the cotangent of ones) with respect to the inputs numbered ``wrt``
    (default: all); ``shape``: the values' shape the loss has (:class:`_Returned` where it differs)."""
    wrt = range(len(inputs)) if wrt is None else wrt
    n = len(inputs[0])
    shape = (n,) if shape is None else shape
    if framework == "torch":
        import torch

        tdt = torch.float64 if dtype == "float64" else torch.float32
        ts = [torch.tensor(a, dtype=tdt, device=device or "cpu", requires_grad=grad) for a in inputs]
        v = impl(*ts)
        if not isinstance(v, torch.Tensor):
            raise _Returned(f"returned {type(v).__name__}, not a torch tensor of losses (one per element)")
        _returned(v, n, shape, "a torch tensor")
        if v.is_complex():
            raise _Returned("returned complex values, not real losses")
        values = v.detach().double().cpu().numpy()
        if not grad:
            return values, None
        if not v.requires_grad:  # (its .backward() would raise torch's "element 0 of tensors does not require grad")
            raise _Returned(f"returned a {str(v.dtype).removeprefix('torch.')} tensor not connected to its inputs "
                            "(no grad_fn: detached, made through NumPy, or of an integer dtype), so autograd gives no "
                            "gradient; compute it with torch operations on the inputs, or pass grad=False to compare "
                            "values only")
        v.sum().backward()
        return values, [ts[k].grad.double().cpu().numpy() if ts[k].grad is not None else np.zeros(ts[k].shape)
                        for k in wrt]
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)  # else JAX silently computes float64 inputs in float32
        js = [jnp.asarray(a.astype(dtype)) for a in inputs]
        v, vjp = jax.vjp(impl, *js)
        _returned(v, n, shape, "a JAX array")
        grads = vjp(jnp.ones_like(v)) if grad else None
        return np.asarray(v, np.float64), None if grads is None else [np.asarray(grads[k], np.float64) for k in wrt]
    xs = [a.astype(dtype) for a in inputs]
    out = impl(*xs)
    _returned(out, n, shape, "an array")
    if np.iscomplexobj(out):  # (NumPy's cast would drop the imaginary part with a warning)
        raise _Returned("returned complex values, not real losses")
    v = np.asarray(out, dtype=np.float64)
    if not grad:
        return v, None
    scale = _fd_scale(xs, layouts)
    # the step: 1e-6 (float64) or 2e-3 (float32) of the scale, and for element-wise losses at most a
    # quarter of the distance to the nearest kink (|x| = 0 included), so that no step crosses one
    h = (1e-6 if np.dtype(dtype) == np.float64 else 2e-3) * np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    if kinks is not None:
        x = np.abs(inputs[0] - inputs[1]).reshape(len(h), -1)  # (rows of several elements: the nearest in the row)
        h = np.minimum(h, np.min(np.abs(x[:, :, None] - np.array((0.0,) + tuple(kinks))), axis=(1, 2)) / 4)
    summed = impl if v.ndim == 1 else (lambda *a: np.sum(np.asarray(impl(*a), np.float64), axis=-1))
    # steps in whole ULPs of the element's largest input magnitude: a step on target below pred's
    # ULP would leave pred - target unchanged and measure a derivative of 0 (then: not checked)
    quantum = _measures.ulp(np.max([np.abs(x.astype(np.float64)).reshape(len(x), -1).max(axis=1) for x in xs],
                                   axis=0), dtype)
    fds = [_fd.gradient(summed, xs, k, h, quantum=quantum) for k in wrt]
    return v, ([g for g, _ in fds], [e for _, e in fds])


def _unresolved(names, estimates):
    """Mark the finite-difference estimates of unresolvable cases as infinite (not checked)."""
    mask = np.array([n in FD_UNRESOLVED_GROUPS for n in names])
    out = []
    for e in estimates:
        e = e.copy()
        e[mask] = np.inf
        out.append(e)
    return out


def _fd_scale(xs, layouts=()) -> np.ndarray:
    """Per element, the length the finite-difference step is a fraction of: the smallest box
    extent for boxes (``layouts`` "xyxy", "xywh" or "xywhr": a step must not cross a thin box), else the
    largest input magnitude but at least 1e-3 (a textbook formula's rounding noise is relative
    to its intermediates, not to a tiny loss value: a step far below unit scale would turn that
    noise into false failures)."""
    boxes = [(x.astype(np.float64), layout) for x, layout in zip(xs, layouts) if layout in ("xyxy", "xywh", "xywhr")]
    if boxes:
        ext = np.concatenate([b[:, 2:4] if layout != "xyxy" else b[:, 2:] - b[:, :2] for b, layout in boxes], axis=1)
        return np.where(ext > 0, ext, np.inf).min(axis=1)
    return np.maximum(np.max([np.abs(x.astype(np.float64)).reshape(len(x), -1).max(axis=1) for x in xs], axis=0),
                      1e-3)


def reference_loss(loss):
    """What an implementation of ``loss`` is compared with: the refloss loss of that name (a
    loss object, e.g. a ``refloss.design`` loss, as it is), as its family presents it (for
    ``yolo_decode``: the decoded boxes, and the gradient with respect to t); ValueError for an
    unknown name."""
    from ._families import FAMILIES

    if not isinstance(loss, Loss):
        from ._generated._index import LOSSES

        if loss not in LOSSES:
            raise ValueError(f"loss: unknown {loss!r}; known: {', '.join(LOSSES)}")
        loss = loss_named(loss)
    return FAMILIES[loss.info.family].reference(loss)


def check_loss(impl, loss, *, framework: str = "auto", cases="standard", dtype=None, grad: bool = True,
               rtol=None, device=None, **params) -> Report:
    """Compare ``impl`` with the refloss loss ``loss`` (a name such as "giou_loss", or a loss
    object, e.g. ``refloss.design``'s) on the loss's battery; see the module docstring.

    ``device``: for "torch", where the input tensors are made ("cpu" by default, "cuda" for a
    CUDA implementation; the comparison itself runs on the host).
    """
    if not callable(impl):
        raise TypeError(f"impl: must be a function (the implementation to check), got {type(impl).__name__} "
                        f"{impl!r:.60}")
    ref = reference_loss(loss)
    loss = ref.name
    dt = np.dtype(dtype or np.float64).name
    if dt not in TOLERANCES:
        raise ValueError(f"dtype: must be float64 or float32, got {dt}")
    if isinstance(cases, str):
        names, inputs, convention = _battery.battery(ref, cases, params)
        if dt == "float32":  # groups float32 arithmetic cannot resolve: no float32 formula is fair there
            keep = np.array([n not in FLOAT32_UNRESOLVED_GROUPS for n in names], bool)
            names, inputs, convention = names[keep], tuple(a[keep] for a in inputs), convention[keep]
    else:  # the user's own arrays
        try:
            inputs = tuple(np.asarray(c, dtype=np.float64) for c in cases)
        except (TypeError, ValueError) as e:
            raise ValueError(f"cases: each must be an array of numbers ({e})") from None
        lengths = [len(a) if a.ndim else 0 for a in inputs]
        if len(set(lengths)) > 1 or 0 in [a.ndim for a in inputs]:
            raise ValueError(f"cases: arrays of one length (one row per point) needed, got shapes "
                             f"{[a.shape for a in inputs]}")
        names = np.array(["user"] * len(inputs[0]), dtype=object)
        convention = np.zeros(len(names), bool)
    inputs = tuple(a.astype(dt).astype(np.float64) for a in inputs)  # the inputs the implementation sees
    report = Report(loss, getattr(impl, "__qualname__", repr(impl)), framework, dt, dict(params), len(names),
                    ref.inputs)
    if not len(names):
        if not isinstance(cases, str):  # (the user's own arrays: nothing checked is not a pass)
            raise ValueError("cases: no points (empty arrays) - nothing to check")
        return report  # nothing to check (e.g. the convention points of a smooth loss)
    fw = _detect(impl, inputs) if framework == "auto" else framework
    if fw not in ("numpy", "torch", "jax"):
        raise ValueError(f"framework: must be 'auto', 'numpy', 'torch' or 'jax', got {framework!r}")
    if isinstance(rtol, (tuple, list)) and len(rtol) != 2:
        raise ValueError(f"rtol: must be a number >= 0 or a pair (value, gradient) of them, got {rtol!r}")
    vtol, gtol = tuple(rtol) if isinstance(rtol, (tuple, list)) else ((rtol, rtol) if rtol is not None else TOLERANCES[dt])
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < math.inf for t in (vtol, gtol)):
        raise ValueError(f"rtol: must be a number >= 0 or a pair (value, gradient) of them, got {rtol!r}")
    kinks = _battery.kinks(ref, params) if ref.info.family == "elementwise" else None
    if device not in (None, "cpu") and fw != "torch":
        raise ValueError(f"device: only the torch adapter places inputs on a device, got {device!r} with {fw!r}")
    if str(device or "").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: torch sees no CUDA device on this machine")
    wrt = [ref.inputs.index(n) for n in ref.grad_inputs]
    want_v, want_g = ref.value_and_grad(*inputs, **params)
    try:
        got_v, got_g = _evaluate(impl, fw, inputs, dt, grad, layouts=ref.info.layouts, kinks=kinks, device=device,
                                 wrt=wrt, shape=np.shape(want_v))
    except _Returned as e:
        raise ImplementationError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - the implementation's own failure, reported as such
        raise ImplementationError(f"raised {type(e).__name__}: {e}") from e
    if isinstance(got_g, tuple):
        got_g = (got_g[0], _unresolved(names, got_g[1]))
        report.unchecked = _unchecked(ref.grad_inputs, got_g[1])
    report.framework = fw
    report.failures = _compare(names, inputs, ref.grad_inputs, got_v, got_g, want_v, want_g, vtol, gtol,
                               fd=(fw == "numpy"), dtype=dt)
    if report.failures:
        report.convention_only = all(not f.component.startswith("value") and convention[f.index]
                                     for f in report.failures)
        report.diagnoses = _diagnose.diagnose(_diagnose.Evidence(
            ref, dict(params), inputs, names, convention, got_v, got_g, want_v, want_g, report.failures, vtol, gtol,
            fw, dt, _compare, TOLERANCES["float32"][0]))
        report.diagnosis = report.diagnoses[0][1] if report.diagnoses else ""
    return report


def _unchecked(input_names, estimates) -> dict:
    """{component: points} of the finite-difference gradients that could not be checked (inf estimate)."""
    out = {}
    for name, est in zip(input_names, estimates):
        e = est.reshape(len(est), -1)
        for k in range(e.shape[1]):
            bad = int(np.isinf(e[:, k]).sum())
            if bad:
                out[f"d/d{name}" + (f"[{k}]" if e.shape[1] > 1 else "")] = bad
    return out


def _ulps(got, want, dtype, floor) -> np.ndarray:
    """|got - want| in ULPs, in ``dtype``, of max(|want|, floor), element by element (the project's one
    ULP measure, want taken as exact; the floor is the scale the relative error is taken against, so
    that an expected value near 0 is measured against the size of its terms, as ``refloss verify`` does)."""
    return _measures.ulp_error(np.asarray(got, np.float64), np.asarray(want, np.float64), 0.0, dtype,
                               floor=np.asarray(floor, np.float64))


def _compare(names, inputs, input_names, got_v, got_g, want_v, want_g, vtol, gtol, fd=False, dtype="float64"):
    failures = []
    estimates = [None] * len(input_names)
    if isinstance(got_g, tuple):  # finite differences: (gradients, their error estimates)
        got_g, estimates = got_g

    def add(rows, cols, comp, g, w, rel, floor):
        """A Failure for each (row, column) of the 2-d g, w, rel; floor is per row."""
        if not len(rows):
            return
        ulps = _ulps(g[rows, cols], w[rows, cols], dtype, floor[rows])  # one vectorised call: peers fail at 10^5 points
        for j, (i, k) in enumerate(zip(rows.tolist(), cols.tolist())):
            failures.append(Failure(str(names[i]), i, [np.asarray(a[i]).tolist() for a in inputs], comp(k),
                                    float(g[i, k]), float(w[i, k]), float(rel[i, k]), float(ulps[j])))

    with np.errstate(invalid="ignore", divide="ignore"):
        got_v = np.asarray(got_v, np.float64).reshape(len(names), -1)  # (n, 1), or (n, k) for a vector value
        want_v = np.asarray(want_v, np.float64).reshape(len(names), -1)
        both_nan = np.isnan(got_v) & np.isnan(want_v)
        rel = np.abs(got_v - want_v) / np.maximum(1.0, np.abs(want_v))
        rel = np.where(both_nan | (got_v == want_v), 0.0, np.where(np.isnan(rel), np.inf, rel))  # equal infinities agree
        add(*np.nonzero(rel > vtol), lambda k: "value" + (f"[{k}]" if want_v.shape[1] > 1 else ""),
            got_v, want_v, rel, np.ones(len(names)))
        if got_g is None:
            return failures
        for name, g, w, est in zip(input_names, got_g, want_g, estimates):
            g2 = g.reshape(len(names), -1)
            w2 = np.asarray(w, np.float64).reshape(len(names), -1)
            scale = np.maximum(np.nanmax(np.abs(w2), axis=1, keepdims=True, initial=0.0), 1e-3)
            # finite differences carry their own error: their estimate is folded into the tolerance
            tol = gtol if est is None else 10 * gtol + 10 * est.reshape(len(names), -1) / scale
            err = np.abs(g2 - w2) / scale
            err = np.where((np.isnan(g2) & np.isnan(w2)) | (g2 == w2), 0.0, np.where(np.isnan(err), np.inf, err))
            add(*np.nonzero(err > tol), lambda k, name=name, w2=w2: f"d/d{name}" + (f"[{k}]" if w2.shape[1] > 1 else ""),
                g2, w2, err, scale[:, 0])
    return failures


def assert_loss_matches(impl, loss: str, **kwargs) -> None:
    """:func:`check_loss`, raising AssertionError with the report when it is not ok."""
    report = check_loss(impl, loss, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
