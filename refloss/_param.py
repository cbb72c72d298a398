"""Description of a loss parameter (used by generated metadata and validation)."""
from typing import NamedTuple, Optional


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

    def admits(self, value: float) -> bool:
        """Whether ``value`` lies in the domain (NaN never does)."""
        if value != value:
            return False
        if self.lower is not None and (value < self.lower or (value == self.lower and not self.lower_closed)):
            return False
        if self.upper is not None and (value > self.upper or (value == self.upper and not self.upper_closed)):
            return False
        return True
