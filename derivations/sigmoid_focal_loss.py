"""Sigmoid focal loss (Lin et al., RetinaNet, arXiv:1708.02002), soft targets allowed.

With p = sigma(x), p_t = p y + (1 - p)(1 - y), alpha_t = alpha y + (1 - alpha)(1 - y):
L = alpha_t (1 - p_t)^gamma CE(x, y), CE = softplus(x) - x y.  1 - p_t is evaluated as
y sigma(-x) + (1 - y) sigma(x), a sum of non-negative terms (no cancellation as p_t -> 1).
alpha = None (or negative, as torchvision) disables the alpha_t weighting.
"""
import dataclasses

import sympy as sp

from . import _logits as C
from refloss._derive.core import Branch, Kernel, LossSpec, Param, Step, prove_equal
from sympy.codegen.cfunctions import log1p

from refloss._derive.functions import Eval64, EvalAccurate, FocalCE, Quot, FocalCEDx, FocalCEDy, Group, LogitCE, OneMinusPt, PowG, Select, TwoProd, TwoSum, plain

NAME = "sigmoid_focal_loss"
alpha = sp.Symbol("alpha", real=True)
gamma = sp.Symbol("gamma", nonnegative=True)


def _prove_hard_forms(checks):
    """The hard-target forms FocalCE and its derivatives print (with a = 1; a is a factor),
    in the signed logit z = x (y = 0) or -x (y = 1), t = |z|, e = exp(-t), d = 1 + e, l = log1p(e),
    proved against the derivatives of the general form at that target."""
    x, y, g = C.x, C.y, gamma
    general = plain(LogitCE(x, y) * PowG(OneMinusPt(x, y), g))
    for v in (0, 1):
        s = 1 - 2 * v
        z = s * x
        for side, dom in (("z < 0", (-4, 0)), ("z > 0", (0, 4))):
            t = -z if side == "z < 0" else z
            e = sp.exp(-t)
            d = 1 + e
            lg = sp.log(1 + e)
            om = 1 - e
            if side == "z < 0":
                value, dz, r = lg * e**g * d**-g, e**g * d**-(g + 1) * (e + g * lg), -(t + g * (lg / e) * om)
                pw = e**g * d**-g
            else:
                value, dz, r = (z + lg) * d**-g, d**-(g + 1) * (1 + g * (z + lg) * e), z + g * (z + lg) * om
                pw = d**-g
            forms = ((value, general.subs(y, v), "the value"), (s * dz, sp.diff(general, x).subs(y, v), "d/dx"),
                     (-s * pw * r, sp.diff(general, y).subs(y, v), "d/dy"))
            xdom = {x: dom if s > 0 else (-dom[1], -dom[0]), g: (0, 5)}
            for a, b, what in forms:
                prove_equal(a, b, f"hard target {v}, {side}: {what} form of FocalCE", checks, domain=xdom, numeric=True)


def _hard_branches(alpha_t, limit, checks):
    """The hard targets 0 and 1 as branches in the signed logit z = s x, s = 1 - 2y (their forms are the
    same in z: at y = 1, CE(x, 1) = softplus(-x) = CE(-x, 0) and 1 - p_t = sigma(-x) = sigma(z)), with the
    weight a = alpha_t (or 1, alpha None) and its derivative da = 2 alpha - 1 (or 0) as selects on alpha: so that
    the CPU block loops evaluate one branch for both targets and both weightings, and LLVM vectorises it.

    value = FocalCE(z, 0, a, g), d/dx = s FocalCEDx(z, 0, a, g), and d/dy = da F + s FocalCEDy(z, 0, a, g), F the
    unweighted loss FocalCE(z, 0, 1, g); two forms of d/dy replace the last where it loses digits:

    - *the far tail* z < -limit (a sparse branch: rare in a block with few of them, vectorised in a block of them):
      d/dy = da F + a s e^(gamma z) (gamma - z).
      There 1 - p_t = sigma(z) is e^z to the precision, and the hard form's d/dy, a multiple of sigma(z)^gamma,
      took it from e = e^z, subnormal from z = -708 (float32 -87) though the result e^(gamma z) |z| is normal far
      beyond for gamma < 1 (float32, gamma 0.5: 5.7e6 ULP at logit -103.97, float64 1e15 ULP at -744).  Exactly,
      d/dy of CE (1 - p_t)^gamma at a hard target is s sigma(z)^gamma (-z - gamma r tanh(z / 2)),
      r = CE / sigma(z) = (1 + e^-z) log(1 + e^z): the far-tail form drops (1 + e^z)^-gamma, r and -tanh(z / 2),
      each 1 + O((1 + gamma) e^z), below float64's rounding from z = -45 and float32's from -20 (for gamma up to
      3.8e3 and 29).
    - *the wrong side* z > 1, alpha weighting on (a select in the common branch): d/dy = F (c1 - k (l/(z + l) +
      gamma u)), u = e^-z, l = log(1 + u), k = -s alpha_t, c1 = -s (alpha_t (3 + gamma) - 1).  There d/dy is a
      difference of two terms of size z F, and their leading parts cancel exactly where alpha_t (3 + gamma) = 1
      (alpha 0.25, gamma 1, target 1): the result, -alpha (l + (z + l) u) sigma(z)^gamma there, is e^-z smaller
      than the terms, and float64 lost every digit (7e15 ULP at logit -40).  This form cancels the leading parts
      analytically: c1 is formed from the parameters with 3 + gamma and alpha_t (3 + gamma) split error-free
      (TwoSum, TwoProd) so that alpha_t (3 + gamma) - 1 is exact before it is rounded; what is left cancels only
      at the roots of d/dy.  Below z = 1 the hard form is kept: the leading parts are of size z there and cannot
      cancel far, while this form would cancel near the root at z = 0 that alpha 0.5 gives (22 ULP64 at z = 0.01).

    d/dy is written as a sum of two terms, each a select between the two forms' terms, so that the float32
    kernel's check of their cancellation (``Kernel.wide``) sees the terms of the form it takes.  Every form is
    proved against the derivatives of the general form at y = 0 and 1, weighted and not."""
    x, y, g = C.x, C.y, gamma
    s = 1 - 2 * y
    weighted = alpha >= 0

    def forms(z, a, da):
        f = FocalCE(z, sp.Integer(0), 1, g)
        main = (da * f, s * FocalCEDy(z, sp.Integer(0), a, g))
        # the wrong side (alpha_t weighting): c1 from 3 + gamma and alpha_t (3 + gamma) split error-free
        three = TwoSum(sp.Integer(3), g, 0)
        c1 = -s * (Group(TwoProd(alpha_t, three, 0) - 1)
                   + Group(TwoProd(alpha_t, three, 1) + alpha_t * TwoSum(sp.Integer(3), g, 1)))
        u = sp.exp(-sp.Abs(z))  # (e^-z for z > 0: the e = e^-|z| and l = log1p(e) of the forms above, shared)
        lg = log1p(u)
        wrong = (f * c1, s * alpha_t * f * (lg / (z + lg) + g * u))
        # (the split 3 + gamma and alpha_t (3 + gamma) stay finite: Veltkamp, below ~2^115 in float32)
        side = sp.And(weighted, z > 1, g < sp.Integer(2) ** 60)
        return {"value": FocalCE(z, sp.Integer(0), a, g), "d_x": s * FocalCEDx(z, sp.Integer(0), a, g), "main": main,
                "wrong": wrong, "d_y": sp.Add(*(Select(side, w, m) for w, m in zip(wrong, main)), evaluate=False),
                "far": _far_signed(da * f, a, C.exp_scaled(g, z, s * (g - z)))}

    z_form, a_form, da_form = s * x, Select(weighted, alpha_t, 1), Select(weighted, sp.diff(alpha_t, y), 0)
    fm = forms(z_form, a_form, da_form)
    value, d_x, main, wrong, far = fm["value"], fm["d_x"], fm["main"], fm["wrong"], fm["far"]
    # the definitions: the general form, weighted (alpha in (0, 1)) and not (alpha None: the unweighted form)
    general = {True: FocalCE(x, y, alpha_t, g), False: FocalCE(x, y, 1, g)}
    for v in (0, 1):
        sv = 1 - 2 * v
        for w in (True, False):
            at = {y: v} if w else {y: v, alpha: -1}
            gen = general[w]
            dom = {x: (-4, 4), g: (0, 5), alpha: (0, 1)}
            what = f"target {v}, {'alpha_t weighting' if w else 'alpha None'}"
            for form, ref, name in ((value, gen, "the value"), (d_x, sp.diff(gen, x), "d/dx"),
                                    (sum(main), sp.diff(gen, y), "d/dy")):
                prove_equal(plain(form.subs(at)), plain(ref).subs(at), f"hard {what}: {name} in z = (1 - 2y) x",
                            checks, domain=dom, numeric=True)
            # the far tail: the exact d/dy with the factors 1 + O((1 + gamma) e^z) q, r, t dropped
            q, r, t = sp.symbols("q r t", positive=True)
            zv = sv * x
            a_v, da_v = (alpha_t.subs(y, v), sp.diff(alpha_t, y)) if w else (1, 0)
            tail = da_v * plain(FocalCE(zv, sp.Integer(0), 1, g)) + a_v * sv * q * sp.exp(g * zv) * (g * r * t - zv)
            exact = tail.subs({q: (1 + sp.exp(zv)) ** -g, r: (1 + sp.exp(-zv)) * sp.log(1 + sp.exp(zv)),
                               t: -sp.tanh(zv / 2)})
            tdom = {x: (-30, -1) if v == 0 else (1, 30), g: (sp.Rational(1, 20), 4), alpha: (0, 1)}
            prove_equal(exact, plain(sp.diff(gen, y)).subs(at), f"hard {what}, far tail: d/dy = da CE sigma(z)^gamma "
                        "+ a s sigma(z)^gamma (-z - gamma r tanh(z/2))", checks, domain=tdom, numeric=True)
            prove_equal(plain(far.subs(at)), tail.subs({q: 1, r: 1, t: 1}), f"hard {what}, far tail: the form is the "
                        "exact one with the factors 1 + O((1 + gamma) e^z) dropped", checks, domain=tdom, numeric=True)
            if w:
                sdom = {x: (1, 30) if v == 0 else (-30, -1), g: (sp.Rational(1, 20), 4), alpha: (0, 1)}
                prove_equal(plain(sum(wrong).subs(at)), plain(sp.diff(gen, y)).subs(at), f"hard {what}, z > 1: d/dy "
                            "= F (c1 - k (l/(z + l) + gamma u)), c1 = -s (alpha_t (3 + gamma) - 1)", checks,
                            domain=sdom, numeric=True)
    # the kernel's forms in z, a and da computed once before the branches (the prelude), so that the value's
    # and the gradients' programs share the signed logit's exp, log1p and powers
    z, a, da = sp.Symbol("z", real=True), sp.Symbol("a_t", real=True), sp.Symbol("da_t", real=True)
    fm = forms(z, a, da)
    hard = sp.Or(sp.Eq(y, 0), sp.Eq(y, 1))
    outputs = {"value": fm["value"], "d_logits": fm["d_x"]}
    # the far tail first (beyond -limit, and above -2^100, where gamma |z| splits; NaN takes the common branch): sparse,
    # easy negatives late in training fill whole blocks (value and gradients, float32, logits N(-60, 1): 417 -> 36 ms)
    return ((z, z_form), (a, a_form), (da, da_form)), [
        Branch(sp.And(hard, z < -limit, z > -sp.Integer(2) ** 100), {**outputs, "d_targets": fm["far"]},
               "hard target 0 or 1, far tail", sparse=True),
        Branch(hard, {**outputs, "d_targets": fm["d_y"]}, "hard target 0 or 1")]


def _far_signed(weight_term, a, tail):
    """The far tail's d/dy, weight_term + a tail (weight_term = da F, tail = s e^(gamma z) (gamma - z)), with the
    sign of the exact value where both terms underflow to zero: their sum of a +0 and a -0 is +0, and at the target 1
    (tail < 0) d/dy was +0 where it is negative (alpha None, alpha >= 1/2; both dtypes, logits from about 745/gamma,
    float32 104/gamma). There the sign is the tail's where a > 0 (da F is the smaller term unless a is tiny, and
    then the two terms have the same sign) or, where a = 0 (alpha 0 or 1 at one target), the weight term's alone."""
    total = weight_term + a * tail
    return Select(sp.Ne(total, 0), total, Select(sp.Eq(a, 0), weight_term, a * tail))


def _tiny_target_branch(alpha_t, checks):
    """The float64 kernel's soft targets below 2^-64 at logits below -64 (a rare branch): there 1 - p_t = m is about
    y (1 + rho) (q = e^x/y, rho = (1 - y) q) and CE about y (|x| + q), tiny, and m^gamma underflowed where the outputs
    do not (y ~ 1e-170 at logits below about -1e20: d/dtarget lost its -x m^gamma term, a third of it at gamma = 2;
    float32's float64 evaluation has the range).  Each output is m^gamma times a factor, formed as sign(b)
    e^(gamma ln m + ln|b|) with ln m = ln y + ln(1 + rho) - ln(1 + e^x) from the inputs: value a m^gamma y (-x + L),
    d/dx = a m^gamma (y/c) (gamma q (1 - 2y)(-x + L)/(1 + rho) - (1 - rho)), d/dy = m^gamma (da y (-x + L) +
    a (gamma (1 - e^x)(-x + L)/(1 + rho) - x)), c = 1 + e^x, L = ln(c)/y (the kernel: c = 1, L = q, 1 - e^x = 1:
    factors 1 + O(e^x), below 2^-92 there)."""
    x, y, g = C.x, C.y, gamma
    # the weight and its derivative: the prelude's a_t and da_t (_hard_branches: alpha_t and 2 alpha - 1, or 1 and 0)
    a, da = sp.Symbol("a_t", real=True), sp.Symbol("da_t", real=True)

    def forms(exact):
        lny, q, rho, c, L = C.tiny_target_parts(x, y, exact)
        u = -x + L
        ln_m = lny + sp.log(1 + rho) - sp.log(c)
        one_minus_e = 1 - sp.exp(x) if exact else 1
        return {"value": a * C.signed_exp(g * ln_m + lny, u),
                "d_logits": a * C.signed_exp(g * ln_m + lny - sp.log(c),
                                             g * Quot(q, 1 + rho) * (1 - 2 * y) * u - (1 - rho)),
                "d_targets": C.signed_exp(g * ln_m, da * y * u + a * (g * one_minus_e * Quot(u, 1 + rho) - x))}
    exact = forms(True)
    general = FocalCE(x, y, alpha_t, g)
    for w in (True, False):
        at = {a: alpha_t, da: sp.diff(alpha_t, y)} if w else {a: 1, da: 0}
        ref = general if w else FocalCE(x, y, 1, g)
        dom = {x: (-30, -1), y: (0, 1), g: (0, 5), alpha: (0, 1)}
        for o, want in (("value", ref), ("d_logits", sp.diff(ref, x)), ("d_targets", sp.diff(ref, y))):
            what = "alpha_t weighting" if w else "alpha None"
            prove_equal(plain(exact[o].subs(at)), plain(want), f"tiny target, {what}: {o} = sign(b) "
                        "e^(gamma ln m + ln|b|), ln m = ln y + ln(1 + rho) - ln(1 + e^x)",
                        checks, domain=dom, numeric=True)
    # (0 < y: a negative target, validate=False, keeps the common forms (its logs would be NaN: a review))
    return Branch(sp.And(y > 0, y < C.TINY_TARGET, x < C.TINY_LOGIT),  # (after the hard targets' branches: soft)
                  {o: EvalAccurate(v) for o, v in forms(False).items()}, "soft target below 2^-64, logit below -64",
                  True, libm=True)


# soft targets, float64: from this gamma on, double-double with ~100-bit functions (see _soft_one_precision_up)
ACCURATE_FROM = sp.Integer(4)


def _soft_one_precision_up(kernel, accurate_from=None):
    """``kernel`` with the outputs of its soft-target branches evaluated one precision up and rounded once
    (Eval64: float64 in the float32 kernel, double-double in the float64 one): there the general form rounds
    sigma(x) and 1 - p_t and raises them to the power gamma, and the soft-target sweep found d/dlogits 8.86
    ULP32 at logit 9.5006, target 0.26215 (bar 8; 8.02 before the product's order was changed for the far
    logits), and 8.86 ULP64 at -7.0717, target 0.28854 (the value 8.52 at 1.7225, 0.99851).  The hard targets
    keep their forms.  ``accurate_from``: from this gamma on, the float64 kernel's double-double takes exp, log,
    log1p and the logistic functions to ~100 bits (EvalAccurate): from float64's roundings of sigma and 1 - p_t,
    (1 - p_t)^gamma kept an error that grows with gamma (a probe, 2026-12-07: 11.5 ULP64 at gamma 8, 47 at 40, 137
    at 100; bar 8)."""
    branches = []
    for b in kernel.branches:
        if "hard target" in b.label:
            branches.append(b)
            continue
        if accurate_from is not None:
            branches.append(dataclasses.replace(
                b, condition=sp.And(gamma >= accurate_from, *([b.condition] if b.condition is not None else [])),
                outputs={o: EvalAccurate(v) for o, v in b.outputs.items()}, label=f"{b.label}, gamma >= {accurate_from}"))
        branches.append(dataclasses.replace(b, outputs={o: Eval64(v) for o, v in b.outputs.items()}))
    return dataclasses.replace(kernel, branches=tuple(branches))


def derive() -> LossSpec:
    checks = []
    x, y = C.x, C.y
    p = 1 / (1 + sp.exp(-x))
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    ce = LogitCE(x, y)
    m = OneMinusPt(x, y)
    prove_equal(plain(m), 1 - p_t, "1 - p_t = y sigma(-x) + (1 - y) sigma(x)", checks, domain=C.DOMAIN)
    for arg, name in ((x, "x"), (y, "y")):
        prove_equal(plain(sp.diff(m, arg)), sp.diff(1 - p_t, arg), f"the evaluated d(1 - p_t)/d{name} is the derivative",
                    checks, domain=C.DOMAIN)
    prove_equal(plain(FocalCE(x, y, alpha_t, gamma)), plain(alpha_t * ce * PowG(m, gamma)),
                "FocalCE(x, y, alpha_t, gamma) is alpha_t CE (1 - p_t)^gamma", checks, domain=C.DOMAIN)
    _prove_hard_forms(checks)
    weighted = FocalCE(x, y, alpha_t, gamma)
    unweighted = FocalCE(x, y, 1, gamma)
    # soft targets (0 < y < 1): the general form, its derivatives SymPy's, one precision up
    # (_soft_one_precision_up); rare branches, left to the scalar kernel by the CPU block loops
    soft = C.logits_kernel([(alpha < 0, unweighted, unweighted, "soft target, alpha None or negative: no alpha_t "
                             "weighting"), (None, weighted, weighted, "soft target, alpha_t weighting")],
                           args=(alpha, gamma), checks=checks)
    soft = [dataclasses.replace(b, rare=True) for b in soft.branches]

    def kernel(limit, claims):
        prelude, hard = _hard_branches(alpha_t, limit, claims)
        return Kernel(arrays=C.ARRAYS, args=(alpha, gamma), prelude=prelude, branches=(*hard, *soft), invalid=C.INVALID)

    # float64: the tiny soft targets first (after the hard ones), each output from the logs of its factors
    f64 = _soft_one_precision_up(kernel(45, checks), accurate_from=ACCURATE_FROM)
    hard_count = sum("hard target" in b.label for b in f64.branches)
    f64 = dataclasses.replace(f64, branches=(*f64.branches[:hard_count], _tiny_target_branch(alpha_t, checks),
                                             *f64.branches[hard_count:]))
    return LossSpec(
        name=NAME, title="Sigmoid focal loss",
        formula="L = alpha_t * (1 - p_t)**gamma * CE(x, y), p = sigmoid(x), p_t = p*y + (1-p)*(1-y), "
        "alpha_t = alpha*y + (1-alpha)*(1-y); alpha=None or negative: no alpha_t (as torchvision).",
        references=["T.-Y. Lin et al., Focal Loss for Dense Object Detection, arXiv:1708.02002",
                    "torchvision.ops.sigmoid_focal_loss"],
        # alpha above 1 is refused (as torchvision does): 1 - alpha would weight the negatives by a negative number,
        # and alpha times a term below the normal range (logits beyond about 87 in float32, 708 in float64) loses its
        # digits (float32, alpha 1e3, logit -93.9: 500 ULP); the claims are proved and swept for alpha in [0, 1]
        params=[Param("alpha", alpha, 0.25, "weight of the positive class, at most 1 (1 - alpha weights the "
                      "negatives); None or negative: no weighting", upper=sp.Integer(1), kind="optional",
                      none_value=-1.0),
                Param("gamma", gamma, 2.0, "focusing exponent; 0 gives (weighted) BCE", lower=sp.Integer(0))],
        # d/dtargets is a difference of two transcendental terms (the alpha_t factor's derivative times the
        # focal CE, and alpha_t times the CE's own) that crosses zero: float32 loses every digit near its root
        # (9.95e6 ULP at logit -0.1743, alpha 0.25, gamma 2, target 0), float64 keeps them
        constants=[], kernels={"f64": f64,
                               # (the same claims again: not recorded twice)
                               "f32": _soft_one_precision_up(dataclasses.replace(kernel(20, []),
                                                                                 wide=("d_targets",)))},
        steps=[Step("Focal loss (eq. 5 of the paper, with soft targets as torchvision) of the logit $x$ against the "
                    "target $y$:", "L",
                    sp.Symbol("\\alpha_t") * (1 - sp.Symbol("p_t")) ** gamma * sp.Symbol("\\mathrm{CE}")),
               Step("", "p_t", C.doc(p_t)), Step("", "\\alpha_t", C.doc(alpha_t)),
               Step("$1 - p_t$ is evaluated as a sum of non-negative terms, with a sigmoid that never overflows:",
                    "1 - p_t", C.doc(y * sp.Symbol("\\sigma(-x)") + (1 - y) * sp.Symbol("\\sigma(x)"))),
               Step("At the hard targets y = 0 and y = 1 (one branch for both, the forms the same in z) the kernels use "
                    "the signed logit $z = (1 - 2y) x$, $t = |z|$, $e = e^{-t}$, $d = 1 + e$, $l = \\log(1 + e)$: the loss is a product of "
                    "factors each rounded once, and its derivatives sums of non-negative terms (SymPy-checked against "
                    "the derivatives of the general form):", "L",
                    sp.Piecewise((sp.Symbol("\\alpha_t") * sp.Symbol("l") * sp.Symbol("e") ** gamma
                                  * sp.Symbol("d") ** -gamma, sp.Symbol("z") < 0),
                                 (sp.Symbol("\\alpha_t") * (sp.Symbol("z") + sp.Symbol("l")) * sp.Symbol("d") ** -gamma,
                                  True))),
               Step("and the cross-entropy as in bce_with_logits. The gradients with respect to logits and targets "
                    "are SymPy derivatives of this form; where 1 - p_t underflows to 0 the factor "
                    "gamma (1 - p_t)^(gamma-1) is taken as 0 (the limit of its product with d(1 - p_t), also 0).")],
        plots=[C.p_t_plot("Focal loss vs BCE", [(f"gamma = {g:g}", {"alpha": -1.0, "gamma": g})
                                                 for g in (0.0, 0.5, 1.0, 2.0, 5.0)],
                           "alpha_t is off (alpha = None), so gamma = 0 is BCE; larger gamma flattens the loss of "
                           "well-classified examples (p_t near 1).")],
        conventions="Differentiable everywhere for gamma >= 1; for 0 < gamma < 1 the gradient is infinite where "
        "1 - p_t = 0 exactly. Targets outside [0, 1] are invalid input.",
        accuracy="1 - p_t without cancellation; cross-entropy and sigmoid without overflow. At the hard targets "
        "0 and 1 (one branch, alpha_t and its derivative as selects: the CPU loop vectorises it, with exp, log1p, "
        "expm1 and pow printed, refloss/_derive/expo.py) the loss and its gradients are evaluated in the signed logit "
        "z = (1 - 2y) x "
        "as a l e^g d^-g (z < 0) or a (z + l) d^-g (z >= 0), e = exp(-|z|), d = 1 + e, l = log1p(e), with d^-g "
        "corrected by the exact rounding error of d (Fast2Sum): float32 within 6.6 ULP of value and d/dlogit "
        "(alpha 0.25, gamma 2) where the general form, which rounds sigma(x) and raises its error to the power "
        "gamma, gave 9.6 (docs/exhaustive-f32-fixes.md). d/dtargets is a difference of two terms that crosses zero (at "
        "logit -0.1743, alpha 0.25, gamma 2, target 0): the float32 kernel evaluates it in float64 (inputs widened "
        "exactly, result rounded once) wherever its terms cancel by more than half, float32 elsewhere. Far from the "
        "optimum at a hard target (signed logit z < -45, float32 -20) d/dtargets is d alpha_t/dy times the unweighted "
        "loss plus alpha_t s e^(gamma z) (gamma - z), s = 1 - 2y, e^(gamma z) from gamma z split error-free, halved "
        "and squared around its factor: 1 - p_t = e^z is subnormal from z = -708 (float32 -87) while the result, "
        "about e^(gamma z) |z|, is normal far beyond for gamma < 1 (float32, alpha 0.5, gamma 0.5: 5.7e6 ULP at logit "
        "-103.97 before; float64 1e15 ULP at -744). The factors it drops are 1 + O((1 + gamma) e^z), below the "
        "rounding for gamma up to 3.8e3 (float32 29). On the wrong side (z > 1) d/dtargets is F (c1 - k (l/(z + l) + "
        "gamma e^-z)), F the unweighted loss, k = -s alpha_t, c1 = -s (alpha_t (3 + gamma) - 1) from 3 + gamma and "
        "alpha_t (3 + gamma) split error-free: the leading parts of its terms, of size z F, cancel exactly where "
        "alpha_t (3 + gamma) = 1 (alpha 0.25, gamma 1, target 1: float64 7e15 ULP at logit -40 before). At soft "
        "targets (the general form) the outputs are evaluated one precision up and rounded once (float32 kernel: "
        "float64; float64 kernel: double-double): the general form rounds sigma(x) and 1 - p_t and raises them to the "
        "power gamma, and the soft-target sweep (refloss sweep --space soft_logits) found d/dlogits 8.86 ULP in both "
        "dtypes (bar 8) before; from gamma 4 the float64 kernel's double-double takes exp, log, log1p and the "
        "logistic functions to ~100 bits (the float64 roundings of sigma and 1 - p_t, raised to gamma, kept 11.5 ULP64 "
        "at gamma 8, 47 at 40, 137 at 100: a probe, 2026-12-07; soft targets there cost ~4 us an element); and the "
        "derivative of the power is multiplied out from CE through the factors "
        "below 1 before gamma (g CE first overflowed float32 for logits beyond 1.7e38, and inf times sigma(-x) = 0 "
        "gave a NaN d/dlogits where it is 0.72).",
        checks=checks, input_ranges=C.INPUT_RANGES, family="classification")
