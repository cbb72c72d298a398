"""Normalized Gaussian Wasserstein Distance loss (Wang et al., arXiv:2110.13389) on xyxy boxes.

Each box is the Gaussian N((cx, cy), diag(w^2/4, h^2/4)); the squared 2-Wasserstein distance of two
such Gaussians is W2^2 = |centre offset|^2 + ((w_p - w_t)/2)^2 + ((h_p - h_t)/2)^2, and
NWD = exp(-sqrt(W2^2)/C), L = 1 - NWD.  C is dataset-dependent in the paper; 12.8 is the value
of the authors' code for AI-TOD (the mean absolute object size).  ``eps`` (0 by default) is added
to W2^2 under the root, as the authors' code does (1e-7 there, spread over the terms).
"""
from dataclasses import replace

import sympy as sp
from sympy.codegen.cfunctions import expm1

from . import _boxes as B
from refloss._derive.core import Branch, Param, Step, prove_equal
from refloss._derive.functions import DiffOfDiffs, plain
from refloss._info import Properties

NAME = "nwd_loss"
c = sp.Symbol("c", positive=True)
d_sym = sp.Symbol("w2", nonnegative=True)  # sqrt(W2^2 + eps): the Wasserstein distance
# width and height differences with the rounding of the two coordinate offsets added back (as EIoU)
dw = DiffOfDiffs(B.px1, B.px2, B.tx1, B.tx2)
dh = DiffOfDiffs(B.py1, B.py2, B.ty1, B.ty2)
w2sq = B.dx**2 + B.dy**2 + (dw**2 + dh**2) / 4
distance = sp.sqrt(w2sq + B.eps)

PARAMS = [
    Param("c", c, 12.8, "normalising constant C of NWD = exp(-W2/C), dataset-dependent (12.8: the authors' code "
          "for AI-TOD)", lower=sp.Integer(0), lower_closed=False),
    Param("eps", B.eps, 0.0, "added to W2^2 under the square root (the authors' code: 1e-7); 0 = exact formula",
          lower=sp.Integer(0)),
]
CONVENTIONS = ("The loss is smooth except where the two Gaussians coincide (equal boxes, W2 = 0 with eps = 0), where "
               "sqrt has no derivative: there the value is 0 and the gradient is taken as 0 (its minimum; 0 lies in "
               "the subdifferential of the norm), where torch autograd of sqrt(W2^2) gives NaN. The loss has no "
               "kinks elsewhere (no max/min: disjoint boxes have a gradient too). It is translation invariant but "
               "not scale invariant: W2 is a length, compared with the length C.")
ACCURACY = ("Centre offsets are sums of coordinate differences and the width and height differences differences of "
            "coordinate differences with their rounding errors added back, so nearby boxes keep their digits far "
            "from the origin; 1 - exp(-W2/C) is evaluated as -expm1(-W2/C), accurate for small W2.")
SLIDE_NOTE = ("NWD loss is smooth and keeps a gradient wherever the boxes are, overlapping or not; it grows with the "
              "distance of the centres relative to C = 12.8, so along this slide of unit squares it stays below 0.3 and "
              "nearly linear in |x|, with a kink at x = 0 for dy = 0 only (coincident boxes, gradient 0 there).")
ASPECT_NOTE = ("With equal centres W2 = sqrt((w_p - 1)^2 + (h - 1)^2)/2: the loss is smallest at width 1 for every "
               "height and does not depend on the overlap, only on the sizes relative to C.")


def _gradient_through_decay(k, checks):
    """The W2 > 0 branch's gradient as decay * (dW2^2/ds / 2) / W2 with decay = exp(-W2/C)/C, where
    autodiff's exp(-W2/C) (dW2^2/ds / 2) / (C W2) formed C W2 first, which underflows to 0 for a
    subnormal C (0/0: NaN, where the gradient is 0).  decay is 0 wherever exp(-W2/C) is; the kernels'
    common factor decay/W2 overflows only where W2 and C are both below ~1e-154 (float32: ~1e-19).
    Proved equal to autodiff's gradient at 60 digits."""
    decay = sp.Symbol("decay", nonnegative=True)
    *first, last = k.branches
    outputs = {"value": last.outputs["value"]}
    for s in k.inputs:
        name = f"d_{s.name}"
        outputs[name] = decay * (sp.diff(w2sq, s) / 2) / d_sym
        prove_equal(plain(outputs[name].xreplace({decay: sp.exp(-d_sym / c) / c}).xreplace({d_sym: distance})),
                    plain(last.outputs[name].xreplace({d_sym: distance})),
                    f"dL/d{s.name} = (exp(-W2/C)/C * dW2^2/d{s.name} / 2) / W2", checks,
                    domain={**B._POSITIVE_BOXES, c: (1, 20), B.eps: (0, 1)}, numeric=True)
    return replace(k, prelude=k.prelude + ((decay, sp.exp(-d_sym / c) / c),),
                   branches=(*first, Branch(last.condition, outputs, last.label)))


def derive():
    checks = []
    value = -expm1(-d_sym / c)
    k = B.box_kernel(
        [(sp.Eq(d_sym, 0), sp.Integer(0), sp.Integer(0),
          "coincident Gaussians (W2 = 0): value 0, gradient 0 by convention (sqrt has none there)"),
         (None, value.xreplace({d_sym: distance}), 1 - sp.exp(-distance / c), "W2 > 0")],
        args=(c, B.eps), prelude=((d_sym, distance),), checks=checks, numeric_proof=True)
    k = _gradient_through_decay(k, checks)
    C = sp.Symbol("C", positive=True)
    return B.box_spec(
        NAME, "NWD loss", "L = 1 - exp(-W2 / C), W2^2 = |c_p - c_t|^2 + ((w_p - w_t)/2)^2 + ((h_p - h_t)/2)^2 + eps, "
        "boxes as Gaussians N((cx, cy), diag(w^2/4, h^2/4)); gradient 0 at W2 = 0 by convention.",
        ["J. Wang et al., A Normalized Gaussian Wasserstein Distance for Tiny Object Detection, arXiv:2110.13389"],
        PARAMS, {p: k for p in ("f64", "f32")},
        [Step("Each box is the Gaussian with mean its centre and covariance $\\mathrm{diag}(w^2/4, h^2/4)$; the "
              "squared 2-Wasserstein distance of two such Gaussians is the distance of the centres plus the Frobenius "
              "distance of the covariances' square roots ($\\rho_x, \\rho_y$ the centre offsets, evaluated as sums of "
              "coordinate differences):", "W_2^2",
              "\\rho_x^2 + \\rho_y^2 + \\frac{(w_p - w_t)^2 + (h_p - h_t)^2}{4} + \\epsilon"),
         Step("The normalised distance and the loss, evaluated as $-\\operatorname{expm1}(-W_2/C)$; at $W_2 = 0$ "
              "(`w2` in the kernel branches below) the square root has no derivative and the gradient is 0 by "
              "convention:", "L", 1 - sp.exp(-sp.Symbol("W_2") / C))],
        [B.slide_plot("NWD loss", {"c": 12.8}, note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks,
        aspect={"note": ASPECT_NOTE}, properties=Properties(length_params=("c",), defined_at_zero_union=True))
