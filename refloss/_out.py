"""``out=``: a call's results written into arrays the caller owns (NumPy's convention).

``L(..., reduction="none", out=v)`` writes the elementwise values into ``v``; ``L.value_and_grad(...,
out=(v, d_pred, d_target))`` (or ``out=(v, (d_pred, d_target))``, the shape of the result) writes
the value and each gradient given, ``None`` for the ones the call should allocate (the value of
``"sum"``/``"mean"``, a scalar, is always ``None``).  Each array must have the result's shape and
dtype exactly (no casting: ``dtype=`` sets the result's), be writeable and share no memory with
another output; the call returns the arrays given in place of the ones it would have made.  Where the
call raises (a bad input), the arrays given may hold part of the results, as NumPy's may.

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
    """(the value's array or None, one array or None a gradient) from the ``out=`` given, its form checked
    (on few operations: this is part of a call's fixed cost)."""
    if not with_grad:
        if type(out) is not np.ndarray:
            _array("out:", out)
        if reduction != "none":
            raise ValueError(f"out: holds the elementwise values, reduction='none'; reduction={reduction!r} gives a "
                             "scalar (drop out=)")
        return out, ()
    if not isinstance(out, (tuple, list)):
        raise TypeError(f"out: value_and_grad writes {_form(names)}, a tuple (None for an output to allocate), got "
                        f"{type(out).__name__}")
    if len(out) == 2 and isinstance(out[1], (tuple, list)):
        value, grads = out[0], tuple(out[1])
    else:
        value, grads = out[0] if out else None, tuple(out[1:])
    if len(grads) != len(names):
        got = 1 + len(grads) if len(out) == 2 and isinstance(out[1], (tuple, list)) else len(out)
        raise TypeError(f"out: value_and_grad writes {_form(names)}: {1 + len(names)} arrays or None, got {got}")
    given = [(k, o) for k, o in enumerate((value, *grads)) if o is not None]  # (slot: 0 the value, k the k-th input's)
    for k, o in given:
        if type(o) is not np.ndarray:
            _array(f"out: {_slot(k, names)}", o)
    for i in range(1, len(given)):  # two outputs in one memory: one would overwrite the other
        for j in range(i):
            if np.may_share_memory(given[i][1], given[j][1]) and _overlap(given[i][1], given[j][1]):
                raise ValueError(f"out: {_slot(given[j][0], names)} and {_slot(given[i][0], names)} share memory; "
                                 "give each output an array of its own")
    if value is not None and reduction != "none":
        raise ValueError(f"out: reduction={reduction!r} gives a scalar value: pass None for it, "
                         f"out=(None, {', '.join('d_' + n for n in names)})")
    return value, grads


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays whose address ranges overlap share an element (interleaved views such as buf[:, ::2] and
    buf[:, 1::2] do not: they were refused before); where NumPy cannot decide cheaply, taken as shared."""
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except getattr(np, "exceptions", np).TooHardError:  # (np.exceptions from NumPy 1.25; refloss takes 1.24)
        return True


def _form(names: tuple) -> str:
    return f"(value, {', '.join('d_' + n for n in names)})"


def _slot(k: int, names: tuple) -> str:
    """The name of output ``k`` (0 the value, k the gradient of the k-th input)."""
    return "value" if k == 0 else "d_" + names[k - 1]


def _array(name: str, o) -> None:
    """``o``, not exactly an ndarray, may be an ndarray subclass but not a masked array (TypeError)."""
    if not isinstance(o, np.ndarray):
        what = "for the elementwise values (reduction='none')" if name == "out:" else "or None"
        raise TypeError(f"{name} must be a NumPy array {what}, got {type(o).__name__}")
    if isinstance(o, np.ma.MaskedArray):
        raise TypeError(f"{name.rstrip(':')}: a masked array's mask would be left as it is over the results: pass a plain "
                        "array (e.g. its .data)")


def check(name: str, o: np.ndarray, shape: tuple, dt) -> None:
    """``o`` can hold the result ``name`` of ``shape`` and dtype ``dt`` (a ValueError saying why not)."""
    if o.shape != tuple(shape):
        raise ValueError(f"out: {name} must have the result's shape {tuple(shape)}, got {o.shape}")
    if o.dtype != dt:
        got = o.dtype.name if o.dtype.name != np.dtype(dt).name else f"{o.dtype.str} (not the native byte order)"
        raise ValueError(f"out: {name} must have the result's dtype {np.dtype(dt).name}, got {got} "
                         "(refloss does not cast; dtype= sets the result's dtype)")
    if not o.flags.writeable:
        raise ValueError(f"out: {name} is read-only")


def direct(name: str, o, shape: tuple, dt, inputs) -> np.ndarray | None:
    """``o`` itself where the kernels can write into it (C-contiguous, not overlapping an input), None where
    the result goes to a new array first (and is copied in by :func:`store`); checked."""
    if o is None:
        return None
    check(name, o, shape, dt)
    if type(o) is not np.ndarray or not o.flags.c_contiguous:  # (a subclass, np.matrix: reshaped its own way)
        return None
    for a in inputs:
        if np.may_share_memory(o, a):
            return None
    return o


def store(result, value_out, grad_outs, names: tuple):
    """``result`` (a value, or (value, grads)) with each output given replaced by its array, the result copied
    in where it is not already there: every array checked first, so that none is written where one is wrong."""
    if not isinstance(result, tuple):
        pairs = [("value", result, value_out)]
    else:
        value, grads = result
        pairs = [("value", value, value_out)] + list(zip(("d_" + n for n in names), grads,
                                                          grad_outs or (None,) * len(grads)))
    for name, r, o in pairs:
        if o is not None and o is not r:
            if r is None:
                raise ValueError(f"out: {name} is None in the result (a class-index input has no gradient): pass "
                                 "None for it")
            check(name, o, np.shape(r), np.asarray(r).dtype)
    put = [_put(name, r, o) for name, r, o in pairs]
    return put[0] if not isinstance(result, tuple) else (put[0], tuple(put[1:]))


def _put(name: str, r, o):
    if o is None or o is r:
        return r if o is None else o
    o[...] = r
    return o
