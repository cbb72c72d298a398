"""CUDA execution: one fused grid-stride kernel writes the value and the gradients.

Inputs may be NumPy arrays (copied to the device; results come back as NumPy) or
any object with ``__cuda_array_interface__`` (PyTorch, CuPy, Numba device arrays:
zero copy; results are Numba device arrays, which such libraries can wrap without
copying, e.g. ``torch.as_tensor(out, device="cuda")``).  On the device path all
array inputs must have the same shape (broadcast them first); ``validate=True``
checks finiteness with a small device kernel; reductions return host scalars.
Imported only when ``device="cuda"`` is asked for.
"""
from __future__ import annotations

import importlib
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ._loss import _flat, _lead_shape, _reduce, _sum_to_shape
from ._validate import as_real_array, check_boxes, check_finite

THREADS = 256


@lru_cache(maxsize=None)
def kernels(name: str):
    """The generated ``refloss._generated.<name>_cuda`` module."""
    return importlib.import_module(f"refloss._generated.{name}_cuda")


@cuda.jit
def _first_non_finite(x, found):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[i]
        if not (v - v == 0):  # NaN or +-inf
            cuda.atomic.min(found, 0, i)


@cuda.jit
def _first_invalid_box(b, found):
    for i in range(cuda.grid(1), b.shape[0], cuda.gridsize(1)):
        if b[i, 2] < b[i, 0] or b[i, 3] < b[i, 1]:
            cuda.atomic.min(found, 0, i)


def _is_device_array(v) -> bool:
    # the simulator's FakeCUDAArray has no __cuda_array_interface__
    return hasattr(v, "__cuda_array_interface__") or type(v).__name__ == "FakeCUDAArray"


def _as_device_array(v):
    return v if type(v).__name__ == "FakeCUDAArray" else cuda.as_cuda_array(v)


def _blocks(n: int) -> int:
    return max(1, min(math.ceil(n / THREADS), 65535))


def _first_flagged(kernel, arr, size) -> int:
    found = cuda.to_device(np.array([size], dtype=np.int64))
    kernel[_blocks(size), THREADS](arr, found)
    return int(found.copy_to_host()[0])


def _check_device(name: str, arr, width: int) -> None:
    """ValueError naming the first non-finite value (or invalid box) of a device array."""
    flat = arr.reshape(arr.size) if arr.ndim != 1 else arr
    if flat.size == 0:
        return
    i = _first_flagged(_first_non_finite, flat, flat.size)
    if i < flat.size:
        index = np.unravel_index(i, arr.shape)
        value = flat[i : i + 1].copy_to_host()[0]
        raise ValueError(f"{name}: must be finite; {name}[{', '.join(map(str, index))}] = {value!r}")
    if width == 4:
        boxes = arr.reshape(arr.size // 4, 4)
        i = _first_flagged(_first_invalid_box, boxes, boxes.shape[0])
        if i < boxes.shape[0]:
            index = np.unravel_index(i, arr.shape[:-1])
            raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1; "
                             f"{name}[{', '.join(map(str, index))}] = {boxes[i].copy_to_host().tolist()}")


def evaluate(name, precision, dt, input_names, widths, inputs, args, reduction, validate, with_grad):
    on_device = all(_is_device_array(v) for v in inputs)
    if on_device:
        arrays = [_as_device_array(v) for v in inputs]
        for n, a in zip(input_names, arrays):
            if a.dtype != dt:
                raise TypeError(f"{n}: device array has dtype {a.dtype}, expected {dt} (pass dtype= to match)")
        full = arrays[0].shape
        if any(a.shape != full for a in arrays):
            raise ValueError("shapes must be equal on the CUDA path for device arrays: "
                             + ", ".join(f"{n} {a.shape}" for n, a in zip(input_names, arrays)))
        shape = _lead_shape(input_names, widths, arrays)
        if validate:
            for n, a, w in zip(input_names, arrays, widths):
                _check_device(n, a, w)
        size = int(np.prod(shape, dtype=np.int64))
        flat = [a.reshape(size) if w == 1 else a.reshape(size, w) for a, w in zip(arrays, widths)]
    else:
        host = [as_real_array(n, v, dt) for n, v in zip(input_names, inputs)]
        shape = _lead_shape(input_names, widths, host)
        if validate:
            for n, a, w in zip(input_names, host, widths):
                check_finite(n, a)
                if w == 4:
                    check_boxes(n, a)
        flat = [cuda.to_device(_flat(a, shape, w)) for a, w in zip(host, widths)]
        size = flat[0].shape[0]
    mod = kernels(name)
    out = cuda.device_array(size, dtype=dt)
    grid = (_blocks(size), THREADS)
    if with_grad:
        grads = [cuda.device_array(f.shape, dtype=dt) for f in flat]
        divisor = dt.type(size if reduction == "mean" and size else 1)
        getattr(mod, f"value_and_grad_{precision}")[grid](*flat, out, *grads, divisor, *args)
    else:
        getattr(mod, f"value_{precision}")[grid](*flat, out, *args)
    if on_device:
        value = out.reshape(shape) if reduction == "none" else _reduce(out.copy_to_host(), reduction)
        if not with_grad:
            return value
        return value, tuple(g.reshape(shape + g.shape[1:]) for g in grads)
    value = _reduce(out.copy_to_host().reshape(shape), reduction)
    if not with_grad:
        return value
    return value, tuple(_sum_to_shape(g.copy_to_host().reshape(shape + g.shape[1:]), a.shape)
                        for g, a in zip(grads, host))
