"""Shared geometry of the rotated-box losses: boxes (cx, cy, w, h, angle) as Gaussians.

pred = (px, py, pw, ph, pa), target = (tx, ty, tw, th, ta): centre, size (w, h >= 0) and angle
in radians (counter-clockwise, the box's w side along (cos a, sin a)).  A box is the Gaussian with
mean its centre and covariance

    Sigma = R(a) diag(s w^2, s h^2) R(a)^T,   R(a) = [[cos a, -sin a], [sin a, cos a]],

s = 1/12 (the variance of a uniform distribution on the box: ProbIoU) or 1/4 (w/2 and h/2 as the
standard deviations: KLD and GWD).  Every loss here depends on the angles only through
cos^2 and sin^2 of the angle difference phi = pa - ta and through the centre offset seen in
either box's frame, so it is periodic with period pi in each angle and unchanged by swapping w
and h while adding pi/2 to the angle (the same Gaussian).

The angle difference is formed without losing digits: phi = pa - ta rounded plus its rounding
error (TwoSum), sin(phi) = sin(hi) cos(lo) + cos(hi) sin(lo), cos(phi) = cos(hi) cos(lo) - sin(hi) sin(lo)
(the addition theorem, exact: lo is the rounding error itself, up to half an ulp of hi); a loss of two
boxes at angles near 1e3 then keeps the digits of sin^2(phi) that the rounded difference alone
loses (its error eps |pa| times the loss's derivative w.r.t. phi).  (The first form, sin(hi) + lo cos(hi),
dropped lo^2/2: 5e-13 of the value at an angle of 1e10 in float64, 1.7e-3 at 1e6 in float32, and
an OBB angle loss of 1.012 > 1 at 1e300; a probe, 2026-12-07.)
"""
from __future__ import annotations

import dataclasses
import math

import sympy as sp
from sympy.codegen.cfunctions import log1p

from refloss._derive.core import Branch, LossSpec, Param, Plot, Step, prove_equal
from refloss._info import Properties
from refloss._derive.functions import HAND_RULES, CosSmall, Eval64, Group, HandDiff, Select, SinSmall, Sub, TwoSum, plain

px, py, pw, ph, pa = sp.symbols("px py pw ph pa", real=True)
tx, ty, tw, th, ta = sp.symbols("tx ty tw th ta", real=True)
PRED = (px, py, pw, ph, pa)
TARGET = (tx, ty, tw, th, ta)
ARRAYS = (("pred", 5, PRED), ("target", 5, TARGET))
INVALID = sp.Or(pw < 0, ph < 0, tw < 0, th < 0)
# a box with w h = 0 is a degenerate Gaussian (no density): where a loss is undefined there
DEGENERATE = sp.Or(sp.Eq(pw, 0), sp.Eq(ph, 0), sp.Eq(tw, 0), sp.Eq(th, 0))

# the centre offset (one rounding: exact for nearby centres), kept as one operation in the gradients too
# (SymPy would differentiate (px - tx)^2 into 2 px - 2 tx, added term by term to the rest)
dx, dy = Sub(px, tx), Sub(py, ty)
# phi = pa - ta with its rounding error added back
_phi_hi, _phi_lo = TwoSum(pa, -ta, 0), TwoSum(pa, -ta, 1)
# (SinSmall, CosSmall: lo is within pi/4 unless the angles are beyond 2^53 (float32 2^24): no argument reduction)
sin_phi = sp.sin(_phi_hi) * CosSmall(_phi_lo) + sp.cos(_phi_hi) * SinSmall(_phi_lo)
cos_phi = sp.cos(_phi_hi) * CosSmall(_phi_lo) - sp.sin(_phi_hi) * SinSmall(_phi_lo)

# angles far apart (a review, 2026-12-07): pa - ta overflows where the angles are beyond ~1e308 (float32 3e38) with
# opposite signs, and 2 phi (the OBB term's sin 2 phi) where |phi| >= 2^1023 (float32 2^127): NaN values and gradients.
# There phi/2 = pa/2 - ta/2 (halving is exact) as its TwoSum hi + lo, s and c its sine and cosine by the addition
# theorem (libm's, whose reduction is exact for any argument: a rare branch), sin phi = 2 s c, cos phi = (c - s)(c + s)
# and sin 2 phi = 2 sin phi cos phi: each relative to a few ulps but cos phi, absolute (near its zeros; one ulp of such
# an angle is ~2^970 radians)
_half_hi, _half_lo = TwoSum(pa / 2, -ta / 2, 0), TwoSum(pa / 2, -ta / 2, 1)
_s_half = sp.sin(_half_hi) * sp.cos(_half_lo) + sp.cos(_half_hi) * sp.sin(_half_lo)
_c_half = sp.cos(_half_hi) * sp.cos(_half_lo) - sp.sin(_half_hi) * sp.sin(_half_lo)
SIN_PHI_FAR = 2 * _s_half * _c_half
COS_PHI_FAR = (_c_half - _s_half) * (_c_half + _s_half)
# where the far forms are taken: |pa/2 - ta/2| beyond 2^1020 (float64) or 2^124 (float32), so that 2 phi overflows
# nowhere else (NaN angles: the comparison false, the common forms)
FAR_ANGLE = {"f64": sp.Integer(2) ** 1020, "f32": sp.Integer(2) ** 124}


def angles_far(precision: str):
    """The condition of the far-angle branches of ``precision`` ('f64' or 'f32')."""
    return sp.Abs(Sub(pa / 2, ta / 2)) > FAR_ANGLE[precision]


def frame_offsets(angle):
    """(u, v): the centre offset (dx, dy) in the frame of a box at ``angle`` (R(angle)^T (dx, dy))."""
    return dx * sp.cos(angle) + dy * sp.sin(angle), -dx * sp.sin(angle) + dy * sp.cos(angle)


# -- the definitions, as matrices (for the proofs and the derivation pages)

def covariance(w, h, a, s):
    """R(a) diag(s w^2, s h^2) R(a)^T as a SymPy Matrix."""
    r = sp.Matrix([[sp.cos(a), -sp.sin(a)], [sp.sin(a), sp.cos(a)]])
    return r * sp.diag(s * w**2, s * h**2) * r.T


def delta():
    return sp.Matrix([px - tx, py - ty])


# sampling domain of the numeric proofs: positive sizes of different orders, any angles and offsets
_FIFTH = sp.Rational(1, 5)
DOMAIN = {px: (-3, 3), py: (-3, 3), tx: (-3, 3), ty: (-3, 3), pw: (_FIFTH, 5), ph: (_FIFTH, 5), tw: (_FIFTH, 5),
          th: (_FIFTH, 5), pa: (-4, 4), ta: (-4, 4)}

def orientation_domains():
    """[(label, domain)]: DOMAIN with the prediction wider than tall, and the target likewise (the product of the two
    orientations' signs > 0) or the other way (< 0): where a closed form picks its form by that sign."""
    narrow, wide = (_FIFTH, sp.Rational(9, 10)), (1, 5)
    out = []
    for label, (tw_, th_) in (("> 0", (wide, narrow)), ("< 0", (narrow, wide))):
        out.append((label, {**DOMAIN, pw: wide, ph: narrow, tw: tw_, th: th_}))
    return out


R_SYM, S_SYM = sp.symbols("R(\\theta) s")
COVARIANCE_STEP = Step(
    "Each box $(c_x, c_y, w, h, \\theta)$ (angle in radians) is the Gaussian with mean its centre and the "
    "covariance of a rotated box, $\\theta$ turning the box's $w$ side from the $x$ axis:",
    "\\Sigma(w, h, \\theta)",
    "R(\\theta) \\begin{pmatrix} s w^2 & 0 \\\\ 0 & s h^2 \\end{pmatrix} R(\\theta)^\\top = "
    "\\begin{pmatrix} s w^2 \\cos^2\\theta + s h^2 \\sin^2\\theta & s (w^2 - h^2) \\sin\\theta\\cos\\theta \\\\ "
    "s (w^2 - h^2) \\sin\\theta\\cos\\theta & s w^2 \\sin^2\\theta + s h^2 \\cos^2\\theta \\end{pmatrix}, \\qquad "
    "R(\\theta) = \\begin{pmatrix} \\cos\\theta & -\\sin\\theta \\\\ \\sin\\theta & \\cos\\theta \\end{pmatrix}")
FRAME_STEP = Step(
    "Everything below depends on the angles only through $\\cos^2\\varphi$ and $\\sin^2\\varphi$ of their "
    "difference $\\varphi = \\theta_p - \\theta_t$ and on the centre offset $\\Delta = \\mu_p - \\mu_t$ seen in "
    "each box's frame, $(u_i, v_i) = R(\\theta_i)^\\top \\Delta$: so each loss has period $\\pi$ in either angle and "
    "does not change when a box's $w$ and $h$ are swapped and $\\pi/2$ added to its angle (the same Gaussian). "
    "$\\varphi$ is the rounded difference plus its rounding error, $\\sin\\varphi = \\sin\\varphi_{hi} "
    "\\cos\\varphi_{lo} + \\cos\\varphi_{hi}\\sin\\varphi_{lo}$ (digits kept for angles far from 0).", "(u_i, v_i)",
    "(\\Delta_x \\cos\\theta_i + \\Delta_y \\sin\\theta_i,\\; -\\Delta_x \\sin\\theta_i + \\Delta_y \\cos\\theta_i)")

CONVENTIONS = ("Boxes are (cx, cy, w, h, angle), the angle in radians; w, h >= 0 (a negative size is refused with "
               "ValueError; with validate=False the formula is evaluated as written). "
               "The loss has period pi in either angle and is unchanged by swapping w and h and adding pi/2 to the "
               "angle; gradients are w.r.t. all ten coordinates (the angle's in 1/radian).")


def rotation_path(w: float, h: float):
    """The target (0, 0, w, h, 0); the prediction the same box turned by x: x -> (inputs, tangent)."""
    def path(x):
        return (0.0, 0.0, w, h, x, 0.0, 0.0, w, h, 0.0), (0, 0, 0, 0, 1.0, 0, 0, 0, 0, 0)
    return path


def slide_path(angle: float):
    """A 2 x 1 box at ``angle`` sliding along x past the target 2 x 1 box at angle 0."""
    def path(x):
        return (x, 0.0, 2.0, 1.0, angle, 0.0, 0.0, 2.0, 1.0, 0.0), (1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return path


def rotation_plot(title: str, params: dict | None = None, note: str = "") -> Plot:
    params = params or {}
    curves = [(f"{w:g} x {h:g} box", {"params": params, "path": rotation_path(w, h)})
              for w, h in ((1.0, 1.0), (2.0, 1.0), (4.0, 1.0))]
    return Plot(f"{title}: turning the predicted box", curves, x_range=(-math.pi, math.pi),
                xlabel="angle of the predicted box (radians; the target's is 0)", grad_title="dL/d angle",
                caption=("The predicted box equals the target (same centre and size) but for its angle. A square's "
                         "Gaussian does not depend on the angle (flat line); the others have period pi. " + note).rstrip())


def slide_plot(title: str, params: dict | None = None, note: str = "") -> Plot:
    params = params or {}
    curves = [(f"angle {a:g}", {"params": params, "path": slide_path(a)}) for a in (0.0, 0.5, math.pi / 2)]
    return Plot(f"{title}: sliding past the target", curves, x_range=(-6.0, 6.0),
                xlabel="horizontal offset of the predicted 2 x 1 box", grad_title="dL/d cx",
                caption=("A 2 x 1 box at angle 0, 0.5 or pi/2 slides along x past the 2 x 1 target at angle 0. "
                         + note).rstrip())


def rotated_spec(name, title, formula, references, params, kernels, steps, plots, conventions, accuracy, checks,
                 variants=(), gaussian=True, properties=None) -> LossSpec:
    """The LossSpec of a rotated-box loss (family "rotated", layouts "xywhr"); ``gaussian``: its page starts with
    the boxes' Gaussians (the covariance and the frame steps); ``properties``: what its formula guarantees
    (refloss._info.Properties; None: the defaults)."""
    return LossSpec(name=name, title=title, formula=formula, references=references, params=params, constants=[],
                    kernels=kernels, steps=([COVARIANCE_STEP, FRAME_STEP] if gaussian else []) + steps, plots=plots,
                    conventions=CONVENTIONS + " " + conventions, accuracy=accuracy, checks=checks,
                    family="rotated", layouts={"pred": "xywhr", "target": "xywhr"}, variants=list(variants),
                    properties=properties or Properties())


# -- the normalisation of KLD and GWD: L = 1 - 1/(tau + f(distance))

fun = sp.Symbol("fun", nonnegative=True)  # 0: f = log1p, 1: f = sqrt
tau = sp.Symbol("tau", positive=True)  # >= 1
FUNS = ("log1p", "sqrt")


def normalisation_params(distance: str) -> list:
    return [Param("fun", fun, "log1p", f"the normalising function f of L = 1 - 1/(tau + f({distance})): 'log1p' "
                  f"(ln(1 + {distance}), the papers' and mmrotate's default) or 'sqrt'", kind="choice", choices=FUNS),
            Param("tau", tau, 1.0, "tau >= 1 of L = 1 - 1/(tau + f), so that 0 <= L < 1 (the papers use 1 and 2; "
                  "mmrotate applies the map only for tau >= 1)", lower=sp.Integer(1))]


def normalised_branches(distance, d_sym, undefined_label: str, undefined=None, undefined_value=sp.Integer(1),
                        sqrt_rule: int | None = None, log1p_rule: int | None = None, checks: list | None = None):
    """The branches of L = 1 - 1/(tau + f(distance)) (``d_sym`` the prelude symbol of the distance): where
    ``undefined`` holds, ``undefined_value`` with NaN gradients; f = sqrt at distance 0: (tau - 1)/tau with gradient 0
    (sqrt has no derivative there); else the value as (tau - 1 + f)/(tau + f), no cancellation for small f (so
    at distance 0 both give the same float).  ``sqrt_rule``: the HAND_RULES key (one a loss) under which the
    derivative of 1/(tau + f), f = sqrt, is registered as -[1/(tau + f)^2] [(d distance/ds) [1/(2 f)]], each bracket
    a factor of its own: the chain rule's 1/(2 f (tau + f)^2) overflowed its denominator where f ~ 1e103 (float64;
    float32 ~ 1e13), and the gradient was 0 where it is ~1/f^2 times a bounded factor.  ``log1p_rule``: the same for
    f = log1p, -[1/(tau + f)^2] [(d distance/ds) [1/(1 + distance)]]: the chain rule's (1 + distance)(tau + f)^2
    overflowed where the distance ~ 1e306 (float64; float32 ~ 1e36), every gradient 0 (coordinates ~1e152 for
    GWD; float32 1e18).  ``checks``: each rule is proved equal to SymPy's chain rule on a distance d(s) of any form."""
    out = []
    if undefined is not None:
        out.append((undefined, undefined_value, sp.nan, undefined_label))
    root = sp.sqrt(distance)

    # (each factor computed once: 1/(tau + f)^2 and 1/(2 f) or 1/(1 + distance); each gradient two products)
    def sqrt_form(dist, s):
        return -Group(1 / (tau + sp.sqrt(dist))**2) * Group(sp.diff(dist, s) * Group(1 / (2 * sp.sqrt(dist))))

    def log1p_form(dist, s):
        return -Group(1 / (tau + log1p(dist))**2) * Group(sp.diff(dist, s) * Group(1 / (1 + dist)))
    for key, form, fn, name in ((sqrt_rule, sqrt_form, sp.sqrt, "sqrt"), (log1p_rule, log1p_form, log1p, "log1p")):
        if key is None:
            continue
        HAND_RULES[key] = (lambda form: lambda s: form(distance, s))(form)
        if checks is not None:
            s_, d_ = sp.Symbol("s", real=True), sp.Function("d", positive=True)
            prove_equal(plain(form(d_(s_), s_)), sp.diff(1 / (tau + fn(d_(s_))), s_),
                        f"d/ds 1/(tau + {name}(d)) = -[1/(tau + f)^2] [(d d/ds) "
                        f"{'[1/(2 f)]' if name == 'sqrt' else '[1/(1 + d)]'}] (HAND_RULES[{key}]: no product of the "
                        "chain rule's denominators, which overflows for a large distance)", checks)
    for k, f, label in ((0, log1p(distance), "f = log1p"), (1, root, "f = sqrt")):
        cond = sp.Eq(fun, k)
        if k == 1:
            out.append((sp.And(cond, sp.Eq(d_sym, 0)), Group(tau - 1) / tau, sp.Integer(1) - 1 / tau,
                        "f = sqrt at distance 0: gradient 0 by convention"))
            cond = None
        reciprocal = 1 / (tau + f)
        rule = (log1p_rule, sqrt_rule)[k]
        if rule is not None:
            reciprocal = HandDiff(reciprocal, sp.Integer(rule))
        out.append((cond, (Group(tau - 1) + f) / (tau + f), 1 - reciprocal, label))
    return out


NORMALISATION_STEP = Step("The loss, with $f$ the normalising function (parameter `fun`: $\\ln(1 + x)$ or "
                          "$\\sqrt{x}$), evaluated as $(\\tau - 1 + f)/(\\tau + f)$:", "L",
                          "1 - \\frac{1}{\\tau + f(D)}")


def float64_where(kernel, outside):
    """A float32 ``kernel`` with a rare copy, before each branch that is not constant, of that branch where
    ``outside`` holds (the float32 kernel's range left: KLD's, ProbIoU's), its outputs evaluated in float64 together
    (``Eval64``: the inputs widened exactly, each result rounded once).  ``outside`` may be a function of the branch
    (a range of its own for each: ProbIoU's mode 'hellinger' leaves it at a smaller B_D than mode 'bd')."""
    branches = []
    for b in kernel.branches:
        if not all(v.is_Number for v in b.outputs.values()):  # (NaN and inf are Numbers)
            out = outside if isinstance(outside, sp.Basic) else outside(b)
            branches.append(dataclasses.replace(
                b, condition=out if b.condition is None else sp.And(out, b.condition),
                outputs={o: Eval64(v) for o, v in b.outputs.items()}, label=f"{b.label}, float64 (range)", rare=True))
        branches.append(b)
    return dataclasses.replace(kernel, branches=tuple(branches))


# -- centre offsets far beyond the distance's range (open since note 50, fixed 2026-12-07)
#
# A distance (GWD's W^2, KLD's D) is a sum of squares of the centre offset (in the sides' units for KLD): it overflows
# where the offset is beyond ~2^512 (GWD: absolute; KLD: times the target's sides), and the common forms gave NaN
# (log1p(inf)/inf; KLD's 0 * inf in the gradient).  There the distance is evaluated scaled by c^2, c = 2^-600 (exact:
# the offsets as c px - c tx, each product exact where it is normal, and a product that is not is below 2^-1022 while
# the offset's scaled value is at least ~2^-89), and f from the scaled distance D' = c^2 D: ln D = ln D' - 2 ln c
# (log1p(D) - ln D = log1p(1/D) < 1/D, below 2^-1023 where D > 2^1023), sqrt(D) = sqrt(D')/c.
FAR_SCALE = sp.Integer(2) ** -600
far_dx, far_dy = Sub(FAR_SCALE * px, FAR_SCALE * tx), Sub(FAR_SCALE * py, FAR_SCALE * ty)
# where the far branches are taken: the distance beyond 2^1023 (inf where it overflowed; NaN: the comparison false, the
# common branches' NaN)
FAR_DISTANCE = sp.Integer(2) ** 1023


def far_distance_branches(scaled, d_sym, keys, label, checks=None, nan_gradient=False, valid=None):
    """The branches of L = 1 - 1/(tau + f(D)) where the distance D (``d_sym``, the prelude's) is beyond 2^1023, from
    ``scaled`` = c^2 D (c = FAR_SCALE): f = ln(scaled) - 2 ln c (f = log1p) or sqrt(scaled)/c (f = sqrt), L = 1 - r with
    r = 1/(tau + f) (f = inf, where sqrt(D) overflows: exactly 1; f > 709 here, so 1 - r loses nothing), its gradient
    -r (r f') with f' = scaled'/scaled or (scaled'/(2 sqrt(scaled))) (1/c), each factor on its own
    (``HAND_RULES[keys[k]]``: the chain rule's (tau + f)^2 overflows for f = sqrt beyond 2^512, and 1/(1 + D)
    underflows).  ``nan_gradient``: NaN gradients.  ``valid``: where the scaled forms hold (a condition on them; NaN
    value and gradients elsewhere, as the common branches gave).  ``checks``: each rule is proved equal to
    SymPy's chain rule on a scaled distance of any form, ln(scaled) - 2 ln c and sqrt(scaled)/c to ln D and sqrt D."""
    out = []
    c = FAR_SCALE
    far = d_sym > FAR_DISTANCE

    def fs(dist):
        return sp.log(dist) - 2 * sp.log(c), sp.sqrt(dist) / c

    def rules(dist, k):
        f = fs(dist)[k]
        r = Group(1 / (tau + f))
        # (D'_s first, then over D' or 2 sqrt(D'): the printer's order of 2^-599 dx'/D' had formed 2^-599/D', 0 for an
        # offset of ~1e303, and the gradient 0 where it is ~1e-310)
        if k == 0:
            return r, lambda s: -r * Group(r * Group(Group(sp.diff(dist, s)) / dist))
        # (r times c f' before the division by c: c f' ~ sqrt(D')/side overflows for KLD's sides ~1e-5 at D ~ 1e616)
        return r, lambda s: -r * Group(Group(r * Group(Group(sp.diff(dist, s)) / Group(2 * sp.sqrt(dist)))) / c)

    if checks is not None:
        s_, d_ = sp.Symbol("s", real=True), sp.Function("d", positive=True)
        F_FORMS = ("ln(D') - 2 ln c", "sqrt(D')/c")
        for k, name in enumerate(FUNS):
            _, rule = rules(d_(s_), k)
            prove_equal(plain(rule(s_)), sp.diff(1 / (tau + fs(d_(s_))[k]), s_),
                        f"d/ds 1/(tau + f), f = {F_FORMS[k]} of the scaled distance D': "
                        f"-[1/(tau + f)] ([1/(tau + f)] f') (HAND_RULES[{keys[k]}]: no (tau + f)^2)", checks)
        d_big = sp.Symbol("D", positive=True)
        prove_equal(fs(c**2 * d_big)[0], sp.log(d_big), "ln(c^2 D) - 2 ln c = ln D (c = 2^-600)", checks)
        prove_equal(fs(c**2 * d_big)[1], sp.sqrt(d_big), "sqrt(c^2 D)/c = sqrt D (c = 2^-600)", checks)
    for k in (0, 1):
        r, rule = rules(scaled, k)
        if valid is not None:
            r, rule = Select(valid, r, sp.nan), (lambda rule: lambda s: Select(valid, rule(s), sp.nan))(rule)
        if nan_gradient:
            value, diff_form = 1 - r, sp.nan
        else:
            HAND_RULES[keys[k]] = rule
            value = diff_form = 1 - HandDiff(r, sp.Integer(keys[k]))
        out.append((sp.And(far, sp.Eq(fun, k)), value, diff_form,
                    f"{label} beyond 2^1023: f = {FUNS[k]} of the distance scaled by 2^-1200", True, True))
    return out


# -- angles of opposite signs beyond ~9e307 (open since note 50, fixed 2026-12-07): phi = pa - ta overflows in the Gaussian losses'
# float64 kernels (GWD, KLD, ProbIoU), sin and cos of inf: value and gradients NaN.  Every such loss depends on an angle
# only through its sine and cosine and those of phi (period 2 pi in each angle; pi in fact), so there it is evaluated at
# the angles reduced to (-pi, pi] as atan2(sin a, cos a) (libm's sine and cosine, whose reduction is exact for any
# argument: a rare branch), which phi = pa' - ta' cannot overflow; the gradient at the reduced angles is the gradient
# (d pa'/d pa = 1).  The whole kernel, every branch, as one chain of selects with the prelude written out (the prelude's
# values, computed from the angles as given, are NaN there): no derivative is taken again, so no hand rule (built on
# the original phi) needs a copy.  Each angle reduced to within an ulp of pi (~4e-16 absolute in phi) -- far below what
# one ulp of such an angle changes (~2^970 radians); the addition theorem of SIN_PHI_FAR would keep phi's own digits
# but needs every form of sin phi and cos phi and their derivatives replaced, branch by branch.
class RealGroup(Group):
    """A Group (printed as one) that SymPy knows is real: a prelude quantity written out into a comparison (KLD's D is
    a Select, of which SymPy assumes nothing, and a comparison of it was refused as one of a non-real)."""
    is_extended_real = True


# (named Group for SymPy's printers, which dispatch a subclass of a function to the parent's method only under the
# parent's name; pickled by its qualified name, RealGroup)
RealGroup.__name__ = "Group"


def reduced_angle(a):
    """a reduced to (-pi, pi]: atan2(sin a, cos a), plus a - a (0, or NaN for an infinite a: the printed atan2 need not
    keep sin(inf)'s NaN)."""
    return sp.atan2(sp.sin(a), sp.cos(a)) + Sub(a, a)


def far_angle_branch(kernel, precision="f64"):
    """A rare branch (first) of ``kernel`` where ``angles_far(precision)``: the kernel's own branches as a chain of selects,
    the prelude written out, at the reduced angles (see above)."""
    prelude = dict(kernel.prelude)
    done = {pa: reduced_angle(pa), ta: reduced_angle(ta)}

    def written_out(e):
        # (by hand, not xreplace: a comparison rebuilt with a Select written into it is refused by SymPy's evaluation,
        # "Invalid comparison of non-real" -- KLD's D is a Select -- so comparisons are rebuilt unevaluated)
        if e in done:
            return done[e]
        if e in prelude:
            out = RealGroup(written_out(prelude[e]))
        elif not e.args:
            out = e
        else:
            args = [written_out(a) for a in e.args]
            if all(a is b for a, b in zip(args, e.args)):
                out = e
            elif isinstance(e, sp.core.relational.Relational):
                out = type(e)(*args, evaluate=False)
            else:
                out = e.func(*args)
        done[e] = out
        return out
    outputs = {}
    for o in kernel.branches[0].outputs:
        e = sp.nan
        for b in reversed(kernel.branches):
            e = b.outputs[o] if b.condition is None else Select(b.condition, b.outputs[o], e)
        outputs[o] = written_out(e)
    return Branch(angles_far(precision), outputs, "angles of opposite signs far apart (phi overflows): the kernel at "
                  "the angles reduced to (-pi, pi]", rare=True, libm=True)


def with_far_angles(kernel, precision="f64"):
    """``kernel`` with ``far_angle_branch`` first."""
    return dataclasses.replace(kernel, branches=(far_angle_branch(kernel, precision),) + tuple(kernel.branches))
