"""What generic code knows about a loss: one :class:`LossInfo` per derivation.

The entries are generated from the derivations into ``refloss/_generated/_index.py`` (the
one source of truth: names, families, inputs and their layouts, parameters, kinks,
variants); the public names, the CLI, ``check_loss``, ``refloss vectors`` and ``refloss
verify`` read them, and no module switches on a loss's name.  What is hand-written on
purpose (the independent oracle, the parameter sets ``verify`` runs, the accuracy bar) is
in :mod:`refloss._reference`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

# the families: which battery checks a loss, which error measure and bar apply
FAMILIES = ("elementwise", "box", "classification", "softmax", "distribution", "yolo", "coding", "rotated")


class Variant(NamedTuple):
    """A variant of a loss that peers implement and a diagnosis can name.

    Exactly one of: ``params`` (this loss with these parameters), ``loss`` (another refloss
    loss, called with the parameters the two share) or ``kernel`` (a formula the derivation
    generated next to the loss: ``variant_<kernel>_f64`` in its scalar module, same arguments).
    """

    code: str  # stable diagnosis code (report.diagnoses), e.g. "ciou_alpha_grad", "copied_balanced_l1_form"
    text: str  # what the diagnosis says
    params: Optional[dict] = None
    loss: Optional[str] = None
    kernel: Optional[str] = None


class MeanWeight(NamedTuple):
    """``reduction="mean"`` divides by the sum of weights ``metric**exponent`` instead of the
    count (Focal-EIoU's normalisation); ``differentiate`` names the bool parameter that makes
    the weights carry a gradient; ``shared`` the parameters passed on to the metric."""

    metric: str
    exponent: str
    differentiate: str
    shared: tuple = ()


class LossInfo(NamedTuple):
    name: str
    title: str
    family: str  # one of FAMILIES
    kind: str  # "loss", "metric" or "coding" (a vector function with a hand-written API)
    inputs: tuple  # array input names
    widths: tuple  # 1 for an element-wise input, else the size of its last axis (None: any, a row of C)
    layouts: tuple  # per input: "xyxy", "xywh" (boxes) or None
    ranges: dict  # input name -> (lo, hi): values outside are invalid
    value_width: int
    grad_inputs: tuple
    params: tuple  # (refloss._param.Param, ...)
    args: tuple  # the kernel's arguments after the inputs (parameters and constants)
    kinks: Optional[Callable]  # element-wise: (**param floats) -> |x| where the loss is not smooth
    variants: tuple = ()
    mean_weight: Optional[MeanWeight] = None
    formula: str = ""
    conventions: str = ""
    references: tuple = ()
    derivation: str = ""  # "derivations/<name>.py"
    # row inputs (width None) that may also be given as integer class indices of the rows' shape:
    # one-hot rows for the kernel, no gradient (None in value_and_grad's tuple)
    indices: tuple = ()

    def kink_points(self, values: dict) -> tuple:
        """The positive kinks for these parameter values (kernel floats), sorted; () if none."""
        if self.kinks is None:
            return ()
        return tuple(sorted({float(k) for k in self.kinks(**values) if k > 0}))
