"""Description of a loss parameter (used by generated metadata and validation)."""
import math
from numbers import Real
from typing import NamedTuple, Optional

import numpy as np


def _is_real_scalar(value) -> bool:
    return isinstance(value, Real) or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu")


class Param(NamedTuple):
    """A parameter with its default and domain ``lower <(=) value <(=) upper``."""

    name: str
    default: float
    lower: Optional[float]
    lower_closed: bool
    upper: Optional[float]
    upper_closed: bool
    rule: str
    doc: str
    kind: str = "real"  # "real", "bool" (kernels get 0.0/1.0), "optional" (None -> none_value), "int",
    # "choice" (a string of ``choices``; kernels get its index), "size" (a required (width, height),
    # both > 0; kernels get width^2 + height^2)
    none_value: float = 0.0
    choices: tuple = ()

    def to_float(self, value) -> float:
        """The kernel's float for a user value (ValueError/TypeError if not admitted)."""
        if self.kind == "bool":
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value[()]
            # (an array of one element compared equal to True and passed)
            if isinstance(value, (float, np.floating, np.ndarray)) or value not in (True, False):
                raise TypeError(f"{self.name}: must be True or False, got {value!r}")
            return 1.0 if value else 0.0
        if self.kind == "size":
            return self._size_to_float(value)
        if self.kind == "choice":
            if not isinstance(value, str):
                raise TypeError(f"{self.name}: must be one of {self.choices}, got {value!r}")
            if value not in self.choices:
                raise ValueError(f"{self.name}: must be one of {self.choices}, got {value!r}")
            return float(self.choices.index(value))
        if self.kind == "optional" and value is None:
            return self.none_value
        if isinstance(value, (bool, str, bytes)) or not _is_real_scalar(value):
            raise TypeError(f"{self.name}: must be a real scalar, got {value!r}")
        try:
            v = float(value)
        except OverflowError:  # a Python int beyond float's range (10**400)
            raise ValueError(f"{self.name}: must be finite and satisfy {self.rule}, got an integer beyond float's "
                             "range") from None
        if v in (math.inf, -math.inf):  # no rule's bound is infinite: eps = inf gave NaN, balanced_l1's beta = inf
            # failed inside its constants (decimal.InvalidOperation)
            raise ValueError(f"{self.name}: must be finite and satisfy {self.rule}, got {value!r}")
        if self.kind == "int" and not v.is_integer():
            raise ValueError(f"{self.name}: must satisfy {self.rule}, got {value!r}")
        if not self.admits(v):
            raise ValueError(f"{self.name}: must satisfy {self.rule}, got {value!r}")
        return v

    def _size_to_float(self, value) -> float:
        if value is None:
            raise TypeError(f"{self.name}: required, the image's (width, height) in the boxes' units, "
                            f"e.g. {self.name}=(640, 640)")
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2 \
                or not all(_is_real_scalar(v) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{self.name}: must be a pair (width, height) of real numbers, got {value!r}")
        w, h = (float(v) for v in value)
        if not (0 < w < float("inf") and 0 < h < float("inf")):
            raise ValueError(f"{self.name}: must satisfy {self.rule}, got {value!r}")
        return w * w + h * h

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies in the domain (NaN never does)."""
        if value != value:
            return False
        if self.lower is not None and (value < self.lower or (value == self.lower and not self.lower_closed)):
            return False
        if self.upper is not None and (value > self.upper or (value == self.upper and not self.upper_closed)):
            return False
        return True
