"""CPU execution: lazily import the generated Numba module and call its drivers."""
from __future__ import annotations

import importlib
from functools import lru_cache


@lru_cache(maxsize=None)
def drivers(name: str):
    """The generated ``refloss._generated.<name>_cpu`` module (imports numba on first use)."""
    return importlib.import_module(f"refloss._generated.{name}_cpu")


@lru_cache(maxsize=None)
def driver(name: str, kind: str, precision: str):
    """The driver ``<kind>_<precision>`` (kind "value" or "value_and_grad") of a loss."""
    return getattr(drivers(name), f"{kind}_{precision}")
