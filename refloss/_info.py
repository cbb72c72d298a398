"""What generic code knows about a loss: one :class:`LossInfo` per derivation.

The entries are generated from the derivations into ``refloss/_generated/_index.py`` (the
one source of truth: names, families, inputs and their layouts, parameters, kinks,
variants); the public names, the CLI, ``check_loss``, ``refloss vectors`` and ``refloss
verify`` read them, and no module switches on a loss's name.  What is hand-written on
purpose (the independent oracle, the parameter sets ``verify`` runs, the accuracy bar) is
in :mod:`refloss._reference`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

# the families: which battery checks a loss, which error measure and bar apply
FAMILIES = ("elementwise", "box", "classification", "softmax", "distribution", "yolo", "coding", "rotated")

# A box pair whose largest |coordinate| is beyond 2^+-RESCALE_EXPONENT[precision] is counted by the CPU drivers
# and computed again by Loss._rescale, scaled by a power of two: the kernels keep their scale invariance to
# 2^+-511 (float64) and 2^+-63 (float32) on ordinary pairs (docs/accuracy.md); the margin is for products of lengths
RESCALE_EXPONENT = {"f64": 480, "f32": 56}


def rescalable(family: str, properties, params) -> bool:
    """Whether a loss's out-of-range box pairs are computed again scaled (Loss._rescale): a box loss whose value
    and gradients follow its boxes' scale exactly, its parameters in the boxes' units (NWD's c, MPDIoU's image
    size: :func:`length_params`) scaled with them, and an ``eps``, set to 0 for the scaled pairs."""
    return family == "box" and properties.scale_invariant and "eps" in [p.name for p in params]


def cuda_rescaled(family: str, properties, params) -> bool:
    """Whether the CUDA drivers compute a box pair beyond 2^+-RESCALE_EXPONENT again scaled, in the element's
    own thread (Loss._rescale's rule, eps 0 there): the losses the CPU path rescales, a parameter in the boxes'
    units (NWD's c; MPDIoU's image size, whose w and h the driver takes too: its kernels take w^2 + h^2, which
    overflows or underflows where the pairs need rescaling) scaled with the pair in the same thread.  Such a
    driver takes the kernel's arguments twice, the second time for eps 0, whether tiny pairs are rescaled (the
    caller's eps is 0), and each size's w and h: Loss._cuda_args."""
    return rescalable(family, properties, params)


def length_params(properties, params) -> tuple:
    """The positions of the parameters in the boxes' units: ``properties.length_params`` and the "size"
    parameters (a (width, height))."""
    return tuple(k for k, p in enumerate(params) if p.name in properties.length_params or p.kind == "size")


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


class Properties(NamedTuple):
    """What a loss's formula guarantees, stated in its derivation next to the formula: the
    property tests (tests/test_properties.py) check each on drawn inputs, and a new loss needs
    no entry in them.  The defaults hold for most losses.

    ``value_range``: the value lies in [lo, hi] (None: [0, inf) for a loss, (-inf, 1] for a
    metric); ``strict_upper``: hi is never reached by box pairs with a positive union;
    ``symmetric_when``: L(p, t) = L(t, p) for parameters with these values ({}: always, None:
    never); ``scale_invariant``: the value is unchanged when every length of the boxes (and
    ``length_params``, parameters in the boxes' units) is scaled; ``true_derivative``: the
    parameter values under which the gradients are the derivative of the value (a default that
    holds a weight constant, as the paper's code does, is not); ``gate``: a parameter at which
    the value jumps as the IoU crosses it; ``defined_at_zero_union``: a box loss that is not a
    quotient by the union (never NaN there; 0 with a zero gradient at pred = target)."""

    value_range: Optional[tuple] = None
    strict_upper: bool = False
    symmetric_when: Optional[dict] = {}
    scale_invariant: bool = True
    length_params: tuple = ()
    true_derivative: dict = {}
    gate: Optional[str] = None
    defined_at_zero_union: bool = False

    def symmetric(self, params: dict) -> bool:
        """Whether L(p, t) = L(t, p) with these parameters."""
        when = self.symmetric_when
        return when is not None and all(params.get(k, v) == v for k, v in when.items())

    def source(self) -> str:
        """Python source of this value, only the fields that differ from the defaults."""
        def lit(v):
            if isinstance(v, float) and math.isinf(v):
                return "math.inf" if v > 0 else "-math.inf"
            if isinstance(v, tuple):
                return "(" + ", ".join(lit(x) for x in v) + ("," if len(v) == 1 else "") + ")"
            return repr(v)
        fields = [f"{k}={lit(v)}" for k, v in self._asdict().items() if v != self._field_defaults[k]]
        return f"Properties({', '.join(fields)})"


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
    properties: Properties = Properties()
    # parameters at most the rows' last index C - 1 (DFL's clamp, in bins): checked where a call knows its rows
    row_params: tuple = ()

    def kink_points(self, values: dict) -> tuple:
        """The positive kinks for these parameter values (kernel floats), sorted; () if none."""
        if self.kinks is None:
            return ()
        return tuple(sorted({float(k) for k in self.kinks(**values) if k > 0}))
