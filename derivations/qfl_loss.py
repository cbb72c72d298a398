"""Quality Focal Loss (Li et al., Generalized Focal Loss, arXiv:2006.04388, eq. 5).

With sigma = sigma(x) and a soft quality target y in [0, 1] (the IoU of the box, 0 for the
background):  L = -|y - sigma|^beta ((1 - y) ln(1 - sigma) + y ln sigma) = |y - sigma|^beta CE(x, y).
y - sigma is evaluated as y sigma(-x) - (1 - y) sigma(x) (exact at the hard targets, sigma(-x) or
-sigma(x) however confident the logit); at the hard targets 0 and 1 the loss is the sigmoid
focal loss without alpha_t (gamma = beta), whose accurate forms (FocalCE) the kernels reuse.
dL/dx = -|D|^beta D - beta |D|^(beta-1) sign(D) sigma(x) sigma(-x) CE,
dL/dy = -x |D|^beta + beta |D|^(beta-1) sign(D) CE,   D = y - sigma.
"""
import sympy as sp

from . import _logits
from refloss._derive.core import Branch, Kernel, LossSpec, Param, Step, prove_equal
from refloss._derive.functions import Eval64, EvalAccurate, Group, Quot, FocalCE, FocalCEDx, LogitCE, OneMinusPt, Step as Heaviside0, PowG, PowGm1, RealAbs, Residual, ResidualMargin, ScaledSigmoidPow, Select, Sigmoid, SigmoidProduct, SoftplusOverSigmoid, TwoProd, plain

C = _logits.inputs("target")
NAME = "qfl_loss"
beta = sp.Symbol("beta", nonnegative=True)


def _residual_form(x, y, checks):
    """The printed form of Residual(x, y) = y - sigma(x) (refloss/_derive/functions.py): with e = e^-|x|,
    (y a - (1 - y) b)/(1 + e), (a, b) = (e, 1) for x >= 0 and (1, e) for x < 0."""
    for side, e, a, b in (("x >= 0", sp.exp(-x), sp.exp(-x), 1), ("x < 0", sp.exp(x), 1, sp.exp(x))):
        prove_equal((y * a - (1 - y) * b) / (1 + e), y - 1 / (1 + sp.exp(-x)), f"y - sigma(x) = (y a - (1 - y) b)/(1 "
                    f"+ e) for {side}", checks, domain={x: (0, 30) if side == "x >= 0" else (-30, 0), y: (0, 1)})


def _deep_target_gradients(x, d_target, checks):
    """dL/dy at the hard targets far from the optimum (|x| > 45, float32 20), where |D| = sigma(-|x|) or
    |D|^beta is subnormal or 0 (from |x| = 708/beta, float32 87/beta).
    There dL/dy = -x |D|^beta + beta |D|^(beta-1) sign(D) CE with CE/|D| = (1 + e^|x|) ln(1 + e^-|x|)
    (about 1): the second term's |D|^(beta-1) overflows for beta < 1 (d/dy was -inf where it is
    about -x |D|^beta), and |D|^beta from a subnormal |D| keeps few digits.  Both factors are
    formed from the logit: |D|^beta = e^(-beta |x|) (1 + e^-|x|)^-beta, e^(-beta |x|) from beta x
    split error-free (TwoProd) with one exp rounding, and (1 + e^-|x|)^-beta and CE/|D| round to
    1 there.  So at y = 0: -e^(beta x) (x + beta); at y = 1: e^(-beta x) (beta - x)."""
    out = {}
    for v, s in ((0, 1), (1, -1)):
        e = sp.exp(TwoProd(beta, s * x, 0)) * (1 + TwoProd(beta, s * x, 1))
        # e^(beta s x) as the square of e^(beta s x / 2), the factor (x + beta) multiplied in between: e^(beta s x)
        # alone is subnormal long before the result is (float32 from |x| = 43.7 at beta = 2, where it kept 26 ULP)
        factor = -(x + beta) if v == 0 else beta - x
        out[v] = _logits.exp_scaled(beta, s * x, factor)
        prove_equal(plain(out[v]), plain(e * factor), f"at y = {v}: the deep form's e^(beta s x) (x + beta) with the "
                    "exponential halved and squared", checks, domain={x: (-30, -1) if v == 0 else (1, 30),
                                                                      beta: (sp.Rational(1, 20), 4)}, numeric=True)
        ratio = (1 + sp.exp(-s * x)) * sp.log(1 + sp.exp(s * x))  # CE/|D|, 1 to the precision there
        exact = -plain(e) * (1 + sp.exp(s * x)) ** -beta * (x + beta * ratio) if v == 0 else \
            plain(e) * (1 + sp.exp(s * x)) ** -beta * (beta * ratio - x)
        prove_equal(exact, plain(d_target.subs(C.y, v)), f"at y = {v}: dL/dy = |D|^beta (beta CE/|D| - s x), "
                    "|D|^beta = e^(-beta |x|) (1 + e^-|x|)^-beta", checks,
                    domain={x: (-30, -1) if v == 0 else (1, 30), beta: (sp.Rational(1, 20), 4)}, numeric=True)
    return out


def _tiny_target_forms(x, y, general, grads, checks):
    """The float64 kernel's outputs at soft targets below 2^-64 and logits below -64 (a rare branch): there D =
    y - sigma(x) and CE are about y (1 - rho) and y (|x| + q) (q = e^x/y, rho = (1 - y) q), tiny, and the general
    form's factors |D|^beta and |D|^(beta - 1) overflow or underflow where the outputs do not: |D|^(beta - 1) of a
    subnormal D (y <= ~1e-310, logit -1e4) overflowed at beta <= 0.01 before beta CE multiplied it (d/dlogits NaN,
    d/dtarget inf where both are finite), and |D|^beta of D ~ 1e-170 underflowed before |x| ~ 1e20 multiplied it
    (d/dtarget lost its -x |D|^beta term, a third of it at beta = 2).  With beta |D|^(beta - 1) sign(D) = beta
    |D|^beta/D, each output is |D|^beta times a factor whose terms have one sign (but d/dtarget's at its root),
    formed as sign(b) e^(beta ln|D| + ln|b|) with ln|D| = ln y + ln|1 - rho| - ln(1 + e^x) from the inputs (no
    subnormal D): value |D|^beta y (-x + L), d/dx = -|D|^beta (y/c) ((1 - rho) + beta q (-x + L)/(1 - rho)),
    d/dy = |D|^beta (beta c (-x + L)/(1 - rho) - x), c = 1 + e^x, L = ln(c)/y (the kernel: c = 1, L = q)."""
    def forms(exact):
        lny, q, rho, c, L = _logits.tiny_target_parts(x, y, exact)
        u = -x + L
        ln_d = lny + sp.log(RealAbs(1 - rho)) - sp.log(c)
        return {"value": _logits.signed_exp(beta * ln_d + lny, u),
                "d_logits": -_logits.signed_exp(beta * ln_d + lny - sp.log(c), (1 - rho) + beta * Quot(q, 1 - rho) * u),
                "d_target": _logits.signed_exp(beta * ln_d, beta * c * Quot(u, 1 - rho) - x)}
    exact = forms(True)
    dom = {x: (-30, -1), y: (0, 1), beta: (sp.Rational(1, 20), 4)}
    for o, want in (("value", general), ("d_logits", grads["d_logits"]), ("d_target", grads["d_target"])):
        prove_equal(plain(exact[o]), plain(want), f"tiny target: {o} = sign(b) e^(beta ln|D| + ln|b|), ln|D| = ln y + "
                    "ln|1 - rho| - ln(1 + e^x)", checks, domain=dom, numeric=True)
    # (the kernel's forms: c = 1 and L = q, factors 1 + O(e^x), below 2^-92 at logits below -64)
    return {o: EvalAccurate(v) for o, v in forms(False).items()}


def derive() -> LossSpec:
    checks = []
    x, y = C.x, C.y
    sig = 1 / (1 + sp.exp(-x))
    textbook = -sp.Abs(y - sig) ** beta * ((1 - y) * sp.log(1 - sig) + y * sp.log(sig))
    d = Residual(x, y)  # y sigma(-x) - (1 - y) sigma(x), printed from e^-|x| (see _residual_form)
    prove_equal(plain(d), y - sig, "y sigma(-x) - (1 - y) sigma(x) = y - sigma(x)", checks, domain=C.DOMAIN)
    _residual_form(x, y, checks)
    for f in (sp.Rational(1, 2), sp.Rational(1, 2**20)):  # the guards' margin has the sign of |D| - f T
        prove_equal(plain(ResidualMargin(x, y, f)), (sp.Abs(y - sig) - f * plain(OneMinusPt(x, y))) * (1 + sp.exp(-sp.Abs(x))),
                    f"ResidualMargin = (|y - sigma| - {f} T)(1 + e^-|x|)", checks, domain=C.DOMAIN)
    general = LogitCE(x, y) * PowG(RealAbs(d), beta)
    dom = {**C.DOMAIN, beta: (1, 4)}
    prove_equal(plain(general), textbook, "CE(x, y) |y sigma(-x) - (1 - y) sigma(x)|^beta is the paper's QFL", checks,
                domain=dom, numeric=True)
    grads = {f"d_{s.name}": sp.diff(general, s) for s in (x, y)}
    for s in (x, y):  # the derivative of the evaluation form is the derivative of the paper's formula
        prove_equal(plain(grads[f"d_{s.name}"]), sp.diff(textbook, s), f"dL/d{s.name} of the evaluated form is the "
                    "derivative of the paper's formula", checks, domain=dom, numeric=True)
    # hard targets 0 and 1: one branch in the signed logit z = s x, s = 1 - 2y (their forms are the same in z: the
    # focal loss's without alpha_t, gamma = beta), z the prelude, so that the CPU block loops evaluate one branch for
    # both targets and LLVM vectorises it (sigmoid_focal_loss's structure)
    s = 1 - 2 * y
    z = sp.Symbol("z", real=True)
    hard_value = FocalCE(z, sp.Integer(0), 1, beta)
    hard_d_x = s * FocalCEDx(z, sp.Integer(0), 1, beta)
    # d/dy in z: -s sigma(z)^beta (z + beta softplus(z)/sigma(z)), as two terms, each with sigma(z)^beta formed from
    # z and its factor multiplied in (ScaledSigmoidPow: the general form raised a rounded sigma to the power beta,
    # float64 19 ULP64 at beta 16.9, logit 43.98): a sum, so that the float32 kernel's check of their cancellation
    # (Kernel.wide) sees its terms (they cancel at d/dy's root, logit -2.1159 at beta 2, target 0)
    # (at beta 0 the second term is -0, so that the sum is the first term, -s z = -x, with its sign: its +0 there,
    # (-0) + (+0) = +0, gave +0 at logit +0, target 1, where dL/dy = -x is -0; at beta > 0 the term is kept as it is:
    # made -0 wherever it was a zero, it turned a right +0 into -0 at the target 1 where both terms underflow, a review)
    beta_term = ScaledSigmoidPow(-s * beta * SoftplusOverSigmoid(z), z, beta)
    hard_d_y = sp.Add(ScaledSigmoidPow(-s * z, z, beta), Select(sp.Ne(beta, 0), beta_term, -RealAbs(beta_term)),
                      evaluate=False)
    # (the float64 kernel, which has no wide outputs, keeps one product: the factor's sum rounded once, then sigma(z)^beta
    # times it; as two products summed, each with its own roundings, its error at d/dy's root is larger: the sampled
    # float64 table's d/dtarget, 2^24 points at beta = 2, 8,809 points over the bar there against 6,220)
    # where beta softplus/sigma is 0 (beta 0), -s z itself, the same number but for a zero's sign: z + (+0) = +0 at
    # z = -0 gave d/dy = -x the wrong sign at logit -0, target 0 and logit +0, target 1 (not where the factor is 0: at
    # d/dy's root it may round to 0 where -s z does not)
    beta_w = beta * SoftplusOverSigmoid(z)
    hard_d_y_f64 = ScaledSigmoidPow(Select(sp.Ne(beta_w, 0), -s * (z + beta_w), -s * z), z, beta)
    for v in (0, 1):
        at = {z: (1 - 2 * v) * x, y: v}
        prove_equal(plain(hard_value.subs(at)), plain(general.subs(y, v)), f"at y = {v} QFL is the focal loss with "
                    "gamma = beta and no alpha_t, in z = (1 - 2y) x", checks, domain=dom, numeric=True)
        prove_equal(plain(hard_d_x.subs(at)), plain(grads["d_logits"].subs(y, v)), f"at y = {v}: dQFL/dx is the "
                    "focal loss's, in z", checks, domain=dom, numeric=True)
        prove_equal(plain(hard_d_y.subs(at)), plain(grads["d_target"].subs(y, v)), f"at y = {v}: dL/dy = -s "
                    "sigma(z)^beta z - s sigma(z)^beta beta softplus(z)/sigma(z), z = s x", checks,
                    domain={x: (-4, 4), beta: (sp.Rational(1, 20), 4)}, numeric=True)
        prove_equal(plain(hard_d_y_f64.subs(at)), plain(grads["d_target"].subs(y, v)), f"at y = {v}: dL/dy = -s "
                    "sigma(z)^beta (z + beta softplus(z)/sigma(z)), z = s x", checks,
                    domain={x: (-4, 4), beta: (sp.Rational(1, 20), 4)}, numeric=True)
    deep = _deep_target_gradients(x, grads["d_target"], checks)
    deep_z = _logits.exp_scaled(beta, z, -s * (z + beta))  # the deep forms of both targets, in z
    for v in (0, 1):
        prove_equal(plain(deep_z.subs({z: (1 - 2 * v) * x, y: v})), plain(deep[v]), f"at y = {v}: the deep form in "
                    "z is -s e^(beta z) (z + beta)", checks, domain={x: (-30, -1) if v == 0 else (1, 30),
                                                                      beta: (sp.Rational(1, 20), 4)}, numeric=True)
    hard = sp.Or(sp.Eq(y, 0), sp.Eq(y, 1))
    hard_outputs = {"value": hard_value, "d_logits": hard_d_x}
    kernels = {}
    # the deep form drops factors 1 + O(beta e^-|x|): below float64's and float32's rounding from |x| = 45 and 20
    # (for beta up to 1e3 and 7); it was used only from where |D| itself is subnormal (708, 87), but |D|^beta is
    # subnormal from |x| = 708/beta, 87/beta, and the general form's d/dy lost its digits there
    # at soft targets dCE/dx = (1 - y) sigma(x) - y sigma(-x) is -D: the same Residual (one D an element, not a
    # second difference of rounded terms)
    ce_dx = sp.diff(LogitCE(x, y), x)
    prove_equal(plain(ce_dx), plain(-d), "dCE/dx = -(y - sigma(x))", checks, domain=C.DOMAIN)
    tiny = _tiny_target_forms(x, y, general, grads, checks)
    for prec, limit in (("f64", 45), ("f32", 20)):
        # the deep tail first (rare: beyond -limit, and above -2^100, where beta |z| splits; the scalar kernel's;
        # its d/dtarget float64 in the float32 kernel), then the common branch: d/dtarget in the kernel's precision,
        # the float32 kernel's in float64 where its terms cancel by more than half (Kernel.wide)
        branches = [Branch(sp.And(hard, z < -limit, z > -sp.Integer(2)**100),
                           {**hard_outputs, "d_target": Eval64(deep_z) if prec == "f32" else deep_z},
                           "hard target 0 or 1, |y - sigma| subnormal or 0", True)]
        if prec == "f32":
            # beyond -2^100 (rare): d/dtarget as the float64 kernel's one product, in float64; the float32 kernel's two
            # terms are zeros of opposite signs there, whose sum +0 had the wrong sign at the target 1 (the exact value
            # underflows from below, -0; a review found it at logits >= 2^100)
            branches.append(Branch(sp.And(hard, z <= -sp.Integer(2)**100), {**hard_outputs, "d_target": Eval64(hard_d_y_f64)},
                                   "hard target 0 or 1, |logit| >= 2^100", True))
        branches.append(Branch(hard, {**hard_outputs, "d_target": hard_d_y if prec == "f32" else hard_d_y_f64},
                               "hard target 0 or 1"))
        # (the soft targets' branches below but the last are rare: flagged in the CPU loops, computed again by the
        # scalar kernel alone, with libm's functions, faster there than the printed forms: float64 at beta = 3.5, soft
        # targets, 732 ms with the printed forms against 375 before, when the whole kernel was libm's)
        # soft targets, beta >= 5/2 (float32: beta > 2): one precision up (Eval64: float64 in the float32 kernel,
        # double-double in the float64 one), rounded once: |D|^beta multiplies D's rounding by beta + 1 (d/dlogits'
        # |D|^beta D), and the soft-target sweep found float64 d/dlogits 12.9 ULP at logit 11.815, target 0.46491,
        # beta 3.5 (bar 12), and float32 evaluation 15.76 ULP at logit 6.0271, target 0.47409, beta 3.5 and 12.3 at
        # logit 8.6295, target 0.46332, beta float32(2.4) (4 of 2^24 points over)
        # (below, each kernel evaluates in its own precision: up to beta = 2 the soft-target maxima were 8.78 ULP64
        # at 2^24 points (double-double costs 4x the loop's time at soft targets), and float32 10.1 at beta 1.9)
        soft = {o: v.xreplace({ce_dx: -d}) for o, v in {"value": general, **grads}.items()}
        if soft["d_logits"].has(ce_dx):
            raise ValueError("dCE/dx was not found in dL/dx to write it as -D")
        def keep(fraction):  # > 0 where D's rounding costs little: beta >= 2, beta = 0, or |D| >= fraction T
            # (|D| - fraction T as ResidualMargin: of its sign, printed without a quotient)
            return sp.Max(1 - Heaviside0(2 - beta), ResidualMargin(x, y, fraction), 1 - Heaviside0(beta))
        # D = y - sigma formed one precision up for 0 < beta < 2 where it cancels, and rounded once. Near the optimum
        # sigma = y, D from a rounded sigma keeps an absolute error of about eps T, which |D|^(beta - 1) turns into a
        # relative error (1 - beta) eps T/|D| of the gradients: a live verify with beta 0.3, 0.5, 0.125 found 38.4,
        # 25.6, 50.4 ULP64 at logit 0.0147, target 0.5009 (bar 12). The float64 kernel forms D in double-double with
        # refloss/_dd_functions.py's exp where |D| < T/2 (EvalAccurate; from sigma's float64 exp it kept 22.4, 21.4,
        # 31.0 ULP64); the float32 kernel's float64 evaluations where |D| < 2^-20 T: D from the float64 sigma has a
        # relative error 2^-53 T/|D|, over float32's bar for 0 < beta < 2 where |D| < ~2^-30 T (beta = float32(1.1):
        # 11,685 of 2^24 points over, 5.06e3 ULP at logit 1.98e-5, target 0.500004947)
        # (guards: D in the kernel's precision for beta >= 2, for beta = 0 (D unused), and where |D| > T/2, its
        # rounding there below 2 |beta - 1| eps relative. For 1 < beta < 2 too: D's error in |D|^(beta - 1) is
        # (beta - 1) eps T |D|^(beta - 2), unbounded against the measure's beta T^(beta - 1) as |D| -> 0 (a
        # review's sweep at beta 1.5: 519,467 of 2^20 points over the bar, 1.1e8 ULP64; 1.1: 3e14); from beta = 2
        # it is within it)
        sharp = EvalAccurate(d, keep(sp.Rational(1, 2) if prec == "f64" else sp.Rational(1, 2**20)))
        far = sp.Or(x > sp.Integer(2)**64, x < -sp.Integer(2)**64)
        if prec == "f64":
            # tiny soft targets (below 2^-64) at logits below -64 (rare): each output from the logs of its factors
            # (_tiny_target_forms; float32 needs none: its float64 evaluations have the range; 0 < y: a negative
            # target, validate=False, keeps the common forms, whose logs the branch would make NaN: a review)
            branches.append(Branch(sp.And(y > 0, y < _logits.TINY_TARGET, x < _logits.TINY_LOGIT, x > -sp.oo, beta > 0),
                                   tiny, "soft target below 2^-64, logit below -64", True, libm=True))
            # |x| > 2^64: sigma(x) sigma(-x) = 0 (below the smallest subnormal from |x| = 745), the term it multiplies
            # in dL/dx 0 to the precision (beta |D|^(beta - 1) CE at most 2^1078 |x|): dropped, or beta CE (~ |x|)
            # overflowed and inf times 0 gave NaN d/dlogits near float64's largest logits, where it is -|D|^beta D
            branches.append(Branch(far, {o: v.xreplace({SigmoidProduct(x): 0}) for o, v in soft.items()},
                                   "soft target, |logit| > 2^64", True, libm=True))
            # (from beta 6 with ~100-bit functions, EvalAccurate: the float64 roundings of sigma and D raised to beta
            # kept 10.8 ULP64 at beta 8, 24.3 at 17, 58.9 at 40, bar 12: a probe, 2026-12-07)
            branches.append(Branch(beta >= 6, {o: EvalAccurate(v) for o, v in soft.items()},
                                   "soft target, beta >= 6", True, libm=True))
            branches.append(Branch(beta >= sp.Rational(5, 2), {o: Eval64(v) for o, v in soft.items()},
                                   "soft target, beta >= 5/2", True, libm=True))
            wanted = {o: v.xreplace({d: sharp}) for o, v in soft.items()}
        else:
            # ... float64 in the float32 kernel also where float32 would overflow between finite factors (beta CE,
            # CE ~ |x|, for |x| near float32's largest: d/dlogits inf times sigma(x) sigma(-x) = 0 = NaN where it is
            # about -y; the soft-target sweep at beta = 2, 7,515 of 2^24 points) and for beta < 1/4 (|D|^(beta - 1)
            # overflows for a subnormal |D|): the soft targets' float32 kernel before 2026-12-06, D as above
            branches.append(Branch(sp.Or(beta > 2, beta < sp.Rational(1, 4), far),
                                   {o: Eval64(v.xreplace({d: sharp})) for o, v in soft.items()},
                                   "soft target, beta > 2 or < 1/4, or |logit| > 2^64", True, libm=True))
            # and each output in float64 where D cancels (0 < beta < 2, as above) or a float32 factor may not be a
            # normal number (CE, sigma(x) sigma(-x) below 2^-126, |D| below 2^-63, where |D|^beta may be, beta <= 2:
            # subnormal or 0 where the outputs need not be; a review found 0 for 0.173 at a subnormal logit, beta =
            # 1, y = 0.5 (D rounded to 0), and d/dtarget 6.26e-38 for 9.39e-38 at logit -2.5e14, target 1.1e-26,
            # beta = 2 (|D|^2 underflowed))
            tiny = sp.Integer(2)**-126
            normal = sp.Min(keep(sp.Rational(1, 2)), RealAbs(d) - sp.Integer(2)**-63, LogitCE(x, y) - tiny,
                            SigmoidProduct(x) - tiny)
            wanted = {o: Eval64(v.xreplace({d: sharp}), normal) for o, v in soft.items()}
        # (the gradients' |D|^(beta - 1) as |D|^beta/|D|, the value's power shared: one pow less an element; sparse:
        # a block of background targets, fewer than 1/16 soft, takes a loop without this branch's statements, which
        # the if-converted loop evaluates for every element: all-0 targets 68 -> 33 ms float64, 44 -> 30 float32)
        branches.append(Branch(None, {o: v.replace(PowGm1, lambda m, g: PowGm1(m, g, PowG(m, g)))
                                      for o, v in wanted.items()}, "soft target", sparse=True))
        for o, v in soft.items():
            if o != "value" and not branches[-1].outputs[o].has(EvalAccurate):
                raise ValueError(f"{o}: y - sigma was not found in the soft-target form to evaluate it accurately")
        # d/dtarget = sigma^(beta-1) (-x sigma - beta softplus(x)) at target 0 crosses zero at a logit where its two
        # terms cancel (float32 lost every digit there: 9.21e6 ULP at -2.1159, beta 2): the float32 kernel evaluates
        # it in float64 where they cancel by more than half (Kernel.wide), in float32 elsewhere, each term's
        # sigma(z)^beta formed from z (ScaledSigmoidPow). Until 2026-12-06 it was float64 at every hard target: a
        # fallback on the general form's terms, which raise a rounded sigma to the power beta (its error times
        # beta), kept 12.3 ULP at -13.14 and 8.1 at 2.24 (beta 3.5), where they do not cancel
        kernels[prec] = Kernel(arrays=C.ARRAYS, args=(beta,), prelude=((z, s * x),), branches=tuple(branches),
                               invalid=C.INVALID, wide=("d_target",) if prec == "f32" else ())
    xs, ys, sg = sp.Symbol("x", real=True), sp.Symbol("y", real=True), sp.Symbol("\\sigma")
    return LossSpec(
        name=NAME, title="Quality Focal Loss",
        formula="L = -|y - sigma|**beta * ((1 - y)*log(1 - sigma) + y*log(sigma)), sigma = sigmoid(x), for logits x "
        "and soft quality targets y in [0, 1] (the IoU of the predicted box with its ground truth, 0 for "
        "the background); beta = 2 in the paper.",
        references=["X. Li et al., Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for "
                    "Dense Object Detection, arXiv:2006.04388 (eq. 5)"],
        params=[Param("beta", beta, 2.0, "the focusing exponent on |y - sigma| (2 in the paper)", lower=sp.Integer(0))],
        constants=[], kernels=kernels,
        steps=[Step("Quality Focal Loss (eq. 5 of the paper) of the logit $x$, $\\sigma = \\sigma(x)$, against the "
                    "soft target $y \\in [0, 1]$:", "L",
                    -sp.Abs(ys - sg) ** beta * ((1 - ys) * sp.log(1 - sg) + ys * sp.log(sg))),
               Step("i.e. the binary cross-entropy weighted by $|y - \\sigma|^\\beta$, with the residual evaluated "
                    "as a difference of two non-negative terms that is exact at the hard targets:", "y - \\sigma",
                    ys * sp.Symbol("\\sigma(-x)") - (1 - ys) * sp.Symbol("\\sigma(x)")),
               Step("At $y = 0$ and $y = 1$ it is the sigmoid focal loss with $\\gamma = \\beta$ and no "
                    "$\\alpha_t$, evaluated in that loss's accurate forms (sigmoid_focal_loss). Gradients, "
                    "$D = y - \\sigma$:", "\\frac{\\partial L}{\\partial x}",
                    C.doc(-sp.Symbol("|D|") ** beta * sp.Symbol("D") - beta * sp.Symbol("|D|") ** (beta - 1)
                          * sp.sign(sp.Symbol("D")) * sg * (1 - sg) * sp.Symbol("\\mathrm{CE}"))),
               Step("", "\\frac{\\partial L}{\\partial y}",
                    -xs * sp.Symbol("|D|") ** beta + beta * sp.Symbol("|D|") ** (beta - 1) * sp.sign(sp.Symbol("D"))
                    * sp.Symbol("\\mathrm{CE}"))],
        plots=[_logits.p_t_plot("Quality Focal Loss, target 1",
                                [(f"beta = {b:g}", {"beta": b}) for b in (0.0, 1.0, 2.0, 4.0)],
                                "At the hard target 1 QFL is the focal loss with gamma = beta; beta = 0 is BCE.")],
        conventions="Differentiable everywhere for beta >= 1 (at y = sigma the weight's derivative "
        "beta |D|^(beta-1) sign(D) is 0 for beta > 1 and sign(0) = 0 for beta = 1); for 0 < beta < 1 the "
        "derivative is infinite at y = sigma and the kernels give its factor |D|^(beta-1) as 0 there. Targets "
        "outside [0, 1] are invalid input. The gradient with respect to the target is the derivative of the "
        "formula (peers pass the IoU target detached, so they return none).",
        accuracy="y - sigma as y sigma(-x) - (1 - y) sigma(x) over one denominator, (y a - (1 - y) b)/(1 + e) with e = "
        "e^-|x| and (a, b) = (e, 1) or (1, e), the products' rounding errors (FMAs), their difference's, 1 - y's "
        "and 1 + e's put back (Residual): about an ulp and a half besides e's own rounding, exact at the hard targets "
        "and without overflow; "
        "cross-entropy as y softplus(-x) + (1 - y) softplus(x); at y = 0 and 1 the focal loss's forms in the "
        "signed logit; far from the optimum at a hard target (|x| > 45, float32 20: the factors it drops are 1 there), "
        "dL/dy as e^(-beta |x|) from beta x split error-free times (beta - |x|), the exponential halved and squared "
        "with the factor between (e^(-beta |x|) alone is subnormal long before the result), since beta "
        "|D|^(beta-1) CE would overflow (beta < 1) or |D|^beta (subnormal from |x| = 708/beta, float32 87/beta) "
        "keep few digits. Near the optimum sigma = y of a soft target y - sigma cancels (an error of eps "
        "(y sigma(-x) + (1 - y) sigma(x)) absolute, from e's rounding), as in any evaluation from a rounded sigma; for beta <= 1 the "
        "gradient jumps (beta = 1) or is unbounded (beta < 1) at y = sigma, so within that error of the optimum its "
        "side is not determined, and the sweeps and refloss verify do not measure the gradients there (the "
        "floor's documented limit), except in float32 at beta = 1, where D is formed in float64 from the float32 "
        "inputs near the optimum and its side is the exact one (the jump bounded): measured there. At soft targets "
        "with beta >= 5/2 (float32 kernel: beta > 2, beta < 1/4, or |x| > 2^64, where beta CE overflows float32) the "
        "outputs are evaluated one precision up and rounded once (float32 kernel: float64; float64 kernel: "
        "double-double): |D|^beta D multiplies D's rounding by beta + 1, and the soft-target sweep found float64 "
        "d/dlogits 13.1 ULP at beta 3.5 (bar 12) before, 10.1 after; from beta 6 the float64 kernel's double-double "
        "takes exp, log, log1p and the logistic functions to ~100 bits (float64's roundings raised to beta kept 10.8 "
        "ULP64 at beta 8, 58.9 at 40: a probe, 2026-12-07); float32 evaluation 15.8 ULP at beta 3.5 and 12.3 "
        "at beta float32(2.4). Below, each kernel evaluates in its own precision, |D|^(beta - 1) as |D|^beta/|D| "
        "where |D|^beta is normal (one power an element, the exponent beta exact) and sigma(x) sigma(-x) as e/(1 + "
        "e)^2 corrected for d's rounding; the float32 kernel each output in float64 where a float32 factor may be "
        "subnormal while the outputs are not (|D| < 2^-63, CE or sigma(x) sigma(-x) below 2^-126: a review found 0 "
        "for 0.173 at a subnormal logit) and, in float64, beyond |x| = 2^64 the term of dL/dx with sigma(x) "
        "sigma(-x) = 0 dropped (beta CE overflowed: NaN). For 0 < beta < 2 "
        "both kernels form D one precision up near the optimum (float64: double-double with exp to ~100 bits, "
        "refloss/_dd_functions.py, where |D| < T/2; float32: each output in float64 where |D| < T/2, D in "
        "double-double where |D| < 2^-20 T; T = y sigma(-x) + (1 - y) sigma(x)) and round it once: from a float64 sigma, "
        "D's absolute error eps T became an error |beta - 1| eps T |D|^(beta - 2) of the gradients (the soft-target sweep, "
        "2^24 points a beta, float64: 1.6e6 to 8.3e6 points over the bar at beta 0.125 to 1.9, up to 4.9e15 ULP, before; "
        "0 over, at most 8.78 ULP, after; float32 at beta float32(1.1): 11,685 over, 5.06e3 ULP, before), at a cost "
        "for those beta only (docs/accuracy.md). |D|^(beta - 1) is corrected for the rounding of beta - 1 where it is "
        "a power of its own (beta < 1/2: 36 ULP at |D| = 3e-32, beta = 0.3, before). At the hard targets both targets are"
        " one branch in the signed logit z = (1 - 2y) x (sigmoid_focal_loss's forms, exp, log1p and pow printed, "
        "refloss/_derive/expo.py, so that the CPU loops vectorise: the value and dL/dx the same bits as "
        "sigmoid_focal_loss with alpha None and gamma = beta); dL/dy there, -s sigma(z)^beta (z + beta "
        "softplus(z)/sigma(z)), s = 1 - 2y, crosses zero where its two terms cancel (logit -2.1159 at beta 2, target 0): "
        "each term's sigma(z)^beta is formed from z (a rounded sigma raised to the power beta multiplies its error by "
        "beta: 8.1 ULP at logit 2.24, beta 3.5, where they do not cancel), and the float32 kernel evaluates dL/dy in "
        "float64 where the terms cancel by more than half (inputs widened exactly, the result rounded once).",
        checks=checks, input_ranges=C.INPUT_RANGES, family="classification")
