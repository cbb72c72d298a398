"""Focal-EIoU loss, per element (Zhang et al., arXiv:2101.08158 v2): IoU^gamma * EIoU.

The batch normalisation of the paper (reduction="mean": divide by the sum of the
weights IoU^gamma) is applied by refloss's API layer.  Whether the weight carries a
gradient is not fixed by the paper: weight_grad=False (default) treats it as a
constant, True is the full product rule.
"""
import sympy as sp

from . import _boxes as B
from . import eiou_loss as E
from refloss._derive.core import Param, Step, Variant
from refloss._derive.functions import Detach
from .iou_loss import EPS

NAME = "focal_eiou_loss"
gamma = sp.Symbol("gamma", positive=True)
wg = sp.Symbol("weight_grad", nonnegative=True)
i_sym = sp.Symbol("inter", nonnegative=True)
weight = B.iou**gamma
weight_eff = wg * weight + (1 - wg) * Detach(weight)

PARAMS = [EPS, Param("gamma", gamma, 0.5, "exponent of the IoU weight", lower=sp.Integer(0), lower_closed=False),
          Param("weight_grad", wg, False, "differentiate the weight IoU^gamma (True) or treat it as a constant",
                kind="bool")]


def derive():
    checks = []
    k = B.box_kernel(
        [(sp.And(sp.Eq(i_sym, 0), B.union + B.eps > 0), sp.Integer(0), sp.Integer(0),
          "no overlap: weight 0, value and gradient 0 (torch autograd: NaN for weight_grad=True, 0 * inf)"),
         (None, weight * E.value, weight_eff * E.diff_form, "IoU^gamma * EIoU")],
        args=(B.eps, gamma, wg), prelude=((i_sym, B.inter),), checks=checks)
    return B.box_spec(
        NAME, "Focal-EIoU loss", "L = IoU^gamma * EIoU per element; reduction='mean' divides the sum by the sum of "
        "the weights IoU^gamma (the paper's normalisation).",
        ["Y.-F. Zhang et al., Focal and Efficient IOU Loss for Accurate Bounding Box Regression, arXiv:2101.08158 (v2)"],
        PARAMS, {p: k for p in ("f64", "f32")},
        [Step("Per element, with the EIoU loss above:", "L", sp.Symbol("IoU") ** gamma * sp.Symbol("L_{EIoU}")),
         Step("and with `reduction=\"mean\"` the paper's normalisation by the weights:",
              "\\bar L", sp.Symbol("\\sum_i IoU_i^{\\gamma} L_{EIoU,i}") / sp.Symbol("\\sum_i IoU_i^{\\gamma}"))],
        [B.slide_plot("Focal-EIoU loss")],
        B.CONVENTIONS + " With weight_grad=False (default) the weight IoU^gamma is a constant in the gradient, and "
        "so is the normaliser of reduction='mean'; with weight_grad=True both are differentiated.", "", checks,
        variants=[Variant("focal_eiou_v1_v2", "the paper's v1, Focal-L1 of the EIoU loss (beta=0.8)",
                          loss="focal_l1_eiou_loss")],
        mean_weight=("iou", "gamma", "weight_grad", ("eps",)))
