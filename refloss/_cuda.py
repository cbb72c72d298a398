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

from ._loss import _reduce, _sum_to_shape
from ._validate import as_real_array, broadcast_shape, check_finite

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


def _is_device_array(v) -> bool:
    # the simulator's FakeCUDAArray has no __cuda_array_interface__
    return hasattr(v, "__cuda_array_interface__") or type(v).__name__ == "FakeCUDAArray"


def _as_device_array(v):
    return v if type(v).__name__ == "FakeCUDAArray" else cuda.as_cuda_array(v)


def _blocks(n: int) -> int:
    return max(1, min(math.ceil(n / THREADS), 65535))


def _check_finite_device(name: str, arr) -> None:
    flat = arr.reshape(arr.size) if arr.ndim != 1 else arr
    if flat.size == 0:
        return
    found = cuda.to_device(np.array([flat.size], dtype=np.int64))
    _first_non_finite[_blocks(flat.size), THREADS](flat, found)
    i = int(found.copy_to_host()[0])
    if i < flat.size:
        index = np.unravel_index(i, arr.shape)
        value = flat[i : i + 1].copy_to_host()[0]
        raise ValueError(f"{name}: must be finite; {name}[{', '.join(map(str, index))}] = {value!r}")


def evaluate(name, precision, dt, input_names, inputs, args, reduction, validate, with_grad):
    on_device = all(_is_device_array(v) for v in inputs)
    if on_device:
        arrays = [_as_device_array(v) for v in inputs]
        for n, a in zip(input_names, arrays):
            if a.dtype != dt:
                raise TypeError(f"{n}: device array has dtype {a.dtype}, expected {dt} (pass dtype= to match)")
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise ValueError("shapes must be equal on the CUDA path for device arrays: "
                             + ", ".join(f"{n} {a.shape}" for n, a in zip(input_names, arrays)))
        if validate:
            for n, a in zip(input_names, arrays):
                _check_finite_device(n, a)
        flat = [a.reshape(a.size) if a.ndim != 1 else a for a in arrays]
    else:
        host = [as_real_array(n, v, dt) for n, v in zip(input_names, inputs)]
        shape = broadcast_shape({n: a.shape for n, a in zip(input_names, host)})
        if validate:
            for n, a in zip(input_names, host):
                check_finite(n, a)
        flat = [cuda.to_device(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)) for a in host]
    size = int(np.prod(shape, dtype=np.int64))
    mod = kernels(name)
    out = cuda.device_array(size, dtype=dt)
    grid = (_blocks(size), THREADS)
    if with_grad:
        grads = [cuda.device_array(size, dtype=dt) for _ in flat]
        divisor = dt.type(size if reduction == "mean" and size else 1)
        getattr(mod, f"value_and_grad_{precision}")[grid](*flat, out, *grads, divisor, *args)
    else:
        getattr(mod, f"value_{precision}")[grid](*flat, out, *args)
    if on_device:
        value = out.reshape(shape) if reduction == "none" else _reduce(out.copy_to_host(), reduction)
        if not with_grad:
            return value
        return value, tuple(g.reshape(shape) for g in grads)
    value = _reduce(out.copy_to_host().reshape(shape), reduction)
    if not with_grad:
        return value
    return value, tuple(_sum_to_shape(g.copy_to_host().reshape(shape), a.shape) for g, a in zip(grads, host))
