"""Shape-IoU loss (Zhang and Zhang, Shape-IoU: More Accurate Metric considering Bounding Box Shape and
Scale, arXiv:2312.17663) on xyxy boxes.

L = 1 - IoU + distance^shape + Omega^shape/2 with the target's shape weights
ww = 2 w_t^s/(w_t^s + h_t^s), hh = 2 h_t^s/(w_t^s + h_t^s) (s = ``scale``, 0 by default as in the
authors' code: ww = hh = 1),
- distance^shape = (hh rho_x^2 + ww rho_y^2)/c^2 (rho the centre offsets, c the enclosing box's
  diagonal: hh weights the x offset, as the paper and its code write it);
- Omega^shape = sum_{t=w,h} (1 - exp(-omega_t))^4, omega_w = hh |w_p - w_t|/max(w_p, w_t),
  omega_h = ww |h_p - h_t|/max(h_p, h_t) (the paper's theta = 4).

The weights are evaluated from the target's sides divided by the larger one (u = w_t/m, v = h_t/m,
m = max(w_t, h_t)), so that w_t^s cannot overflow; m is held fixed in the gradient, which is exact:
ww(w_t, h_t) = 2 u^s/(u^s + v^s) for every m > 0 (the weights are homogeneous of degree 0), so the
derivative through m is 0.  d(u^s)/du is taken as 0 at u = 0 (PowG: the zero-width target's weight
has an infinite derivative for s < 1).  At scale = 0 the weights are 1 and the loss is the paper's
with ww = hh = 1 (also for a point target, where u = v = 0/0).
"""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Param, Step, prove_equal
from refloss._derive.functions import plain
from refloss._derive.functions import HAND_RULES, Detach, DiffOfDiffs, Group, HandDiff, PowG, TMax
from .iou_loss import EPS
from . import siou_loss as S
from .siou_loss import Abs
from refloss._info import Properties

NAME = "shape_iou_loss"
s = sp.Symbol("scale", nonnegative=True)

m = Detach(TMax(B.wt, B.ht))  # the target's larger side: a constant in the gradient (see above)
wu, hu = PowG(B.wt / m, s), PowG(B.ht / m, s)


def _share_derivative(sign):
    """d/dz of the weights 2 wu/(wu + hu) (sign 1), 2 hu/(wu + hu) (-1) and of ww - 1 = (wu - hu)/(wu + hu) (sign 1,
    the same as ww's): +-2 (wu' hu - wu hu')/(wu + hu)^2, a product for every coordinate z (wu depends on the target's x
    coordinates only, hu on its y ones).  SymPy's quotient rule gave the difference wu'/(wu + hu) - wu wu'/(wu + hu)^2
    (and hu'/(wu + hu) - ...), which cancels as the weights near 0 and 2 (a large scale, an oblong target):
    float64 d/dtarget 3e-10 of the component at scale 20 (4.3e5 ULP of the gradient scale, the box sweep)."""
    def rule(z):
        return sign * 2 * (wu.diff(z) * hu - wu * hu.diff(z)) / (wu + hu) ** 2
    return rule


# (keys 20-22: 3 and 4 are _boxes' GIoU and 1 - IoU rules, which these overwrote in any process that imported this
# module before deriving another box loss)
HAND_RULES[20], HAND_RULES[21], HAND_RULES[22] = _share_derivative(1), _share_derivative(-1), _share_derivative(1)
ww, hh = HandDiff(2 * wu / (wu + hu), sp.Integer(20)), HandDiff(2 * hu / (wu + hu), sp.Integer(21))
ww_minus_1 = HandDiff(Group((wu - hu) / (wu + hu)), sp.Integer(22))  # ww - 1 = 1 - hh
# rho_y - rho_x and rho_y + rho_x from the corners' offsets with their rounding errors added back (DiffOfDiffs):
# hh rho_x^2 + ww rho_y^2 = rho^2 + (ww - 1)(rho_y - rho_x)(rho_y + rho_x), whose weight derivative is
# d(ww) (rho_y^2 - rho_x^2), small for a diagonal (or anti-diagonal) offset; as dhh rho_x^2 + dww rho_y^2 it was the
# difference of two terms of size rho^2, which lost 2.1e-2 of the largest component in float32 (scale 4, far boxes)
_dy_minus_dx = (DiffOfDiffs(B.px1, B.py1, B.tx1, B.ty1) + DiffOfDiffs(B.px2, B.py2, B.tx2, B.ty2)) / 2
_dy_plus_dx = (DiffOfDiffs(B.tx1, B.py1, B.px1, B.ty1) + DiffOfDiffs(B.tx2, B.py2, B.px2, B.ty2)) / 2


def shape_terms(ww, hh, ww_minus_1=0):
    """distance^shape + Omega^shape/2 for the weights ww, hh (ww_minus_1 = ww - 1, evaluated apart)."""
    distance = (B.dx**2 + B.dy**2 + ww_minus_1 * Group(_dy_minus_dx * _dy_plus_dx)) / B.c2
    omega_w = hh * Abs(S.dw) / S.larger(B.wt, S.dw)
    omega_h = ww * Abs(S.dh) / S.larger(B.ht, S.dh)
    shape = (1 - sp.exp(-omega_w))**4 + (1 - sp.exp(-omega_h))**4
    return distance + shape / 2


PARAMS = [
    Param("scale", s, 0.0, "the scale factor of the shape weights ww = 2 w_t^scale/(w_t^scale + h_t^scale) "
          "(0: the authors' code's default, ww = hh = 1)", lower=sp.Integer(0)),
    EPS,
]

CONVENTIONS = (B.CONVENTIONS + " |w_p - w_t| has gradient sign(w_p - w_t), 0 at 0 (torch.abs). The shape weights "
               "depend on the target only; their gradient w.r.t. the target is kept (the authors' code does not "
               "detach them). d(u^scale)/du is taken as 0 at u = 0 (a zero-width or zero-height target, scale > 0). "
               "A point target (w_t = h_t = 0) gives NaN for scale > 0 (0/0, as the authors' code) and weights 1 "
               "for scale = 0. omega_w = hh |w_p - w_t|/max(w_p, w_t) has no eps (as the authors' code, whose "
               "eps = 1e-7 is in the union and the diagonal only, where refloss's eps goes): two zero-width (or "
               "two zero-height) boxes give NaN whatever eps is.")
ACCURACY = (B.ACCURACY + " The weights are formed from the target's sides divided by the larger one, so "
            "w_t^scale cannot overflow. The shape distance is evaluated as (rho^2 + (ww - 1)(rho_y - rho_x)(rho_y + "
            "rho_x))/c^2, rho_y -+ rho_x from the corners' offsets with their rounding errors added back, so that its "
            "derivative through the weights, d(ww)(rho_y^2 - rho_x^2)/c^2, keeps its digits for diagonal offsets. The "
            "weights' derivatives are 2 (wu' hu - wu hu')/(wu + hu)^2 (wu = (w_t/m)^scale, hu = (h_t/m)^scale), one "
            "product: the quotient rule's two terms cancelled as the weights near 0 and 2 (large scales).")


def derive():
    checks = []
    wt_, ht_, m_ = sp.symbols("w_t h_t m", positive=True)
    paper_ww = 2 * wt_**s / (wt_**s + ht_**s)
    ours = 2 * (wt_ / m_)**s / ((wt_ / m_)**s + (ht_ / m_)**s)
    prove_equal(ours, paper_ww, "the weight from the sides divided by any m > 0 equals the paper's "
                "2 w_t^s/(w_t^s + h_t^s)", checks, domain={wt_: (1, 3), ht_: (1, 3), m_: (1, 3), s: (0, 4)},
                numeric=True)
    prove_equal(sp.diff(ours, m_), sp.Integer(0), "... so its derivative w.r.t. m is 0 and m can be held fixed "
                "in the gradient", checks, domain={wt_: (1, 3), ht_: (1, 3), m_: (1, 3), s: (0, 4)}, numeric=True)
    paper = (hh * B.dx**2 + ww * B.dy**2) / B.c2 + shape_terms(ww, hh) - (B.dx**2 + B.dy**2) / B.c2
    prove_equal(plain(shape_terms(ww, hh, ww_minus_1)), plain(paper), "the shape distance as (rho^2 + (ww - 1)(rho_y - "
                "rho_x)(rho_y + rho_x))/c^2 equals the paper's (hh rho_x^2 + ww rho_y^2)/c^2", checks,
                domain=B._POSITIVE_BOXES, numeric=True)
    for k, weight, name in ((20, ww, "ww"), (21, hh, "hh"), (22, ww_minus_1, "ww - 1")):  # the hand-written derivatives
        for z in B.TARGET:
            prove_equal(plain(HAND_RULES[k](z)), sp.diff(plain(weight.args[0]), z), f"d({name})/d{z} = "
                        f"{'-' if k == 21 else ''}2 (wu' hu - wu hu')/(wu + hu)^2, one product", checks,
                        domain={**B._POSITIVE_BOXES, s: (sp.Rational(1, 2), 6)}, numeric=True)
    base_value, base_diff = B.one_minus_iou, 1 - B.iou
    k = B.box_kernel(
        [(sp.Eq(s, 0), base_value + shape_terms(1, 1), base_diff + shape_terms(1, 1), "scale = 0: ww = hh = 1"),
         (None, base_value + shape_terms(ww, hh, ww_minus_1), base_diff + shape_terms(ww, hh, ww_minus_1),
          "shape weights of the target")],
        args=(s, B.eps), checks=checks, numeric_proof=True)
    W, H, D, O = sp.symbols("ww hh D^{shape} \\Omega^{shape}")
    steps = B.DISTANCE_STEPS + [
        Step("The target's shape weights, with $s$ the parameter `scale` (0 by default: both weights 1), evaluated "
             "from $u = w_t/m$, $v = h_t/m$, $m = \\max(w_t, h_t)$ (no overflow of $w_t^s$; the weights do not "
             "depend on $m$, so it is held fixed in the gradient):", W,
             "\\frac{2 w_t^s}{w_t^s + h_t^s} = \\frac{2 u^s}{u^s + v^s}, \\qquad hh = \\frac{2 h_t^s}{w_t^s + h_t^s}"),
        Step("The shape distance (the weight of the height multiplies the horizontal offset):", D,
             "\\frac{hh\\, \\rho_x^2 + ww\\, \\rho_y^2}{c^2 + \\epsilon}"),
        Step("The shape cost ($w_p - w_t$ from coordinate differences, as in the EIoU loss):", O,
             "\\sum_{t = w, h} \\left(1 - e^{-\\omega_t}\\right)^4, \\qquad "
             "\\omega_w = \\frac{hh\\, |w_p - w_t|}{\\max(w_p, w_t)}, \\quad "
             "\\omega_h = \\frac{ww\\, |h_p - h_t|}{\\max(h_p, h_t)}"),
        Step("The loss:", "L", "1 - \\mathrm{IoU} + D^{shape} + \\frac{\\Omega^{shape}}{2}"),
    ]
    return B.box_spec(
        NAME, "Shape-IoU loss", "L = 1 - IoU + (hh rho_x^2 + ww rho_y^2)/c^2 + Omega/2, ww = 2 wt^s/(wt^s + ht^s), "
        "hh = 2 ht^s/(wt^s + ht^s) (s = scale), Omega = sum_t (1 - exp(-omega_t))^4, omega_w = hh |wp - wt|/max(wp, wt), "
        "omega_h = ww |hp - ht|/max(hp, ht).",
        ["H. Zhang, S. Zhang, Shape-IoU: More Accurate Metric considering Bounding Box Shape and Scale, arXiv:2312.17663"],
        PARAMS, {p: k for p in ("f64", "f32")}, steps,
        [B.slide_plot("Shape-IoU loss", note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks, aspect={"note": ASPECT_NOTE},
        properties=Properties(value_range=(0.0, 4.0), symmetric_when={"scale": 0.0}))


SLIDE_NOTE = ("Both boxes are unit squares, so the shape cost is 0 and, at scale 0, the loss is the DIoU loss: the "
              "distance term keeps a gradient where the boxes do not overlap.")
ASPECT_NOTE = ("With equal centres the shape distance is 0 and the loss is 1 - IoU plus half the shape cost "
               "(1 - exp(-omega))^4, flat near equal widths.")
