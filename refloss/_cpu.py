"""CPU execution: lazily import the generated Numba module and call its drivers."""
from __future__ import annotations

import importlib
from functools import lru_cache


@lru_cache(maxsize=None)
def drivers(name: str):
    """The generated ``refloss._generated.<name>_cpu`` module (imports numba on first use)."""
    return importlib.import_module(f"refloss._generated.{name}_cpu")


def run(name, precision, flat_inputs, args, out, grads=None, divisor=1.0):
    """Fill ``out`` (and ``grads``, divided by ``divisor``) with one fused parallel pass."""
    mod = drivers(name)
    if grads is None:
        getattr(mod, f"value_{precision}")(*flat_inputs, out, *args)
    else:
        getattr(mod, f"value_and_grad_{precision}")(*flat_inputs, out, *grads, out.dtype.type(divisor), *args)
