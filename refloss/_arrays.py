"""The array layer below the API and the backends: shapes, flattening, reductions,
gradients summed back to their inputs' shapes, and which arrays live on a device.

Used by the losses (:mod:`refloss._loss`), ``yolo_decode`` and the CUDA backend; imports
nothing of refloss but :mod:`refloss._validate`, and never imports a backend.  Its sums (a
reduction, a gradient summed over broadcast axes) are :mod:`refloss._sums`'s compensated ones,
imported at the first sum (Numba).
"""
from __future__ import annotations

import numpy as np

from ._validate import broadcast_shape, check_index_column

_COORDINATES = {"xyxy": " (x1, y1, x2, y2)", "xywh": " (x, y, w, h)", "xywhr": " (cx, cy, w, h, angle)"}


def lead_shape(names, widths, arrays, layouts=None) -> tuple:
    """The broadcast shape of the elements (for an input of width w > 1: of all but its last
    axis, which must be w).  ``layouts`` (per input "xyxy", "xywh" or None) names the
    coordinates in errors."""
    first = tuple(arrays[0].shape)  # (a tuple: the CUDA simulator's shapes take no negative index)
    if widths[0] == 1 and all(w == 1 and a.shape == first for w, a in zip(widths, arrays)):
        return first  # the common case, without building anything
    shapes, full, row = {}, {}, None
    for k, (n, w, a) in enumerate(zip(names, widths, arrays)):
        shape = full[n] = tuple(a.shape)
        if w == 1:
            shapes[n] = shape
        elif w is None:  # a row of variable width: the same last axis for every row input
            if not shape or not shape[-1]:
                raise ValueError(f"{n}: needs a last axis of at least one element (the row: classes), got shape "
                                 f"{shape}")
            if row is not None and shape[-1] != row[1]:
                hint = (" (class indices must be an integer array)" if shape == full[row[0]][:-1] else "")
                raise ValueError(f"{n}: last dimension must be {row[1]} as {row[0]}'s (the row: classes), got "
                                 f"shape {shape}{hint}")
            row = row or (n, shape[-1])
            shapes[n] = shape[:-1]
        elif not shape or shape[-1] != w:
            coords = _COORDINATES.get(layouts[k], "") if layouts else ""
            raise ValueError(f"{n}: last dimension must be {w}{coords}, got shape {shape}")
        else:
            shapes[n] = shape[:-1]
    if row is not None:  # one value a row (width 1) as a column: it would broadcast against the rows' shape
        for n, w in zip(names, widths):
            if w == 1:
                check_index_column(n, full[n], row[0], full[row[0]], indices=False)
    first = next(iter(shapes.values()))
    for v in shapes.values():
        if v != first:
            return broadcast_shape(shapes, full)
    return first


def row_width(widths, arrays) -> int | None:
    """The width C of the rows (the last axis of the first input of width None), None if none."""
    for w, a in zip(widths, arrays):
        if w is None and len(a.shape):
            return int(tuple(a.shape)[-1])  # (a tuple: the CUDA simulator's shapes take no negative index)
    return None


def flat(a: np.ndarray, shape: tuple, width: int = 1) -> np.ndarray:
    """``a`` broadcast to ``shape`` (+ (width,) for width > 1) as a C-contiguous (n,) or
    (n, width) array, a view when possible; width None: a row input, its own last axis (an (n, 1) array for a
    row of one class: still a row)."""
    row = width is None
    if row:
        width = a.shape[-1]
    full = shape if width == 1 and not row else shape + (width,)
    if a.shape != full:
        a = np.broadcast_to(a, full)
    if width == 1 and not row:
        return a if a.ndim == 1 and a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
    return a if a.ndim == 2 and a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1, width)


def reduce(values: np.ndarray, reduction: str, weights_sum=None):
    """``values`` reduced: "none" (as they are), "sum", or "mean" (by the count, or by
    ``weights_sum`` where the loss weights its elements).  The sum is compensated (within an ulp
    of the exact sum of the values, :mod:`refloss._sums`), the mean that sum (in float64) divided in float64 and
    rounded to the values' dtype once (a float32 sum divided in float32 was rounded twice: 1.12 ulp off)."""
    if reduction == "none":
        return values
    from ._sums import total as _total

    if reduction == "sum":
        return _total(values)
    if not values.size and weights_sum is None:
        return values.dtype.type(np.nan)
    total = _total(values, wide=True)
    return values.dtype.type(total / np.float64(values.size if weights_sum is None else weights_sum))


def check_indices(name: str, indices: np.ndarray, width: int, row_input: str) -> None:
    """ValueError naming ``name`` and the first class index outside [0, width) (``width`` the last axis of
    ``row_input``)."""
    bad = (indices < 0) | (indices >= width)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: class index {int(indices[where])} at {name}[{', '.join(map(str, where))}] is "
                         f"outside [0, {width}) ({width} classes: the last axis of {row_input})")


def one_hot(name: str, indices: np.ndarray, width: int, dtype, row_input: str) -> np.ndarray:
    """Integer class indices as one-hot rows of ``width`` (the last axis of ``row_input``), in
    ``dtype``; ValueError naming ``name`` and the first index outside [0, width)."""
    check_indices(name, indices, width, row_input)
    out = np.zeros(indices.shape + (width,), dtype)
    np.put_along_axis(out, indices[..., None].astype(np.intp), 1, axis=-1)
    return out


def sum_to_shape(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a gradient over the axes its input was broadcast along: compensated, within an ulp of the
    exact sum of its terms (:mod:`refloss._sums`; NumPy's sum along a leading axis is a plain sum,
    n ulps)."""
    if g.shape == shape:
        return g
    if g.ndim < len(shape):  # a gradient computed at a smaller broadcast shape
        g = np.broadcast_to(g, np.broadcast_shapes(g.shape, shape))
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if not axes:
        return g.reshape(shape)
    from ._sums import sum_axes

    return sum_axes(g, axes).reshape(shape)


def is_device_array(v) -> bool:
    """Whether ``v`` lives on a CUDA device (``__cuda_array_interface__``; the simulator's
    FakeCUDAArray has none, so it is recognised by name)."""
    return hasattr(v, "__cuda_array_interface__") or type(v).__name__ == "FakeCUDAArray"


def on_device(names, inputs) -> bool:
    """True if every input is a device array, False if none is; ValueError for a mix."""
    flags = [is_device_array(v) for v in inputs]
    if any(flags) and not all(flags):
        where = ", ".join(f"{n} {'device' if f else 'host'}" for n, f in zip(names, flags))
        raise ValueError(f"device='cuda' takes all arrays on the device or all on the host, got {where}")
    return all(flags)
