"""Shared geometry of the IoU family on xyxy boxes, with PyTorch's conventions.

pred = (px1, py1, px2, py2), target = (tx1, ty1, tx2, ty2).  The intersection and
the enclosing box use ``TMin``/``TMax`` (ties split the gradient 0.5/0.5, as
torch.minimum/maximum) and ``Clamp0`` (gradient 0 at 0, as clamp(min=0) in torch 2.14.1); see
``refloss/_derive/functions.py``.  Gradients w.r.t. all eight coordinates are
``sympy.diff`` of a differentiation form, which may differ from the evaluation form of
the value only by detached factors (``Detach``) and is proved equal to it in value.
"""
from __future__ import annotations

import math
from functools import lru_cache

import sympy as sp

from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Kernel, Step as DocStep, prove_equal
from refloss._derive.functions import HAND_RULES, Clamp0, HandDiff, Quot, Step, Sub, TMax, TMin, plain

px1, py1, px2, py2 = sp.symbols("px1 py1 px2 py2", real=True)
tx1, ty1, tx2, ty2 = sp.symbols("tx1 ty1 tx2 ty2", real=True)
PRED = (px1, py1, px2, py2)
TARGET = (tx1, ty1, tx2, ty2)
ARRAYS = (("pred", 4, PRED), ("target", 4, TARGET))
eps = sp.Symbol("eps", nonnegative=True)

wp, hp = px2 - px1, py2 - py1
wt, ht = tx2 - tx1, ty2 - ty1
iw = Clamp0(TMin(px2, tx2) - TMax(px1, tx1))
ih = Clamp0(TMin(py2, ty2) - TMax(py1, ty1))
inter = iw * ih
union = wp * hp + wt * ht - inter
iou_plain = inter / (union + eps)  # IoU; ``iou`` below is the same, differentiated by _iou_derivative
# U - I = (Ap - I) + (At - I), each part from coordinate differences: with the parts of a box's
# width and height outside the intersection, wp - iw = min(wp, [px2 - tx2]+ + [tx1 - px1]+),
# Ap - I = (wp - iw) hp + iw (hp - ih), exact for every pair (disjoint ones included) and
# free of the cancellation of wp hp - iw ih when the boxes nearly coincide
out_wp = TMin(wp, Clamp0(Sub(px2, tx2)) + Clamp0(Sub(tx1, px1)))
out_hp = TMin(hp, Clamp0(Sub(py2, ty2)) + Clamp0(Sub(ty1, py1)))
out_wt = TMin(wt, Clamp0(Sub(tx2, px2)) + Clamp0(Sub(px1, tx1)))
out_ht = TMin(ht, Clamp0(Sub(ty2, py2)) + Clamp0(Sub(py1, ty1)))
union_minus_inter = (out_wp * hp + iw * out_hp) + (out_wt * ht + iw * out_ht)
# 1 - IoU as one fraction: no rounding of IoU near 1 before the subtraction, and U - I accurate; the
# denominator U + eps formed as (U - I + eps) + I, so that the rounded ratio never exceeds 1 (with U
# computed apart as A_p + A_t - I, disjoint float32 boxes gave 1 - IoU = 1.0000001; found by the
# bounds property)
union_minus_inter_eps = union_minus_inter + eps
one_minus_iou = union_minus_inter_eps / (union_minus_inter_eps + inter)
# what the proofs of the value forms see (the identity is proved once, in box_kernel)
_PROVED = ((one_minus_iou, (union - inter + eps) / (union + eps)), (union_minus_inter_eps, union - inter + eps))
# (completed below, once C - U is defined)
cw = TMax(px2, tx2) - TMin(px1, tx1)
ch = TMax(py2, ty2) - TMin(py1, ty1)
enclose = cw * ch
# C - U likewise, without subtracting areas: with the gaps between the boxes along x and y
# (0 where they overlap), C - U = out_wp out_ht + out_wt out_hp + gap_y cw + gap_x ch - gap_x gap_y
gap_x = Clamp0(TMax(px1, tx1) - TMin(px2, tx2))
gap_y = Clamp0(TMax(py1, ty1) - TMin(py2, ty2))
enclose_minus_union = out_wp * out_ht + out_wt * out_hp + gap_y * cw + gap_x * ch - gap_x * gap_y
_PROVED += ((enclose_minus_union, enclose - union),)


def _coordinate(s):
    """What the hand-written box rules need of a coordinate s of box B (O the other box): sigma (-1
    for a lower, +1 for an upper coordinate), s's shares a, b of the intersection's and of the
    enclosing box's bound along its axis (a + b = 1), m = [the intersection's extent > 0] along that
    axis, the intersection's extents along s's axis and the other one (i_own, i_other), the enclosing
    box's along the other (c_other), B's size along the other axis (h_B), B's extents outside the
    intersection along s's axis and the other (out_s, out_B), A_O - I (o_minus_i), and the enclosing
    extents beyond B along both axes (e_own, e_other), all from coordinate differences."""
    i = PRED.index(s) if s in PRED else TARGET.index(s)
    B, O = (PRED, TARGET) if s in PRED else (TARGET, PRED)
    axis, sigma = i % 2, (-1 if i < 2 else 1)
    other = 1 - axis
    raw_own = (iw, ih)[axis].args[0]  # the intersection's extent before the clamp
    a = sigma * sp.diff(raw_own, s)
    b = sigma * sp.diff((cw, ch)[axis], s)
    outs = {PRED: (out_wp, out_hp), TARGET: (out_wt, out_ht)}[B]
    return (sigma, a, b, Step(raw_own), (iw, ih)[axis], (iw, ih)[other], (cw, ch)[other], B[other + 2] - B[other],
            outs[axis], outs[other], {PRED: out_wp * hp + iw * out_hp, TARGET: out_wt * ht + iw * out_ht}[O],
            Clamp0(Sub(O[axis + 2], B[axis + 2])) + Clamp0(Sub(B[axis], O[axis])),
            Clamp0(Sub(O[other + 2], B[other + 2])) + Clamp0(Sub(B[other], O[other])))


def _ratio_derivative(s):
    """d/ds (U + eps)/(C + eps) (GIoU's 1 - penalty) without the cancellation of dU/(C + eps) and
    (U + eps) dC/(C + eps)^2.  For a coordinate s of box B along one axis, with O the other box, h_B
    B's size and i_o the intersection's along the other axis, c_o the enclosing box's, sigma = -1
    for a lower and +1 for an upper coordinate: dU/ds = sigma (h_B - a m i_o), dC/ds = sigma b c_o
    (a, b: s's share of the intersection's and of the enclosing box's bound, a + b = 1, 0.5 each at
    a tie; m = [intersection's extent > 0]), so with U = h_B w_B + (A_O - I) and c_w = w_B + e_B
    (e_B: the enclosing extent beyond B, from coordinate differences),
    (C + eps) dR/ds = sigma [a (h_B - m i_o) + b (h_B - R c_o)]
                    = sigma [a (out_B + (1 - m) i_o) - b (c_o ((A_O - I) - h_B e_B) + eps (c_o - h_B))/(C + eps)]
    with out_B = h_B - i_o from coordinate differences: the terms of size 1/box that cancelled
    (boxes far apart, one box inside the other) are gone.  And (A_O - I) - h_B e_B itself is
    formed as out_O,s (out_O - out_B) + i_s out_O - h_B g_s (out_O,s, out_O: O's extents outside the
    intersection along s's axis and the other one, g_s the gap between the boxes along s's axis):
    with e_B = out_O,s + g_s and h_O - h_B = out_O - out_B (true for overlapping and disjoint boxes
    alike) it is the same number, but the two areas of size out_O,s h that cancelled for nearly
    identical boxes are gone (alpha-IoU's GIoU form at alpha = 1/2, whose gradient alpha P^(alpha - 1)
    dP/ds magnifies dP's relative error, missed the float64 bar by 566 ULP where they cancelled
    770-fold; found by the float64 box sweep).  Checked against sympy.diff in exact arithmetic at
    generation time (``ratio_rule_checks``)."""
    sigma, a, b, m, i_own, i_other, c_other, h_B, out_s, out_B, o_minus_i, e_own, e_other = _coordinate(s)
    axis = (PRED.index(s) if s in PRED else TARGET.index(s)) % 2
    out_o = {PRED: (out_wt, out_ht), TARGET: (out_wp, out_hp)}[PRED if s in PRED else TARGET]
    beyond = out_o[axis] * (out_o[1 - axis] - out_B) + i_own * out_o[1 - axis] - h_B * (gap_x, gap_y)[axis]
    den = enclose + eps
    # (each product of lengths divided by an area before the next length multiplies it: no cube of a length,
    # which would overflow float32 for coordinates ~1e10 far apart)
    n = a * (out_B + (1 - m) * i_other) - b * (c_other * Quot(beyond, den) + eps * Quot(e_other, den))
    return Quot(sigma * n, den)


HAND_RULES[1] = _ratio_derivative
# (U + eps)/(C + eps), differentiated by _ratio_derivative
union_over_enclose = HandDiff((union + eps) / (enclose + eps), sp.Integer(1))


def _tie_split(a, b, x, y, z):
    """a x - b y for a = Heaviside(t, 1/2), b = Heaviside(-t, 1/2) (s's shares of two bounds), with z = x - y
    formed without cancellation used at the tie t = 0, where a x - b y = (x - y)/2 would cancel."""
    t = a.args[0]
    assert a == sp.Heaviside(t, sp.Rational(1, 2)) and b == sp.Heaviside(-t, sp.Rational(1, 2)), (a, b)
    pos, neg = sp.Heaviside(t, 0), sp.Heaviside(-t, 0)
    return pos * x - neg * y + (1 - pos - neg) * z / 2


def _iou_derivative(s):
    """d/ds I/(U + eps) without the cancellation of dI/(U + eps) and I dU/(U + eps)^2.  With the notation of
    _ratio_derivative (s along one axis of box B, the other axis o; i_s, i_o the intersection's extents;
    dI/ds = sigma a m i_o, dU/ds = sigma (h_B - a m i_o), a + b = 1):
    (U + eps) dIoU/ds = sigma [a m i_o (1 + IoU) - IoU h_B] = sigma [a m i_o P/(U + eps) - b IoU h_B]
    with P = U + eps - i_s out_B = I + h_B out_s,B + (A_O - I) + eps, a sum of non-negative terms
    (A_B - I = h_B out_s,B + i_s out_B, out_B = h_B - i_o, out_s,B B's extent outside the intersection
    along s's axis); at a tie (a = b = 1/2) the two terms cancel for nearly equal boxes, so there it is
    m i_o Q/(U + eps)/2 with Q = P - i_s h_B = h_B out_s,B + (A_O - I) + eps - i_s out_B."""
    sigma, a, b, m, i_own, i_other, c_other, h_B, out_s, out_B, o_minus_i, e_own, e_other = _coordinate(s)
    den = union + eps
    p = inter + h_B * out_s + o_minus_i + eps
    q = h_B * out_s + o_minus_i + eps - i_own * out_B
    n = _tie_split(a, b, m * i_other * Quot(p, den), Quot(inter, den) * h_B, m * i_other * Quot(q, den))
    return Quot(sigma * n, den)


HAND_RULES[2] = _iou_derivative
# IoU = I/(U + eps), differentiated by _iou_derivative
iou = HandDiff(iou_plain, sp.Integer(2))
HAND_RULES[4] = lambda s: -_iou_derivative(s)
# 1 - IoU as one fraction (one_minus_iou above), differentiated as -dIoU: for a term whose
# derivative uses 1 - IoU's value (CIoU's alpha), where 1 - I/(U + eps) rounds to 0 or below
# for nearly equal float32 boxes (found by the box sweep: alpha = v/0, a NaN gradient)
one_minus_iou_diff = HandDiff(one_minus_iou, sp.Integer(4))


def _giou_sum_derivative(s):
    """d/ds [I/(U + eps) + (U + eps)/(C + eps)], the part of GIoU (and of its loss) that depends on the
    boxes, differentiated as one: the two rules above, summed at a tie, leave a difference of
    out_B/(C + eps) (from the ratio) and I out_B/(U + eps)^2 (from IoU), nearly equal where the
    enclosing box nearly equals the union (one box inside the other along one axis, tied along the
    other: 1.3e-4 of the largest component in float32).  With U' = U + eps, C' = C + eps, E = C - U:
    sigma dS/ds = a A - b B, A = m i_o P/U'^2 + (out_B + (1 - m) i_o)/C' (non-negative terms),
    B = IoU h_B/U' + (c_o ((A_O - I) - h_B e_B) + eps (c_o - h_B))/C'^2, and at a tie (A - B)/2 with
    A - B = m i_o (h_B out_s,B + eps)/U'^2 + out_B (U' (U' - I) - I E)/(C' U'^2) + (1 - m) i_o/C'
            + (c_o h_B e_B - eps (c_o - h_B))/C'^2 + (A_O - I) (m i_o/U'^2 - c_o/C'^2),
    the last factor formed from E and the extents outside the intersection (see below)."""
    sigma, a, b, m, i_own, i_other, c_other, h_B, out_s, out_B, o_minus_i, e_own, e_other = _coordinate(s)
    du, dc = union + eps, enclose + eps
    # no product of four lengths before a division by an area (it overflows float32 for coordinates ~1e10 far
    # apart, and 0 * inf at the unused branches is NaN)
    y = c_other * Quot(o_minus_i - h_B * e_own, dc) + eps * Quot(e_other, dc)
    # m i_o times a ratio of areas (at most 2: the sum is at most A_B + A_O + eps, U' at least half that), never
    # m i_o times an area: a length times an area overflowed (underflowed) beyond boxes of 2^+-341 in float64
    big_a = Quot(m * i_other * Quot(inter + h_B * out_s + o_minus_i + eps, du), du) \
        + Quot(out_B + (1 - m) * i_other, dc)
    big_b = Quot(Quot(inter, du) * h_B, du) + Quot(y, dc)
    # (A_O - I) (m i_o/U'^2 - c_o/C'^2) as one term: with m = 1, c_o - i_o = e_o + out_B and C' - U' = E,
    # m i_o/U'^2 - c_o/C'^2 = (i_o E (C' + U') - (e_o + out_B) U'^2)/(U'^2 C'^2)
    # (m i_o times E/C' in [0, 1] formed first: m = 0 must give 0, not 0 * inf, where U' = eps is tiny, and E/U'
    # overflows for I = 0: two point boxes 1e3 apart with eps = 9e-303 gave NaN; likewise (I/U') E before the second
    # division by U'. Then lengths and areas alternately, so that every intermediate is a length, its inverse or a
    # ratio (m i_o E, a length times an area, overflowed beyond boxes of 2^341 in float64), and 0 stays 0 each step)
    gap = Quot(Quot(m * i_other * Quot(enclose_minus_union, dc), du) * (dc + du), du) * dc \
        - m * (e_other + out_B) - (1 - m) * c_other
    z = Quot(m * i_other * Quot(h_B * out_s + eps, du), du) \
        + Quot(out_B * (Quot(union_minus_inter_eps, du) - Quot(Quot(inter, du) * enclose_minus_union, du)), dc) \
        + Quot((1 - m) * i_other, dc) + Quot(c_other * Quot(h_B * e_own, dc) - eps * Quot(e_other, dc), dc) \
        + Quot(Quot(o_minus_i, dc) * gap, dc)
    return sigma * _tie_split(a, b, big_a, big_b, z)


HAND_RULES[3] = _giou_sum_derivative
# IoU + (U + eps)/(C + eps), differentiated by _giou_sum_derivative
iou_plus_union_over_enclose = HandDiff(iou_plain + (union + eps) / (enclose + eps), sp.Integer(3))


@lru_cache(maxsize=None)
def ratio_rule_checks() -> tuple:
    """The claims that the hand-written derivatives (_ratio_derivative of (U + eps)/(C + eps),
    _iou_derivative of I/(U + eps)) equal sympy.diff with the conventions (ties 0.5/0.5, clamp
    gradient 0 at 0), for each coordinate, in exact arithmetic at pairs of boxes with integer
    coordinates in 0..3 drawn at random (ties, touching, nested, disjoint and zero-width boxes
    among them), eps = 0 and 1/3."""
    return (_rule_check(_ratio_derivative, (union + eps) / (enclose + eps), "(U + eps)/(C + eps)", enclose + eps),
            _rule_check(_iou_derivative, iou_plain, "IoU = I/(U + eps)", union + eps),
            _rule_check(_giou_sum_derivative, iou_plain + (union + eps) / (enclose + eps),
                        "I/(U + eps) + (U + eps)/(C + eps)", (union + eps) * (enclose + eps)))


def _rule_check(rule, ratio, name, den):
    import random

    import mpmath

    syms = PRED + TARGET + (eps,)
    # Max and Min kept as unevaluated calls that lambdify maps to Python's max and min: SymPy's Max of two large
    # arguments looks for zeros of their difference (factor_terms, gcd_terms), seconds a call, ~45 s of the
    # ~48 s these checks took in each process that derived a box loss
    n_max, n_min = sp.Function("Max"), sp.Function("Min")

    def numeric(expr):
        return plain(expr.replace(TMax, n_max).replace(TMin, n_min).replace(Clamp0, lambda x: n_max(x, 0)))

    den_f = sp.lambdify(syms, numeric(den), modules=[{"Max": max, "Min": min}, "mpmath"])

    def heaviside(x, h0=0):
        return 1 if x > 0 else (h0 if x == 0 else 0)

    mods = [{"Heaviside": heaviside, "Max": max, "Min": min}, "mpmath"]
    # the rule's and sympy.diff's derivative for each coordinate, in one function with their common subexpressions
    # evaluated once (values in the order rule, diff, rule, diff, ...)
    both = sp.lambdify(syms, [numeric(e) for s in PRED + TARGET for e in (rule(s), sp.diff(ratio, s))],
                       modules=mods, cse=True)
    rng = random.Random(1)
    n = 0
    with mpmath.workdps(40):
        for _ in range(400):
            p1, p2 = sorted(rng.randint(0, 3) for _ in range(2)), sorted(rng.randint(0, 3) for _ in range(2))
            t1, t2 = sorted(rng.randint(0, 3) for _ in range(2)), sorted(rng.randint(0, 3) for _ in range(2))
            for e in (mpmath.mpf(0), mpmath.mpf(1) / 3):
                args = [mpmath.mpf(v) for v in (p1[0], p2[0], p1[1], p2[1], t1[0], t2[0], t1[1], t2[1])] + [e]
                if den_f(*args) == 0:
                    continue
                values = both(*args)
                for k, s in enumerate(PRED + TARGET):
                    h, d = values[2 * k], values[2 * k + 1]
                    if abs(h - d) > mpmath.mpf(10) ** -30:
                        raise AssertionError(f"d/d{s} of {name} by the rule: {h}, sympy.diff: {d} at {args}")
                n += 1
    return (f"the hand-written derivative of {name} equals sympy.diff of it with the conventions "
            f"(each coordinate, {n} integer box pairs with ties, touching, nested and zero-width boxes, eps = 0, 1/3)",
            "exact arithmetic (40 digits, integer coordinates)")
# centre offsets as sums of coordinate differences: exact-ish for small boxes far from 0
dx = (Sub(px1, tx1) + Sub(px2, tx2)) / 2
dy = (Sub(py1, ty1) + Sub(py2, ty2)) / 2
rho2 = dx**2 + dy**2
c2 = cw**2 + ch**2 + eps

INVALID = sp.Or(px2 < px1, py2 < py1, tx2 < tx1, ty2 < ty1)

EPS_PARAM_DOC = "stabiliser added where torchvision adds it (union, enclosing area, diagonal); 0 = exact formula"

# the symbols of the doc steps (names as printed; the kernels use the coordinates above)
EPS_DOC = sp.Symbol("epsilon", nonnegative=True)  # the parameter eps, printed as \epsilon
IOU_DOC = sp.Symbol("\\mathrm{IoU}")

GEOMETRY_STEPS = [
    DocStep("The predicted box is $(px_1, py_1, px_2, py_2)$ and the target $(tx_1, ty_1, tx_2, ty_2)$ (xyxy), "
            "with widths $w_p = px_2 - px_1$, $w_t = tx_2 - tx_1$, heights $h_p = py_2 - py_1$, $h_t = ty_2 - ty_1$ "
            "and areas $A_p = w_p h_p$, $A_t = w_t h_t$. The intersection has width $i_w$ and height $i_h$, with "
            "$\\max/\\min$ as `torch.maximum/minimum` (a tie splits the gradient 0.5/0.5) and "
            "$[\\cdot]_+$ as `clamp(min=0)` (gradient 0 at 0, as in torch 2.14.1):",
            "I", "i_w\\, i_h"),
    DocStep("", "i_w", "\\left[\\min(px_2, tx_2) - \\max(px_1, tx_1)\\right]_+, \\qquad "
            "i_h = \\left[\\min(py_2, ty_2) - \\max(py_1, ty_1)\\right]_+"),
    DocStep("Union and IoU ($\\epsilon$ is the parameter `eps`, 0 by default: the exact, scale-invariant formula):",
            "U", "A_p + A_t - I"),
    DocStep("", IOU_DOC, sp.Symbol("I") / (sp.Symbol("U") + EPS_DOC)),
    DocStep("$1 - \\mathrm{IoU}$ is evaluated as one fraction, so that nothing is rounded near 1 before the "
            "subtraction:", "1 - \\mathrm{IoU}", "\\frac{U - I + \\epsilon}{U + \\epsilon}"),
    DocStep("and $U - I = (A_p - I) + (A_t - I)$ without subtracting nearly equal areas: with the part of the "
            "predicted width outside the intersection, $w_p - i_w = \\min(w_p, [px_2 - tx_2]_+ + [tx_1 - px_1]_+)$ "
            "(likewise for heights and the target),", "A_p - I", "(w_p - i_w)\\, h_p + i_w\\, (h_p - i_h)"),
]

# the enclosing box (GIoU) and the centre distance (DIoU, CIoU, EIoU), for the pages that use them
ENCLOSING_STEPS = [
    DocStep("The smallest box enclosing both has width $c_w$ and height $c_h$:", "c_w",
            "\\max(px_2, tx_2) - \\min(px_1, tx_1), \\qquad c_h = \\max(py_2, ty_2) - \\min(py_1, ty_1)"),
]
DISTANCE_STEPS = ENCLOSING_STEPS + [
    DocStep("$c$ is its diagonal and $\\rho$ the distance between the centres of the two boxes, the centre offsets "
            "evaluated as sums of coordinate differences (exact for nearby coordinates, so small boxes far from the "
            "origin keep their digits):", "c^2", "c_w^2 + c_h^2, \\qquad \\rho^2 = \\rho_x^2 + \\rho_y^2"),
    DocStep("", "\\rho_x", "\\frac{(px_1 - tx_1) + (px_2 - tx_2)}{2}, \\qquad "
            "\\rho_y = \\frac{(py_1 - ty_1) + (py_2 - ty_2)}{2}"),
]


def box_kernel(branches, args, prelude=(), checks=None, numeric_proof=False, in_gradients=(),
               reciprocal=True) -> Kernel:
    """Kernel program from ``branches = [(condition or None, value form, differentiation form, label)]``:
    gradients w.r.t. the eight coordinates, value forms proved equal on overlapping boxes (with
    the accurate U - I proved equal to the plain one first, on overlapping and disjoint boxes).
    Every quotient by a stabilised denominator (one holding eps) in a differentiation form is
    differentiated as (da - (a/b) db)/b (``Quot``): with 0 < eps < ~1e-154 at zero union, b^2
    would underflow and the gradient be 0/0.  IoU and (U + eps)/(C + eps) are differentiated by
    hand-written rules (``HandDiff``), whose checks are added to ``checks`` where they are used.
    ``reciprocal`` (default True): the gradients multiply by the reciprocals of the denominators they
    divide by repeatedly, where those are safe (``Kernel.reciprocal``): the box bars are relative to the
    pair's largest gradient component, and one rounding more a quotient is far inside them."""
    if checks is not None:
        rules = {int(h.args[1]) for _, _, d, _ in branches if d is not sp.nan for h in d.atoms(HandDiff)}
        rules |= {2} if 4 in rules else set()  # rule 4 is rule 2 negated: its check is rule 2's
        checks.extend(c for k, c in zip((1, 2, 3), ratio_rule_checks()) if k in rules)
        checks.extend(_accurate_union_minus_inter())
    branches = [(c, v, d if d is sp.nan else stabilised_quotients(d), label) for c, v, d, label in branches]
    in_gradients = tuple((stabilised_quotients(e), sym) for e, sym in in_gradients)
    return kernel_from_forms(ARRAYS, branches, args, prelude, invalid=INVALID, checks=checks, domain=_POSITIVE_BOXES,
                             numeric_proof=numeric_proof, in_gradients=in_gradients,
                             proved=_PROVED + tuple((stabilised_quotients(a), b) for a, b in _PROVED),
                             reciprocal=reciprocal)


def stabilised_quotients(expr):
    """``expr`` with each product holding 1/b, where b holds eps, as ``Quot(rest, b)`` (also inside a
    ``HandDiff``'s argument, so ``box_kernel`` hands the proofs the identities of ``_PROVED`` in both forms)."""
    def stabilised(f):
        return f.is_Pow and f.exp == -1 and f.base.has(eps)

    def query(e):
        return e.is_Mul and any(stabilised(f) for f in e.args)

    def value(e):
        k = next(i for i, f in enumerate(e.args) if stabilised(f))
        rest = sp.Mul(*e.args[:k], *e.args[k + 1:])
        return Quot(value(rest) if query(rest) else rest, e.args[k].base)

    return expr.replace(query, value)


@lru_cache(maxsize=None)
def _accurate_union_minus_inter() -> tuple:
    """The claims (proved once per process) that the accurate U - I equals U - I."""
    checks = []
    for name, domain in {"overlapping": _POSITIVE_BOXES, **_IDENTITY_DOMAINS}.items():
        prove_equal(plain(union_minus_inter), plain(union - inter),
                    f"U - I from the parts outside the intersection equals U - I ({name})", checks, domain=domain,
                    numeric=True)
        prove_equal(plain(enclose_minus_union), plain(enclose - union),
                    f"C - U from the parts outside the intersection and the gaps equals C - U ({name})", checks,
                    domain=domain, numeric=True)
    return tuple(checks)


# overlapping, x-disjoint, y-disjoint and nested boxes, for the accurate U - I (numerically)
_IDENTITY_DOMAINS = {
    "disjoint in x": {px1: (0, 1), px2: (1, 2), tx1: (3, 4), tx2: (4, 5), py1: (0, 1), py2: (2, 3), ty1: (1, 2),
                      ty2: (2, 4)},
    "disjoint in y": {py1: (0, 1), py2: (1, 2), ty1: (3, 4), ty2: (4, 5), px1: (0, 1), px2: (2, 3), tx1: (1, 2),
                      tx2: (2, 4)},
    "disjoint in both": {px1: (3, 4), px2: (4, 5), tx1: (0, 1), tx2: (1, 2), py1: (0, 1), py2: (1, 2), ty1: (3, 4),
                         ty2: (4, 5)},
    "target inside pred": {px1: (0, 1), px2: (5, 6), tx1: (2, 3), tx2: (3, 4), py1: (0, 1), py2: (5, 6),
                           ty1: (2, 3), ty2: (3, 4)},
}
# overlapping boxes with all coordinates distinct (for numerical proofs of identities)
_POSITIVE_BOXES = {px1: (0, 1), py1: (0, 1), px2: (2, 3), py2: (2, 3), tx1: (sp.Rational(1, 2), sp.Rational(3, 2)),
                   ty1: (sp.Rational(1, 2), sp.Rational(3, 2)), tx2: (sp.Rational(5, 2), 4), ty2: (sp.Rational(5, 2), 4),
                   eps: (0, sp.Rational(1, 10))}


def slide_path(dy: float):
    """A unit square sliding along x past a unit-square target, offset dy in y:
    x -> (pred, target, tangent of the path in the 8 coordinates)."""
    def path(x):
        return (x, dy, x + 1.0, dy + 1.0, 0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 1.0, 0.0, 0, 0, 0, 0)
    return path


def aspect_path(height: float):
    """A box of height ``height`` centred on the target unit square, its width x growing:
    x -> (pred, target, tangent)."""
    def path(x):
        y0 = 0.5 - height / 2
        return (0.5 - x / 2, y0, 0.5 + x / 2, y0 + height, 0.0, 0.0, 1.0, 1.0), (-0.5, 0.0, 0.5, 0.0, 0, 0, 0, 0)
    return path


def _iou_curve(parts, reference: str):
    """x -> (IoU or 1 - IoU, its derivative along the path) from x -> (I, dI, U, dU), eps = 0."""
    def curve(x):
        inter, d_inter, union, d_union = parts(x)
        iou, d_iou = inter / union, (d_inter * union - inter * d_union) / union**2
        return (iou, d_iou) if reference == "IoU" else (1.0 - iou, -d_iou)
    return curve


def slide_iou(dy: float, reference: str = "1 - IoU"):
    """IoU (or 1 - IoU) of the unit squares of ``slide_path(dy)`` and its derivative along the slide, written
    out (with torch's conventions: 0 at x = 0, where ties split the gradient, and where the boxes touch)."""
    def parts(x):
        i_h = max(0.0, 1.0 - abs(dy))
        inter = max(0.0, 1.0 - abs(x)) * i_h
        d_inter = -math.copysign(i_h, x) if 0.0 < abs(x) < 1.0 else 0.0
        return inter, d_inter, 2.0 - inter, -d_inter
    return _iou_curve(parts, reference)


def aspect_iou(height: float, reference: str = "1 - IoU"):
    """IoU (or 1 - IoU) of the boxes of ``aspect_path(height)`` and its derivative w.r.t. the width, written out
    (at width 1 the ties split the gradient: the intersection width grows at rate 1/2)."""
    def parts(w):
        i_h = min(height, 1.0)
        d_iw = 1.0 if w < 1.0 else 0.5 if w == 1.0 else 0.0
        inter = min(w, 1.0) * i_h
        return inter, d_iw * i_h, w * height + 1.0 - inter, height - d_iw * i_h
    return _iou_curve(parts, reference)


SLIDE_OFFSETS, ASPECT_HEIGHTS = (0.0, 0.5, 1.5), (0.5, 1.0, 2.0)


def slide_plot(title: str, params: dict | None = None, *, note: str = "", reference: str | None = "1 - IoU",
               value_title: str = "loss", grad_title: str = "derivative along the slide"):
    """Loss and its derivative along the slide, for three vertical offsets; ``reference`` ("1 - IoU", "IoU" or
    None) adds that curve at dy = 0.5, dashed, for comparison; ``note`` ends the caption: what the figure shows
    of this loss."""
    from refloss._derive.core import Plot

    params = params or {}
    curves = [(f"dy = {dy:g}", {"params": params, "path": slide_path(dy)}) for dy in SLIDE_OFFSETS]
    caption = ("A predicted unit square slides horizontally past the target unit square at vertical offsets "
               "dy = 0, 0.5 and 1.5; the boxes overlap only while |x| < 1 and dy < 1 (never at dy = 1.5). The right "
               "panel is refloss's gradient along the slide.")
    if reference:
        curves.append((f"{reference}, dy = 0.5", slide_iou(0.5, reference), "dashed"))
        caption += (f" Dashed: {reference} at dy = 0.5 for comparison, flat (derivative 0) wherever the boxes do "
                    "not overlap.")
    return Plot(f"{title}: sliding past the target", curves, x_range=(-4.0, 4.0),
                xlabel="horizontal offset x of the predicted unit square", grad_title=grad_title,
                value_title=value_title, caption=f"{caption} {note}".rstrip())


def aspect_plot(title: str, *, note: str = "", reference: str | None = "1 - IoU", value_title: str = "loss",
                grad_title: str = "derivative w.r.t. the width"):
    """Loss and its derivative as the predicted box's width changes at fixed centre and height; ``reference``
    and ``note`` as in :func:`slide_plot` (the reference at height 0.5)."""
    from refloss._derive.core import Plot

    curves = [(f"height = {h:g}", {"params": {}, "path": aspect_path(h)}) for h in ASPECT_HEIGHTS]
    caption = ("The predicted box shares the centre of the target unit square; its height is fixed at "
               "0.5, 1 or 2 while its width changes, and with it its aspect ratio.")
    if reference:
        curves.append((f"{reference}, height = 0.5", aspect_iou(0.5, reference), "dashed"))
        caption += f" Dashed: {reference} at height 0.5 for comparison."
    return Plot(f"{title}: changing the aspect ratio", curves, x_range=(0.05, 4.0),
                xlabel="predicted width (same centre as the target)", grad_title=grad_title,
                value_title=value_title, caption=f"{caption} {note}".rstrip())


def box_spec(name, title, formula, references, params, kernels, steps, plots, conventions, accuracy, checks,
             constants=(), kind="loss", variants=(), mean_weight=None, aspect=None, properties=None):
    """The LossSpec of a box loss (``kind="metric"`` for a metric); a loss with an ``eps``
    parameter gets the eps placements peers use as variants for diagnoses.  ``aspect``: the
    keyword arguments of this loss's :func:`aspect_plot` (its caption's ``note``, ...); ``properties``:
    what its formula guarantees (refloss._info.Properties; None: the defaults)."""
    from refloss._derive.core import LossSpec, Variant
    from refloss._info import Properties

    plots = list(plots) + [aspect_plot(title, **(aspect or {}))]
    variants = list(variants)
    if any(p.name == "eps" for p in params):
        variants += [Variant("eps_ignored", f"eps={e:g}", params={"eps": e}) for e in EPS_VARIANTS]
    return LossSpec(name=name, title=title, formula=formula, references=references, params=params,
                    constants=list(constants), kernels=kernels, steps=GEOMETRY_STEPS + steps, plots=plots,
                    conventions=conventions or CONVENTIONS, accuracy=accuracy or ACCURACY, checks=checks,
                    family="box", kind=kind, layouts={"pred": "xyxy", "target": "xyxy"}, variants=variants,
                    mean_weight=mean_weight, properties=properties or Properties())


# the eps values peers use (torchvision 1e-7, mmdetection 1e-6, ...): variants a diagnosis tries
EPS_VARIANTS = (0.0, 1e-7, 1e-9, 1e-6)


CONVENTIONS = ("Non-differentiable points follow PyTorch autograd (what torch.maximum, torch.minimum and "
               "clamp(min=0) give in torch 2.14.1): a tie between coordinates splits the gradient 0.5/0.5; at "
               "touching boxes (zero intersection width or height) the clamp's gradient is 0, so the intersection "
               "contributes no gradient there (as torchvision's strict intersection mask). Where the formula is "
               "undefined for valid boxes (zero union, zero enclosing diagonal) the value is NaN.")
ACCURACY = ("1 - IoU is one fraction (U - I + eps)/(U + eps); centre offsets are sums of coordinate differences, "
            "which are exact for nearby coordinates, so small boxes far from the origin keep their digits.")
