"""Varifocal Loss (Zhang et al., VarifocalNet, arXiv:2008.13367, eq. 2).

With p = sigma(x) and the IoU-aware classification target q in [0, 1] (the IoU of the box with
its ground truth for the true class, 0 otherwise):
    q > 0:  L = -q (q ln p + (1 - q) ln(1 - p)) = q CE(x, q),
    q = 0:  L = -alpha p^gamma ln(1 - p) = alpha sigma(x)^gamma softplus(x).
Peers write it as BCE(x, q) times a weight w = alpha p^gamma (1 - label) + q label; whether w
is differentiated is a convention (``detach_weight``): the paper's formula differentiated
exactly (default; ultralytics, mmdetection) or w held constant (RT-DETR, D-FINE).  The q = 0
branch is the sigmoid focal loss at the hard target 0 (alpha_t = alpha), whose accurate forms
(FocalCE) the kernels reuse.  d/dq at q = 0 is that of BCE(x, q) times the negatives' weight,
-alpha sigma(x)^gamma x (what the peers' autograd gives).
"""
import sympy as sp

from . import _logits
from refloss._derive.core import Branch, Kernel, LossSpec, Param, Plot, Step, Variant, prove_equal
from sympy.codegen.cfunctions import log1p

from refloss._derive.functions import Eval64, FocalCE, Group, LogitCE, PowG, ScaledSigmoidPow, Select, Sigmoid, Softplus, TwoSum, plain
from refloss._info import Properties

C = _logits.inputs("target")
NAME = "varifocal_loss"
alpha = sp.Symbol("alpha", real=True)
gamma = sp.Symbol("gamma", nonnegative=True)
det = sp.Symbol("detach_weight", nonnegative=True)
iw = sp.Symbol("iou_weighted", nonnegative=True)


def derive() -> LossSpec:
    checks = []
    x, q = C.x, C.y
    p = 1 / (1 + sp.exp(-x))
    ce = -(q * sp.log(p) + (1 - q) * sp.log(1 - p))
    pos_paper = -q * (q * sp.log(p) + (1 - q) * sp.log(1 - p))
    neg_paper = -alpha * p**gamma * sp.log(1 - p)
    dom = {**C.DOMAIN, alpha: (0, 1), gamma: (0, 4)}
    # positives: q CE(x, q) (iou_weighted = 0: mmdetection's iou_weighted=False, weight 1); the weight q detached
    # leaves q dCE/dq
    w_pos = iw * q + Group(1 - iw)  # (Group: 1 - iw formed first, 0 or 1, so that q is not added to 1)
    pos = w_pos * LogitCE(x, q)
    prove_equal(plain(pos.subs(iw, 1)), pos_paper, "q > 0: q CE(x, q) is the paper's -q (q ln p + (1 - q) ln(1 - p))",
                checks, domain=dom)
    d_pos_x = sp.diff(pos, x)
    # (a select, not det w dCE/dq + (1 - det) dpos/dq: the form not chosen overflows for logits below ~-9e307 (q x
    # beyond the range), and 0 * inf = NaN poisoned the chosen one: d/dq NaN at q = 1, detach_weight=True, a probe)
    d_pos_q = Select(det > 0, w_pos * sp.diff(LogitCE(x, q), q), sp.diff(pos, q))
    prove_equal(plain(d_pos_x.subs(iw, 1)), sp.diff(pos_paper, x), "q > 0: dL/dx (the weight q does not depend on "
                "x)", checks, domain=dom)
    prove_equal(plain(d_pos_q.subs({det: 0, iw: 1})), sp.diff(pos_paper, q), "q > 0: dL/dq, weight differentiated",
                checks, domain=dom)
    prove_equal(plain(d_pos_q.subs({det: 1, iw: 1})), q * sp.diff(ce, q), "q > 0: dL/dq, weight q held: q dCE/dq",
                checks, domain=dom)
    prove_equal(plain(pos.subs(iw, 0)), ce, "q > 0, iou_weighted=False: the cross-entropy CE(x, q) (weight 1)", checks,
                domain=dom)
    prove_equal(plain(d_pos_q.subs(iw, 0)), sp.diff(ce, q), "q > 0, iou_weighted=False: dL/dq = dCE/dq", checks,
                domain=dom)
    # negatives: the focal loss at the hard target 0 with alpha_t = alpha
    neg = FocalCE(x, sp.Integer(0), alpha, gamma)
    prove_equal(plain(neg), neg_paper, "q = 0: FocalCE(x, 0, alpha, gamma) is the paper's -alpha p^gamma ln(1 - p)",
                checks, domain=dom, numeric=True)
    weight = alpha * PowG(Sigmoid(x), gamma)
    d_neg_exact = sp.diff(FocalCE(x, q, alpha, gamma), x).subs(q, 0)  # FocalCEDx's hard form
    d_neg_held = weight * Sigmoid(x)  # w dCE/dx at q = 0
    prove_equal(plain(d_neg_exact), sp.diff(neg_paper, x), "q = 0: dL/dx, weight differentiated", checks,
                domain=dom, numeric=True)
    prove_equal(plain(d_neg_held), plain(weight) * sp.diff(ce, x).subs(q, 0), "q = 0: dL/dx, weight held: "
                "alpha sigma^gamma dCE/dx", checks, domain=dom)
    # (-alpha x) sigma^gamma with sigma^gamma from x, the factor between the halves of its exponential: a rounded
    # sigma raised to gamma, or a subnormal sigma^gamma times alpha x, kept 27 ULP64 at logit -12.7, gamma 14.1)
    d_neg_q = ScaledSigmoidPow(-alpha * x, x, gamma)
    prove_equal(plain(d_neg_q), (plain(weight) * sp.diff(ce, q)).subs(q, 0), "q = 0: dL/dq = alpha sigma^gamma "
                "dCE/dq", checks, domain=dom)
    neg_out = {"value": neg, "d_logits": det * d_neg_held + (1 - det) * d_neg_exact}
    # float64, the weight held: dL/dx = alpha sigma^(gamma+1), a rounded sigma raised to a power, kept 8.95 ULP at
    # logit -11.69 (bar 8, against the oracle); then as alpha e^s, s = (gamma+1)(min(x, 0) - log1p(e^-|x|)), where
    # log1p's rounding times gamma + 1 kept 13.2 ULP64 at gamma 16.1 (and gamma + 1's own rounding times |s|, up
    # to 45, 287 ULP64 at gamma 7.9).  Now sigma^g1 from x (ScaledSigmoidPow: e^(-g1 |x|) from g1 |x| split
    # error-free, d^-g1 corrected), gamma + 1 = g1 + g1_lo (TwoSum) and sigma^g1_lo = 1 - g1_lo softplus(-x)
    g1, g1_lo = TwoSum(gamma, sp.Integer(1), 0), TwoSum(gamma, sp.Integer(1), 1)
    held = ScaledSigmoidPow(alpha * (1 - g1_lo * Softplus(-x)), x, g1)
    prove_equal(plain(held), plain(d_neg_held), "float64 held dL/dx: alpha sigma^(gamma+1), gamma + 1 split in "
                "two", checks, domain={x: (-30, 30), alpha: (0, 1), gamma: (0, 4)}, numeric=True)
    kernels = {}
    for prec in ("f64", "f32"):
        if prec == "f64":
            # (beyond -2^100 the split of gamma |x| overflows float32's range for Veltkamp's constant: the old forms)
            branches = (
                Branch(sp.And(sp.Eq(q, 0), x > -sp.Integer(2)**100),
                       {"value": neg, "d_logits": det * held + (1 - det) * d_neg_exact, "d_target": d_neg_q},
                       "negative (q = 0)"),
                Branch(sp.Eq(q, 0), {**neg_out, "d_target": d_neg_q}, "negative, logit below -2^100 (or NaN)"),
                Branch(None, {"value": pos, "d_logits": d_pos_x, "d_target": d_pos_q}, "positive (q > 0)"),
            )
        else:
            # float32: the negatives in float32's own forms, sigma^gamma and sigma^(gamma+1) from x (until 2026-12-05
            # both gradients were evaluated in float64 everywhere, as a rounded sigma raised to a power kept 9.5 ULP
            # at logit -6.15, gamma 2); the positives' gradients in float64 (Eval64): differences that cancel near
            # the optimum sigma = q and at d/dq's root (for q = 1, x = 0.4812), rounded once
            branches = (
                Branch(sp.Eq(q, 0), {"value": neg, "d_logits": det * held + (1 - det) * d_neg_exact, "d_target": d_neg_q},
                       "negative (q = 0)"),
                # (sparse: a block of negatives, fewer than 1/16 positives, takes a loop without the positives'
                # statements: 1.3-1.45x faster, 23 -> 17 ms for 4e6 negatives; the float64 kernel's gain was 0.87-1.03x,
                # within its noise, for 5 s more compile: not there)
                Branch(None, {"value": pos, "d_logits": Eval64(d_pos_x), "d_target": Eval64(d_pos_q)}, "positive (q > 0)",
                       sparse=True),
            )
        kernels[prec] = Kernel(arrays=C.ARRAYS, args=(alpha, gamma, det, iw), prelude=(), branches=branches,
                               invalid=C.INVALID)
    xs, qs, ps = sp.Symbol("x", real=True), sp.Symbol("q", real=True), sp.Symbol("p")
    return LossSpec(
        name=NAME, title="Varifocal Loss",
        formula="L = -q*(q*log(p) + (1 - q)*log(1 - p)) for q > 0, -alpha*p**gamma*log(1 - p) for q = 0, "
        "p = sigmoid(x), for logits x and IoU-aware targets q in [0, 1]; detach_weight=True holds the weight "
        "(q, or alpha*p**gamma) constant in the gradient, as RT-DETR and D-FINE do; iou_weighted=False weights the "
        "positives by 1 (mmdetection's option).",
        references=["H. Zhang et al., VarifocalNet: An IoU-aware Dense Object Detector, arXiv:2008.13367 (eq. 2)",
                    "RT-DETR (W. Lv et al., arXiv:2304.08069) and D-FINE (Y. Peng et al., arXiv:2410.13842) train "
                    "with it, the weight detached"],
        # alpha at most 1 (the paper's down-weighting of the negatives; 0.75 there): alpha times a term below the
        # normal range (logits below about -87 in float32, -708 in float64) would lose its digits above 1 (float32,
        # alpha 1e3, logit -93.9: 500 ULP; 1e10 at -109.7: 0 for 2.35e-38); the claims are proved and swept in [0, 1]
        params=[Param("alpha", alpha, 0.75, "weight of the negatives (q = 0), 0 <= alpha <= 1", lower=sp.Integer(0),
                      upper=sp.Integer(1)),
                Param("gamma", gamma, 2.0, "focusing exponent on p for the negatives", lower=sp.Integer(0)),
                Param("detach_weight", det, False, "hold the weight (q on positives, alpha p^gamma on negatives) "
                      "constant in the gradient, as RT-DETR and D-FINE (False: the paper's formula differentiated, "
                      "as ultralytics and mmdetection)", kind="bool"),
                Param("iou_weighted", iw, True, "weight the positives by q (True, the paper) or by 1 (False, "
                      "mmdetection's iou_weighted=False: the plain cross-entropy to q)", kind="bool")],
        constants=[], kernels=kernels,
        variants=[Variant("vfl_weight_detached", "detach_weight=True (the weight under no_grad, RT-DETR, D-FINE)",
                          params={"detach_weight": True}),
                  Variant("vfl_weight_differentiated", "detach_weight=False (the paper's formula differentiated, "
                          "ultralytics, mmdetection)", params={"detach_weight": False})],
        steps=[Step("Varifocal Loss (eq. 2 of the paper) of the logit $x$, $p = \\sigma(x)$, against the IoU-aware "
                    "target $q \\in [0, 1]$ ($q > 0$ for the ground-truth class of a positive, $q = 0$ otherwise):",
                    "L", sp.Piecewise((-qs * (qs * sp.log(ps) + (1 - qs) * sp.log(1 - ps)), qs > 0),
                                      (-alpha * ps**gamma * sp.log(1 - ps), True))),
               Step("i.e. the binary cross-entropy $\\mathrm{CE}(x, q)$ weighted by $q$ on positives and by "
                    "$\\alpha p^\\gamma$ on negatives (where it is the sigmoid focal loss at the target 0, evaluated "
                    "in that loss's accurate forms):", "w",
                    sp.Piecewise((qs, qs > 0), (alpha * ps**gamma, True))),
               Step("Gradients with the weight differentiated (the paper's formula, detach_weight = False):",
                    "\\frac{\\partial L}{\\partial x}",
                    sp.Piecewise((qs * (ps - qs), qs > 0),
                                 (alpha * ps**gamma * (ps + gamma * (1 - ps) * sp.Symbol("\\mathrm{softplus}(x)")),
                                  True))),
               Step("", "\\frac{\\partial L}{\\partial q}",
                    sp.Piecewise((sp.Symbol("\\mathrm{CE}(x, q)") - qs * xs, qs > 0), (-alpha * ps**gamma * xs, True))),
               Step("With the weight held (detach_weight = True, RT-DETR, D-FINE): "
                    "$\\partial L/\\partial x = w\\,(p - q)$, $\\partial L/\\partial q = -w\\,x$.")],
        plots=[Plot("Varifocal Loss, negatives (q = 0)",
                    [(f"gamma = {g:g}", {"params": {"alpha": 0.75, "gamma": g}, "path": _logits.p_t_path(0.0)})
                     for g in (0.0, 1.0, 2.0)],
                    x_range=(0.02, 0.98), xlabel="p_t = 1 - p (probability of the background)",
                    grad_title="derivative dL/dp_t",
                    caption="Target q = 0, alpha = 0.75: the negatives' BCE is down-weighted by alpha p^gamma, the "
                    "more the more confident the background.")],
        conventions="q > 0 and q = 0 are two formulas: the loss is discontinuous in q at 0 (the limit q -> 0+ is 0, "
        "the value at q = 0 is alpha p^gamma softplus(x)); d/dq at q = 0 is alpha p^gamma dCE/dq = -alpha p^gamma x, "
        "what the peers' autograd gives for BCE(x, q) times their weight. detach_weight=False (default) "
        "differentiates the paper's formula, weights included (ultralytics' VarifocalLoss; mmdetection's "
        "varifocal_loss, whose alpha |p - q|^gamma equals alpha p^gamma on the negatives); detach_weight=True "
        "holds the weight constant (RT-DETR's and D-FINE's loss_labels_vfl compute it from a detached "
        "sigmoid). Targets outside [0, 1] are invalid input.",
        accuracy="Positives: q (q softplus(-x) + (1 - q) softplus(x)); negatives: alpha l e^g d^-g (x < 0) or "
        "alpha (x + l) d^-g (x >= 0), e = exp(-|x|), d = 1 + e, l = log1p(e), as the sigmoid focal loss at "
        "the target 0: no overflow and no cancellation for logits of any magnitude, e^g from g |x| split error-free "
        "(pow(e, g) multiplied e's rounding by g: float64 9 ULP64 at gamma 11.6). dL/dq on the negatives, "
        "-alpha x sigma(x)^gamma, takes sigma(x)^gamma from x in the same way, the exponential halved and squared "
        "with -alpha x d^-g between (a subnormal sigma^gamma times alpha x, or a rounded sigma raised to gamma, "
        "kept 27 ULP64 at logit -12.7, gamma 14.1, and 315 ULP at x = -362 before the far form below -45). With the "
        "weight held, dL/dx on the negatives is alpha sigma(x)^(gamma + 1), a rounded sigma raised to a power whose "
        "error the power multiplies (float32 9.5 ULP at logit -6.15, gamma = 2; float64 8.95 at -11.69): formed "
        "from x as above, with gamma + 1 split in two (TwoSum; its rounding times |x| kept 287 ULP64 at gamma 7.9, "
        "logit -43.7). The float32 kernel evaluates the negatives in float32 (until 2026-12-05 both gradients in "
        "float64, for the rounded powers these forms replace) and the positives' gradients in float64 (inputs "
        "widened exactly, each result rounded once): they cancel near the optimum sigma = q. At q = 1, dL/dq = softplus(-x) - x crosses zero at x = ln((1 + sqrt 5)/2) = 0.4812, a difference of "
        "terms that each keep their digits: near it the error in ULPs of the result is unbounded (absolute, about "
        "an ulp of softplus(-x)), as for the focal losses' dL/dtarget. exp, log1p and the powers are printed "
        "(refloss/_derive/expo.py, no libm call: the CPU loops vectorise), libm's only in the arms beyond the "
        "exponential's range (gamma |x| past 1500, float32 220), which the vectorised loops leave to the scalar kernel.",
        checks=checks, input_ranges=C.INPUT_RANGES, family="classification",
        properties=Properties(true_derivative={"detach_weight": False}))
