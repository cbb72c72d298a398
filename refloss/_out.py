"""``out=``: a call's results written into arrays the caller owns (NumPy's convention).

``L(..., reduction="none", out=v)`` writes the elementwise values into ``v``; ``L.value_and_grad(...,
out=(v, d_pred, d_target))`` (or ``out=(v, (d_pred, d_target))``, the shape of the result) writes
the value and each gradient given, ``None`` for the ones the call should allocate (the value of
``"sum"``/``"mean"``, a scalar, is always ``None``).  Each array must have the result's shape and
dtype exactly (no casting: ``dtype=`` sets the result's) and be writeable; the call returns the
arrays given in place of the ones it would have made.

Why: a call's outputs are new arrays, and above glibc's mmap threshold every new array is fresh pages
that the operating system zeroes on first touch, about half the time of an element-wise loss at
4 10^6 elements (docs/performance.md). Outputs reused across calls skip that.

Where the kernels can write into the arrays given (the common call: C-contiguous arrays of one
shape and dtype, not overlapping the inputs) they do; elsewhere the results are computed as
without ``out=`` and copied in (the same values).
"""
from __future__ import annotations

import numpy as np


def parse(out, with_grad: bool, names: tuple, reduction: str) -> tuple:
    """(the value's array or None, one array or None a gradient) from the ``out=`` given, its form checked."""
    if not with_grad:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: must be a NumPy array for the elementwise values (reduction='none'), got "
                            f"{type(out).__name__}")
        if reduction != "none":
            raise ValueError(f"out: holds the elementwise values, reduction='none'; reduction={reduction!r} gives a "
                             "scalar (drop out=)")
        return out, ()
    form = f"(value, {', '.join('d_' + n for n in names)})"
    if not isinstance(out, (tuple, list)):
        raise TypeError(f"out: value_and_grad writes {form}, a tuple (None for an output to allocate), got "
                        f"{type(out).__name__}")
    if len(out) == 2 and isinstance(out[1], (tuple, list)):
        value, grads = out[0], tuple(out[1])
    else:
        value, grads = out[0] if out else None, tuple(out[1:])
    if len(grads) != len(names):
        raise TypeError(f"out: value_and_grad writes {form}: {1 + len(names)} arrays or None, got {1 + len(grads)}")
    for name, o in zip(("value", *("d_" + n for n in names)), (value, *grads)):
        if o is not None and not isinstance(o, np.ndarray):
            raise TypeError(f"out: {name} must be a NumPy array or None, got {type(o).__name__}")
    if value is not None and reduction != "none":
        raise ValueError(f"out: reduction={reduction!r} gives a scalar value: pass None for it, "
                         f"out=(None, {', '.join('d_' + n for n in names)})")
    return value, grads


def check(name: str, o: np.ndarray, shape: tuple, dt) -> None:
    """``o`` can hold the result ``name`` of ``shape`` and dtype ``dt`` (a ValueError saying why not)."""
    if o.shape != tuple(shape):
        raise ValueError(f"out: {name} must have the result's shape {tuple(shape)}, got {o.shape}")
    if o.dtype != dt:
        raise ValueError(f"out: {name} must have the result's dtype {np.dtype(dt).name}, got {o.dtype.name} "
                         "(refloss does not cast; dtype= sets the result's dtype)")
    if not o.flags.writeable:
        raise ValueError(f"out: {name} is read-only")


def direct(name: str, o, shape: tuple, dt, inputs) -> np.ndarray | None:
    """``o`` itself where the kernels can write into it (C-contiguous, not overlapping an input), None where
    the result goes to a new array first (and is copied in by :func:`store`); checked."""
    if o is None:
        return None
    check(name, o, shape, dt)
    if not o.flags.c_contiguous:
        return None
    for a in inputs:
        if np.may_share_memory(o, a):
            return None
    return o


def store(result, value_out, grad_outs, names: tuple):
    """``result`` (a value, or (value, grads)) with each output given replaced by its array, the result copied
    in where it is not already there."""
    if not isinstance(result, tuple):
        return _put("value", result, value_out)
    value, grads = result
    if not grad_outs:
        grad_outs = (None,) * len(grads)
    return _put("value", value, value_out), tuple(_put("d_" + n, g, o) for n, g, o in zip(names, grads, grad_outs))


def _put(name: str, r, o):
    if o is None:
        return r
    if r is None:
        raise ValueError(f"out: {name} is None in the result (a class-index input has no gradient): pass None for it")
    if o is r:
        return o
    r = np.asarray(r)
    check(name, o, r.shape, r.dtype)
    o[...] = r
    return o
