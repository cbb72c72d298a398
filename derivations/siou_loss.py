"""SCYLLA-IoU loss (Gevorgyan, SIoU Loss: More Powerful Learning for Bounding Box Regression,
arXiv:2205.12740) on xyxy boxes.

L = 1 - IoU + (Delta + Omega)/2 with
- the angle cost Lambda = 1 - 2 sin^2(arcsin(x) - pi/4), x = sin(alpha) the sine of the angle
  between the line joining the centres and the x axis (or the y axis, whichever is smaller: the
  paper minimises alpha when alpha <= pi/4, else beta = pi/2 - alpha); Lambda = sin(2 alpha), the
  same for alpha and pi/2 - alpha, evaluated as 2 t/(1 + t^2) with t = min(|dx|, |dy|)/max(|dx|, |dy|)
  (= tan alpha), proved equal to the paper's form;
- the distance cost Delta = sum_{x,y} (1 - exp(-gamma rho_t)), gamma = 2 - Lambda,
  rho_x = (dx/c_w)^2, rho_y = (dy/c_h)^2 (c_w, c_h the enclosing box's width and height);
- the shape cost Omega = sum_{w,h} (1 - exp(-omega_t))^theta, omega_w = |w_p - w_t|/max(w_p, w_t).

At coincident centres (dx = dy = 0) the angle is undefined (0/0; peers' sigma + eps gives NaN
gradients or a meaningless angle) but Delta = 0 whatever Lambda is, and its gradient tends to 0
(|rho_t d gamma| <= sigma^2/c^2 * O(1/sigma)): the loss is 1 - IoU + Omega/2 there, with that
gradient, its limit.  ``positive_exponent=True`` is mmdetection's SIoULoss default
(neg_gamma=False): Delta = 2 - exp(gamma rho_x) - exp(gamma rho_y) <= 0, a reward for moving the
centres apart.
"""
import math

import sympy as sp
from sympy.codegen.cfunctions import expm1

from . import _boxes as B
from refloss._derive.core import Param, Step, Variant, prove_equal
from refloss._derive.functions import DiffOfDiffs, Group, PowG, Quot, TMax, TMin, plain
from .iou_loss import EPS
from refloss._info import Properties

NAME = "siou_loss"
theta = sp.Symbol("theta", positive=True)
pe = sp.Symbol("positive_exponent", nonnegative=True)
off = sp.Symbol("off", nonnegative=True)  # max(|dx|, |dy|), 0 at coincident centres


class Abs(sp.Abs):
    """|x| of a real x, differentiated as sign(x) dx (sign(0) = 0, torch.abs); SymPy's Abs would bring in
    re/im for the coordinate functions (Sub, DiffOfDiffs) it cannot tell are real.  Named Abs so that the
    printers print it as abs (SymPy ignores the print method of a renamed subclass)."""

    def _eval_derivative(self, s):
        return sp.sign(self.args[0]) * self.args[0].diff(s)


def larger(b_t, delta):
    """max(b_p, b_t) of two sizes as b_t + max(delta, 0), delta = b_p - b_t from coordinate differences
    (DiffOfDiffs): the gradient's choice of the larger size then compares the accurate delta.  TMax(b_p, b_t)
    compared the expanded sum ((p1 - t1) - p2) + t2, which rounds to an ulp of the coordinates: for float32
    boxes ~1e-6 wide near 2 its sign was wrong, a 4.5% error in the shape cost's gradient (found by the box
    sweep).  A tie splits the gradient 0.5/0.5, as torch.maximum.  (Group: the sum is formed on its own, so that
    an eps added to it is not added to a coordinate first, nor delta to a coordinate before b_t is formed.)"""
    return Group(Group(b_t) + TMax(delta, 0))


# the centre offsets ((p1 - t1) + (p2 - t2))/2 with both differences' rounding errors added back (DiffOfDiffs of
# (p2 - t2) - (t1 - p1)): the angle cost compares |dx| with |dy|, so dx needs its relative digits where the two
# differences cancel (float32 boxes with nearly equal x centres: the plain sum's error, an ulp of the differences,
# was O(1) of dx, 10% of the gradient; found by the box sweep)
dx = DiffOfDiffs(B.tx1, B.px2, B.px1, B.tx2) / 2
dy = DiffOfDiffs(B.ty1, B.py2, B.py1, B.ty2) / 2
ax, ay = Abs(dx), Abs(dy)
# t = min/max as a quotient, so that its derivative is (d min - t d max)/max: as a product min max^-1, the angle's
# derivative came out as powers min^2 max^-3, whose max^-3 overflowed (underflowed) for offsets beyond 2^+-341
# in float64 and the gradient was 0 or NaN there
tan_alpha = Quot(TMin(ax, ay), TMax(ax, ay))
angle = 2 * tan_alpha / (1 + tan_alpha**2)  # Lambda = sin(2 alpha)
gamma = 2 - angle
sgn = 1 - 2 * pe  # +1: the paper's exp(-gamma rho); -1: mmdetection's default exp(+gamma rho)
rho_x = dx**2 / (B.cw**2 + B.eps)
rho_y = dy**2 / (B.ch**2 + B.eps)
# 1 - exp(-u) as -expm1(-u): the shape cost's gradient is proportional to 1 - exp(-omega) (theta = 2), which
# 1 - exp(-omega) left with float32's absolute error, ~6e-8, where omega ~ 1e-4 (boxes far smaller than eps: omega =
# |dh|/(h + eps)): 6.5e-5 of the gradient scale on thin boxes 1e-4 by 2e-8, eps = 1e-7 (the 10^9 box sweep, 958 ULP)
distance = -expm1(-sgn * gamma * rho_x) - expm1(-sgn * gamma * rho_y)
dw, dh = DiffOfDiffs(B.px1, B.px2, B.tx1, B.tx2), DiffOfDiffs(B.py1, B.py2, B.ty1, B.ty2)
omega_w = Abs(dw) / (larger(B.wt, dw) + B.eps)
omega_h = Abs(dh) / (larger(B.ht, dh) + B.eps)
shape = PowG(-expm1(-omega_w), theta) + PowG(-expm1(-omega_h), theta)

PARAMS = [
    EPS,
    Param("theta", theta, 4.0, "exponent of the shape cost (the paper: 4, searched in 2..6)", lower=sp.Integer(1)),
    Param("positive_exponent", pe, False, "distance cost 2 - exp(gamma rho_x) - exp(gamma rho_y) with gamma = 2 - Lambda "
          "(mmdetection's SIoULoss default neg_gamma=False: a reward, <= 0) instead of the paper's "
          "2 - exp(-gamma rho_x) - exp(-gamma rho_y)", kind="bool"),
]

CONVENTIONS = (B.CONVENTIONS + " The angle cost is sin(2 alpha) = 2 |dx| |dy|/(dx^2 + dy^2), evaluated as 2t/(1 + t^2) with "
               "t = min(|dx|, |dy|)/max(|dx|, |dy|) (no underflow of dx^2 + dy^2 for tiny offsets); |.| has gradient "
               "sign(x), 0 at 0 (torch.abs). At coincident centres (dx = dy = 0) the angle is undefined but the "
               "distance cost is 0 whatever it is and its gradient tends to 0: the loss is 1 - IoU + Omega/2 there, "
               "value and gradient (YOLOv6 and mmdetection add eps to the offsets instead; several implementations "
               "give NaN there). omega_w = |w_p - w_t|/(max(w_p, w_t) + eps) is NaN for two zero-width boxes when "
               "eps = 0 (so is IoU).")


def derive():
    checks = []
    a, b = sp.symbols("a b", positive=True)
    paper_angle = 1 - 2 * sp.sin(sp.asin(a / sp.sqrt(a**2 + b**2)) - sp.pi / 4) ** 2
    t = a / b
    prove_equal(paper_angle, 2 * t / (1 + t**2), "the paper's angle cost 1 - 2 sin^2(arcsin(x) - pi/4), x = a/sigma, "
                "equals 2t/(1 + t^2), t = a/b (a = min(|dx|, |dy|), b = max(|dx|, |dy|), sigma^2 = a^2 + b^2)",
                checks, domain={a: (sp.Rational(1, 10), 1), b: (1, 2)}, numeric=True)
    prove_equal(paper_angle, 2 * a * b / (a**2 + b**2), "... which is sin(2 alpha) = 2 |dx| |dy|/(dx^2 + dy^2), "
                "symmetric in dx and dy (the paper's choice between alpha and beta = pi/2 - alpha does not change it)",
                checks, domain={a: (sp.Rational(1, 10), 3), b: (sp.Rational(1, 10), 3)}, numeric=True)
    base_value, base_diff = B.one_minus_iou + shape / 2, 1 - B.iou + shape / 2
    k = B.box_kernel(
        [(sp.Eq(off, 0), base_value, base_diff,
          "coincident centres: the distance cost and its gradient are 0 (their limit)"),
         (None, base_value + distance / 2, base_diff + distance / 2, "angle, distance and shape costs")],
        args=(B.eps, theta, pe), prelude=((off, TMax(ax, ay)),), checks=checks, numeric_proof=True)
    Lam, gam, rx, ry, D, O = sp.symbols("Lambda gamma rho_x rho_y Delta Omega")
    steps = B.DISTANCE_STEPS + [
        Step("The angle cost of the paper, with $x = \\sin\\alpha$ the sine of the smaller angle between the line joining "
             "the centres and an axis ($\\sigma = \\sqrt{\\rho_x^2 + \\rho_y^2}$ the centres' distance),",
             Lam, "1 - 2 \\sin^2\\left(\\arcsin x - \\frac{\\pi}{4}\\right) = \\sin 2\\alpha = "
             "\\frac{2 |\\rho_x| |\\rho_y|}{\\rho_x^2 + \\rho_y^2}"),
        Step("is evaluated as $2t/(1 + t^2)$, $t = \\min(|\\rho_x|, |\\rho_y|)/\\max(|\\rho_x|, |\\rho_y|) = \\tan\\alpha$ "
             "(proved equal; no square of a tiny offset). The distance cost, with the enclosing box's width and height "
             "(`positive_exponent=True` replaces $-\\gamma$ by $+\\gamma$, mmdetection's default):", D,
             "\\sum_{t = x, y} \\left(1 - e^{-\\gamma r_t}\\right), \\qquad \\gamma = 2 - \\Lambda, \\quad "
             "r_x = \\frac{\\rho_x^2}{c_w^2 + \\epsilon}, \\quad r_y = \\frac{\\rho_y^2}{c_h^2 + \\epsilon}"),
        Step("The shape cost ($w_p - w_t$ evaluated as in the EIoU loss, from coordinate differences; $1 - e^{-u}$ "
             "here and in the distance cost as $-\\operatorname{expm1}(-u)$, whose digits the gradient keeps where "
             "$u$ is small, as for boxes far smaller than $\\epsilon$):", O,
             "\\sum_{t = w, h} \\left(1 - e^{-\\omega_t}\\right)^\\theta, \\qquad "
             "\\omega_w = \\frac{|w_p - w_t|}{\\max(w_p, w_t) + \\epsilon}, \\quad "
             "\\omega_h = \\frac{|h_p - h_t|}{\\max(h_p, h_t) + \\epsilon}"),
        Step("The loss; at coincident centres ($\\rho_x = \\rho_y = 0$, `off` = 0 in the kernel branches) "
             "$\\Lambda$ is undefined but $\\Delta = 0$ and its gradient tends to 0, which the loss uses:", "L",
             "1 - \\mathrm{IoU} + \\frac{\\Delta + \\Omega}{2}"),
    ]
    return B.box_spec(
        NAME, "SIoU loss", "L = 1 - IoU + (Delta + Omega)/2: angle cost Lambda = 1 - 2 sin^2(arcsin(x) - pi/4) = "
        "2|dx||dy|/(dx^2 + dy^2), distance cost Delta = sum_t (1 - exp(-(2 - Lambda) rho_t)), rho_x = (dx/cw)^2, "
        "rho_y = (dy/ch)^2, shape cost Omega = sum_t (1 - exp(-omega_t))^theta, omega_w = |wp - wt|/max(wp, wt). "
        "At coincident centres Delta = 0 with gradient 0 (its limit).",
        ["Z. Gevorgyan, SIoU Loss: More Powerful Learning for Bounding Box Regression, arXiv:2205.12740"],
        PARAMS, {p: k for p in ("f64", "f32")}, steps,
        [B.slide_plot("SIoU loss", note=SLIDE_NOTE)], CONVENTIONS, "", checks, aspect={"note": ASPECT_NOTE},
        variants=[Variant("siou_distance_reward", "positive_exponent=True (mmdetection's SIoULoss default "
                          "neg_gamma=False: exp(+gamma rho), the distance cost a reward)",
                          params={"positive_exponent": True})],
                          properties=Properties(value_range=(1.0 - math.e**2, 3.0)))


SLIDE_NOTE = ("Both boxes are unit squares, so the shape cost is 0. At dy = 0 the centres lie on a horizontal line: "
              "the angle cost is 0, gamma = 2 and only rho_x counts; at dy = 0.5 the angle grows as the box nears "
              "the target and the distance cost keeps a gradient where the boxes do not overlap.")
ASPECT_NOTE = ("With equal centres the distance cost is 0 (its limit, used at coincident centres) and the loss is "
               "1 - IoU plus half the shape cost (1 - exp(-omega))^4, which is flat near equal widths.")
