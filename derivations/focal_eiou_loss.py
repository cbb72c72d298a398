"""Focal-EIoU loss, per element (Zhang et al., arXiv:2101.08158 v2): IoU^gamma * EIoU.

The batch normalisation of the paper (reduction="mean": divide by the sum of the
weights IoU^gamma) is applied by refloss's API layer.  Whether the weight carries a
gradient is not fixed by the paper: weight_grad=False (default) treats it as a
constant, True is the full product rule.
"""
import dataclasses

import sympy as sp

from . import _boxes as B
from . import eiou_loss as E
from refloss._derive.core import Param, Step, Variant
from refloss._derive.functions import Detach
from .iou_loss import EPS
from refloss._info import Properties

NAME = "focal_eiou_loss"
gamma = sp.Symbol("gamma", positive=True)
wg = sp.Symbol("weight_grad", nonnegative=True)
i_sym = sp.Symbol("inter", nonnegative=True)
weight = B.iou**gamma
weight_eff = wg * weight + (1 - wg) * Detach(weight)
# (float32: the gradients' two product-rule terms, weight_grad * d(IoU^gamma) * EIoU and IoU^gamma * dEIoU, cancel to
# 1/5000 of their size for thin boxes (6.6e-3 of the gradient scale; found by the 10^9-point sweep): they are wide
# outputs, evaluated in float64 where the sum is below half its terms and the terms above 16 times the gradient's
# largest component (their few ulps of error are then beyond the bar, which is relative to that component; half
# alone sent 71 % of the pairs with weight_grad=True to float64, 1/16 alone 18 %: components near 0).  The float64
# kernel has the same cancellation (4e-12 of the scale, bar 1e-13): there, the same outputs in double-double)

# what the figures show (gamma = 0.5, weight_grad=False: the defaults)
SLIDE_NOTE = ("The weight $\\mathrm{IoU}^\\gamma$ is 0 wherever the boxes do not overlap, so there the loss and its "
              "gradient are 0 like the derivative of 1 - IoU: Focal-EIoU does not pull a disjoint box either. With "
              "weight_grad=False (the default) the gradient treats the weight as a constant: it is "
              "$\\mathrm{IoU}^\\gamma \\nabla L_{\\mathrm{EIoU}}$ and points toward the target even where the "
              "drawn loss falls as the overlap shrinks (at dy = 0 beyond |x| = 0.53, at dy = 0.5 almost from x = 0).")
ASPECT_NOTE = ("$\\mathrm{IoU}^\\gamma L_{\\mathrm{EIoU}}$ falls again as the width goes to 0 (IoU -> 0; below a "
               "width of 0.26 to 0.41, depending on the height), but with weight_grad=False (the default) the gradient "
               "treats the weight as a constant and stays negative below width 1, toward the target's width.")

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
        PARAMS, {p: dataclasses.replace(k, wide=tuple(o for o in k.output_names if o != "value"), wide_scale=16.0)
                 for p in ("f64", "f32")},
        E.doc_steps("L_{\\mathrm{EIoU}}") + [
            Step("Per element, the EIoU loss weighted by $\\mathrm{IoU}^\\gamma$ (for disjoint boxes, $I = 0$: `inter` "
                 "in the kernel branches below, value and gradient are 0):", "L",
                 "\\mathrm{IoU}^\\gamma L_{\\mathrm{EIoU}}"),
            Step("and with `reduction=\"mean\"` the paper's normalisation by the weights, over the elements $i$:",
                 "\\bar L", "\\frac{\\sum_i \\mathrm{IoU}_i^\\gamma L_{\\mathrm{EIoU},i}}{\\sum_i \\mathrm{IoU}_i^\\gamma}")],
        [B.slide_plot("Focal-EIoU loss", note=SLIDE_NOTE, grad_title="gradient (weight constant)")],
        B.CONVENTIONS + " With weight_grad=False (default) the weight IoU^gamma is a constant in the gradient, and "
        "so is the normaliser of reduction='mean'; with weight_grad=True both are differentiated. reduction='mean' of a "
        "batch whose pairs are all disjoint (every weight 0) is 0/0: NaN, as the mean of an empty batch.", "", checks,
        variants=[Variant("focal_eiou_v1_v2", "the paper's v1, Focal-L1 of the EIoU loss (beta=0.8)",
                          loss="focal_l1_eiou_loss")],
        mean_weight=("iou", "gamma", "weight_grad", ("eps",)),
        aspect={"note": ASPECT_NOTE, "grad_title": "gradient (weight constant)"},
        properties=Properties(value_range=(0.0, 4.0), true_derivative={"weight_grad": True}))
