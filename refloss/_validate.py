"""Input checks with messages that name the argument, the rule and the first bad index."""
from __future__ import annotations

import numpy as np

REDUCTIONS = ("none", "mean", "sum")
DTYPES = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}


_PRECISION = {None: (np.dtype(np.float64), "f64"), np.float64: (np.dtype(np.float64), "f64"),
              np.float32: (np.dtype(np.float32), "f32")}


def precision_of(dtype) -> tuple[np.dtype, str]:
    """(numpy dtype, "f64"|"f32") of the requested computation dtype (None -> float64)."""
    try:
        return _PRECISION[dtype]
    except (KeyError, TypeError):
        pass
    dt = np.dtype(dtype)
    if dt not in DTYPES:
        raise ValueError(f"dtype: must be float64 or float32, got {dt}")
    return dt, DTYPES[dt]


def as_real_array(name: str, value, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype``; TypeError for non-numeric or complex input."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    kind = arr.dtype.kind
    if kind not in "fiub":
        what = "complex" if kind == "c" else f"non-numeric ({arr.dtype})"
        raise TypeError(f"{name}: must be a real numeric array, got {what} values")
    return arr if arr.dtype == dtype else arr.astype(dtype)


def check_finite(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first non-finite element of ``arr``."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        index = tuple(int(i) for i in bad)
        raise ValueError(f"{name}: must be finite; {name}[{', '.join(map(str, index))}] = {float(arr[index])!r}")


def check_boxes(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first box with x2 < x1 or y2 < y1."""
    bad = (arr[..., 2] < arr[..., 0]) | (arr[..., 3] < arr[..., 1])
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1; "
                         f"{name}[{', '.join(map(str, index))}] = {arr[index].tolist()}")


def check_sizes(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first (x, y, w, h) box with w < 0 or h < 0."""
    bad = (arr[..., 2] < 0) | (arr[..., 3] < 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: sizes must be >= 0 (boxes are x, y, w, h); "
                         f"{name}[{', '.join(map(str, index))}] = {arr[index].tolist()}")


def check_range(name: str, arr: np.ndarray, lo: float, hi: float) -> None:
    """ValueError naming the first element outside [lo, hi]."""
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: must lie in [{lo:g}, {hi:g}]; "
                         f"{name}[{', '.join(map(str, index))}] = {float(arr[index])!r}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: must be one of {REDUCTIONS}, got {reduction!r}")


def param_floats(params_meta, values: tuple) -> tuple:
    """The parameters as the kernels' floats; errors name the parameter and its rule."""
    return tuple(p.to_float(v) for p, v in zip(params_meta, values))


def broadcast_shape(shapes: dict) -> tuple:
    """np.broadcast_shapes with an error naming the arguments and their shapes."""
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(f"shapes not broadcastable: {described}") from None


def check_input(name: str, arr: np.ndarray, layout: str | None, bounds: tuple | None) -> None:
    """ValueError naming the first bad element: non-finite, a box that breaks its layout's
    rule ("xyxy": x2 >= x1, y2 >= y1; "xywh": w, h >= 0), or a value outside ``bounds``."""
    check_finite(name, arr)
    if layout == "xyxy":
        check_boxes(name, arr)
    elif layout == "xywh":
        check_sizes(name, arr)
    if bounds is not None:
        check_range(name, arr, *bounds)
