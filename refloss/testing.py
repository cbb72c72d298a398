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
differences' own error estimate.  They are fair to a straightforward textbook formula (which may lose digits where the
loss cancels, e.g. GIoU near IoU = 1) and still catch real faults.  Where a disagreement
matches a variant refloss implements (CIoU's alpha conventions, an eps placement, the
copied Balanced L1 form, float32 rounding), the report names it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

import refloss

__all__ = ["check_loss", "assert_loss_matches", "Report", "Failure"]

TOLERANCES = {"float64": (1e-9, 1e-7), "float32": (2e-4, 2e-3)}
# box groups whose geometry is finer than a finite-difference step (boxes 1e-9 apart, or
# 1e-6 boxes at coordinate 1): numpy implementations get no gradient check there
FD_UNRESOLVED_GROUPS = frozenset({"near_identical", "small_far_from_origin"})


@dataclass
class Failure:
    case: str
    index: int
    inputs: list
    component: str
    got: float
    expected: float
    rel: float


@dataclass
class Report:
    loss: str
    impl: str
    framework: str
    dtype: str
    params: dict
    points: int
    failures: list = field(default_factory=list)
    diagnosis: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def worst(self):
        return max(self.failures, key=lambda f: f.rel) if self.failures else None

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, default=float)

    def __str__(self) -> str:
        head = (f"check_loss: {self.impl} vs refloss.{self.loss}({', '.join(f'{k}={v!r}' for k, v in self.params.items())}) "
                f"[{self.framework}, {self.dtype}, {self.points} points]")
        if self.ok:
            return head + ": OK"
        by_component: dict = {}
        for f in self.failures:
            by_component.setdefault(f.component, []).append(f)
        lines = [head + f": {len(self.failures)} failures"]
        for comp, fs in by_component.items():
            w = max(fs, key=lambda f: f.rel)
            lines.append(f"  {comp}: {len(fs)} bad; max rel {w.rel:.3g} at {w.case}[{w.index}]")
        for f in sorted(self.failures, key=lambda f: -f.rel)[:20]:
            lines.append(f"  {f.case}[{f.index}] {f.inputs} {f.component}: got {f.got:.17g} != want {f.expected:.17g} "
                         f"(rel {f.rel:.3g})")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        return "\n".join(lines)


def _battery(loss: str, cases):
    """(names, inputs tuple) of the loss's standard battery, or the user's own arrays."""
    from . import _verify, box_cases

    if not isinstance(cases, str):
        arrays = tuple(np.asarray(c, dtype=np.float64) for c in cases)
        return np.array(["user"] * len(arrays[0]), dtype=object), arrays
    if loss in refloss.BOX_LOSSES + refloss.METRICS:
        groups = box_cases.box_cases(np.float64, n_random=40)
        if cases == "standard":
            groups = [g for g in groups if g[0] not in box_cases.KINK_GROUPS]
        elif cases == "edge":
            groups = [g for g in groups if g[0] in box_cases.KINK_GROUPS]
        names = np.concatenate([np.full(len(p), n, dtype=object) for n, p, _ in groups])
        return names, (np.concatenate([g[1] for g in groups]), np.concatenate([g[2] for g in groups]))
    if loss in refloss.CLASSIFICATION_LOSSES:
        names, x, y = _verify.logits_cases("float64", 60)
        keep = np.abs(x) <= 30 if cases == "standard" else np.ones(len(x), bool)
        return names[keep], (x[keep], y[keep])
    names, p, t = _verify.battery(loss, {}, np.float64, 60)
    keep = np.abs(p - t) <= 1e4
    if cases == "standard":
        keep &= np.array([n != "zero" for n in names])
    elif cases == "edge":
        keep &= np.array([n in ("kink", "zero") for n in names])
    return names[keep], (p[keep], t[keep])


def _detect(impl, inputs) -> str:
    mod = getattr(impl, "__module__", "") or ""
    for fw in ("torch", "jax"):
        if mod.split(".")[0] in (fw, f"{fw}vision") or mod.startswith(fw):
            return fw
    try:
        out = impl(*inputs[:1] and tuple(a[:2] for a in inputs))
    except Exception:  # noqa: BLE001 - the numpy call is only a probe
        out = None
    if out is not None and type(out).__module__.split(".")[0] in ("torch", "jax", "jaxlib"):
        return type(out).__module__.split(".")[0].replace("jaxlib", "jax")
    if out is None:
        try:
            import torch  # noqa: F401

            return "torch"
        except ImportError:
            pass
    return "numpy"


def _evaluate(impl, framework, inputs, dtype, grad):
    """(values, grads or None) of the implementation, as float64 numpy arrays."""
    if framework == "torch":
        import torch

        tdt = torch.float64 if dtype == "float64" else torch.float32
        ts = [torch.tensor(a, dtype=tdt, requires_grad=grad) for a in inputs]
        v = impl(*ts)
        if not grad:
            return v.detach().double().numpy(), None
        v.sum().backward()
        return v.detach().double().numpy(), [t.grad.double().numpy() if t.grad is not None else np.zeros(t.shape)
                                             for t in ts]
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        js = [jnp.asarray(a.astype(dtype)) for a in inputs]
        v, vjp = jax.vjp(impl, *js)
        grads = vjp(jnp.ones_like(v)) if grad else None
        return np.asarray(v, np.float64), None if grads is None else [np.asarray(g, np.float64) for g in grads]
    xs = [a.astype(dtype) for a in inputs]
    v = np.asarray(impl(*xs), dtype=np.float64)
    if not grad:
        return v, None
    fds = [_fd_gradient(impl, xs, k) for k in range(len(xs))]
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


def _fd_gradient(impl, xs, k):
    """Richardson-extrapolated central differences of impl w.r.t. input k (element-wise), and
    their error estimate (the extrapolation's correction, large where a step crosses a kink).
    The step is 1e-6 of the element's largest input magnitude."""
    a = xs[k].astype(np.float64)
    mags = [np.abs(x.astype(np.float64)).reshape(len(a), -1).max(axis=1) for x in xs]
    base = np.maximum(np.max(mags, axis=0), 1e-3)
    g, est = np.zeros_like(a), np.zeros_like(a)
    coords = [(slice(None),)] if a.ndim == 1 else [(slice(None), j) for j in range(a.shape[-1])]
    h = 1e-6 * base
    for c in coords:
        def f(step):
            b = a.copy()
            b[c] = b[c] + step
            args = list(xs)
            args[k] = b.astype(xs[k].dtype)
            return np.asarray(impl(*args), dtype=np.float64)

        fp, fm, fp2, fm2 = f(h), f(-h), f(h / 2), f(-h / 2)
        d1 = (fp - fm) / (2 * h)
        d2 = (fp2 - fm2) / h
        g[c] = (4 * d2 - d1) / 3
        # truncation (the extrapolation's correction) + rounding of the differences: an
        # implementation that loses digits in its value (a textbook formula) is not blamed
        # for the noise that puts into the quotient
        noise = 64 * np.finfo(np.float64).eps * np.maximum(np.abs(fp), np.abs(fm)) / h
        est[c] = np.abs(d2 - d1) + noise
    return g, est


def _variants(loss: str, params: dict) -> list:
    """(description, params) of refloss variants a peer may have implemented instead."""
    out = []
    if loss in ("ciou_loss", "ciou"):
        out += [("alpha_grad=True (the exact derivative)", {**params, "alpha_grad": True}),
                ("alpha_grad=False (alpha constant, as the official code)", {**params, "alpha_grad": False}),
                ("alpha_gate=0.5 (mmdetection, YOLACT)", {**params, "alpha_gate": 0.5}),
                ("darknet=True (the paper's simplified dv/dw)", {**params, "darknet": True})]
    if "eps" in {p.name for p in getattr(refloss, loss).params}:
        out += [(f"eps={e:g}", {**params, "eps": e}) for e in (0.0, 1e-7, 1e-9, 1e-6) if params.get("eps") != e]
    return out


def check_loss(impl, loss: str, *, framework: str = "auto", cases="standard", dtype=None, grad: bool = True,
               rtol=None, **params) -> Report:
    """Compare ``impl`` with ``refloss.<loss>`` on the loss's battery; see the module docstring."""
    if loss not in refloss.ALL_LOSSES:
        raise ValueError(f"loss: unknown {loss!r}; known: {', '.join(refloss.ALL_LOSSES)}")
    ref = getattr(refloss, loss)
    dt = np.dtype(dtype or np.float64).name
    if dt not in TOLERANCES:
        raise ValueError(f"dtype: must be float64 or float32, got {dt}")
    names, inputs = _battery(loss, cases)
    inputs = tuple(a.astype(dt).astype(np.float64) for a in inputs)  # the inputs the implementation sees
    fw = _detect(impl, inputs) if framework == "auto" else framework
    if fw not in ("numpy", "torch", "jax"):
        raise ValueError(f"framework: must be 'auto', 'numpy', 'torch' or 'jax', got {framework!r}")
    vtol, gtol = rtol if isinstance(rtol, tuple) else ((rtol, rtol) if rtol else TOLERANCES[dt])
    got_v, got_g = _evaluate(impl, fw, inputs, dt, grad)
    if isinstance(got_g, tuple):
        got_g = (got_g[0], _unresolved(names, got_g[1]))
    want_v, want_g = ref.value_and_grad(*inputs, **params)
    report = Report(loss, getattr(impl, "__qualname__", repr(impl)), fw, dt, dict(params), len(names))
    report.failures = _compare(names, inputs, ref.inputs, got_v, got_g, want_v, want_g, vtol, gtol,
                               fd=(fw == "numpy"))
    if report.failures:
        report.diagnosis = _diagnose(loss, params, inputs, names, got_v, got_g, vtol, gtol, fw, dt)
    return report


def _compare(names, inputs, input_names, got_v, got_g, want_v, want_g, vtol, gtol, fd=False):
    failures = []
    estimates = [None] * len(input_names)
    if isinstance(got_g, tuple):  # finite differences: (gradients, their error estimates)
        got_g, estimates = got_g

    def add(i, comp, g, w, rel):
        failures.append(Failure(str(names[i]), int(i), [np.asarray(a[i]).tolist() for a in inputs], comp,
                                float(g), float(w), float(rel)))

    with np.errstate(invalid="ignore", divide="ignore"):
        both_nan = np.isnan(got_v) & np.isnan(want_v)
        rel = np.abs(got_v - want_v) / np.maximum(1.0, np.abs(want_v))
        rel = np.where(both_nan, 0.0, np.where(np.isnan(rel), np.inf, rel))
        for i in np.flatnonzero(rel > vtol):
            add(i, "value", got_v[i], want_v[i], rel[i])
        if got_g is None:
            return failures
        for name, g, w, est in zip(input_names, got_g, want_g, estimates):
            g2 = g.reshape(len(names), -1)
            w2 = np.asarray(w, np.float64).reshape(len(names), -1)
            scale = np.maximum(np.nanmax(np.abs(w2), axis=1, keepdims=True), 1e-3)
            # finite differences carry their own error: their estimate is folded into the tolerance
            tol = gtol if est is None else 10 * gtol + 10 * est.reshape(len(names), -1) / scale
            err = np.abs(g2 - w2) / scale
            err = np.where(np.isnan(g2) & np.isnan(w2), 0.0, np.where(np.isnan(err), np.inf, err))
            for i, k in zip(*np.nonzero(err > tol)):
                comp = f"d/d{name}" + (f"[{k}]" if w2.shape[1] > 1 else "")
                add(i, comp, g2[i, k], w2[i, k], err[i, k])
    return failures


def _diagnose(loss, params, inputs, names, got_v, got_g, vtol, gtol, fw, dt) -> str:
    ref = getattr(refloss, loss)
    candidates = _variants(loss, params)
    if dt == "float64":
        candidates.append(("refloss in float32 (float32 accumulation)", {**params, "dtype": np.float32}))
    if loss == "balanced_l1":
        candidates.append(("the copied (b|x|+1) Balanced L1 form, right only at beta = 1", "copied"))
    for desc, variant in candidates:
        if variant == "copied":
            v = _copied_balanced_l1(*inputs, **params)
            g = None
        else:
            v, g = ref.value_and_grad(*inputs, **variant)
        if not _compare(names, inputs, ref.inputs, got_v, got_g if g is not None else None, np.asarray(v, np.float64),
                        g, vtol * (10 if "float32" in desc else 1), gtol * (10 if "float32" in desc else 1),
                        fd=(fw == "numpy")):
            return f"agrees with refloss's {loss} with {desc}"
    return "matches no variant refloss implements"


def _copied_balanced_l1(p, t, beta=1.0, alpha=0.5, gamma=1.5):
    x = np.abs(p - t)
    b = np.expm1(gamma / alpha)
    return np.where(x < beta, alpha / b * (b * x + 1) * np.log(b * x / beta + 1) - alpha * x,
                    gamma * x + gamma / b - alpha * beta)


def assert_loss_matches(impl, loss: str, **kwargs) -> None:
    """:func:`check_loss`, raising AssertionError with the report when it is not ok."""
    report = check_loss(impl, loss, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
