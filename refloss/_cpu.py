"""CPU execution: the generated Numba drivers (``refloss._generated.<loss>_cpu``).

The interface, as :mod:`refloss._cuda` has its own: :func:`launch` runs one fused driver
over flat C-contiguous arrays and returns the number of elements with a non-finite or
invalid input (validation costs no extra pass over memory).
"""
from __future__ import annotations


def read_only(a):
    """``a``, or a read-only view of it: the drivers only read their inputs, and Numba compiles a
    driver once for each combination of writable and read-only inputs it is given (seconds
    each), so every input reaches the drivers read-only and each driver compiles once a dtype."""
    view = a.view()
    view.setflags(write=False)  # (faster than assigning view.flags.writeable; a view of a read-only array too)
    return view


def launch(module, fn: str, flat, outputs, args) -> int:
    """``module.<fn>`` (a generated driver: "value_f64", "value_and_grad_f32", ...) over the
    flat arrays ``flat`` (read-only views of them), writing ``outputs``; returns the count of bad
    input elements."""
    return getattr(module, fn)(*map(read_only, flat), *outputs, *args)
