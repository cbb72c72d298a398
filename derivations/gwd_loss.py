"""GWD loss (Yang et al., Rethinking Rotated Object Detection with Gaussian Wasserstein Distance Loss,
arXiv:2101.11952) on rotated boxes (cx, cy, w, h, angle).

Each box is the Gaussian N(centre, R diag(w^2/4, h^2/4) R^T).  The squared 2-Wasserstein distance

    W^2 = |Delta|^2 + tr(Sigma_p) + tr(Sigma_t) - 2 tr((Sigma_p^1/2 Sigma_t Sigma_p^1/2)^1/2),

and the loss L = 1 - 1/(tau + f(W^2)), f = ln(1 + x) (default) or sqrt(x) (= W), the paper's form.

For 2 x 2 matrices tr(M^1/2) = sqrt(tr M + 2 sqrt(det M)); with p = (w_p, h_p)/2, t = (w_t, h_t)/2 the
square roots of the eigenvalues and phi the angle difference, the Bures term is

    B = |p|^2 + |t|^2 - 2F,  F^2 = cos^2(phi) G^2 + sin^2(phi) H^2,  G = p1 t1 + p2 t2,  H = p1 t2 + p2 t1,

evaluated without cancellation as B = (p1 - t1)^2 + (p2 - t2)^2 + 2 sin^2(phi) K/(G + F) where
K = G^2 - H^2 = (p1^2 - p2^2)(t1^2 - t2^2) >= 0, and as (p1 - t2)^2 + (p2 - t1)^2 - 2 cos^2(phi) K/(H + F)
where K < 0 (a box and its w/h swap turned by pi/2 give B = 0 exactly there).  Zero-size boxes are
valid (degenerate Gaussians); where F = 0 (a point box, or two perpendicular segments) B = |p|^2 + |t|^2
and the gradient is NaN (F's derivative is infinite there).
"""
import dataclasses

import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import _rotated as R
from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Step, prove_equal
from refloss._derive.functions import HAND_RULES, Detach, Eval64, Group, HandDiff, Select, Step as Above0, Sub, TMax, TMin, plain
from refloss._info import Properties

NAME = "gwd_loss"
_SQRT_RULE = 24  # HAND_RULES key of f = sqrt(W^2)'s derivative (1-4 _boxes', 15-23 other losses', 25 kld_loss's)
_LOG1P_RULE = 26  # HAND_RULES key of f = log1p(W^2)'s derivative (27 is kld_loss's)
_QUOTIENT_RULES = (28, 29)  # HAND_RULES keys of K's side differences over G + F and over H + F
w2_sym = sp.Symbol("w2", nonnegative=True)
f_sym = sp.Symbol("f_bures", nonnegative=True)
m_sym = sp.Symbol("m_gh", nonnegative=True)
side_sym = sp.Symbol("side", nonnegative=True)

_c2, _s2 = R.cos_phi**2, R.sin_phi**2
# the Bures term is homogeneous of degree 2 in the sides: evaluated with the sides divided by the largest one, s, and
# multiplied by s^2 (s held fixed in the gradient; without it float32 products of four sides ~1e8 overflowed)
_side = Detach(TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th)))
pw_, ph_, tw_, th_ = (Group(x / _side) for x in (R.pw, R.ph, R.tw, R.th))
G = (pw_ * tw_ + ph_ * th_) / 4
H = (pw_ * th_ + ph_ * tw_) / 4
# F = sqrt(cos^2 G^2 + sin^2 H^2) with G and H divided by the larger one first (no underflow of G^2 for tiny
# boxes); F is homogeneous of degree 1 in (G, H), so the divisor is held fixed in the gradient
_m = Detach(TMax(G, H))
F = _m * sp.sqrt(_c2 * Group(G / _m)**2 + _s2 * Group(H / _m)**2)
# 2 K/(G + F) with K = (p1^2 - p2^2)(t1^2 - t2^2): the two side differences' product (w_p - h_p)(w_t - h_t)/s^2 divided
# by G + F first (its derivative by hand, [1/(G + F)] (a' - (a/(G + F)) (G + F)'): no (G + F)^2), then times (w_p + h_p)/s and
# (w_t + h_t)/s, over 8.  The quotient is at most 8 (G + F >= G >= (p1 + p2)(t1 + t2)/8 in form A, where K > 0 makes
# G > H; H + F likewise in form B), so nothing leaves the range for one box far smaller than the other: the form
# before, (w_p^2 - h_p^2)/(G + F) times (w_t^2 - h_t^2), formed the small box's r^2 (r the side ratio: a subnormal
# below r ~ 1e-154, float32 1e-19; d/dh_p 1.4e-6 off relative at float64 r ~ 7e-161) and its gradient
# 1/(G + F)^2 ~ 16/r^2 (inf - inf: every w, h, angle gradient NaN at a target of float64 r ~ 1e-160)
_dd = Group(Group(Sub(R.pw, R.ph) / _side) * Group(Sub(R.tw, R.th) / _side))
_sums = (pw_ + ph_, tw_ + th_)


def _quotient_rule(a, b, key):
    """a/b as a Group(1/b) (one division, shared by the value and every gradient), whose derivative is registered
    as HAND_RULES[key]: Group(1/b) (a' - (a/b) b'), a product per gradient (no b^2, no division)."""
    inv = Group(1 / b)
    q = HandDiff(a * inv, sp.Integer(key))
    HAND_RULES[key] = lambda s: inv * Sub(sp.diff(a, s), q * sp.diff(b, s))
    return q


def prove_quotient_rule(checks):
    """The rule's form equals SymPy's quotient rule for any a(s), b(s)."""
    s_, a_, b_ = sp.Symbol("s", real=True), sp.Function("a", real=True), sp.Function("b", positive=True)
    inv = Group(1 / b_(s_))
    prove_equal(plain(inv * (sp.diff(a_(s_), s_) - a_(s_) * inv * sp.diff(b_(s_), s_))), sp.diff(a_(s_) / b_(s_), s_),
                f"d/ds (a/b) = [1/b] (a' - (a [1/b]) b') (HAND_RULES[{_QUOTIENT_RULES[0]}], [{_QUOTIENT_RULES[1]}]: "
                "K's side differences over G + F and H + F; no (G + F)^2)", checks)


def _k_over(den, key):
    """16 K/den (K/den with the sides over s), the side differences' product over den first."""
    return Group(_quotient_rule(_dd, den, key) * _sums[0]) * _sums[1]


k = Above0((R.pw - R.ph) * (R.tw - R.th))  # K > 0
bures_a = (Group(Sub(R.pw, R.tw) / _side)**2 + Group(Sub(R.ph, R.th) / _side)**2) / 4 \
    + _s2 * _k_over(G + F, _QUOTIENT_RULES[0]) / 8
bures_b = (Group(Sub(R.pw, R.th) / _side)**2 + Group(Sub(R.ph, R.tw) / _side)**2) / 4 \
    - _c2 * _k_over(H + F, _QUOTIENT_RULES[1]) / 8
BURES = _side**2 * (k * bures_a + Group(1 - k) * bures_b)
W2 = R.dx**2 + R.dy**2 + BURES
# centre offsets beyond ~2^512 (open since note 50, fixed 2026-12-07): W^2 overflowed (value NaN: log1p(inf)/inf, every gradient 0 or
# NaN); where W^2 > 2^1023 the rare branches of derivations/_rotated.far_distance_branches take W^2 scaled by c^2 =
# 2^-1200 (the offsets as c px - c tx; the Bures term as (c s)^2 times its form over s^2, s the largest side)
_FAR_RULES = (40, 41)  # HAND_RULES keys of the far branches' 1/(tau + f), f = log1p and sqrt (42, 43 are kld_loss's)
W2_FAR = R.far_dx**2 + R.far_dy**2 + Group(R.FAR_SCALE * _side)**2 * (k * bures_a + Group(1 - k) * bures_b)


def definition():
    """W^2 from the matrices: tr(sqrt(M)) = sqrt(tr M + 2 sqrt(det M)), sqrt(det M) = (w_p h_p/4)(w_t h_t/4)."""
    q = sp.Rational(1, 4)
    sp_, st = R.covariance(R.pw, R.ph, R.pa, q), R.covariance(R.tw, R.th, R.ta, q)
    d = R.delta()
    root = sp.sqrt((sp_ * st).trace() + 2 * (R.pw * R.ph / 4) * (R.tw * R.th / 4))
    return (d.T * d)[0] + sp_.trace() + st.trace() - 2 * root


PARAMS = R.normalisation_params("W^2")
CONVENTIONS = ("f = sqrt at W^2 = 0 (equal Gaussians) gives 1 - 1/tau with a gradient of 0 by convention (sqrt has no "
               "derivative there). Zero-size boxes are valid (degenerate Gaussians); where the trace term's root F = "
               "sqrt(tr(Sigma_p Sigma_t) + 2 sqrt(det Sigma_p det Sigma_t)) is 0 (a point box, or two perpendicular "
               "zero-width boxes) the value is defined and every gradient NaN (F's derivative is infinite).")
ACCURACY = ("The Bures term as a sum of squares of side differences plus a non-negative correction 2 sin^2(phi) "
            "K/(G + F) (or, for K < 0, the swapped form with cos^2(phi)): no cancellation for nearly equal boxes nor "
            "for a box and its w/h swap turned by pi/2; L = (tau - 1 + f)/(tau + f).")


# The float32 kernel's range: with r the smallest side over the largest, the Bures term's factors reach r^2
# (K = (p1^2 - p2^2)(t1^2 - t2^2) over the largest side's fourth power, for one box far smaller than the other), and
# its gradient 1/(G + F)^2 ~ 16/r^2 (G + F ~ r/4 there) times such factors and sin^2(phi) or a side difference: every
# one normal where r >= 2^-40 (r^2 2^-80, 2^46 above float32's smallest normal).  Beyond it the float32 kernel
# lost the gradient: target sides 2.5e-20 against 3 (r ~ 1e-20), 1/(G + F)^2 overflowed (inf - inf: every w, h, angle
# gradient NaN, value right); pred sides 3e-22 against 4.5, K underflowed to a subnormal (d/dh_p 7e-4 off relative).
# The absolute scale: the largest side in [2^-40, 2^60] (side^2 multiplies the Bures term: underflowed below ~1e-19,
# the size gradients 0) and W^2 < 2^100 (the log1p rule's 1/(1 + W^2) normal; coordinates beyond ~1e19 overflow W^2).
# Outside (a zero side included: r = 0), the float64 kernel's forms, its decisions among the branches taken in float64
# too (a Select chain inside Eval64: float32's F or m underflows to 0 for r below ~1e-38, where the F = 0 branch would
# give NaN gradients); from float32 inputs r >= ~1e-84, well inside float64's range (r^2, 1/r^2).
F32_RATIO = sp.Integer(2) ** 40
F32_SMALL, F32_LARGE = sp.Integer(2) ** -40, sp.Integer(2) ** 60
F32_W2 = sp.Integer(2) ** 100


def float32_kernel(kernel):
    """``kernel`` with a rare branch a value of ``fun`` before the others, taken where the sides or W^2 leave the
    float32 kernel's range (above): every output evaluated in float64 (``Eval64``, the inputs widened exactly, each
    result rounded once) as the float64 kernel evaluates it, its branch chosen in float64 (a chain of Selects on the
    branches' conditions, the prelude written out in float64)."""
    largest, smallest = TMax(TMax(R.pw, R.ph), TMax(R.tw, R.th)), TMin(TMin(R.pw, R.ph), TMin(R.tw, R.th))
    # (one select of maxima: no chain of comparisons in the block loops; W^2 NaN or inf: its comparison false, outside;
    # every side 0: 2^-40/0 = inf, outside, the float64 decisions as the float32 ones)
    outside = Select(w2_sym < F32_W2, TMax(TMax(largest / F32_LARGE, F32_SMALL / largest), largest / (F32_RATIO * smallest)),
                     sp.Integer(2)) > 1
    rare = []
    for k in (0, 1):
        live = []
        for b in kernel.branches:
            c = sp.true if b.condition is None else b.condition.xreplace({R.fun: k})
            if c is sp.false:
                continue
            live.append((c, b.outputs))
            if c is sp.true:
                break
        outputs = {}
        for o in kernel.branches[0].outputs:
            e = live[-1][1][o]
            for c, outs in reversed(live[:-1]):
                e = Select(c, outs[o], e)
            outputs[o] = Eval64(e)
        rare.append(dataclasses.replace(kernel.branches[-1], condition=sp.And(outside, sp.Eq(R.fun, k)), outputs=outputs,
                                        label=f"f = {R.FUNS[k]}, float64 (range)", rare=True))
    return dataclasses.replace(kernel, branches=tuple(rare) + tuple(kernel.branches))


def derive():
    checks = []
    prove_quotient_rule(checks)
    for sign, dom in R.orientation_domains():
        label = f"K {sign}"
        m_side = sp.Symbol("s", positive=True)
        prove_equal(plain(W2.xreplace({_side: m_side})), definition(), f"W^2 in closed form, the sides divided by "
                    f"any s > 0, equals the matrix definition ({label}; so s is held fixed in the gradient)", checks,
                    domain={**dom, m_side: (sp.Rational(1, 2), 3)}, numeric=True)
    m_free = sp.Symbol("m", positive=True)
    prove_equal(plain(F.xreplace({_m: m_free})), plain(sp.sqrt(_c2 * G**2 + _s2 * H**2)), "F with G and H divided by "
                "any m > 0 equals sqrt(cos^2 G^2 + sin^2 H^2) (so m is held fixed in the gradient)", checks,
                domain={**R.DOMAIN, m_free: (sp.Rational(1, 2), 3)}, numeric=True)
    prove_equal(plain(F**2 * 16 * _side**4), sp.expand((R.covariance(R.pw, R.ph, R.pa, 1) * R.covariance(R.tw, R.th, R.ta, 1))
                                            .trace() + 2 * R.pw * R.ph * R.tw * R.th),
                "16 s^4 F^2 = tr(Sigma_p Sigma_t) + 2 sqrt(det Sigma_p det Sigma_t) (covariances with s = 1; F of the sides "
                "divided by the largest, s)", checks, domain=R.DOMAIN,
                numeric=True)
    sq = R.dx**2 + R.dy**2 + (R.pw**2 + R.ph**2 + R.tw**2 + R.th**2) / 4
    label = "F = 0 (a point box, or two perpendicular segments): W^2 = |Delta|^2 + tr Sigma_p + tr Sigma_t, gradient NaN"
    # (m = 0: G = H = 0, a point box; F's form divides by m; s = 0: two point boxes)
    zero_f = sp.Or(sp.Eq(f_sym, 0), sp.Eq(m_sym, 0), sp.Eq(side_sym, 0))
    branches = [(sp.And(zero_f, sp.Eq(R.fun, k)), (Group(R.tau - 1) + f) / (R.tau + f), sp.nan, label + f" ({name})")
                for k, (f, name) in enumerate(((log1p(sq), "log1p"), (sp.sqrt(sq), "sqrt")))]
    for sign, dom in R.orientation_domains():
        prove_equal(plain(W2_FAR) / R.FAR_SCALE**2, definition(), f"W^2 from the offsets and the largest side times "
                    f"c = 2^-600, over c^2, equals the matrix definition (K {sign})", checks, domain=dom, numeric=True)
    # (after the F = 0 branches: a point box's W^2 is NaN in the prelude, so its far offsets keep the F = 0 branch's NaN
    # value)
    branches += R.far_distance_branches(W2_FAR, w2_sym, _FAR_RULES, "centre offsets far apart: W^2", checks=checks)
    branches += R.normalised_branches(W2, w2_sym, "", sqrt_rule=_SQRT_RULE, log1p_rule=_LOG1P_RULE, checks=checks)
    kern = kernel_from_forms(R.ARRAYS, branches, args=(R.fun, R.tau), prelude=((side_sym, _side.args[0]), (m_sym, _m.args[0]), (f_sym, F), (w2_sym, W2)),
                             invalid=R.INVALID, checks=checks, numeric_proof=True, domain=R.DOMAIN)
    # the float32 kernel without the far branches: from float32 inputs W^2 stays below ~2^260 in its float64 part
    kern32 = dataclasses.replace(kern, branches=tuple(b for b in kern.branches if not b.label.startswith("centre offsets far")))
    steps = [
        Step("With $s = 1/4$, the squared 2-Wasserstein distance of the two Gaussians:", "W^2",
             "\\|\\Delta\\|^2 + \\operatorname{tr}\\Sigma_p + \\operatorname{tr}\\Sigma_t - 2\\operatorname{tr}"
             "\\left((\\Sigma_p^{1/2} \\Sigma_t \\Sigma_p^{1/2})^{1/2}\\right)"),
        Step("For 2 x 2 matrices $\\operatorname{tr} M^{1/2} = \\sqrt{\\operatorname{tr} M + 2\\sqrt{\\det M}}$; with "
             "$p = (w_p, h_p)/2$, $t = (w_t, h_t)/2$, $G = p_1 t_1 + p_2 t_2$, $H = p_1 t_2 + p_2 t_1$:", "F",
             "\\sqrt{\\cos^2\\varphi\\, G^2 + \\sin^2\\varphi\\, H^2}"),
        Step("The Bures term without cancellation, $K = (p_1^2 - p_2^2)(t_1^2 - t_2^2)$ (for $K < 0$: "
             "$(p_1 - t_2)^2 + (p_2 - t_1)^2 - 2\\cos^2\\varphi\\, K/(H + F)$):", "W^2 - \\|\\Delta\\|^2",
             "(p_1 - t_1)^2 + (p_2 - t_2)^2 + \\frac{2 \\sin^2\\varphi\\, K}{G + F}"),
        R.NORMALISATION_STEP,
    ]
    return R.rotated_spec(
        NAME, "GWD loss", "L = 1 - 1/(tau + f(W^2)), f = log1p (default) or sqrt, W^2 = |Delta|^2 + tr Sigma_p + "
        "tr Sigma_t - 2 tr((Sigma_p^1/2 Sigma_t Sigma_p^1/2)^1/2), each box the Gaussian N((cx, cy), R(angle) "
        "diag(w^2/4, h^2/4) R(angle)^T).",
        ["X. Yang et al., Rethinking Rotated Object Detection with Gaussian Wasserstein Distance Loss, "
         "arXiv:2101.11952"], PARAMS, {"f64": R.with_far_angles(kern), "f32": float32_kernel(kern32)}, steps,
        [R.rotation_plot("GWD loss"), R.slide_plot("GWD loss", note="W^2 grows with the squared offset (GWD is not "
                                                                    "scale invariant: lengths are in the boxes' units).")],
        CONVENTIONS, ACCURACY, checks, properties=Properties(scale_invariant=False))
