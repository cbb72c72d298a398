"""CPU execution: the generated Numba drivers (``refloss._generated.<loss>_cpu``).

The interface, as :mod:`refloss._cuda` has its own: :func:`launch` runs one fused driver
over flat C-contiguous arrays and returns the number of elements with a non-finite or
invalid input (validation costs no extra pass over memory).
"""
from __future__ import annotations


def launch(module, fn: str, flat, outputs, args) -> int:
    """``module.<fn>`` (a generated driver: "value_f64", "value_and_grad_f32", ...) over the
    flat arrays ``flat``, writing ``outputs``; returns the count of bad input elements."""
    return getattr(module, fn)(*flat, *outputs, *args)
