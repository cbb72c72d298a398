"""Alpha-IoU loss (He et al., arXiv:2110.13675) on xyxy boxes.

The paper's power family: L = 1 - IoU^alpha + P^alpha, P the penalty of the base loss:
form="iou" (default) no penalty, "giou" P = (C - U)/C, "diou" P = rho^2/c^2 (the paper's
alpha-DIoU writes rho^{2 alpha}/c^{2 alpha}, the same number), "ciou" the paper's alpha-CIoU
(rho^2/c^2)^alpha + (beta v)^alpha with CIoU's v and beta = v/((1 - IoU) + v), beta a constant in
the gradient (as ciou_loss's default and the CIoU paper's code; beta_grad=True differentiates it).
"""
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from . import _boxes as B
from . import giou_loss as G
from refloss._derive.core import Param, Step, prove_equal
from refloss._derive.functions import PowG, RealAbs, Select
from refloss._derive.functions import (HAND_RULES, Detach, DiffOfDiffs, Eval64, GuardMin, Group, HandDiff,
                                      SmallestNormal, TwoProd, TwoSum, UnitRoundoff)
from refloss._derive.functions import Step as Above0
from . import ciou_loss as CI
from .iou_loss import EPS
from refloss._info import Properties

NAME = "alpha_iou_loss"
alpha = sp.Symbol("alpha", positive=True)
form = sp.Symbol("form", nonnegative=True)  # 0 iou, 1 giou, 2 diou, 3 ciou
i_sym = sp.Symbol("inter", nonnegative=True)
pg_sym = sp.Symbol("giou_penalty", nonnegative=True)
FORMS = ("iou", "giou", "diou", "ciou")


def _chosen(condition, term):
    """A form's penalty term where the form is chosen, else 0: a select of the form's index (0 iou, 1 giou, 2 diou,
    3 ciou), not a product with a 0/1 indicator, under which a form not chosen poisoned the chosen one's result
    wherever its own term overflowed (0 * inf = NaN: float32, alpha 0.1, eps 1e4, nearly identical boxes, form
    'iou': every gradient NaN, the CIoU aspect term's (beta v)^(alpha - 1) inf there; found by a parameter probe,
    2026-12-06).  Differentiated arm by arm (Select)."""
    return Select(condition, term, 0)


FORM_GIOU, FORM_DISTANCE, FORM_CIOU = sp.Eq(form, 1), form >= 2, sp.Eq(form, 3)  # (distance: diou and ciou)
# CIoU's beta v = v^2/((1 - IoU) + v + eps), 0 where v = 0 (the 1 - [v > 0] in the denominators keeps identical
# boxes from 0/0; it is 0 wherever v > 0); beta a constant in the gradient
# CIoU's D = arctan(w_t/h_t) - arctan(w_p/h_p) evaluated as one angle, atan2(w_t h_p - h_t w_p, w_t w_p + h_t h_p)
# (the difference of two arctans keeps only an absolute error of an ulp of pi/2, which (beta v)^alpha's gradient,
# O(D) for alpha = 1/2, carried to 1.2e-13 of the largest component for nearly equal boxes in float64, 9e-5 in
# float32); the cross product below. Differentiated as the difference of the two atan2 (CIoU's rule).
_D_EXACT = CI.D.xreplace({CI.dk: 0})
_D_RULE = 16  # (keys 1-4 are _boxes', 15 inner_iou_loss's)
HAND_RULES[_D_RULE] = lambda s: sp.diff(_D_EXACT, s)
# The cross product w_t h_p - h_t w_p itself is formed error-free: for nearly equal aspect ratios its two products
# nearly cancel, and the rounding of the products and of the sides (each 1/2 ulp; a side difference dh = h_p - h_t
# rounded as well) left 2.3e-4 (products) and 1.4e-4 (sides) of the largest component in float32 at alpha = 1/2 for
# far-apart boxes (found by the box sweep): Dekker's products of the rounded sides, their low words, and the sides'
# rounding errors (TwoSum) times the other side; the neglected products of two rounding errors are O(ulp^2)
_lo = {s: TwoSum(b, -a, 1) for s, (a, b) in {"wp": (B.px1, B.px2), "hp": (B.py1, B.py2), "wt": (B.tx1, B.tx2),
                                                 "ht": (B.ty1, B.ty2)}.items()}
# (Group: the difference of the high words, exact where they cancel, is formed before the small terms are added.)
# The small terms w_t l_hp + l_wt h_p - h_t l_wp - l_ht w_p are written as products of differences,
# w_t (l_hp - l_ht) + (w_t - w_p) l_ht + h_p (l_wt - l_wp) + (h_p - h_t) l_wp (the same sum), so that identical
# boxes give exactly 0 however the compiler contracts them: NVVM fuses a*b + c*d into fma(a, b, c*d), which
# leaves the rounding error of c*d where a*b = c*d, and at D = 0 (beta v)^alpha has a kink for alpha < 1 whose
# gradient takes the sign of that residual (0.53 of the largest component on an H200, alpha = 1/2; the
# error-free words TwoProd's are formed from exact partial products, unchanged by contraction)
# (Group: each side rounded before the two are subtracted, so that equal sides give exactly 0)
_small = ((B.wt * (_lo["hp"] - _lo["ht"]) + (Group(B.wt) - Group(B.wp)) * _lo["ht"])
          + (B.hp * (_lo["wt"] - _lo["wp"]) + (Group(B.hp) - Group(B.ht)) * _lo["wp"]))
_cross = (Group(TwoProd(B.wt, B.hp, 0) - TwoProd(B.ht, B.wp, 0))
          + Group((TwoProd(B.wt, B.hp, 1) - TwoProd(B.ht, B.wp, 1)) + _small))
_dot = B.wt * B.wp + B.ht * B.hp
# The error-free cross product above still rounds its low words' sum: an absolute error ~2^-48 w h in float32
# (2^-106 float64), so D's relative error grows as the aspect ratios approach each other, 2^-13 where they agree to
# 2^-35 (sides grown by one factor); the aspect term's gradient alpha (beta v)^alpha 2 dD/D carries it whole (2.5e-4
# of the largest component at alpha 0.05, 0.1 and 0.25 in a 2^25 sweep, bar 5.4e-5).  Where |cross| < u/4 dot
# (u the kernel's unit roundoff, UnitRoundoff: 2^-26 dot in float32, 2^-55 in float64, D's relative error within
# ~4u either way; float32's 2^-26 in the float64 kernel took most pairs of one size at two places into double-double,
# 9x the time at alpha 0.2)
# (and not 0: equal aspect ratios, exactly 0 either way), D is evaluated one precision up (Eval64: float64 in the
# float32 kernel, where the sides' products are exact and their difference exact by Sterbenz; double-double in the
# float64 kernel)
_TIGHT = UnitRoundoff() / 4
# Only for alpha <= 1/4, where the gradient's D^(4 alpha - 1) grows as D vanishes (for alpha > 1/4 the term's
# gradient vanishes with D, and D's error with it: the rows' alpha = 0.5 and 3 swept clean before this): pairs of
# one size at two places have sides rounded apart, so |cross| < u/4 dot for many of them, and took this path,
# 13x the time in float64 (double-double) and 3x in float32 (a review)
_near = (RealAbs(_cross) - _TIGHT * _dot + (1 - Above0(RealAbs(_cross))) * _dot
         + Above0(alpha - sp.Rational(1, 4)) * _dot)
D = Eval64(HandDiff(sp.atan2(_cross, _dot), sp.Integer(_D_RULE)), _near)
v = 4 / sp.pi**2 * D**2
# The distance term's centre offsets 2 dx = (px1 + px2) - (tx1 + tx2) by TwoSum (DiffOfDiffs): the plain sum of the
# two coordinate differences cancels when the centres nearly coincide (crossing thin boxes), and P^alpha's
# gradient, alpha P^(alpha - 1) dP = alpha (rho/c)^(2 alpha - 1) (rho_x / rho) / c for alpha = 1/2, takes the
# direction rho_x / rho of that tiny offset: in float32 its rounding left 2.9e-4 of the largest component
# (0.5 ulp of each difference ~1e-3 against an offset ~1e-9), found by the 1e7-point box sweep
_dx = DiffOfDiffs(B.tx1, B.px2, B.px1, B.tx2) / 2
_dy = DiffOfDiffs(B.ty1, B.py2, B.py1, B.ty2) / 2
distance = (_dx**2 + _dy**2) / B.c2
# (Group: the 0 or 1 is formed before it is added, so that adding it leaves the denominator exact)
no_aspect = Group(1 - Above0(v))
beta_value = v / (B.one_minus_iou + v + B.eps + no_aspect)
beta = v / (B.one_minus_iou_diff + v + B.eps + no_aspect)
bg = sp.Symbol("beta_grad", nonnegative=True)
beta_eff = bg * beta + (1 - bg) * Detach(beta)
# The power (beta v)^alpha in float64 in the float32 kernel where beta v is below float32's normal range (Eval64):
# beta v = v^2/(...) is subnormal or 0 in float32 where v is only ~1e-19 (aspect ratios equal to float32's
# precision; v itself is at least ~5e-30 for sides of one magnitude, the cross product being exact; subnormal for
# sides 2^40 apart), and the chain rule's
# alpha (beta v)^(alpha - 1) then overflowed: +-inf for gradients of 1e5 (alpha 0.0537, eps 100, corner-touching
# boxes of one aspect ratio; a parameter probe, 2026-12-06), and the power of a subnormal kept few digits (of an
# underflowed 0, none: (2.5e-59)^0.05 = 1.2e-3).  float64 holds beta v there (v^2 >= ~1e-128 for float64 inputs).
# beta v is formed as the product of beta = v/(...) and v (Group: SymPy's v**2/(...) squared v first, subnormal in
# float32 from v ~ 1e-19 with beta v still normal: 5 % off at nearly identical boxes, alpha 0.05, found by a 2^25
# sweep).  The derivative by hand, alpha (beta v)^alpha (bg dbeta/beta + dv/v), beta and v each normal, the power
# the term's own (0 where v = 0, as PowG's convention gives): one power, where the chain rule took
# (beta v)^(alpha - 1)
_ASPECT_RULE = 19  # (17 is obb_angle_loss's, 18 focal_l1_eiou_loss's; 20-22 shape_iou_loss's)


def _power64(m):
    """m^alpha, one precision up where m is not a normal number of the kernel's precision (SmallestNormal: 2^-126
    in the float32 kernel, 2^-1022 in the float64 one), or where D itself is evaluated one precision up (its
    kernel-precision form, inside this mark, is not); not where v = 0 (equal aspect ratios: squares against squares,
    a shifted copy; m = 0 and the power 0 exactly), which took every such pair one precision up (20x the time; a
    review)."""
    # (+ [alpha > 3/4]: there the power of a subnormal m is below 2^-94 (float32) and its gradient term, m^alpha
    # 2 dD/D with D > ~1e-19, below 1e-9 of the others, whatever its digits.  The bound is the kernel's own: with
    # float32's 2^-126 in both kernels, the float64 kernel, whose m is normal where float32's is not, took
    # double-double for pairs of one size at two places (m ~ 1e-65): 13x the time at alpha 3 before the
    # [alpha > 3/4] term, 8x at 1/4 < alpha <= 3/4 until the bound became the kernel's)
    return Eval64(PowG(m, alpha), GuardMin(m - SmallestNormal() + no_aspect + Above0(alpha - sp.Rational(3, 4)), _near))


def _aspect_derivative(s):
    """d/ds (beta_eff v)^alpha, beta_eff = bg beta + (1 - bg) Detach(beta), bg 0 or 1."""
    # (+ no_aspect: 1 where v = 0, where beta = v = 0 and dv = 0 too, so that the rule is 0 there, not 0/0; + no_beta:
    # 1 where beta underflowed with v > 0, eps ~1e9 in float32, where the power is 0 too: not 0 * x/0 = NaN)
    no_beta = Group(1 - Above0(beta))
    log_derivative = bg * sp.diff(beta, s) / (beta + no_beta) + sp.diff(v, s) / (v + no_aspect)
    return alpha * _power64(Group(beta) * v) * log_derivative


HAND_RULES[_ASPECT_RULE] = _aspect_derivative
aspect = HandDiff(PowG(beta_eff * v, alpha), sp.Integer(_ASPECT_RULE))
penalty_value = (_chosen(FORM_GIOU, PowG(G.penalty, alpha)) + _chosen(FORM_DISTANCE, PowG(distance, alpha))
                 + _chosen(FORM_CIOU, _power64(v * Group(beta_value))))
penalty_diff = (_chosen(FORM_GIOU, PowG(G.penalty_diff, alpha)) + _chosen(FORM_DISTANCE, PowG(distance, alpha))
                + _chosen(FORM_CIOU, aspect))

PARAMS = [
    Param("alpha", alpha, 3.0, "power alpha of IoU and of the penalty (3 in the paper's experiments; 1 gives the base "
          "loss)", lower=sp.Integer(0), lower_closed=False),
    Param("form", form, "iou", "the base loss: 'iou' (1 - IoU^alpha), 'giou' (+ ((C - U)/C)^alpha), 'diou' "
          "(+ (rho^2/c^2)^alpha), 'ciou' (+ (rho^2/c^2)^alpha + (beta v)^alpha, CIoU's aspect term)", kind="choice",
          choices=FORMS),
    EPS,
    Param("beta_grad", bg, False, "form='ciou': differentiate CIoU's beta = v/((1 - IoU) + v) (True) or treat it as a "
          "constant (False, as ciou_loss's default and the papers' code)", kind="bool"),
]
CONVENTIONS = (B.CONVENTIONS + " Powers x^alpha of IoU and of the penalties have the derivative alpha x^(alpha - 1), "
               "taken as 0 where x = 0 (the limit for alpha > 1; for alpha < 1 the derivative is infinite there, and "
               "torch autograd gives NaN or inf; also for alpha = 1, so where the GIoU penalty is 0 (enclosing box = "
               "union) the gradient can differ from GIoU loss's one-sided one): so for disjoint boxes the IoU term "
               "passes no gradient, as in 1 - IoU.")
ACCURACY = (B.ACCURACY + " 1 - IoU^alpha is evaluated as -expm1(alpha log1p(-(1 - IoU))) for IoU >= 1/2, from the "
            "accurate 1 - IoU, so it keeps its digits as IoU approaches 1, and as 1 - IoU^alpha below; the GIoU "
            "penalty (C - U)/C is formed from C - U computed from coordinate differences, and its derivative "
            "from extents outside the intersection (no difference of two areas: for alpha < 1 the gradient "
            "alpha P^(alpha - 1) dP/ds magnifies dP's relative error without bound as P vanishes, and before this "
            "form alpha = 0.5 missed the float64 bar by 566 ULP at near-identical boxes, one pair of 3.4e7 of the "
            "float64 box sweep; after, 7.4 ULP at most there). CIoU's D = arctan(w_t/h_t) - "
            "arctan(w_p/h_p) is one atan2 of the cross product w_t h_p - h_t w_p (no cancellation of two arctans for "
            "nearly equal aspect ratios, where (beta v)^alpha's gradient is O(D) for alpha = 1/2). The distance "
            "term's centre offsets "
            "(px1 + px2) - (tx1 + tx2) are summed with their rounding errors (TwoSum): for alpha < 1 the gradient of "
            "P^alpha follows the direction of the centre offset, which the plain sum of two coordinate differences "
            "lost where the centres nearly coincide; and the cross product of D is formed error-free (Dekker's "
            "products of the rounded sides, plus each side's rounding error times the other side). Before these two "
            "forms alpha = 0.5, form 'ciou' missed the float32 box bar (5.4e-5) on 262 of 9.6e6 pairs of the box "
            "sweep of docs/exhaustive.md (9.4e-4 of the largest component, crossing thin boxes and far-apart boxes "
            "of nearly equal aspect ratios); after, 0. The CIoU form's (beta v)^alpha is taken in float64 in the "
            "float32 kernel where beta v = v^2/(1 - IoU + v + eps) falls below float32's normal range (aspect ratios "
            "equal to float32's precision), and differentiated as alpha (beta v)^alpha (dbeta/beta + dv/v), beta and "
            "v each normal: before, alpha 0.05 gave a value 1.5 % off with every gradient 0 there, and alpha 0.0537 "
            "with eps 100 +-inf gradients (the power's derivative alpha (beta v)^(alpha - 1) overflowed).")
SLIDE_NOTE = ("With alpha = 3, 1 - IoU^3 is flatter than 1 - IoU near a perfect overlap and steeper at low overlap (the "
              "paper's up-weighting of high-IoU objects is the relative gradient |d IoU^alpha|/ IoU^alpha); like "
              "1 - IoU it is 1, with no gradient, wherever the boxes do not overlap (form='iou').")
ASPECT_NOTE = "1 - IoU^3 with equal centres: smallest (0) at width 1 for height 1, flat near it."


def derive():
    checks = []
    iou_pow_value = -expm1(alpha * log1p(-B.one_minus_iou))
    x, a = sp.Symbol("x"), sp.Symbol("a", positive=True)
    fb, fv = sp.Function("b")(x), sp.Function("v")(x)  # beta and v: any positive functions of a coordinate
    prove_equal(a * (fb * fv)**a * (fb.diff(x) / fb + fv.diff(x) / fv), sp.diff((fb * fv)**a, x),
                "the aspect term's rule alpha (beta v)^alpha (dbeta/beta + dv/v) is d(beta v)^alpha for any "
                "positive beta and v (beta_grad=False: dbeta = 0)", checks)
    k = B.box_kernel(
        [(sp.And(sp.Eq(i_sym, 0), B.union + B.eps > 0), 1 + penalty_value, 1 + penalty_diff,
          "no overlap: IoU^alpha = 0 with no gradient"),
         (B.iou_plain < sp.Rational(1, 2), 1 - PowG(B.iou_plain, alpha) + penalty_value,
          1 - PowG(B.iou, alpha) + penalty_diff, "IoU < 1/2: 1 - IoU^alpha"),
         (None, iou_pow_value + penalty_value, 1 - PowG(B.iou, alpha) + penalty_diff,
          "IoU >= 1/2: -expm1(alpha log1p(-(1 - IoU)))")],
        args=(alpha, form, B.eps, bg), prelude=((i_sym, B.inter), (pg_sym, G.penalty)), checks=checks,
        numeric_proof=True, in_gradients=((G.penalty_diff, pg_sym),))
    return B.box_spec(
        NAME, "Alpha-IoU loss", "L = 1 - IoU^alpha + P^alpha, P = 0 (form='iou'), (C - U)/(C + eps) ('giou') or "
        "rho^2/(c^2 + eps) ('diou'); form='ciou': L = 1 - IoU^alpha + (rho^2/(c^2 + eps))^alpha + (beta v)^alpha, "
        "v = 4/pi^2 (atan(wt/ht) - atan(wp/hp))^2, beta = v/((1 - IoU) + v + eps) (a constant in the gradient).",
        ["J. He et al., Alpha-IoU: A Family of Power Intersection over Union Losses for Bounding Box Regression, "
         "arXiv:2110.13675"], PARAMS, {p: k for p in ("f64", "f32")},
        B.DISTANCE_STEPS + [
            Step("With $C = c_w c_h$ the enclosing area and $P$ the penalty of the chosen form (0, "
                 "$(C - U)/(C + \\epsilon)$ or $\\rho^2/(c^2 + \\epsilon)$), the power loss of the paper:", "L",
                 "1 - \\mathrm{IoU}^\\alpha + P^\\alpha"),
            Step("The alpha-CIoU form adds CIoU's aspect term to the alpha-DIoU one, with $v$ and $\\beta$ as in "
                 "the CIoU loss ($\\beta$ a constant in the gradient):", "L_{\\alpha\\text{-CIoU}}",
                 "1 - \\mathrm{IoU}^\\alpha + \\left(\\frac{\\rho^2}{c^2 + \\epsilon}\\right)^\\alpha + "
                 "(\\beta v)^\\alpha, \\qquad v = \\frac{4}{\\pi^2}\\left(\\arctan\\frac{w_t}{h_t} - "
                 "\\arctan\\frac{w_p}{h_p}\\right)^2, \\quad \\beta = \\frac{v}{1 - \\mathrm{IoU} + v + \\epsilon}"),
            Step("For $\\mathrm{IoU} \\ge 1/2$, $1 - \\mathrm{IoU}^\\alpha$ is evaluated as "
                 "$-\\operatorname{expm1}(\\alpha \\operatorname{log1p}(-(1 - \\mathrm{IoU})))$ from the accurate "
                 "$1 - \\mathrm{IoU}$; a power's derivative $\\alpha x^{\\alpha - 1}$ is 0 where $x = 0$.")],
        [B.slide_plot("Alpha-IoU loss", {"alpha": 3.0, "form": 0.0}, note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks,
        aspect={"note": ASPECT_NOTE}, properties=Properties(true_derivative={"beta_grad": True}))
