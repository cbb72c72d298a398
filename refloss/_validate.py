"""Input checks with messages that name the argument, the rule and the first bad index."""
from __future__ import annotations

import math

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
    dt = numpy_dtype(dtype)
    if dt not in DTYPES:
        raise ValueError(f"dtype: must be float64 or float32, got {dt}")
    return dt, DTYPES[dt]


def numpy_dtype(dtype) -> np.dtype:
    """np.dtype(dtype), a TypeError naming the argument where NumPy's ("data type 'bogus' not understood") does not."""
    try:
        return np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype: must be None, numpy.float64 or numpy.float32 (or their names), got {dtype!r} ({e})") \
            from None


_WIDER = {np.dtype(np.float16): np.dtype(np.float32)}  # computed in float32, returned as float16


def _dtype_of(value):
    """The NumPy dtype of an input (a torch dtype by its name; bfloat16 as float32), or the
    value itself for a Python scalar (NumPy's weak scalars: they do not widen an array)."""
    if isinstance(value, (bool, int, float)):
        return value
    dt = getattr(value, "dtype", None)
    if dt is None:
        try:
            return np.asarray(value).dtype
        except ValueError:  # e.g. a ragged nested list: as_real_array says so with the argument's name
            return np.dtype(np.float64)
    try:
        return np.dtype(dt)
    except TypeError:
        name = str(dt).rpartition(".")[2]  # torch.float32 -> float32
        try:
            return np.dtype("float32" if name == "bfloat16" else name)  # (float32 holds every bfloat16; float16 not)
        except TypeError:
            return np.dtype(np.float64)  # not numeric: as_real_array says so with the argument's name


def result_dtypes(inputs, dtype) -> tuple:
    """(computation dtype, "f64"|"f32", result dtype) of a call.  ``dtype=None`` follows NumPy's
    rule: the result type of the inputs (Python scalars do not widen arrays), integers and
    booleans give float64, float16 is computed in float32 and returned as float16, and wider
    floats are computed in float64; ``dtype=`` (float64 or float32) sets both."""
    if dtype is not None:
        dt, precision = precision_of(dtype)
        return dt, precision, dt
    try:
        rt = np.result_type(*(_dtype_of(v) for v in inputs))
    except TypeError:  # e.g. strings: as_real_array names the argument
        rt = np.dtype(np.float64)
    if rt in DTYPES:
        return rt, DTYPES[rt], rt
    if rt in _WIDER:
        return _WIDER[rt], "f32", rt
    return np.dtype(np.float64), "f64", np.dtype(np.float64)


def reject_autograd(names, inputs, gradient: bool = True) -> None:
    """TypeError for a tensor that requires grad: refloss's NumPy API would silently drop its
    autograd graph (and torch refuses to hand it over).  ``gradient``: whether refloss has a gradient with
    respect to these inputs (``.value_and_grad``); where it has none (ground truth, anchors, an IoU matrix to
    match), the message says so instead of pointing to one."""
    for name, v in zip(names, inputs):
        if getattr(v, "requires_grad", False) is True:
            then = (" and take the gradient from .value_and_grad(...)" if gradient else
                    " (refloss takes no gradient with respect to it)")
            raise TypeError(f"{name}: a tensor that requires grad; refloss computes values and gradients itself "
                            f"and would drop autograd: pass {name}.detach(){then}")


def reject_masked(name: str, value) -> None:
    """TypeError for a masked array (numpy.ma.MaskedArray): np.asarray would drop its mask silently."""
    if type(value) is not np.ndarray and isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name}: a masked array (numpy.ma.MaskedArray), whose mask refloss would ignore: "
                        f"pass {name}.filled(fill_value) to compute every element, or a plain array of the "
                        "unmasked elements")


def as_real_array(name: str, value, dtype: np.dtype, validate: bool = True) -> np.ndarray:
    """``value`` as an array of ``dtype``; TypeError for non-numeric or complex input and for a
    masked array (its mask would be ignored), ValueError for a ragged nested sequence, and (``validate``) for a
    finite number beyond a narrower ``dtype``'s range."""
    if isinstance(value, np.ndarray):
        reject_masked(name, value)
        # a subclass as a plain array: np.matrix keeps two axes through reshape and indexing (the box drivers
        # failed on it in Numba's typing); a memmap's view is the same memory
        arr = value if type(value) is np.ndarray else np.asarray(value)
    else:
        try:
            arr = np.asarray(value)
        except ValueError as e:  # NumPy's "setting an array element with a sequence" names no argument
            raise ValueError(f"{name}: not a regular array (a ragged nested sequence?): {e}") from None
        except TypeError as e:  # e.g. a torch tensor NumPy cannot view: bfloat16, or on the meta device
            if str(getattr(value, "dtype", "")).endswith("bfloat16") and hasattr(value, "float"):
                arr = np.asarray(value.float())  # (bfloat16 to float32: exact; the result is float32, _dtype_of)
            else:
                raise TypeError(f"{name}: cannot be read as a NumPy array: {e}") from None
    kind = arr.dtype.kind
    if kind == "O" and not isinstance(value, np.ndarray):  # (an object array passed as one stays refused)
        arr = _object_numbers(name, arr)
        kind = arr.dtype.kind
    if kind not in "fiub":
        what = "complex" if kind == "c" else f"non-numeric ({arr.dtype})"
        raise TypeError(f"{name}: must be a real numeric array, got {what} values")
    if arr.dtype == dtype:
        return arr
    if dtype.kind == "f" and ((arr.dtype.kind == "f" and arr.dtype.itemsize > dtype.itemsize)
                              or (arr.dtype.kind in "iu" and dtype.itemsize == 2)):  # (an integer fits float32)
        return _narrowed(name, arr, dtype, validate)
    return arr.astype(dtype)


# the smallest magnitude that rounds to inf in these dtypes (the largest finite number plus half its ulp)
_ROUNDS_TO_INF = {np.dtype(np.float32): 2.0**128 * (1 - 2.0**-25), np.dtype(np.float16): 65520.0}


def _narrowed(name: str, arr: np.ndarray, dtype: np.dtype, validate: bool) -> np.ndarray:
    """``arr`` cast to a narrower float ``dtype`` (float64 numbers or a Python float to the float32 of a float32
    call); with ``validate``, ValueError naming the first finite number beyond its range (it said 'must be finite;
    = inf', of an inf the caller never passed, with NumPy's overflow warning). As cheap as the cast where nothing
    overflows (NumPy's overflow flag decides)."""
    if not validate:  # (validate=False: the cast as NumPy makes it, inf beyond the range)
        with np.errstate(over="ignore"):
            return arr.astype(dtype)
    limit = _ROUNDS_TO_INF.get(dtype)
    if arr.ndim == 0 and limit is not None:  # (a Python number: decided in Python, errstate costs ~1 us a call)
        v = float(arr)
        if not abs(v) >= limit or v != v or abs(v) == math.inf:
            return arr.astype(dtype)
    try:
        with np.errstate(over="raise"):
            return arr.astype(dtype)
    except FloatingPointError:
        pass
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    beyond = ~np.isfinite(out) & np.isfinite(arr)
    if not beyond.any():
        return out
    index = tuple(int(i) for i in np.argwhere(beyond)[0])
    value = float(arr[index]) if arr.dtype.kind == "f" and arr.dtype.itemsize <= 8 else arr[index]
    if dtype == np.float64:  # (a longdouble number: refloss computes in float64 at most)
        hint = "refloss computes in float64 at most"
    else:
        hint = (f"the call computes in {dtype.name} (NumPy's result type of the inputs, or dtype=): pass float64 "
                "arrays or dtype=np.float64")
    raise ValueError(f"{_element(name, index)} = {value!r} is beyond {dtype.name}'s range (largest "
                     f"{float(np.finfo(dtype).max):.4g}): {hint}")


def _object_numbers(name: str, arr: np.ndarray) -> np.ndarray:
    """NumPy's object array of Python ints and floats (it makes one of an int beyond int64: 2**70, [2**70, 1])
    as float64, each rounded as float(x) rounds it; ValueError naming the argument for an int beyond float64's
    range (not finite there, as a parameter beyond it is not: Param.to_float).  Anything else is returned as it
    is (as_real_array refuses it by its dtype)."""
    if not all(isinstance(x, (int, float, np.integer, np.floating)) for x in arr.flat):  # (bool is an int; strings,
        # None, other objects are not)
        return arr
    try:
        return np.array([float(x) for x in arr.flat], dtype=np.float64).reshape(arr.shape)
    except OverflowError:
        raise ValueError(f"{name}: must be finite; got an integer beyond float's range (about 1.8e308)") from None


def _element(name: str, index: tuple) -> str:
    """``name[i, j]`` for an element's index; the name alone for a 0-d array or one box (index ())."""
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def check_index_column(name: str, shape, rows_name: str, rows_shape, indices: bool = True) -> None:
    """ValueError for integer class indices (one a row) of ``shape`` that end in a column of 1 and would broadcast
    against the rows' leading shape to a shape beyond both: labels (N, 1) against logits (N, C) give an (N, N)
    result, every row with every index ("mean": a plausible number, wrong; torch's cross_entropy refuses them).
    Indices that broadcast to the rows' shape or to their own (one index for every row, a column against rows
    (N, 1, C)) are taken; shapes that do not broadcast are left to the broadcast's own error.  ``indices=False``:
    the same for an input of one value a row (dfl_loss's target: (N, 1) against (N, C) gave (N, N) as well)."""
    shape, lead = tuple(shape), tuple(rows_shape)[:-1]
    if not shape or shape[-1] != 1:
        return
    try:
        both = np.broadcast_shapes(lead, shape)
    except ValueError:
        return
    if both != lead and both != shape:
        what, each = ("integer values are class indices, one", "index") if indices else ("one value", "value")
        raise ValueError(
            f"{name}: {what} per row of {rows_name} {tuple(rows_shape)} (shape {lead}), "
            f"got shape {shape}: a column of them would broadcast against the rows' shape to {both} (every row with "
            f"every {each}); pass {name}[..., 0]" + (f" (shape {lead})" if shape[:-1] == lead else "")
            + " (or broadcast them yourself, np.broadcast_to, where every pair is meant)")


def check_finite(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first non-finite element of ``arr``."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        index = tuple(int(i) for i in bad)
        raise ValueError(f"{name}: must be finite; {_element(name, index)} = {float(arr[index])!r}")


def check_boxes(name: str, arr: np.ndarray) -> None:
    """ValueError naming the first box with x2 < x1 or y2 < y1."""
    bad = (arr[..., 2] < arr[..., 0]) | (arr[..., 3] < arr[..., 1])
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: boxes must have x2 >= x1 and y2 >= y1; "
                         f"{_element(name, index)} = {arr[index].tolist()}")


def check_sizes(name: str, arr: np.ndarray, layout: str = "x, y, w, h") -> None:
    """ValueError naming the first (x, y, w, h, ...) box with w < 0 or h < 0."""
    bad = (arr[..., 2] < 0) | (arr[..., 3] < 0)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: sizes must be >= 0 (boxes are {layout}); "
                         f"{_element(name, index)} = {arr[index].tolist()}")


def check_range(name: str, arr: np.ndarray, lo: float, hi: float) -> None:
    """ValueError naming the first element outside [lo, hi]."""
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: must lie in [{lo:g}, {hi:g}]; "
                         f"{_element(name, index)} = {float(arr[index])!r}")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: must be one of {REDUCTIONS}, got {reduction!r}")


def param_floats(params_meta, values: tuple) -> tuple:
    """The parameters as the kernels' floats; errors name the parameter and its rule."""
    return tuple(p.to_float(v) for p, v in zip(params_meta, values))


def broadcast_shape(shapes: dict, shown: dict | None = None) -> tuple:
    """np.broadcast_shapes with an error naming the arguments and their shapes (``shown``: the
    shapes to name, e.g. boxes' full shapes where their leading axes are broadcast)."""
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{k} {v}" for k, v in (shown or shapes).items())
        what = " (the axes before the last)" if shown and shown != shapes else ""
        raise ValueError(f"shapes not broadcastable{what}: {described}") from None


def row_bounds(bounds: tuple | None, row: int | None) -> tuple | None:
    """``bounds`` with an upper bound "row" (the last index of the rows, C - 1: a bin index) made a
    number for rows of ``row`` elements (None: no upper bound)."""
    if bounds is None or bounds[1] != "row":
        return bounds
    return bounds[0], (float(row - 1) if row is not None else float("inf"))


def check_input(name: str, arr: np.ndarray, layout: str | None, bounds: tuple | None, row: int | None = None) -> None:
    """ValueError naming the first bad element: non-finite, a box that breaks its layout's
    rule ("xyxy": x2 >= x1, y2 >= y1; "xywh", "xywhr": w, h >= 0), or a value outside ``bounds`` (an
    upper bound "row": C - 1 for rows of ``row`` elements, see :func:`row_bounds`)."""
    bounds = row_bounds(bounds, row)
    check_finite(name, arr)
    if layout == "xyxy":
        check_boxes(name, arr)
    elif layout == "xywh":
        check_sizes(name, arr)
    elif layout == "xywhr":
        check_sizes(name, arr, "cx, cy, w, h, angle in radians")
    if bounds is not None:
        check_range(name, arr, *bounds)
