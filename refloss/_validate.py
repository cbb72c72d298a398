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
        raise ValueError(f"{name}: must be finite; {name}[{', '.join(map(str, index))}] = {arr[index]!r}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: must be one of {REDUCTIONS}, got {reduction!r}")


def check_params(params_meta, values: dict) -> None:
    """ValueError naming the parameter and its domain."""
    for p in params_meta:
        v = values[p.name]
        if isinstance(v, (complex, np.complexfloating)) or not np.isscalar(v) and np.ndim(v) != 0:
            raise TypeError(f"{p.name}: must be a real scalar, got {v!r}")
        if not p.admits(float(v)):
            raise ValueError(f"{p.name}: must satisfy {p.rule}, got {v!r}")


def broadcast_shape(shapes: dict) -> tuple:
    """np.broadcast_shapes with an error naming the arguments and their shapes."""
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(f"shapes not broadcastable: {described}") from None
