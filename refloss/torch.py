"""refloss's losses for PyTorch: custom operators with autograd, on the CPU and on CUDA.

>>> import torch, refloss.torch as rt
>>> pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64, requires_grad=True)
>>> loss = rt.giou_loss(pred, torch.tensor([[1.0, 1.0, 3.0, 3.0]], dtype=torch.float64), reduction="mean")
>>> loss.backward()
>>> round(loss.item(), 6), [round(g, 6) for g in pred.grad[0].tolist()]
(1.079365, [-0.077853, -0.077853, -0.23356, -0.23356])

Every loss of ``refloss.ALL_LOSSES`` is here under its name, with its parameters, taking and
returning tensors.  One pass of refloss's fused kernel computes the value and the gradients
(the same kernel as the NumPy API, so the results are equal bit for bit); the backward only
multiplies the stored gradients by the incoming one.  No autograd graph runs through the
formula.

- Each loss is a ``torch.library.custom_op`` (``torch.ops.refloss.<name>``) with a fake
  (meta) implementation and an autograd formula: ``torch.compile(fullgraph=True)`` traces
  models that use them without graph breaks, and ``torch.library.opcheck`` passes.
- CPU tensors reach the kernels through NumPy views (no copy; a non-contiguous or broadcast
  input is copied once).  CUDA tensors reach the CUDA kernels through
  ``__cuda_array_interface__`` (no copy), launched on PyTorch's current stream; results are
  CUDA tensors.
- float64 and float32 natively; float16 and bfloat16 are computed in float32 and the results
  returned in the input dtype (AMP).  Inputs are computed in the widest floating dtype among
  the tensors (integer tensors alone: float64, as NumPy's result type); Python numbers do not
  widen tensors.
- ``reduction``: "none", "mean" or "sum"; the gradient of the reduction is part of the kernel
  pass (for "mean": 1/N).  Second derivatives are not available: a double backward raises a
  RuntimeError that says so.
- Integer class indices (``softmax_cross_entropy``'s targets) get no gradient.

Importing ``refloss`` never imports torch; this module needs the optional extra ``torch``
(``pip install 'refloss[torch]'``).  The ops are registered on first use of each loss.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd import forward_ad as _fwad

from . import _retinanet_ssd, _yolo_losses
from ._arrays import _COORDINATES, sum_to_shape
from ._detection import DetectionLoss
from ._generated._index import LOSSES as _INDEX
from ._loss import Loss, _not_an_argument, check_index_column, loss_named
from ._validate import REDUCTIONS, broadcast_shape, check_reduction

# the keywords of a call besides the loss's parameters (no dtype= or device=: they follow the tensors)
_OPTIONS = ("reduction", "validate")

#: the losses this module provides (the names of ``refloss.ALL_LOSSES``)
LOSSES = tuple(n for n, i in _INDEX.items() if i.kind != "coding")
_DETECTORS = {v.name: v for m in (_retinanet_ssd, _yolo_losses) for v in vars(m).values()
              if isinstance(v, DetectionLoss)}
#: the whole detector losses of refloss (retinanet_loss, ssd_loss, yolov1_loss ... yolov4_loss)
DETECTOR_LOSSES = tuple(sorted(_DETECTORS))

__all__ = ["wrap", "LOSSES", "DETECTOR_LOSSES", *LOSSES, *DETECTOR_LOSSES]

# a parameter's kind (refloss._param.Param.kind) -> its type in the operator's schema
_SCHEMA_TYPES = {"real": "float", "bool": "bool", "int": "int", "optional": "float?", "choice": "str",
                 "size": "float[]?"}
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_NATIVE = (torch.float64, torch.float32)
# tensors the fast path takes as they are: plain tensors and nn.Parameter (a subclass that only marks a module's
# weight; no __torch_function__ of its own), not other subclasses, whose operations may mean something else
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_WRAPPED: dict = {}


def _as_schema_value(kind: str, value):
    """A parameter (already validated by refloss) as its schema type wants it."""
    if kind == "real":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if kind == "optional":
        return None if value is None else float(value)
    if kind == "size":
        return None if value is None else [float(v) for v in value]
    return value


class _Shapes:
    """The shapes an operator's outputs have, from its inputs' (real or fake) tensors."""

    def __init__(self, loss: Loss, tensors):
        info = loss.info
        self.index = tuple(n in info.indices and not t.dtype.is_floating_point
                           for n, t in zip(info.inputs, tensors))
        if any(self.index):  # (before any broadcast: the gradients' path widens the rows to the broadcast shape)
            rows = next(k for k, (w, idx) in enumerate(zip(info.widths, self.index)) if w is None and not idx)
            for n, t, idx in zip(info.inputs, tensors, self.index):
                if idx:
                    check_index_column(n, tuple(t.shape), info.inputs[rows], tuple(tensors[rows].shape))
        if None in info.widths and 1 in info.widths:  # one value a row (dfl_loss's target) as a column, likewise
            rows = next(k for k, (w, idx) in enumerate(zip(info.widths, self.index)) if w is None and not idx)
            for n, t, w in zip(info.inputs, tensors, info.widths):
                if w == 1:
                    check_index_column(n, tuple(t.shape), info.inputs[rows], tuple(tensors[rows].shape), False)
        for n, t, w, layout in zip(info.inputs, tensors, info.widths, info.layouts):
            if w not in (1, None) and (t.dim() == 0 or t.shape[-1] != w):
                raise ValueError(f"{n}: last dimension must be {w}{_COORDINATES.get(layout, '')}, got shape "
                                 f"{tuple(t.shape)}")
        leads = [tuple(t.shape) if (w == 1 or idx) else tuple(t.shape[:-1])
                 for t, w, idx in zip(tensors, info.widths, self.index)]
        first = leads[0]  # (torch.broadcast_shapes costs tens of microseconds: only where shapes differ)
        if all(s == first for s in leads):
            self.lead = first
        else:
            try:
                self.lead = tuple(torch.broadcast_shapes(*leads))
            except RuntimeError:  # (refloss's message, as the NumPy API's, not torch's "Mismatching argument")
                broadcast_shape(dict(zip(info.inputs, leads)), dict(zip(info.inputs, (tuple(t.shape) for t in tensors))))
                raise
        row = next((t.shape[-1] for t, w, idx in zip(tensors, info.widths, self.index) if w is None and not idx), None)
        self.full = tuple(self.lead if w == 1 or idx else self.lead + ((row if w is None else w),)
                          for w, idx in zip(info.widths, self.index))
        # a weighted mean's gradients come from the NumPy API at the inputs' own shapes (its sums over broadcast
        # axes: broadcast first and summed by the backward, focal_eiou_loss's target gradient was an ulp off)
        self.own = tuple(tuple(t.shape) for t in tensors) if info.mean_weight is not None else None

    def grads(self, reduction: str) -> tuple:
        """The shapes of the operator's gradient outputs (each input's broadcast shape, but a weighted mean's)."""
        return self.own if reduction == "mean" and self.own is not None else self.full


_SHAPES: dict = {}


def _shapes_of(loss: Loss, tensors) -> _Shapes:
    """``_Shapes`` of real tensors, cached by the loss and the tensors' shapes and dtypes (a training loop
    calls with the same ones every step; working them out costs several microseconds)."""
    key = (loss, *[(t.shape, t.dtype) for t in tensors])
    shapes = _SHAPES.get(key)
    if shapes is None:
        shapes = _Shapes(loss, tensors)
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        _SHAPES[key] = shapes
    return shapes


def _make_op(loss: Loss, op_name: str):
    """Register ``refloss::<op_name>``: (inputs..., parameters..., reduction, validate,
    with_grad) -> (value, gradient per input); the gradients have the inputs' broadcast shapes
    (empty when ``with_grad`` is false or the input holds class indices)."""
    info = loss.info
    n_in = len(info.inputs)
    kinds = [p.kind for p in info.params]
    schema = ("(" + ", ".join([f"Tensor {n}" for n in info.inputs]
                              + [f"{_SCHEMA_TYPES[p.kind]} {p.name}" for p in info.params]
                              + ["str reduction", "bool validate", "bool with_grad"])
              + ") -> (" + ", ".join(["Tensor"] * (1 + n_in)) + ")")

    def split(args):
        tensors = args[:n_in]
        params = {p.name: (tuple(v) if p.kind == "size" and v is not None else v)
                  for p, v in zip(info.params, args[n_in:n_in + len(kinds)])}
        return tensors, params, *args[n_in + len(kinds):]

    def impl(*args):
        tensors, params, reduction, validate, with_grad = split(args)
        if _native(tensors):
            return _impl(loss, tensors, params, reduction, validate, with_grad)
        # the operator called directly with mixed, integer or half-precision tensors: as refloss.torch's call
        # computes them (the fake implementation's dtype), half precision in float32 and rounded once
        tensors = _tensors(info, tensors)
        low = tensors[0].dtype if tensors[0].dtype in _LOW_PRECISION else None
        if low is None:
            return _impl(loss, tensors, params, reduction, validate, with_grad)
        out = _impl(loss, [t.float() if t.dtype.is_floating_point else t for t in tensors], params, reduction,
                    validate, with_grad)
        return tuple(o.to(low) for o in out)

    def fake(*args):
        tensors, _, reduction, _, with_grad = split(args)
        shapes = _Shapes(loss, tensors)
        ref = next(t for t, idx in zip(tensors, shapes.index) if not idx)
        dt = _common_dtype([t.dtype for t, idx in zip(tensors, shapes.index) if not idx])
        value = ref.new_empty(shapes.lead if reduction == "none" else (), dtype=dt)
        grads = [ref.new_empty(grad_shape if with_grad and not idx else (0,), dtype=dt)
                 for grad_shape, idx in zip(shapes.grads(reduction), shapes.index)]
        return (value, *grads)

    def setup_context(ctx, inputs, output):
        tensors, _, reduction, _, _ = split(inputs)
        ctx.note = ([t.shape for t in tensors], reduction == "none")
        ctx.save_for_backward(*output[1:])
        ctx.mark_non_differentiable(*output[1:])

    def backward(ctx, grad_value, *_):
        shapes, per_element = ctx.note
        return (*_backward(info, grad_value, ctx.saved_tensors, shapes, per_element, ctx.needs_input_grad[:n_in],
                           torch.ops.refloss.sum_to),
                *[None] * (len(kinds) + 3))

    op = torch.library.custom_op(f"refloss::{op_name}", impl, mutates_args=(), schema=schema)
    op.register_fake(fake)
    op.register_autograd(backward, setup_context=setup_context)
    return op


def _sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    """``t`` summed to ``shape`` (over the axes it was broadcast along) as the NumPy API sums it: compensated
    (refloss/_sums.py, within an ulp of the exact sum; torch's ``sum_to_size`` was up to 27 ulps off at 10^6
    terms) for CPU float16/32/64 tensors, torch's ``sum_to_size`` for the others (CUDA, bfloat16)."""
    if t.shape == shape:
        return t
    if t.is_cpu and t.dtype in (torch.float64, torch.float32, torch.float16):
        return torch.from_numpy(np.ascontiguousarray(sum_to_shape(t.detach().numpy(), tuple(shape))))
    return t.sum_to_size(shape)


@torch.library.custom_op("refloss::sum_to", mutates_args=(), schema="(Tensor t, SymInt[] shape) -> Tensor")
def _sum_to_op(t, shape):
    """``_sum_to`` as an operator, for the losses' operator backward that torch.compile traces."""
    out = _sum_to(t, torch.Size(shape))
    return out.clone() if out is t else out


@_sum_to_op.register_fake
def _(t, shape):
    return t.new_empty(shape)


def _backward(info, grad_value, kernel_grads, shapes, per_element, needed, sum_to=_sum_to) -> list:
    """The inputs' gradients: the kernel's, times the incoming gradient, summed over broadcast axes by ``sum_to``
    (None for an input that needs none: class indices, constants)."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"refloss.torch.{info.name}: second derivatives are not available (the backward "
                           "multiplies the kernel's first derivatives by the incoming gradient); "
                           "create_graph=True / torch.autograd.grad of a gradient is not supported")
    grads = []
    for g, shape, w, need in zip(kernel_grads, shapes, info.widths, needed):
        if not need:
            grads.append(None)
            continue
        scale = grad_value.unsqueeze(-1) if per_element and w != 1 else grad_value
        g = g * scale
        grads.append(g if g.shape == shape else sum_to(g, shape))
    return grads


class _Eager(torch.autograd.Function):
    """Eager mode's path to the same implementation as the operator, without the dispatcher's
    round trip (tens of microseconds a call); ``torch.compile`` traces the operator instead."""

    @staticmethod
    def forward(ctx, call, *tensors):  # call: (TorchLoss, params, reduction, validate, native), one argument (cheaper)
        fn, params, reduction, validate, native = call
        # the kernel's gradients, intermediate tensors (neither inputs nor outputs): saved, so that PyTorch frees
        # them after a backward without retain_graph, and the gradient a reduced loss hands over as it is becomes
        # the leaf's .grad without a copy (AccumulateGrad copies a gradient something else still holds); only those
        # of inputs that need one (a target's: never made a tensor, freed now)
        needed = ctx.needs_input_grad
        if native and not tensors[0].is_cuda:  # the common call: _cpu_impl's fast path, inline (the fixed cost)
            result = _fast_call(fn._loss, [t.numpy() for t in tensors], params, reduction, validate, True)
            if result is not None:  # (each gradient has its input's shape: noted as None)
                value, grads = result
                ctx.save_for_backward(*[torch.from_numpy(g) if n else None for g, n in zip(grads, needed[1:])])
                ctx.note = (fn._info, None, reduction == "none")  # (one attribute: each costs)
                return _fast_tensor(value, reduction)
        out = _impl(fn._loss, tensors, params, reduction, validate, True, native)
        ctx.save_for_backward(*[g if n else None for g, n in zip(out[1:], needed[1:])])
        ctx.note = (fn._info, [t.shape for t in tensors], reduction == "none")
        return out[0]

    @staticmethod
    def backward(ctx, grad_value):
        info, shapes, per_element = ctx.note
        grads = ctx.saved_tensors  # (None for an input that needs no gradient)
        # loss.backward() of a reduced loss: the gradients as they are, where they have the inputs' shapes
        if not per_element and not torch.is_grad_enabled() and grad_value.is_cpu and _is_one(grad_value):
            if shapes is None:  # (the fast path's: each at its input's shape)
                return (None, *grads)
            if all(g is None or g.shape == s for g, s in zip(grads, shapes)):
                return (None, *grads)
        if shapes is None:
            shapes = [None if g is None else g.shape for g in grads]
        return (None, *_backward(info, grad_value, grads, shapes, per_element, [g is not None for g in grads]))


def _is_one(grad_value) -> bool:
    """Whether a reduced loss's incoming gradient is 1 (loss.backward()); False for a batched one (vmap's,
    ``is_grads_batched=True``, ``jacobian(vectorize=True)``: one tensor for many gradients, which has no single
    value: ``item()`` raised "Batching rule not implemented for aten::item"), multiplied in as any other."""
    try:
        return grad_value.item() == 1.0
    except RuntimeError:
        return False


def _impl(loss, tensors, params, reduction, validate, with_grad, native=False):
    """(value, gradient per input) of the loss on the tensors; ``native``: tensors of one float dtype (_native)."""
    if tensors[0].is_cuda:  # (Tensor.device.type costs 0.4 us a call, is_cuda 0.06)
        return _cuda_impl(loss, tensors, params, reduction, validate, with_grad)
    return _cpu_impl(loss, tensors, params, reduction, validate, with_grad, native)


def _value(loss, tensors, params, reduction, validate, native=False) -> torch.Tensor:
    """The eager value alone (no gradient placeholders); ``native``: tensors of one float dtype (_native)."""
    if tensors[0].is_cuda:
        return _cuda_impl(loss, tensors, params, reduction, validate, False)[0]
    arrays = [t.numpy() for t in tensors] if native else [_numpy_view(t) for t in tensors]
    # the common call (tensors of one float dtype, _tensors): the NumPy API's fast path first, without
    # _numpy_call's checks of what _tensors made sure of
    result = _fast_call(loss, arrays, params, reduction, validate, False)
    if result is None:
        return _tensor(_numpy_call(loss, arrays, params, reduction, validate, False, fast=False))
    return _fast_tensor(result, reduction)


def _fast_tensor(value, reduction) -> torch.Tensor:
    """The NumPy fast path's value as a tensor: a new array (reduction "none") or a NumPy scalar, writeable and
    contiguous as made (no check, no copy)."""
    return torch.from_numpy(value if reduction == "none" else np.asarray(value))


def _fast_call(loss, arrays, params, reduction, validate, with_grad):
    """The NumPy API's fast path (C-contiguous arrays of one float dtype and one shape), or None where it
    does not apply."""
    if loss._fast_width is None or (reduction == "mean" and loss.info.mean_weight is not None):
        return None
    return loss._fast(with_grad, arrays, params, reduction, validate)


def _numpy_call(loss, arrays, params, reduction, validate, with_grad, fast=True):
    """The NumPy API on views of the tensors (one floating dtype, checked by _tensors): its CPU drivers
    directly, without the checks and conversions its call would repeat, or its whole call where it
    does more (class indices, a weighted mean).  ``fast=False``: the fast path was tried already."""
    info = loss.info
    dt = arrays[0].dtype
    if (info.indices or (reduction == "mean" and info.mean_weight is not None) or dt.type not in (np.float32, np.float64)
            or any(a.dtype != dt for a in arrays)):  # (the operator called directly: any tensors)
        fn = loss.value_and_grad if with_grad else loss
        return fn(*arrays, reduction=reduction, validate=validate, **params)
    result = _fast_call(loss, arrays, params, reduction, validate, with_grad) if fast else None
    if result is not None:
        return result
    values = loss._param_values(params)
    precision = "f32" if dt == np.float32 else "f64"
    args = loss._checked_args(values, precision)
    return loss._cpu_evaluate(with_grad, arrays, dt, precision, args, reduction, validate, values)


def _numpy_view(t: torch.Tensor) -> np.ndarray:
    return t.numpy() if t.dtype != torch.bool else t.to(torch.float64).numpy()


def _cpu_impl(loss, tensors, params, reduction, validate, with_grad, native=False):
    arrays = [t.numpy() for t in tensors] if native else [_numpy_view(t) for t in tensors]
    if not with_grad:
        value = _tensor(_numpy_call(loss, arrays, params, reduction, validate, False))
        return (value, *[value.new_empty((0,)) for _ in tensors])
    result = _fast_call(loss, arrays, params, reduction, validate, True)  # (each gradient has its input's shape)
    if result is not None:
        return (_fast_tensor(result[0], reduction), *[torch.from_numpy(g) for g in result[1]])
    shapes = _shapes_of(loss, tensors)
    ref = next(t for t, idx in zip(tensors, shapes.index) if not idx)
    # each gradient at the broadcast shape (the backward multiplies it by the incoming gradient, then sums), but a
    # weighted mean's (the NumPy API's at the inputs' shapes, see _Shapes.own)
    arrays = [a if idx or a.shape == full else np.broadcast_to(a, full)
              for a, full, idx in zip(arrays, shapes.grads(reduction), shapes.index)]
    value, grads = _numpy_call(loss, arrays, params, reduction, validate, True, fast=False)
    return (_tensor(value), *[ref.new_empty((0,)) if g is None else _tensor(g) for g in grads])


def _tensor(a) -> torch.Tensor:
    a = np.asarray(a)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a).copy()
    return torch.from_numpy(a)


def _cuda_impl(loss, tensors, params, reduction, validate, with_grad):
    """CUDA tensors: the generated CUDA kernel on PyTorch's current stream, writing into tensors
    PyTorch allocated.  Class indices and weighted means go through the CPU path (a copy)."""
    info = loss.info
    # detached: a tensor that requires grad has no __cuda_array_interface__ (the autograd.Function's forward
    # sees the caller's leaves); the kernel's gradients are attached by the caller
    tensors = [t.detach() for t in tensors]
    shapes = _shapes_of(loss, tensors)
    if any(shapes.index) or (reduction == "mean" and info.mean_weight is not None):
        device = tensors[0].device
        return tuple(r.to(device) for r in _cpu_impl(loss, [t.cpu() for t in tensors], params, reduction,
                                                    validate, with_grad))
    from numba import cuda

    from . import _backends
    from ._validate import row_bounds

    backend = _backends.cuda()
    stream = torch.cuda.current_stream(tensors[0].device)
    if validate:  # refloss's device checks run on Numba's default stream: finish PyTorch's work first
        stream.synchronize()
        row = next((t.shape[-1] for t, w in zip(tensors, info.widths) if w is None), None)
        backend.check_devices([(n, cuda.as_cuda_array(t.contiguous()), layout, row_bounds(bounds, row))
                               for n, t, (layout, bounds) in zip(info.inputs, tensors, loss._input_rules)])
    dt = tensors[0].dtype
    precision = "f32" if dt == torch.float32 else "f64"
    size = int(np.prod(shapes.lead, dtype=np.int64))
    flat = [t.expand(full).contiguous().reshape((size,) if w == 1 else (size, full[-1]))
            for t, full, w in zip(tensors, shapes.full, info.widths)]
    out = torch.empty(size, dtype=dt, device=tensors[0].device)
    values = loss._param_values(params)
    if info.row_params:  # (a parameter at most the rows' last index: DFL's clamp)
        loss._check_row_params(values, tensors)
    args = loss._cuda_args(values, precision, loss._checked_args(values, precision))
    if size:
        nstream = cuda.external_stream(stream.cuda_stream)
        blocks = backend._blocks(size)
        module = loss._module("cuda")
        views = [cuda.as_cuda_array(f) for f in flat]
        if with_grad:
            grads = [torch.empty_like(f) for f in flat]
            divisor = np.float32(1) if precision == "f32" else 1.0
            if reduction == "mean":
                divisor = np.float32(size) if precision == "f32" else float(size)
            getattr(module, f"value_and_grad_{precision}")[blocks, backend.THREADS, nstream](
                *views, cuda.as_cuda_array(out), *[cuda.as_cuda_array(g) for g in grads], divisor, *args)
        else:
            getattr(module, f"value_{precision}")[blocks, backend.THREADS, nstream](
                *views, cuda.as_cuda_array(out), *args)
    elif with_grad:
        grads = [torch.empty_like(f) for f in flat]
    value = out.reshape(shapes.lead)
    value = value if reduction == "none" else value.sum() if reduction == "sum" else value.mean()
    if not with_grad:
        return (value, *[out.new_empty((0,)) for _ in tensors])
    return (value, *[g.reshape(full) for g, full in zip(grads, shapes.full)])


class TorchLoss:
    """A refloss loss for tensors: ``L(*inputs, **params, reduction="none", validate=True)``."""

    def __init__(self, loss: Loss, op_name: str | None = None):
        self._loss = loss
        self._info = info = loss.info
        self.__name__ = self.__qualname__ = info.name
        self.__module__ = "refloss.torch"
        self._op = _make_op(loss, op_name or info.name)
        self._kinds = {p.name: p.kind for p in info.params}

    def __repr__(self) -> str:
        return f"refloss.torch.{self._info.name}"

    def __reduce__(self):  # pickled as a reference (its operator is registered once a process): wrap(the loss)
        return wrap, (self._loss,)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):  # (copy.deepcopy of a model holding the loss: an EMA model)
        return self

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def info(self):
        """What refloss knows about the loss (``refloss.<name>.info``)."""
        return self._info

    @property
    def inputs(self) -> tuple:
        return self._info.inputs

    @property
    def op(self):
        """The custom operator (``torch.ops.refloss.<name>``)."""
        return self._op

    @property
    def __doc__(self):  # noqa: D105
        return (f"refloss.{self._info.name} for PyTorch tensors, differentiable (refloss.torch).\n\n"
                "Takes and returns tensors (the result's dtype and device follow the inputs; the NumPy API's "
                "dtype=, device= and out=, documented below, are not taken); the parameters, conventions and "
                "formula are refloss's:\n\n" + self._loss.__doc__)

    @property
    def __signature__(self):  # the NumPy API's, without dtype=, device= (they follow the tensors) and out=
        sig = self._loss.__signature__
        return sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in ("dtype", "device", "out")])

    def __call__(self, *inputs, reduction="none", validate=True, **params):
        info = self._info
        if params and ("device" in params or "dtype" in params or "out" in params):
            if "out" in params and params["out"] is None:  # (the NumPy API's default, spelled out)
                del params["out"]
            elif "out" in params:
                raise TypeError(f"refloss.torch.{info.name}: takes no out=: it returns new tensors, which autograd "
                                f"tracks (out= is the NumPy API's, refloss.{info.name}(..., out=array))")
            if "device" in params or "dtype" in params:
                raise TypeError(f"refloss.torch.{info.name}: takes no device= or dtype=: it computes on the "
                                "tensors' device in their dtype (float16/bfloat16 in float32); move or cast the "
                                "tensors instead, e.g. pred.to('cuda', torch.float64)")
        # the per-call fixed cost of the eager path (a few microseconds over the NumPy call): keep it lean
        rebind = len(inputs) != len(info.inputs)
        if params and not rebind:  # (a loop: torch.compile does not trace dict_keys.isdisjoint)
            for n in info.inputs:
                if n in params:
                    rebind = True
                    break
        if rebind:
            inputs, params = self._loss._bind(inputs, dict(params))
        if reduction not in REDUCTIONS:
            check_reduction(reduction)
        values = self._loss._param_values(params, _OPTIONS) if params else self._loss._default_values  # unknown: TypeError
        native = _native(inputs)
        if native:  # tensors of one native float dtype on one device: as they are
            tensors, low = inputs, None
        else:
            tensors = _tensors(info, inputs)
            low = tensors[0].dtype if tensors[0].dtype in _LOW_PRECISION else None
            if low is not None:
                tensors = [t.float() if t.dtype.is_floating_point else t for t in tensors]
        with_grad = False
        if torch.is_grad_enabled():
            for t in tensors:
                if t.requires_grad:
                    with_grad = True
                    break
        # compiled, or meta tensors (shapes without values: the operator's fake implementation gives the results'
        # shapes, as under torch.compile): the registered operator, which checks the parameters when it runs
        meta = tensors[0].is_meta
        if meta:  # (the fake implementation checks nothing: the parameters here, as the operator's would)
            self._loss._checked_args(values, "f32" if tensors[0].dtype == torch.float32 else "f64")
            if info.row_params:  # (a parameter at most the rows' last index: DFL's clamp)
                self._loss._check_row_params(values, tensors)
        if meta or torch.compiler.is_compiling():
            args = [_as_schema_value(self._kinds[k], v) for k, v in zip(self._loss._defaults, values)]
            out = self._op(*tensors, *args, reduction, bool(validate), with_grad)[0]
        else:  # eager: the operator's implementation without the dispatcher's round trip (it checks the parameters)
            if torch._C._are_functorch_transforms_active() or _fwad._current_level >= 0:
                _check_transforms(info.name, tensors)
            out = (_Eager.apply((self, params, reduction, bool(validate), native), *tensors) if with_grad
                   else _value(self._loss, tensors, params, reduction, bool(validate), native))
        return out.to(low) if low is not None else out


def _check_transforms(name: str, tensors) -> None:
    """RuntimeError under a torch.func transform, or for a dual tensor of forward-mode AD: the loss runs refloss's
    compiled kernel on the tensors' data (the value path read a dual tensor's primal and dropped its tangent
    silently; torch.func's wrapped tensors failed inside PyTorch)."""
    if torch._C._are_functorch_transforms_active():
        raise RuntimeError(f"refloss.torch.{name}: torch.func transforms (grad, vmap, jacrev, jvp, ...) are not "
                           "supported: the loss runs refloss's compiled kernel on the tensors' data; use "
                           "loss.backward() or torch.autograd.grad (a batch is a leading axis: the losses broadcast)")
    for t in tensors:
        if isinstance(t, torch.Tensor) and _fwad.unpack_dual(t).tangent is not None:
            raise RuntimeError(f"refloss.torch.{name}: forward-mode AD (torch.autograd.forward_ad dual tensors) is "
                               "not supported: the kernel gives the gradient (reverse mode); use loss.backward() or "
                               "torch.autograd.grad")


def _native(inputs) -> bool:
    """Whether the inputs are tensors of one native float dtype (float64, float32) on one device: the common
    call, which needs no conversion."""
    first = inputs[0]
    if type(first) not in _PLAIN:
        return False
    dt = first.dtype
    if dt not in _NATIVE:
        return False
    if first.is_cpu:  # (the common case: Tensor.device makes a torch.device a call, is_cpu costs less)
        for v in inputs:  # (a loop: all() of a generator costs twice as much, in a call of ~15 us)
            if type(v) not in _PLAIN or v.dtype != dt or not v.is_cpu:
                return False
        return True
    device = first.device
    for v in inputs:
        if type(v) not in _PLAIN or v.dtype != dt or v.device != device:
            return False
    return True


def _tensors(info, inputs) -> list:
    """The inputs as tensors of one floating dtype and one device (class indices stay integer)."""
    if _native(inputs):
        return list(inputs)
    given = [v for v in inputs if isinstance(v, torch.Tensor)]
    if not given:
        raise TypeError(f"refloss.torch.{info.name}: takes torch tensors, got "
                        f"{', '.join(type(v).__name__ for v in inputs)} (refloss.{info.name} takes NumPy arrays)")
    devices = {v.device for v in given}
    if len(devices) > 1:
        raise ValueError(f"refloss.torch.{info.name}: tensors on different devices: "
                         + ", ".join(f"{n} on {v.device}" for n, v in zip(info.inputs, inputs)
                                     if isinstance(v, torch.Tensor)))
    device = given[0].device
    index = [n in info.indices and isinstance(v, torch.Tensor) and not (v.dtype.is_floating_point
                                                                         or v.dtype.is_complex)
             for n, v in zip(info.inputs, inputs)]
    floats = [v for v, idx in zip(inputs, index) if not idx]
    for n, v in zip(info.inputs, inputs):
        if isinstance(v, torch.Tensor) and v.dtype.is_complex:
            raise TypeError(f"{n}: must be a real tensor, got {v.dtype}")
    dt = _common_dtype([v.dtype for v in floats if isinstance(v, torch.Tensor)])
    out = []
    for n, v, idx in zip(info.inputs, inputs, index):
        if v is None or isinstance(v, (str, bytes)):
            raise TypeError(f"refloss.torch.{info.name}: {n} must be a tensor (or numbers), got {v!r}")
        try:
            out.append(torch.as_tensor(v, device=device) if idx else torch.as_tensor(v, dtype=dt, device=device))
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"refloss.torch.{info.name}: {n} must be a tensor (or numbers), got "
                            f"{type(v).__name__} ({e})") from None
    return out


_RANK = {torch.float16: 1, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}


def _common_dtype(dtypes) -> torch.dtype:
    """The widest floating dtype of the tensors (float16 with bfloat16: float32); integer or bool
    tensors alone: float64, as NumPy's result type (a Python number never widens a tensor)."""
    floats = {d for d in dtypes if d.is_floating_point}
    if not floats:
        return torch.float64
    if len(floats) == 1:
        return floats.pop()
    top = max(floats, key=_RANK.get)
    return torch.float32 if _RANK[top] == 1 else top


def wrap(loss) -> TorchLoss:
    """The ``refloss.torch`` form of a refloss loss (a ``refloss.<name>`` or a
    ``refloss.design`` loss), its operator registered on first use."""
    if isinstance(loss, str):
        if loss in DETECTOR_LOSSES:  # (its tensors are a detector's heads and targets: no Loss to wrap)
            raise AttributeError(f"wrap: {loss!r} is a whole detector loss, not one wrap takes; use "
                                 f"refloss.torch.{loss}, which takes tensors already")
        if loss not in LOSSES:
            guess = _not_an_argument(loss, LOSSES + DETECTOR_LOSSES).partition("(did you mean ")[2][:-len("=?)")]
            if guess in DETECTOR_LOSSES:
                guess = f"refloss.torch.{guess}, a whole detector loss"
            raise AttributeError(f"refloss.torch has no loss {loss!r}" + (f" (did you mean {guess}?)" if guess else ""))
        loss = loss_named(loss)
    if not isinstance(loss, Loss):
        hint = ""
        if type(loss).__module__ == "refloss.design" and type(loss).__name__ == "Design":
            hint = "; for a refloss.design Design, wrap its compiled loss: wrap(design.loss)"
        raise TypeError(f"wrap: takes a refloss loss (e.g. refloss.giou_loss), got {loss!r}{hint}")
    key = (loss.name, loss.__module__, id(loss) if loss.__module__ != "refloss" else 0)
    if key not in _WRAPPED:
        name = loss.name if loss.__module__ == "refloss" else f"design_{loss.name}_{len(_WRAPPED)}"
        _WRAPPED[key] = TorchLoss(loss, name)
    return _WRAPPED[key]


# --- whole detector losses: tensors in, DetectionResult with a differentiable total out ---



def _to_numpy(tree):
    """Tensors anywhere in dicts, lists and tuples as NumPy arrays (detached, on the CPU)."""
    if isinstance(tree, torch.Tensor):  # (bfloat16, which NumPy has not: float32, exactly)
        return (tree.detach().float() if tree.dtype == torch.bfloat16 else tree.detach()).cpu().numpy()
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_numpy(v) for v in tree)
    return tree


def _leaves(tree) -> list:
    """The leaves of a dict / list / tuple tree, in a fixed order."""
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [x for v in tree for x in _leaves(v)]
    return [tree]


def _paired(heads, grads) -> list:
    """(leaf of ``heads``, its gradient or None) for every leaf of the dict / list / tuple tree ``heads``, each
    gradient found at the same key or index of ``grads`` (value_and_grad's, in refloss's own key order, not the
    caller's: zipping the two trees' leaves gave cls_logits bbox_regression's gradient for a dict in the other
    order); None for a leaf the loss does not read (an extra key)."""
    if isinstance(heads, dict):
        return [x for k in heads for x in _paired(heads[k], grads.get(k) if isinstance(grads, dict) else None)]
    if isinstance(heads, (list, tuple)):
        same = isinstance(grads, (list, tuple)) and len(grads) == len(heads)
        return [x for i, v in enumerate(heads) for x in _paired(v, grads[i] if same else None)]
    return [(heads, grads)]


class _Total(torch.autograd.Function):
    """The total of a detector loss as a function of the head outputs' tensors, its gradients given."""

    @staticmethod
    def forward(ctx, name, total, grads, *heads):
        ctx.name = name
        ctx.save_for_backward(*grads)  # (freed after a backward without retain_graph: a second one is refused)
        return total.clone()

    @staticmethod
    def backward(ctx, grad_total):
        if torch.is_grad_enabled():  # (the gradients are constants here: a second derivative would be 0, silently)
            raise RuntimeError(f"refloss.torch.{ctx.name}: second derivatives are not available (the backward "
                               "multiplies refloss's first derivatives by the incoming gradient); create_graph=True "
                               "/ torch.autograd.grad of a gradient is not supported")
        return (None, None, None, *[None if g is None else g * grad_total for g in ctx.saved_tensors])


class TorchDetectionLoss:
    """A whole detector loss of refloss (``refloss.retinanet_loss`` ...) taking tensors: the same
    arguments, tensors anywhere in them (head outputs as a tensor, a list of them or a dict);
    returns refloss's ``DetectionResult`` with ``total`` a tensor differentiable with respect to
    the head outputs (their gradients from refloss's ``value_and_grad``) and ``parts`` as tensors.
    Runs refloss's NumPy implementation (CUDA tensors are copied to the host and back)."""

    def __init__(self, name: str):
        self._loss = _DETECTORS[name]
        self.__name__ = self.__qualname__ = name
        self.__module__ = "refloss.torch"
        self.__signature__ = self._loss.__signature__
        self.__doc__ = f"refloss.{name} for tensors (refloss.torch):\n\n" + (self._loss.__doc__ or "")

    def __repr__(self) -> str:
        return f"refloss.torch.{self.__name__}"

    def __reduce__(self):  # pickled and copied as a reference: refloss.torch.<name> itself
        return self.__name__

    # (host code, NumPy and Python: torch.compile must not trace into it -- it failed there, on ndarray.setflags --
    # but run it eagerly, a graph break)
    @torch.compiler.disable
    def __call__(self, *args, **kwargs):
        self._loss._bind(args, kwargs)
        heads = self.__signature__.bind(*args, **kwargs).arguments["head_outputs"]
        tensors = [h for h in _leaves(heads) if isinstance(h, torch.Tensor)]
        if not tensors:
            raise TypeError(f"refloss.torch.{self.__name__}: head_outputs holds no torch tensor (refloss."
                            f"{self.__name__} takes NumPy arrays)")
        ref = tensors[0]
        # the results' dtype: NumPy's (the widest of the heads', or dtype=; it was the first head's), but float16 or
        # bfloat16 heads' results in their dtype (computed in float32; bfloat16, which NumPy has not, converted exactly)
        floats = {t.dtype for t in tensors if t.dtype.is_floating_point}
        low = floats.pop() if len(floats) == 1 and not floats & set(_NATIVE) and kwargs.get("dtype") is None else None
        low = low if low in _LOW_PRECISION else None
        np_args, np_kwargs = _to_numpy(list(args)), _to_numpy(kwargs)
        with_grad = False
        if torch.is_grad_enabled():
            for t in tensors:
                if t.requires_grad:
                    with_grad = True
                    break
        if not with_grad:
            result = self._loss(*np_args, **np_kwargs)
        else:
            result, grads = self._loss.value_and_grad(*np_args, **np_kwargs)
        def as_tensor(v, dtype=None):
            v = np.asarray(v)
            return torch.as_tensor(v, dtype=dtype or (low if low is not None and v.dtype.kind == "f" else None),
                                   device=ref.device)

        total = as_tensor(result.total)
        if with_grad:
            pairs = _paired(heads, grads)
            g = [None if d is None or not (isinstance(h, torch.Tensor) and h.requires_grad) else as_tensor(d, h.dtype)
                 for h, d in pairs]
            total = _Total.apply(self.__name__, total, g,
                                 *[h if isinstance(h, torch.Tensor) else torch.empty(0) for h, _ in pairs])
        result.total = total
        result.parts = {k: as_tensor(v) for k, v in result.parts.items()}
        return result


def __getattr__(name: str):
    if name in LOSSES:  # kept as a module attribute: later lookups skip this function
        fn = globals()[name] = wrap(name)
        return fn
    if name in DETECTOR_LOSSES:
        fn = globals()[name] = TorchDetectionLoss(name)
        return fn
    raise AttributeError(f"module 'refloss.torch' has no attribute {name!r}"
                         + ("; " + _not_an_argument(name, LOSSES + DETECTOR_LOSSES).replace("is not an argument ", "")
                            .replace("=?", "?")
                            if not name.startswith("__") else ""))


def __dir__():
    return sorted({*globals(), *LOSSES, *DETECTOR_LOSSES})
