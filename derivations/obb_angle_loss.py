"""The angle loss of ultralytics' oriented-box (OBB) training, v8OBBLoss.calculate_angle_loss (ultralytics
8.4, beside ProbIoU and DFL, gain ``angle``), on rotated boxes (cx, cy, w, h, angle):

    L = exp(-ln^2(w_t/h_t) / lambda^2) sin^2(2 phi),  phi = angle_p - angle_t,

sin^2(2 phi) penalises the angle difference with period pi/2 (a box turned by pi/2 with w and h swapped is the
same box; ultralytics also wraps phi to [-pi/2, pi/2] first, which changes nothing but rounding), and the
weight exp(-ln^2(w_t/h_t)/lambda^2) (lambda = 3 in ultralytics) fades the term out for targets far from square,
whose angle ProbIoU already fixes.  ultralytics adds 1e-9 to w_t and h_t (the parameter eps).

sin(2 phi) is formed from phi = pa - ta rounded plus its rounding error (TwoSum, as the Gaussian losses):
sin(2 phi) = sin(2 hi) cos(2 lo) + cos(2 hi) sin(2 lo) (2 hi and 2 lo are exact), and the gradient's cos(2 phi)
likewise, so no digit is lost to the difference of two large angles nor to c^2 - s^2 near phi = pi/4.
"""
import sympy as sp
from sympy.codegen.cfunctions import log1p

from . import _rotated as R
from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import Param, Step, prove_equal
from refloss._derive.functions import (HAND_RULES, CosSmall, Group, HandDiff, Select, SinSmall, SmallestNormal, Sub,
                                      plain)
from refloss._info import Properties

NAME = "obb_angle_loss"
lam = sp.Symbol("lam", positive=True)
eps = sp.Symbol("eps", nonnegative=True)

_hi, _lo = R._phi_hi, R._phi_lo
SIN_2PHI = sp.sin(2 * _hi) * CosSmall(2 * _lo) + sp.cos(2 * _hi) * SinSmall(2 * _lo)
W, H = Group(R.tw + eps), Group(R.th + eps)
# ln(w/h): log1p((w - h)/h) for 1/2 <= w/h <= 2, where w - h is exact (ln of the rounded ratio would be off by
# eps absolute, eps/|ln(w/h)| relative: 107 ULP of d/dh_t in float32 at w/h = 1.004), ln of the ratio elsewhere;
# both exactly scale invariant.  Differentiated as dw/w - dh/h: the chain rule through the ratio gives w/h^2,
# whose h^2 underflows for sides below 1e-154 (0/0 for a point target with a tiny eps)
_RULE = 17  # (keys 1-4 are _boxes', 15 inner_iou_loss's, 16 and 19 alpha_iou_loss's)
_RATIO = Group(W / H)
NEAR_SQUARE = sp.And(_RATIO >= sp.Rational(1, 2), _RATIO <= 2)
LOG_RATIO_NEAR = HandDiff(log1p(Group(Sub(W, H) / H)), _RULE)
# ln w - ln h where the ratio overflows or is not a normal number (w_t 1e20, h_t 1e-19 in float32: the ratio inf
# gave the weight's limit 0 where the weight is 0.79 at lam = 100; a probe, 2026-12-07): there |ln(w/h)| > 87,
# so the two logs' roundings stay within a few ulps of the difference; the ratio's log elsewhere
_RATIO_NORMAL = sp.And(_RATIO >= SmallestNormal(), _RATIO < sp.oo)
LOG_RATIO = HandDiff(Select(_RATIO_NORMAL, sp.log(_RATIO), sp.log(W) - sp.log(H)), _RULE)
HAND_RULES[_RULE] = lambda s: sp.diff(W, s) / W - sp.diff(H, s) / H


def loss(log_ratio, sin_2phi=SIN_2PHI):
    """The loss with ln(w/h) evaluated as ``log_ratio``; ln(w/h)/lambda first: lambda^2 of a tiny lambda would
    underflow (0/0 for a square target)."""
    return sp.exp(-Group(log_ratio / lam)**2) * sin_2phi**2


LOSS = loss(LOG_RATIO)
# angles far apart: pa - ta or 2 phi overflows (a review, 2026-12-07: NaN value and gradients at pa = 1e308, ta = 0.2;
# float32 3e38); sin 2 phi = 2 sin phi cos phi from phi/2 (derivations/_rotated.py), in a rare branch
SIN_2PHI_FAR = 2 * R.SIN_PHI_FAR * R.COS_PHI_FAR


def derive():
    checks = []
    phi = R.pa - R.ta
    prove_equal(plain(SIN_2PHI), sp.sin(2 * phi), "sin(2 phi) from the rounded difference and its rounding error is "
                "sin(2 (pa - ta))", checks, domain=R.DOMAIN, numeric=True)
    textbook = sp.exp(-sp.log((R.tw + eps) / (R.th + eps))**2 / lam**2) * sp.sin(2 * phi)**2
    for form, which in ((LOSS, "ln of the ratio"), (loss(LOG_RATIO_NEAR), "log1p((w - h)/h)")):
        prove_equal(plain(form), textbook, f"the evaluated form ({which}) is ultralytics' exp(-ln^2(w/h)/lambda^2) "
                    "sin^2(2 phi)", checks, domain={**R.DOMAIN, lam: (1, 4), eps: (0, 1)}, numeric=True)
    prove_equal(plain(sp.diff(LOSS, R.pa)), plain(2 * sp.exp(-(LOG_RATIO / lam)**2) * sp.sin(4 * phi)),
                "dL/d angle_p = 2 exp(-ln^2(w/h)/lambda^2) sin(4 phi)", checks,
                domain={**R.DOMAIN, lam: (1, 4), eps: (0, 1)}, numeric=True)
    zero_w, zero_h = sp.Eq(R.tw + eps, 0), sp.Eq(R.th + eps, 0)
    branches = [
        # exp(-746) is 0 in float64 (and float32): q**2 > 746 is where the weight underflows; q may be inf (tiny lam).
        # First, so that its log prints as refloss/_derive/expo.py's statements (a later branch's condition prints
        # whole, with libm's log, which kept the loop scalar): a ratio of 0 or inf (a side of 0, or w/h beyond the
        # float range) gives q^2 = inf here, the next branch's result 0; a point target's ratio 0/0 is NaN, the
        # comparison false, and the next branch gives NaN
        (Group(LOG_RATIO / lam)**2 > 746, sp.Integer(0), sp.Integer(0),
         "the weight underflows (q^2 > 746, q = ln(w/h)/lam; a ratio w/h of 0 or inf too): 0, every derivative too "
         "(inf * 0 otherwise, for a tiny lam)"),
        (sp.And(zero_w, zero_h), sp.nan, sp.nan, "a point target (w_t + eps = h_t + eps = 0): w/h undefined, NaN"),
        # a side of 0: taken above already (ln 0 = -inf); kept for the scalar kernels that print libm's log
        (sp.Or(zero_w, zero_h), sp.Integer(0), sp.Integer(0),
         "a target side (plus eps) of 0: the weight's limit 0, with every derivative"),
        (NEAR_SQUARE, loss(LOG_RATIO_NEAR), loss(LOG_RATIO_NEAR), "1/2 <= w/h <= 2: ln(w/h) = log1p((w - h)/h)"),
        (None, LOSS, LOSS, "ln(w/h) of the ratio"),
    ]
    prove_equal(plain(SIN_2PHI_FAR), sp.sin(2 * phi), "sin(2 phi) = 2 sin(phi) cos(phi), phi/2 = pa/2 - ta/2 as its "
                "rounded difference and rounding error (the angles far apart)", checks, domain=R.DOMAIN, numeric=True)
    kerns = {}
    for p in ("f64", "f32"):
        far = R.angles_far(p)
        # (before the common branches, after the constant ones: the weight's underflow and the zero sides hold there)
        rare = [(sp.And(far, NEAR_SQUARE), loss(LOG_RATIO_NEAR, SIN_2PHI_FAR), loss(LOG_RATIO_NEAR, SIN_2PHI_FAR),
                 "angles far apart (|pa/2 - ta/2| beyond the range's 2 phi), 1/2 <= w/h <= 2", True, True),
                (far, loss(LOG_RATIO, SIN_2PHI_FAR), loss(LOG_RATIO, SIN_2PHI_FAR),
                 "angles far apart, ln(w/h) of the ratio", True, True)]
        # (the float32 kernel's forms are the float64 one's but for the far branches' bound: their proofs listed once)
        kerns[p] = kernel_from_forms(R.ARRAYS, branches[:3] + rare + branches[3:], args=(lam, eps), invalid=R.INVALID,
                                     checks=checks if p == "f64" else [], numeric_proof=True, domain={**R.DOMAIN, lam: (1, 4), eps: (0, 1)})
    params = [Param("lam", lam, 3.0, "lambda of the aspect-ratio weight exp(-ln^2(w_t/h_t)/lambda^2) "
                                     "(ultralytics' lambda_val = 3)", lower=sp.Integer(0), lower_closed=False),
              Param("eps", eps, 0.0, "added to the target's w and h before their ratio (ultralytics: 1e-9); "
                                     "0 = the exact formula", lower=sp.Integer(0))]
    phi_s, w_s, h_s, lam_s = sp.symbols("\\varphi w_t h_t \\lambda")
    steps = [
        Step("The loss of the angle difference $\\varphi = \\theta_p - \\theta_t$, weighted by how square the "
             "target is:", "L", sp.exp(-sp.log(w_s / h_s)**2 / lam_s**2) * sp.sin(2 * phi_s)**2),
        Step("$\\sin 2\\varphi$ from the rounded difference $\\varphi_{hi}$ and its rounding error "
             "$\\varphi_{lo}$ (TwoSum; $2\\varphi_{hi}$ and $2\\varphi_{lo}$ are exact; the addition theorem):",
             "\\sin 2\\varphi",
             "\\sin 2\\varphi_{hi} \\cos 2\\varphi_{lo} + \\cos 2\\varphi_{hi} \\sin 2\\varphi_{lo}"),
        Step("Its derivative in either angle is $\\pm 2 W \\sin 4\\varphi$, $W$ the weight above, "
             "evaluated as $4 \\sin 2\\varphi \\cos 2\\varphi$ with both factors formed as above; the target's "
             "$w_t$ and $h_t$ get the weight's derivative, $\\mp 2 \\ln(w_t/h_t) / (\\lambda^2 w_t)$ times $L$ "
             "($h_t$: the opposite sign, over $h_t$)."),
    ]
    return R.rotated_spec(
        NAME, "OBB angle loss (ultralytics)",
        "L = exp(-ln(w_t/h_t)**2 / lam**2) * sin(2*(angle_p - angle_t))**2, boxes (cx, cy, w, h, angle in radians); "
        "ultralytics' v8OBBLoss angle term (lam = 3, eps = 1e-9 added to w_t and h_t).",
        ["ultralytics 8.4, ultralytics/utils/loss.py, v8OBBLoss.calculate_angle_loss (the angle term beside "
         "ProbIoU, arXiv:2106.06072, and DFL, arXiv:2006.04388)"],
        params, kerns, steps,
        [R.rotation_plot("OBB angle loss", note="The weight exp(-ln^2(w/h)/9) is 1 for the square, 0.95 for 2 x 1, "
                                                "0.79 for 4 x 1.")],
        "Only the angles and the target's w and h enter; the centres and the prediction's size get gradient 0. "
        "A target side (plus eps) of 0 gives 0 (the weight's limit) with gradient 0, and so does a weight that "
        "underflows (|ln(w_t/h_t)|/lam > 27.3, where exp(-746) is 0 in either precision: the weight's derivatives "
        "underflow with it unless lam w_t or lam h_t is itself tiny, and d/dw_t = -L 2q/(lam w_t) exceeds float64's range, "
        "+-inf, where w_t + eps is subnormal and the weight is not negligible); a point target gives NaN.",
        "sin(2 phi) and cos(2 phi) from phi's TwoSum (no digits lost for large angles or near phi = pi/4); the "
        "weight from ln(w_t/h_t) as log1p((w_t - h_t)/h_t) (w_t - h_t exact) for 1/2 <= w_t/h_t <= 2, the log of the "
        "ratio elsewhere, divided by lambda and squared; that exponent e is rounded, a relative "
        "error of about eps (1 + e) in the value (1.9e-14 for w/h = 1e12, lambda = 3, where the weight is 1e-37).",
        checks, gaussian=False, properties=Properties(symmetric_when=None))
