"""KLD loss (Yang et al., Learning High-Precision Bounding Box for Rotated Object Detection via
Kullback-Leibler Divergence, arXiv:2106.01883) on rotated boxes (cx, cy, w, h, angle).

Each box is the Gaussian N(centre, R diag(w^2/4, h^2/4) R^T).  The paper's divergence of the
prediction from the target,

    D = KL(N_p || N_t) = 1/2 Delta^T Sigma_t^-1 Delta + 1/2 tr(Sigma_t^-1 Sigma_p)
                         + 1/2 ln(det Sigma_t / det Sigma_p) - 1,

and the loss L = 1 - 1/(tau + f(D)), f = ln(1 + x) (default) or sqrt(x).

Evaluated in closed form (proved equal to the matrix definition): with (u, v) the centre offset in
the target's frame and phi the angle difference,

    D = 2 ((u/w_t)^2 + (v/h_t)^2) + 1/2 [g(e_w) + g(e_h) + sin^2(phi) X],
    e_w = (w_p/w_t)^2 - 1, e_h = (h_p/h_t)^2 - 1, g(e) = e - log1p(e) >= 0 (GapLog: a series for small e,
    e - 2 ln(w_p/w_t) for e < -1/2),
    X = (w_p^2 - h_p^2)(w_t^2 - h_t^2)/(w_t^2 h_t^2),

when X >= 0, and with w_t and h_t exchanged in e_w, e_h and cos^2(phi) (-X) in place of
sin^2(phi) X otherwise: every term >= 0, so nothing cancels for nearly equal boxes, nor for a box
and its w/h swap turned by pi/2 (the same Gaussian), and D keeps its relative digits (f = sqrt needs them).
"""
import dataclasses

import sympy as sp

from . import _rotated as R
from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Param, Step, Variant, prove_equal
from refloss._derive.functions import GapLog, Group, Select, TMax, TMin, plain
from refloss._info import Properties

NAME = "kld_loss"
_SQRT_RULE = 25  # HAND_RULES key of f = sqrt(D)'s derivative (24 is gwd_loss's)
_LOG1P_RULE = 27  # HAND_RULES key of f = log1p(D)'s derivative (26 is gwd_loss's)
d_sym = sp.Symbol("d_kl", nonnegative=True)


def divergence(scaled=False):
    """KL(N_p || N_t) in closed form (the form chosen by the sign of X, see the module docstring); ``scaled``: times
    c^2 (c = R.FAR_SCALE), the offsets as c px - c tx, the shape terms times c twice."""
    dx, dy = (R.far_dx, R.far_dy) if scaled else (R.dx, R.dy)
    u, v = dx * sp.cos(R.ta) + dy * sp.sin(R.ta), -dx * sp.sin(R.ta) + dy * sp.cos(R.ta)
    # (u/w_t)^2 + (v/h_t)^2 = rho^2/h_t^2 + (u/w_t)^2 (h_t - w_t)(h_t + w_t)/h_t^2 (h_t >= w_t), or the same with the
    # roles exchanged: terms >= 0, and the target angle's derivative 2 u v (1/w_t^2 - 1/h_t^2) one product (as two
    # terms it cancelled for a nearly square target: 8.9e4 ULP of the gradient scale in float32)
    # (each choice here a select, not a sum weighted by a 0/1 step: the form not chosen overflows where a side is far
    # smaller than another, its 0 * inf = NaN poisoning the chosen one's value and gradient)
    centre = 2 * Select(R.th > R.tw, Group(dx / R.th)**2 + Group(dy / R.th)**2
                        + Group(u / R.tw)**2 * Group((R.th - R.tw) * (R.th + R.tw) / R.th**2),
                        Group(dx / R.tw)**2 + Group(dy / R.tw)**2
                        + Group(v / R.th)**2 * Group((R.tw - R.th) * (R.tw + R.th) / R.tw**2))
    x = Group((R.pw - R.ph) * (R.pw + R.ph) / (R.tw * R.th)) * Group((R.tw - R.th) * (R.tw + R.th) / (R.tw * R.th))
    form_a = GapLog(R.pw, R.tw) + GapLog(R.ph, R.th) + R.sin_phi**2 * x
    form_b = GapLog(R.pw, R.th) + GapLog(R.ph, R.tw) - R.cos_phi**2 * x
    # X > 0: form A, else form B (both exact at X = 0)
    shape = Select((R.pw - R.ph) * (R.tw - R.th) > 0, form_a, form_b) / 2
    if scaled:
        return centre + Group(R.FAR_SCALE * Group(R.FAR_SCALE * shape))
    return centre + shape


def definition():
    sp_, st = R.covariance(R.pw, R.ph, R.pa, sp.Rational(1, 4)), R.covariance(R.tw, R.th, R.ta, sp.Rational(1, 4))
    d = R.delta()
    sti = st.inv()
    return ((d.T * sti * d)[0] + (sti * sp_).trace() + sp.log(st.det() / sp_.det())) / 2 - 1


SWAP = {**dict(zip(R.PRED, R.TARGET)), **dict(zip(R.TARGET, R.PRED))}
rev = sp.Symbol("reverse", nonnegative=True)
# reverse=True: KL(N_t || N_p), the divergence the authors' code and mmrotate's GDLoss compute.  A select, not
# (1 - reverse) D + reverse D_swapped: the direction not chosen divides by the other box's sides (their squares and,
# in the gradient, cubes), which overflow where that box is far smaller (a size ratio below ~2.4e-13 in float32,
# 2.9e-103 in float64), and 0 * inf = NaN poisoned the value and the gradient of the chosen one
D_KL = Select(rev > 0, divergence().xreplace(SWAP), divergence())
# centre offsets beyond ~2^512 times the sides (open since note 50, fixed 2026-12-07): D overflowed (value NaN, the size gradients NaN:
# 0 * inf); where D > 2^1023 the rare branches of derivations/_rotated.far_distance_branches take D scaled by c^2 = 2^-1200
# (the offsets as c px - c tx).  They hold where the scaled offset is normal with 53 bits to spare (|dx'| + |dy'| >=
# 2^-969: an offset >= 2^-369; the branch is taken at offsets >= ~2^510 times a side, so only sides below ~2^-879 with
# offsets below 2^-369 miss it) and D' is finite (|dx| + |dy| below 2^1110 times the smaller side): NaN value and
# gradients elsewhere, as before
_FAR_RULES = (42, 43)  # HAND_RULES keys of the far branches' 1/(tau + f), f = log1p and sqrt (40, 41 are gwd_loss's)
D_FAR = Select(rev > 0, divergence(True).xreplace(SWAP), divergence(True))
_far_l1 = sp.Abs(R.far_dx) + sp.Abs(R.far_dy)
# (|dx'| + |dy'| below 2^510 times the smaller side of the box whose covariance is inverted: each scaled quotient below
# 2^510, D' = 2 (q_x^2 + q_y^2 + q_u^2 ...) + c^2 (shape) finite)
FAR_VALID = sp.And(sp.GreaterThan(_far_l1, sp.Integer(2)**-969, evaluate=False),
                   sp.StrictLessThan(_far_l1, sp.Integer(2)**510 * Select(rev > 0, TMin(R.pw, R.ph), TMin(R.tw, R.th)),
                                     evaluate=False))
PARAMS = R.normalisation_params("D") + [
    Param("reverse", rev, False, "False: D = KL(N_p || N_t) as the paper writes it; True: KL(N_t || N_p), the "
          "direction of the authors' code and of mmrotate's GDLoss (the prediction's covariance inverted)",
          kind="bool")]
CONVENTIONS = ("f = sqrt at D = 0 (equal Gaussians) gives 1 - 1/tau with a gradient of 0 by convention (sqrt has no "
               "derivative there). A box with w = 0 or h = 0 is a degenerate Gaussian: D = inf, L = 1 and every "
               "gradient NaN. D is the divergence of the prediction from the target, as the paper writes it (not "
               "symmetric in pred and target); reverse=True gives the other direction, which the authors' code and "
               "mmrotate's GDLoss compute.")
ACCURACY = ("D in closed form as a sum of non-negative terms, chosen by the sign of (w_p^2 - h_p^2)(w_t^2 - h_t^2) so "
            "that nothing cancels for nearly equal boxes nor for a box and its w/h swap turned by pi/2; g(e) = e - log1p(e) "
            "from e = ((a - b)/b)((a + b)/b) (the side differences first), as a series for |e| < 1/16 and as "
            "e - 2 ln(a/b) for e < -1/2 (thin boxes); L = (tau - 1 + f)/(tau + f). The float32 kernel evaluates value and "
            "gradients in float64 (its inputs widened exactly, each result rounded once) where D >= 2^64 or a side is "
            "outside [2^-30, 2^30]: there float32's range did not hold the sides' powers, D or the gradient's factors "
            "(a target side 1e-20 gave NaN, sides 1e8 against 1e-8 an infinite d/dw_t). The float64 kernel's range is "
            "the same with float64's: sides within ~1e-77..1e77 of each other.")


# The float32 kernel's range (the sides' squares, cubes and fourth powers, D and its gradient's factors, each
# normal): float32's value where D < 2^64 and every side in [2^-30, 2^30], float64 (Eval64, the float32 inputs
# widened exactly, the result rounded once) elsewhere.  Beyond it the float32 kernel overflowed or lost its digits:
# sides 1e8 against 1e-8, d/dw_t -inf (exact -1.79e4: (w_p/w_t)^2/w_t overflows before dL/dD ~ 1/D multiplies it);
# a target side 1e-20, the value NaN (D ~ 5e39 beyond float32's range, exact L 0.98919); every side below ~1e-19,
# NaN (their squares 0, X = 0/0).  In float64 the same range is sides within ~1e-77..1e77 of each other (the
# documented limit beyond 1e154), and the float64 kernel keeps its forms.
F32_SIDES = sp.Integer(2) ** 30
F32_DIVERGENCE = sp.Integer(2) ** 64


def float32_kernel(kernel):
    """``kernel`` with a rare copy of each branch that is not constant (the same condition, where D or a side leaves
    the float32 kernel's range, above) before it, its outputs evaluated in float64 together (``Eval64``)."""
    # (one select of a max and a min: no chain of comparisons in the block loops; D NaN: its comparison false, outside)
    largest, smallest = TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th)), TMin(TMin(R.pw, R.ph), TMin(R.tw, R.th))
    outside = Select(d_sym < F32_DIVERGENCE, TMax(largest / F32_SIDES, 1 / (F32_SIDES * smallest)), sp.Integer(2)) > 1
    return R.float64_where(kernel, outside)


def derive():
    checks = []
    for sign, dom in R.orientation_domains():
        label = f"X {sign}"
        prove_equal(plain(divergence()), definition(), f"D in closed form equals the matrix definition of KL(N_p || N_t) "
                    f"({label})", checks, domain=dom, numeric=True)
    for sign, dom in R.orientation_domains():
        prove_equal(plain(divergence(True)) / R.FAR_SCALE**2, definition(), f"D from the offsets times c = 2^-600 and "
                    f"the shape terms times c^2, over c^2, equals the matrix definition (X {sign})", checks, domain=dom,
                    numeric=True)
    normal = R.normalised_branches(D_KL, d_sym, "a degenerate box (w h = 0): D = inf, L = 1, gradient NaN",
                                   undefined=R.DEGENERATE, sqrt_rule=_SQRT_RULE, log1p_rule=_LOG1P_RULE, checks=checks)
    far = R.far_distance_branches(D_FAR, d_sym, _FAR_RULES, "centre offsets far apart: D", checks=checks,
                                  valid=FAR_VALID)
    k = kernel_from_forms(
        R.ARRAYS, normal[:1] + far + normal[1:],
        args=(R.fun, R.tau, rev), prelude=((d_sym, D_KL),), invalid=R.INVALID, checks=checks, numeric_proof=True,
        domain=R.DOMAIN)
    # the float32 kernel without the far branches: from float32 inputs D stays below ~2^600 in its float64 part
    k32 = dataclasses.replace(k, branches=tuple(b for b in k.branches if not b.label.startswith("centre offsets far")))
    steps = [
        Step("With $s = 1/4$ ($w/2$ and $h/2$ the standard deviations along the box's axes), the divergence of the "
             "prediction's Gaussian from the target's, as the paper writes it:", "D",
             "\\frac{1}{2} \\Delta^\\top \\Sigma_t^{-1} \\Delta + \\frac{1}{2} \\operatorname{tr}(\\Sigma_t^{-1} "
             "\\Sigma_p) + \\frac{1}{2} \\ln \\frac{\\det \\Sigma_t}{\\det \\Sigma_p} - 1"),
        Step("In closed form (proved equal at 60 digits), $(u_t, v_t)$ the offset in the target's frame, "
             "$g(e) = e - \\operatorname{log1p}(e) \\ge 0$, $X = (w_p^2 - h_p^2)(w_t^2 - h_t^2)/(w_t^2 h_t^2)$, for "
             "$X \\ge 0$ (for $X < 0$, $w_t$ and $h_t$ exchanged in $g$ and $-\\cos^2\\varphi\\, X$ in place of "
             "$\\sin^2\\varphi\\, X$: every term is non-negative):", "D",
             "2\\left(\\frac{u_t^2}{w_t^2} + \\frac{v_t^2}{h_t^2}\\right) + \\frac{1}{2}\\left[g\\left("
             "\\frac{w_p^2}{w_t^2} - 1\\right) + g\\left(\\frac{h_p^2}{h_t^2} - 1\\right) + \\sin^2\\varphi\\, X\\right]"),
        R.NORMALISATION_STEP,
    ]
    return R.rotated_spec(
        NAME, "KLD loss", "L = 1 - 1/(tau + f(D)), f = log1p (default) or sqrt, D = KL(N_p || N_t) = 1/2 Delta^T "
        "Sigma_t^-1 Delta + 1/2 tr(Sigma_t^-1 Sigma_p) + 1/2 ln(det Sigma_t/det Sigma_p) - 1, each box the Gaussian "
        "N((cx, cy), R(angle) diag(w^2/4, h^2/4) R(angle)^T).",
        ["X. Yang et al., Learning High-Precision Bounding Box for Rotated Object Detection via Kullback-Leibler "
         "Divergence, arXiv:2106.01883"], PARAMS, {"f64": R.with_far_angles(k), "f32": float32_kernel(k32)}, steps,
        [R.rotation_plot("KLD loss"), R.slide_plot("KLD loss", note="The centre term grows with the offset in units "
                                                                    "of the target's sides.")],
        CONVENTIONS, ACCURACY, checks,
        variants=[Variant("kld_reversed", "KL(N_t || N_p), the divergence of the target from the prediction (the "
                          "authors' code, mmrotate's GDLoss)", params={"reverse": True})],
                          properties=Properties(symmetric_when=None))
