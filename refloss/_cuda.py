"""CUDA execution: one fused grid-stride kernel writes the value and the gradients.

Inputs may be NumPy arrays (copied to the device; results come back as NumPy) or
any object with ``__cuda_array_interface__`` (PyTorch, CuPy, Numba device arrays:
zero copy; results are Numba device arrays, which such libraries can wrap without
copying, e.g. ``torch.as_tensor(out, device="cuda")``).  On the device path all
array inputs must be device arrays, C-contiguous, of the same shape but for the last axis of an input of
width > 1 (DFL's logits (n, C) and target (n,); broadcast them first); ``validate=True``
checks finiteness with a small device kernel; reductions return host scalars.
Imported only when ``device="cuda"`` is asked for.

The interface for the rest of refloss: :func:`launch`
(one fused kernel over flat device arrays), :func:`evaluate` (a loss, from host or device
inputs), :func:`device_inputs`, :func:`to_device`, :func:`check_devices` and :func:`check_positive_device`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._arrays import flat as _flat, lead_shape, on_device, reduce, row_width, sum_to_shape
from ._numba_options import CACHE
from ._validate import as_real_array, check_input, row_bounds

THREADS = 256


@cuda.jit(cache=CACHE)
def _first_bad(x, width, rule, lo, hi, bounded, found):
    """One pass over a flat input for every rule of check_input: found[0] the first non-finite element,
    found[1] the first row of ``width`` elements breaking the layout's rule (rule 1: x2 >= x1 and y2 >= y1;
    2: sizes, elements 2 and 3, >= 0), found[2] the first element outside [lo, hi] (``bounded``)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[i]
        if not (v - v == 0):  # NaN or +-inf
            cuda.atomic.min(found, 0, i)
        if bounded and (v < lo or v > hi):
            cuda.atomic.min(found, 2, i)
        if rule != 0 and i % width == 0:
            if rule == 1:
                if x[i + 2] < v or x[i + 3] < x[i + 1]:
                    cuda.atomic.min(found, 1, i // width)
            elif x[i + 2] < 0 or x[i + 3] < 0:
                cuda.atomic.min(found, 1, i // width)


@cuda.jit(cache=CACHE)
def _first_non_positive(x, found):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        if not (x[i] > 0):
            cuda.atomic.min(found, 0, i)


@cuda.jit(cache=CACHE)
def _first_invalid_box(b, found):
    for i in range(cuda.grid(1), b.shape[0], cuda.gridsize(1)):
        if b[i, 2] < b[i, 0] or b[i, 3] < b[i, 1]:
            cuda.atomic.min(found, 0, i)


@cuda.jit(cache=CACHE)
def _first_negative_size(b, found):
    for i in range(cuda.grid(1), b.shape[0], cuda.gridsize(1)):
        if b[i, 2] < 0 or b[i, 3] < 0:
            cuda.atomic.min(found, 0, i)


@cuda.jit(cache=CACHE)
def _first_outside(x, lo, hi, found):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        if x[i] < lo or x[i] > hi:
            cuda.atomic.min(found, 0, i)


def _as_device_array(v):
    return v if type(v).__name__ == "FakeCUDAArray" else cuda.as_cuda_array(v)


def _blocks(n: int) -> int:
    return max(1, min(math.ceil(n / THREADS), 65535))


def _first_flagged(kernel, arr, size, *args) -> int:
    """The first index the kernel flags (``size`` if none)."""
    found = cuda.to_device(np.array([size], dtype=np.int64))
    kernel[_blocks(size), THREADS](arr, *args, found)
    return int(found.copy_to_host()[0])


def _where(i: int, shape) -> str:
    return ", ".join(map(str, np.unravel_index(i, tuple(shape))))


def _element(flat, i: int) -> float:
    return float(flat[i : i + 1].copy_to_host()[0])


_SIZE_LAYOUTS = {"xywh": "x, y, w, h", "xywhr": "cx, cy, w, h, angle in radians"}  # as check_input words them


def _check_device(name: str, arr, layout: str | None = None, bounds: tuple | None = None) -> None:
    """ValueError naming the first bad element of a device array (:func:`check_devices` of one input)."""
    check_devices([(name, arr, layout, bounds)])


_RULES = {None: 0, "xyxy": 1}  # any other layout (xywh, xywhr): sizes, elements 2 and 3, >= 0


def check_devices(items) -> None:
    """ValueError naming the first bad element of the first bad input among ``items``, each (name, device
    array, box layout or None, bounds or None), with the rules, order and messages of
    :func:`refloss._validate.check_input`: non-finite, a box that breaks its layout's rule, a value outside
    ``bounds``.  One kernel an input (:func:`_first_bad`, one pass) and one copy to the host for all of
    them: a host round trip costs tens of microseconds, and PyTorch's stream waits for it."""
    items = [item for item in items if item[1].size]
    if not items:
        return
    widths = [arr.shape[arr.ndim - 1] if layout is not None else 1 for _, arr, layout, _ in items]
    found = cuda.to_device(np.array([[arr.size, arr.size // w, arr.size] for (_, arr, _, _), w in zip(items, widths)],
                                    dtype=np.int64))
    for j, ((_, arr, layout, bounds), width) in enumerate(zip(items, widths)):
        flat = arr.reshape(arr.size) if arr.ndim != 1 else arr
        lo, hi = (arr.dtype.type(b) for b in (bounds if bounds is not None else (0, 0)))
        _first_bad[_blocks(flat.size), THREADS](flat, width, _RULES.get(layout, 2), lo, hi, bounds is not None,
                                                found[j])
    for (name, arr, layout, bounds), width, (bad, row, outside) in zip(items, widths, found.copy_to_host()):
        flat = arr.reshape(arr.size) if arr.ndim != 1 else arr
        if bad < flat.size:
            raise ValueError(f"{name}: must be finite; {name}[{_where(bad, arr.shape)}] = {_element(flat, bad)!r}")
        if row < flat.size // width:
            rule = ("boxes must have x2 >= x1 and y2 >= y1" if layout == "xyxy" else
                    f"sizes must be >= 0 (boxes are {_SIZE_LAYOUTS[layout]})")
            boxes = arr.reshape(arr.size // width, width)
            raise ValueError(f"{name}: {rule}; {name}[{_where(row, tuple(arr.shape)[:-1])}] = "
                             f"{boxes[row].copy_to_host().tolist()}")
        if outside < flat.size:
            lo, hi = bounds
            raise ValueError(f"{name}: must lie in [{lo:g}, {hi:g}]; {name}[{_where(outside, arr.shape)}] = "
                             f"{_element(flat, outside)!r}")


def check_positive_device(name: str, arr, what: str) -> None:
    """ValueError naming the first element of a device array that is not > 0."""
    flat = arr.reshape(arr.size) if arr.ndim != 1 else arr
    i = _first_flagged(_first_non_positive, flat, flat.size) if flat.size else 0
    if i < flat.size:
        raise ValueError(f"{name}: {what} must be > 0; {name}[{_where(i, arr.shape)}] = {_element(flat, i)!r}")


def device_inputs(names, arrays, dt, validate: bool) -> list:
    """The inputs as Numba device arrays, all of dtype ``dt`` (TypeError otherwise) and
    C-contiguous (ValueError: a strided view would need a copy), checked finite when ``validate``."""
    arrays = [_as_device_array(v) for v in arrays]
    for n, a in zip(names, arrays):
        if a.dtype != dt:
            raise TypeError(f"{n}: device array has dtype {a.dtype}, expected {dt} (device arrays are computed in "
                            "their own dtype, float32 or float64, all alike; pass dtype= to convert NumPy inputs)")
        if not a.is_c_contiguous():
            raise ValueError(f"{n}: device arrays must be C-contiguous, got shape {tuple(a.shape)} with strides "
                             f"{tuple(a.strides)} (make it contiguous first, e.g. tensor.contiguous())")
    if validate:
        check_devices([(n, a, None, None) for n, a in zip(names, arrays)])
    return arrays


def to_device(arrays) -> list:
    """Host arrays copied to the device (an array given twice is copied once)."""
    copies = {}
    for a in arrays:
        if id(a) not in copies:
            copies[id(a)] = cuda.to_device(a)
    return [copies[id(a)] for a in arrays]


def launch(module, fn: str, flat, outputs, args) -> None:
    """``module.<fn>`` (a generated fused kernel) over the flat device arrays ``flat`` (one
    thread per element, grid-stride), writing ``outputs``."""
    size = flat[0].shape[0]
    getattr(module, fn)[_blocks(size), THREADS](*flat, *outputs, *args)


def evaluate(module, precision, dt, input_names, widths, inputs, args, reduction, rules, validate, with_grad):
    """A loss on the GPU: ``module`` is its generated CUDA module.  ``rules``: per input (box
    layout, bounds) as :func:`refloss._validate.check_input` takes them."""
    layouts = tuple(layout for layout, _ in rules)
    device_in = on_device(input_names, inputs)
    if device_in:
        arrays = device_inputs(input_names, inputs, dt, False)
        # no broadcasting on the device: every input's elements of one shape (the last axis aside for an input of
        # width > 1: DFL's rows of bins and one target a row, logits (n, C) and target (n,))
        leads = [tuple(a.shape) if w == 1 else tuple(a.shape)[:-1] for a, w in zip(arrays, widths)]
        if any(lead != leads[0] for lead in leads):
            raise ValueError("shapes must be equal on the CUDA path for device arrays (no broadcasting; the last axis "
                             "aside for an input of width > 1): "
                             + ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(input_names, arrays)))
        shape = lead_shape(input_names, widths, arrays, layouts)
        if validate:
            row = row_width(widths, arrays)
            check_devices([(n, a, layout, row_bounds(bounds, row))
                           for n, a, (layout, bounds) in zip(input_names, arrays, rules)])
        size = int(np.prod(shape, dtype=np.int64))
        # (tuple(a.shape): the CUDA simulator's shapes take no negative index)
        flat = [a.reshape(size) if w == 1 else a.reshape(size, tuple(a.shape)[-1] if w is None else w)
                for a, w in zip(arrays, widths)]
    else:
        host = [as_real_array(n, v, dt, validate) for n, v in zip(input_names, inputs)]
        shape = lead_shape(input_names, widths, host, layouts)
        if validate:
            row = row_width(widths, host)
            for n, a, (layout, bounds) in zip(input_names, host, rules):
                check_input(n, a, layout, bounds, row)
        flat = to_device([_flat(a, shape, w) for a, w in zip(host, widths)])
        size = flat[0].shape[0]
    out = cuda.device_array(size, dtype=dt)
    if with_grad:
        grads = [cuda.device_array(f.shape, dtype=dt) for f in flat]
        divisor = dt.type(size if reduction == "mean" and size else 1)
        launch(module, f"value_and_grad_{precision}", flat, [out, *grads, divisor], args)
    else:
        launch(module, f"value_{precision}", flat, [out], args)
    if device_in:
        value = out.reshape(shape) if reduction == "none" else reduce(out.copy_to_host(), reduction)
        if not with_grad:
            return value
        return value, tuple(g.reshape(shape + g.shape[1:]) for g in grads)
    value = reduce(out.copy_to_host().reshape(shape), reduction)
    if not with_grad:
        return value
    return value, tuple(sum_to_shape(g.copy_to_host().reshape(shape + g.shape[1:]), a.shape)
                        for g, a in zip(grads, host))
