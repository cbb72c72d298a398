"""The worst inputs of the float32 element-wise and classification kernels, and of the nested-box
GIoU gradient, found by exhaustive and sampled checks (issue 13), pinned against the mpmath oracle.

Each float32 point was the maximum error of a kernel over every finite float32 residual (target 0)
before its evaluation form was fixed; the expected value is the oracle's exact result (50 digits),
the error is measured in ULPs of it rounded to float32 (``refloss.oracle.rounding.ulp_error``, the
project's one ULP measure).  Figures and commands: docs/exhaustive-f32-fixes.md.
"""
import numpy as np
import pytest

import refloss as rl
from refloss.oracle import boxes as box_oracle
from refloss.oracle import classification as cls_oracle
from refloss.oracle import elementwise as ew_oracle
from refloss.oracle.rounding import ulp_error

F32 = np.float32

# (loss, params, x, what the kernel gave before the fix, value ULP, gradient ULP)
ELEMENTWISE = [
    # a*a rounded in float32's subnormal range, then divided by beta < 1: 6.75 ULP
    ("smooth_l1", {"beta": 1 / 9}, 2.7052322e-21),
    ("smooth_l1", {"beta": 1 / 9}, 5.421009e-20),  # result just above 2^-126, a*a subnormal
    # a*a*q*(1 - 2 ln(beta a)): a*a subnormal, magnified by the log factor: 78 ULP (72 with a normal result)
    ("focal_l1", {"beta": 0.8}, 1.7756469e-22),
    ("focal_l1", {"beta": 0.8}, 1.7668434e-20),
    # gradient a*alpha*(ln_b + ln a) with a*alpha subnormal: 49 ULP
    ("focal_l1", {"beta": 0.8}, 6e-44),
    ("focal_l1", {"beta": 0.5}, 6e-44),
    # the maxima after the fixes (exhaustive over x >= 0): smooth_l1 1.56 ULP; focal_l1's gradient 3.79 ULP
    ("smooth_l1", {"beta": 1 / 9}, 1.02194656e-19),
    ("focal_l1", {"beta": 0.8}, 1.0744768e-07),
    # focal_l1's value after that fix, five roundings of one sign (ln a, c_v - 2 ln a, a q, two
    # products): 4.66 ULP; with a q, the log factor and their product error-free, below 3
    ("focal_l1", {"beta": 0.8}, 1.1066725e-07),
    # balanced_l1: the roundings of u = c_u a, z = u/(2+u) and the series chained, or log1p's
    # amplified just above z = 1/2: 7.49 (beta = 1/9) and 5.36, 5.12 ULP (beta = 1); float32 pairs now
    ("balanced_l1", {"beta": 1 / 9, "alpha": 0.5, "gamma": 1.5}, 0.011649204),
    ("balanced_l1", {"beta": 1.0, "alpha": 0.5, "gamma": 1.5}, 0.15051219),
    ("balanced_l1", {"beta": 1.0, "alpha": 0.5, "gamma": 1.5}, 0.1439319),
    # the maxima after those fixes (exhaustive over x >= 0): balanced_l1 at beta = 1/9, value 2.79 ULP
    # (series up to z = 3/4) and gradient 1.89; focal_l1 at beta = 0.8, value 2.84
    ("balanced_l1", {"beta": 1 / 9, "alpha": 0.5, "gamma": 1.5}, 0.027732918),
    ("balanced_l1", {"beta": 1 / 9, "alpha": 0.5, "gamma": 1.5}, 5.6880135e-06),
    ("focal_l1", {"beta": 0.8}, 6.651245e-15),
]


def _oracle(name):
    return getattr(ew_oracle, name)


@pytest.mark.parametrize("name, params, x", ELEMENTWISE)
def test_elementwise_float32_worst_points_within_4_ulp(name, params, x):
    x = F32(x)
    v, (gp, gt) = getattr(rl, name).value_and_grad(np.array([x]), np.array([F32(0.0)]), **params)
    assert v.dtype == np.float32
    # the exact loss at the parameters as given (float64), as refloss verify measures float32 rows
    exact = _oracle(name)(float(x), 0.0, **params)
    errs = (ulp_error(v[0], exact[0], np.float32), ulp_error(gp[0], exact[1], np.float32),
            ulp_error(gt[0], exact[2], np.float32))
    assert max(errs) <= 4.0, f"{name} {params} at x = {x!r}: value/gradient errors {errs} ULP (bar 4)"


# sigmoid_focal_loss (alpha 0.25, gamma 2): issue 13's worst points (8.22 / 9.52 ULP at y = 0, 7.11 / 9.62
# at y = 1, value / d/dlogit, before the hard-target forms of FocalCE), and the worst points of the sweep
# after them (docs/exhaustive-f32-fixes.md)
FOCAL = [(-10.313036, 0.0, "value"), (-15.057869, 0.0, "gradient"), (6.0132551, 1.0, "value"),
         (4.7558203, 1.0, "gradient"), (1.8176, 1.0, "gradient"),
         # after: the maxima over every float32 logit with |x| in [2^-30, 2^7) (6.50, 6.57, 6.02, 6.49 ULP)
         (-6.147419, 0.0, "value"), (-1.9974833, 0.0, "gradient"), (4.8480473, 1.0, "value"),
         (7.542524, 1.0, "gradient")]


@pytest.mark.parametrize("x, y, what", FOCAL)
def test_sigmoid_focal_loss_float32_worst_points_within_8_ulp(x, y, what):
    v, (gx, _) = rl.sigmoid_focal_loss.value_and_grad(np.array([F32(x)]), np.array([F32(y)]), alpha=0.25, gamma=2.0)
    assert v.dtype == np.float32
    exact = cls_oracle.sigmoid_focal_loss(float(F32(x)), y, alpha=0.25, gamma=2.0)
    err = ulp_error(v[0] if what == "value" else gx[0], exact[0] if what == "value" else exact[1], np.float32)
    assert err <= 8.0, f"sigmoid_focal_loss float32 {what} at x = {x!r}, y = {y}: {err} ULP (bar 8)"


# d/dtarget(s) at the float32 logits nearest its roots, where its terms cancel completely (issue 13's
# exhaustive rows 19, 20, 27-29: 9.95e6, 1.59e7, 9.21e6 and 9.9e6 ULP with float32 terms; the float32 kernels
# now fall back to float64 there, Kernel.wide): (loss, params, bar, logit, target)
TARGET_ROOTS = [
    ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0}, 8, -0.17430131137371063, 0.0),
    ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0}, 8, -0.17430123686790466, 0.0),
    ("sigmoid_focal_loss", {"alpha": 0.25, "gamma": 2.0}, 8, -0.9763738512992859, 1.0),
    ("qfl_loss", {"beta": 2.0}, 12, -2.1159493923187256, 0.0),
    ("qfl_loss", {"beta": 2.0}, 12, 2.1159493923187256, 1.0),
    ("qfl_loss", {"beta": 1.0}, 12, -1.1445543766021729, 0.0),
    # far tails where every float32 term underflows to 0 but the result is a normal float32 (p^gamma =
    # e^(gamma x) outlives e^x): exhaustive row 23 (alpha 0.5, gamma 0.5, target 0), 10,274,928 logits
    # gave 0 (1.68e7 ULP) until the float64 form also took over where all the terms are 0
    ("sigmoid_focal_loss", {"alpha": 0.5, "gamma": 0.5}, 8, -162.68211364746094, 0.0),
    ("sigmoid_focal_loss", {"alpha": 0.5, "gamma": 0.5}, 8, -109.20885467529297, 0.0),
]


@pytest.mark.parametrize("loss, params, bar, x, y", TARGET_ROOTS)
def test_target_gradient_at_its_roots(loss, params, bar, x, y):
    v, (_, gy) = getattr(rl, loss).value_and_grad(np.array([F32(x)]), np.array([F32(y)]), **params)
    assert gy.dtype == np.float32
    exact = getattr(cls_oracle, loss)(float(F32(x)), y, **params)
    err = ulp_error(gy[0], exact[2], np.float32)
    assert err <= bar, f"{loss} {params} float32 d/dtarget at x = {x!r}, y = {y}: {err} ULP (bar {bar})"


# gradients whose float32 forms raised a rounded sigmoid to a power, so that its error was multiplied by the
# exponent (issue 13's exhaustive sweeps over logits -20..-1 and 0..20): QFL d/dtarget 12.3 ULP at beta 3.5
# (3 inputs over its 12-ULP bar in rows 33 and 34), 8.1 where its terms do not cancel, 19.8 at beta 7; VFL with the
# weight held, d/dlogits = alpha sigma^3, 9.5 ULP (887 over its 8-ULP bar between -20 and -1).  The float32
# kernels then evaluated them in float64 (Kernel.double), rounded once (at most 1 ULP); since 2026-12-05 VFL's
# negatives, and since 2026-12-06 QFL's hard targets' d/dtarget, take sigma^gamma from the logit in float32
# (e^(-gamma|x|) from gamma|x| split error-free, ScaledSigmoidPow; QFL's float64 only where d/dtarget's two terms
# cancel), no power of a rounded sigma: a few ULP (2.31, 2.31, 0.94, 3.25, 2.18 at QFL's points), not gamma times one.
# (loss, params, component, logit, target, the most ULP)
SIGMOID_POWERS = [
    ("qfl_loss", {"beta": 3.5}, 2, -13.139054298400879, 0.0, 4.0),
    ("qfl_loss", {"beta": 3.5}, 2, 13.139054298400879, 1.0, 4.0),
    ("qfl_loss", {"beta": 3.5}, 2, 2.2427878379821777, 0.0, 4.0),
    ("qfl_loss", {"beta": 7.0}, 2, -1.8928556442260742, 0.0, 4.0),
    ("qfl_loss", {"beta": 2.0}, 2, -9.001679420471191, 0.0, 4.0),
    ("varifocal_loss", {"alpha": 0.75, "gamma": 2.0, "detach_weight": True}, 1, -6.151309013366699, 0.0, 3.0),
    ("varifocal_loss", {"alpha": 0.75, "gamma": 2.0, "detach_weight": True}, 2, -10.39136028289795, 0.0, 3.0),
]


@pytest.mark.parametrize("loss, params, component, x, y, most", SIGMOID_POWERS)
def test_powers_of_a_rounded_sigmoid_are_not_magnified(loss, params, component, x, y, most):
    out = getattr(rl, loss).value_and_grad(np.array([F32(x)]), np.array([F32(y)]), **params)
    got = out[1][component - 1][0]
    assert got.dtype == np.float32
    exact = getattr(cls_oracle, loss)(float(F32(x)), y, **params)[component]
    err = ulp_error(got, exact, np.float32)
    assert err <= most, f"{loss} {params} float32 gradient {component} at x = {x!r}, y = {y}: {err} ULP (at most {most})"


# far tails of the hard targets where 1 - p_t = e^z is subnormal (z = x at target 0, -x at target 1; float32
# from |z| = 87, float64 708) but d/dtargets = alpha_t e^(gamma z) |z| is normal for gamma < 1: the hard form
# took (1 - p_t)^gamma from the subnormal e^z (float32 alpha 0.5, gamma 0.5: 1,638,342 logits over the bar in
# exhaustive row 23 after fac4689, 5.7e6 ULP at -103.97; float64 1e15 ULP at -744) until the far-tail branch
FAR_TAILS = [(np.float32, {"alpha": 0.5, "gamma": 0.5}, -103.97000122070312),
             (np.float32, {"alpha": 0.5, "gamma": 0.5}, -95.5), (np.float32, {"alpha": 0.25, "gamma": 1.0}, -95.5),
             (np.float32, {"alpha": None, "gamma": 0.5}, -100.0), (np.float32, {"alpha": 1.0, "gamma": 0.5}, -90.0),
             (np.float64, {"alpha": 0.5, "gamma": 0.5}, -744.0), (np.float64, {"alpha": 0.25, "gamma": 1.0}, -720.0),
             (np.float64, {"alpha": None, "gamma": 0.25}, -740.0), (np.float64, {"alpha": 0.25, "gamma": 2.0}, -46.0)]


@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("dtype, params, z", FAR_TAILS)
def test_target_gradient_in_the_far_tails(dtype, params, z, target):
    x = dtype(z if target == 0.0 else -z)
    v, (gx, gy) = rl.sigmoid_focal_loss.value_and_grad(np.array([x]), np.array([dtype(target)]), **params)
    exact = cls_oracle.sigmoid_focal_loss(float(x), target, **params)
    for got, want, what in ((v[0], exact[0], "value"), (gx[0], exact[1], "d/dlogits"), (gy[0], exact[2], "d/dy")):
        assert got.dtype == dtype
        err = ulp_error(got, want, dtype)
        assert err <= 8, f"sigmoid_focal_loss {params} {dtype.__name__} {what} at x = {x!r}, y = {target}: {err} ULP"


# the wrong side of a hard target (signed logit z = x at target 0, -x at target 1, z > 1) where alpha_t (3 + gamma) = 1
# (alpha 0.25, gamma 1 at target 1; alpha 0.75 at target 0): d/dtargets' leading terms, of size z, cancel exactly and
# the result is -alpha_t (l + (z + l) e^-z) sigma(z)^gamma, e^-z of them.  Float64 was 2.5e6 ULP at z = 16, 7e15 at
# 40; float32 (its float64 form) 160 at 25.3 and 1e7 from 40 on, until the derivation's wrong-side branch formed
# the coefficient alpha_t (3 + gamma) - 1 of the leading terms exactly.  Also alpha and gamma near that line.
WRONG_SIDE = [(dt, a, g, z) for dt, zs in ((np.float64, (16.0000916, 25.3, 40.0, 100.0, 700.0)),
                                           (np.float32, (16.0000916, 20.5, 25.3, 30.1, 40.0, 60.0)))
              for a, g in ((0.25, 1.0), (0.2501, 1.0), (1 / 3, 0.0)) for z in zs]


@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("dtype, alpha, gamma, z", WRONG_SIDE)
def test_target_gradient_where_the_leading_terms_cancel(dtype, alpha, gamma, z, target):
    a = float(dtype(alpha if target == 1.0 else 1 - alpha))  # alpha_t the same at either target
    x = dtype(-z if target == 1.0 else z)
    g = float(dtype(gamma))
    _, (_, gy) = rl.sigmoid_focal_loss.value_and_grad(np.array([x]), np.array([dtype(target)]), alpha=a, gamma=g)
    exact = cls_oracle.sigmoid_focal_loss(float(x), target, alpha=a, gamma=g)
    err = ulp_error(gy[0], exact[2], dtype)
    assert err <= 8, f"sigmoid_focal_loss alpha {a} gamma {g} {dtype.__name__} d/dy at x = {x!r}, y = {target}: {err} ULP"


# soft targets, alpha_t weighting, where d/dtargets' terms cancel and the float32 kernel takes its float64 form:
# that form once added (2 alpha - 1) CE (1 - p_t)^gamma twice (the printer differentiated alpha_t along with y)
SOFT_FALLBACK = [(-6.0, 0.9), (-0.4016825556755066, 0.6964291930198669), (-0.2612, 0.52)]


@pytest.mark.parametrize("x, y", SOFT_FALLBACK)
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.75, 0.5)])
def test_soft_target_gradient_through_the_float64_fallback(x, y, alpha, gamma):
    x32, y32 = F32(x), F32(y)
    _, (_, gy) = rl.sigmoid_focal_loss.value_and_grad(np.array([x32]), np.array([y32]), alpha=alpha, gamma=gamma)
    exact = cls_oracle.sigmoid_focal_loss(float(x32), float(y32), alpha=alpha, gamma=gamma)
    # the classification measure: ULPs of the larger of the exact value and the terms that cancel (d/dy's scale)
    scale = float(cls_oracle.focal_gradient_scale(float(x32), float(y32), np.float32, alpha=alpha, gamma=gamma)[1])
    err = abs(float(gy[0]) - float(exact[2]))
    assert err <= 8 * np.finfo(np.float32).eps * max(abs(float(exact[2])), scale), (gy[0], exact[2])


def _box_grad_error(loss, p, t, dtype, **params):
    """(value abs error, gradient error relative to the pair's largest exact component) against the oracle."""
    P, T = np.asarray(p, dtype), np.asarray(t, dtype)
    v, (gp, gt) = getattr(rl, loss).value_and_grad(P, T, **params)
    ev, egp, egt = getattr(box_oracle, loss)(P.astype(float), T.astype(float), **params)
    exact = np.array([float(g) for g in (*egp, *egt)])
    got = np.concatenate([gp, gt]).astype(float)
    return abs(float(v) - float(ev)), float(np.abs(got - exact).max() / np.abs(exact).max())


@pytest.mark.parametrize("loss, r", [("giou_loss", 3e-8), ("giou_loss", 1e-4), ("giou", 3e-8), ("giou", 1e-4)])
@pytest.mark.parametrize("swap", [False, True])
def test_giou_gradient_with_one_box_inside_the_other(loss, r, swap):
    # target of relative size r inside a unit prediction (and swapped): C = U, so the penalty's gradient is 0;
    # 1 - (U+eps)/(C+eps) differentiated gave two terms of size 1 that cancel, leaving 7e-9 (float64) and
    # 1.5e-3 (float32) relative to the largest component (the IoU part, of size r); with quotients as Quot,
    # giou_loss still had 1.1e-12 in float64 at r = 1e-4, until the hand-written derivative of (U+eps)/(C+eps)
    # (derivations/_boxes.py, _ratio_derivative)
    p, t = [0.0, 0.0, 1.0, 1.0], [0.3, 0.4, 0.3 + r, 0.4 + r]
    if swap:
        p, t = t, p
    _, g64 = _box_grad_error(loss, p, t, np.float64)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error(loss, p, t, np.float32)
    assert g32 <= 2.0**-23 * 1e-13 / 2.0**-52  # the float32 bar: the same number of its epsilons (5.4e-5)


# float32 pairs from a sampled check (docs/exhaustive-f32-fixes.md, 10^6 pairs a class), the worst of their loss
# before a fix, with the gradient error (relative to the largest component) the float32 kernel had then
FAR_APART = [
    # far apart in y, the target spanning the enclosing box in x: dU/(C+eps) and (U+eps) dC/(C+eps)^2 cancel, 2.8e-3
    # (float64: 3.1e-12)
    ("giou_loss", [-0.001603923854418099, -465.02008056640625, 0.0025776312686502934, -465.0182800292969],
     [-0.0022365425247699022, -250.49830627441406, 0.0049461242742836475, 250.4751739501953]),
    ("giou", [-0.001603923854418099, -465.02008056640625, 0.0025776312686502934, -465.0182800292969],
     [-0.0022365425247699022, -250.49830627441406, 0.0049461242742836475, 250.4751739501953]),
    # nearly equal heights: h_p - h_t from the rounded heights in the gradient, 2.0e-3
    ("eiou_loss", [0.054586563259363174, 0.49181047081947327, 0.29416099190711975, 0.4941132068634033],
     [-225.17208862304688, 0.5591314435005188, 125.04023742675781, 0.5614479780197144]),
    # nearly equal widths 0.14 apart: (px2 - tx2) - (px1 - tx1) subtracts the offsets, 3.4e-4 (with that form in the
    # gradient too, before DiffOfDiffs chose between it and the widths' difference)
    ("eiou_loss", [0.05535118281841278, -459.3480224609375, 0.05887167155742645, 463.5456848144531],
     [-0.08323772251605988, 21.75839614868164, -0.07972951978445053, 42.37715530395508]),
    # far apart, nearly equal heights: the offsets again, 2.8e-4
    ("eiou_loss", [-2.1150171756744385, -0.45024749636650085, 2.086681365966797, -0.44671958684921265],
     [-1486495.375, -182.96145629882812, -1486118.75, -182.95693969726562]),
    # nearly equal heights near each other: the offsets round (py1 - ty1 of opposite signs), and so do the heights
    # (6.5e-5 with whichever difference subtracts the smaller numbers; TwoSum since)
    ("eiou_loss", [-151.93519592285156, -0.0006314027705229819, 132.24790954589844, 0.001257198629900813],
     [4.785554885864258, 0.00039866389124654233, 4.786865711212158, 0.002287706360220909]),
    # tied y coordinates of thin, nearly equal boxes: IoU's dI/(U+eps) and I dU/(U+eps)^2 cancel, 1.1e-1 (2.7e-11 in
    # float64), and GIoU's (U+eps)/(C+eps) with IoU, 4.8e-2
    ("eiou_loss", [-464.8186950683594, -76.66574096679688, 442.8304443359375, -76.66460418701172],
     [-464.8191833496094, -76.66574096679688, 442.82916259765625, -76.66460418701172]),
    ("iou_loss", [-464.8186950683594, -76.66574096679688, 442.8304443359375, -76.66460418701172],
     [-464.8191833496094, -76.66574096679688, 442.82916259765625, -76.66460418701172]),
    ("giou_loss", [-470.07061767578125, -388.2904357910156, 471.58489990234375, -388.2892761230469],
     [-469.166259765625, -388.2904357910156, 471.3189392089844, -388.2892761230469]),
    # tied along x, crossing along y: (A_O - I)(i_o/U'^2 - c_o/C'^2) cancelled, 9.7e-5
    ("giou_loss", [-118.11920928955078, -440.2572021484375, -118.11690521240234, 440.33416748046875],
     [-118.11920928955078, -439.220458984375, -118.11690521240234, 440.4500732421875]),
    ("focal_l1_eiou_loss", [0.05535118281841278, -459.3480224609375, 0.05887167155742645, 463.5456848144531],
     [-0.08323772251605988, 21.75839614868164, -0.07972951978445053, 42.37715530395508]),
]


@pytest.mark.parametrize("loss, p, t", FAR_APART)
def test_box_gradients_of_far_apart_nested_and_tied_pairs(loss, p, t):
    _, g64 = _box_grad_error(loss, p, t, np.float64)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error(loss, p, t, np.float32)
    assert g32 <= 2.0**-23 * 1e-13 / 2.0**-52


# found by the 10**7-point box sweep (docs/exhaustive.md): the gradient's alpha = v/((1 - IoU) + v)
# took 1 - IoU as 1 - I/U, summed as (-I/U + v) + 1: 0 for these near-identical float32 boxes (v is lost
# beside I/U ~ 1): v/0 = inf, then NaN; alpha now uses 1 - IoU's accurate one-fraction form (U - I)/U
@pytest.mark.parametrize("loss", ["ciou_loss", "ciou"])
def test_ciou_float32_gradient_of_near_identical_boxes_is_finite(loss):
    p = np.array([-15.66484546661377, 9.648271560668945, -0.09878252446651459, 48.80679702758789], np.float32)
    t = np.array([-15.664846420288086, 9.648268699645996, -0.0987825021147728, 48.806793212890625], np.float32)
    fn = getattr(rl, loss)
    _, (g32, _) = fn.value_and_grad(p, t)
    _, (g64, _) = fn.value_and_grad(p.astype(np.float64), t.astype(np.float64))
    assert np.all(np.isfinite(g32)) and np.abs(g32 - g64).max() <= 5.4e-5 * np.abs(g64).max()


# found by the 1.3e8-point float32 sweep of shape_iou_loss (877 ULP of the largest component): the shape cost's
# max(w_p, w_t) chose its side from ((p1 - t1) - p2) + t2, which rounds to an ulp of the coordinates (~2),
# wrong for widths ~1.4e-6 that differ by 1.2e-7: 4.5% of the shape cost's gradient, 9.5e-5 of the largest
# component (bar 5.4e-5); siou_loss had the same error (8.7e-5); both now compare w_p - w_t from DiffOfDiffs
@pytest.mark.parametrize("loss", ["siou_loss", "shape_iou_loss"])
def test_shape_cost_max_of_nearly_equal_tiny_widths(loss):
    p = [1.9999990463256836, -1.3812270164489746, 2.000000476837158, -1.3812257051467896]
    t = [1.9999996423721313, -1.381226658821106, 2.0000009536743164, -1.3812248706817627]
    _, g64 = _box_grad_error(loss, p, t, np.float64)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error(loss, p, t, np.float32)
    assert g32 <= 5.4e-5


# found by the same sweep of siou_loss after that fix (83 pairs over the bar, up to 10% of the gradient): the centre
# offset dx = ((px1 - tx1) + (px2 - tx2))/2 summed two rounded differences that cancel (nearly equal x centres), and
# the angle cost compares |dx| with |dy|; dx now adds both differences' rounding errors back (DiffOfDiffs)
@pytest.mark.parametrize("p, t", [
    ([-0.0334763340651989, -0.01569293811917305, 0.06627633422613144, -0.015388330444693565],
     [0.014632875099778175, -0.019910799339413643, 0.018167123198509216, -0.011313367635011673]),
    ([0.6249494552612305, 2.8509864807128906, 1.4417781829833984, 3.2140378952026367],
     [0.21731604635715485, 2.208831310272217, 1.8494116067886353, 3.812446355819702]),
])
def test_siou_angle_cost_of_nearly_equal_centres(p, t):
    _, g64 = _box_grad_error("siou_loss", p, t, np.float64)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error("siou_loss", p, t, np.float32)
    assert g32 <= 5.4e-5


# found by the 1e7-point float32 box sweep of shape_iou_loss at scale 4 (22,218 pairs over the bar, up to 2.1e-2 of the
# largest component; 3,618 at scale 0.5, eps = 1e-7): boxes far apart along a diagonal, where the target's weights
# entered as hh dx^2 + ww dy^2 and their gradient dww (dy^2 - dx^2)/c^2 was two rounded terms of size rho^2 that
# cancel; the distance is now (rho^2 + (ww - 1)(dy - dx)(dy + dx))/c^2, dy -+ dx from DiffOfDiffs
@pytest.mark.parametrize("params", [{"scale": 4.0}, {"scale": 0.5, "eps": 1e-7}])
@pytest.mark.parametrize("p, t", [
    ([75.03717803955078, 11.684419631958008, 91.1885757446289, 30.867300033569336],
     [299420.4375, 299357.09375, 299436.375, 299375.75]),
    ([-405.46575927734375, 978.7222290039062, -181.71473693847656, 1174.26416015625],
     [6465407.5, 6466792.0, 6465628.5, 6466986.5]),
])
def test_shape_iou_weights_of_boxes_far_apart_along_a_diagonal(p, t, params):
    _, g64 = _box_grad_error("shape_iou_loss", p, t, np.float64, **params)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error("shape_iou_loss", p, t, np.float32, **params)
    assert g32 <= 5.4e-5


# found by the float64 box sweep of shape_iou_loss at scale 20 (2026-12-05; 1,067 of 262,144 pairs over the bar, up to
# 3e-10 of the component): the weights' derivatives by SymPy's quotient rule, wu'/(wu + hu) - wu wu'/(wu + hu)^2,
# cancel as the weights near 0 and 2 (an oblong target, a large scale); now 2 (wu' hu - wu hu')/(wu + hu)^2
@pytest.mark.parametrize("scale", [8.0, 20.0])
@pytest.mark.parametrize("p, t", [
    ([0.01833840905360277, -0.01570863974043079, 0.026914379242931417, -0.007071658865001823],
     [0.01948734005012005, -141.94557678088466, 0.028077927361665436, -141.92774692834524]),
    ([-0.33365800294017656, 0.32417546226580407, -0.19897661365921648, 0.6950039842014856],
     [-0.29154924513570174, 7119.729004188555, -0.1579661914710395, 7119.991222611098]),
])
def test_shape_iou_weights_at_large_scales(p, t, scale):
    _, g64 = _box_grad_error("shape_iou_loss", p, t, np.float64, scale=scale)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error("shape_iou_loss", p, t, np.float32, scale=scale)
    assert g32 <= 5.4e-5


# found by the 1e7-point float32 box sweep of alpha_iou_loss(alpha=0.5, form="ciou") (262 pairs over the bar, up to
# 9.4e-4 of the largest component): crossing thin boxes whose centres nearly coincide (the distance term's gradient
# follows the direction of a centre offset that (px1 - tx1) + (px2 - tx2) lost; now by TwoSum), and far-apart boxes
# of nearly equal aspect ratios (CIoU's cross product w_t h_p - h_t w_p cancelled; now error-free, the sides'
# rounding errors included: the third pair failed, 1.4e-4, with only the products error-free)
@pytest.mark.parametrize("p, t", [
    ([-0.0013733456144109368, 6.163744546938688e-05, 0.0015214066952466965, 6.211163417901844e-05],
     [7.330893276957795e-05, -0.0004143448604736477, 7.47501544537954e-05, 0.0005380933289416134]),
    ([-0.03446879982948303, 0.08096221089363098, -0.014275461435317993, 0.0999017134308815],
     [-0.0416971854865551, -662.1574096679688, -0.0027761419769376516, -662.1209106445312]),
    ([-32759.21875, 8632.5634765625, -5812.9482421875, 37725.078125],
     [-22878.73828125, 283118752.0, -14613.40625, 283127680.0]),
])
def test_alpha_ciou_crossing_and_far_apart_pairs(p, t):
    params = {"alpha": 0.5, "form": "ciou"}
    _, g64 = _box_grad_error("alpha_iou_loss", p, t, np.float64, **params)
    assert g64 <= 1e-13
    _, g32 = _box_grad_error("alpha_iou_loss", p, t, np.float32, **params)
    assert g32 <= 5.4e-5


# found by the 10^9-point float32 box sweep (docs/exhaustive.md). Decisions on rounded float32 quantities: CIoU's
# alpha_gate=0.5 on a rounded IoU within 3e-8 of 0.5 switched alpha v on or off (value 3.8e4 ULP, gradients 2.1e-2
# of the scale); Inner-IoU's enlarged boxes of disjoint pairs overlapping by a sliver that float32's rounded
# auxiliary edges closed (gradient 0 where it is 7.2e-4: all of it); both now decided in float64 (Decide64).
# Thin, wide boxes: focal_l1_eiou_loss(beta=1)'s slope -alpha x ln x from a rounded EIoU x = 0.99994 (2.8e-2 of the
# scale; now Eval64), focal_eiou_loss(weight_grad=True)'s two product-rule terms cancelling to 1/5000 of their size
# (6.6e-3; now a wide output: float64 where they cancel).
_SWEPT = [
    ("focal_l1_eiou_loss", {"beta": 1.0},
     [-11.542861938476562, -0.3497331142425537, 11.159303665161133, -0.34720903635025024],
     [-9.67371940612793, -0.3509833514690399, 3.1773667335510254, -0.3465244174003601]),
    ("focal_l1_eiou_loss", {"beta": 1.0},
     [-0.404439777135849, -0.03428694233298302, 0.3874780237674713, -0.034004587680101395],
     [-0.8456626534461975, -0.03421534597873688, 0.5616884231567383, -0.03405646234750748]),
    ("focal_eiou_loss", {"weight_grad": True},
     [-102389.7265625, -2255.24755859375, 71231.9921875, -2044.5582275390625],
     [-291608.59375, -2190.30419921875, 280659.5625, -2126.382568359375]),
    ("focal_eiou_loss", {"weight_grad": True},
     [-0.789207935333252, -0.03431949019432068, 0.7164987921714783, -0.032468099147081375],
     [-2.8539254665374756, -0.03359684348106384, 2.098724365234375, -0.033033981919288635]),
    ("ciou_loss", {"alpha_gate": 0.5},
     [0.00858634989708662, -0.003106839256361127, 0.011943642981350422, 0.0015936288982629776],
     [0.00799538753926754, -0.003151245415210724, 0.011915883980691433, -0.00047752726823091507]),
    ("ciou_loss", {"alpha_gate": 0.5}, [86.35989379882812, -338.08111572265625, 164.40713500976562, -163.30845642089844],
     [86.21793365478516, -329.1650390625, 230.76290893554688, -176.9215087890625]),
    ("inner_iou_loss", {"ratio": 1.25}, [-563.73095703125, -668.3870849609375, 0.778460681438446, -191.9573516845703],
     [129.4951629638672, -640.9634399414062, 594.7197265625, 65.62185668945312]),
    ("inner_iou_loss", {"ratio": 1.25}, [1.5734363794326782, -3.8736042976379395, 2.9267053604125977, -0.368277907371521],
     [1.933874249458313, 0.7971791625022888, 3.2399935722351074, 6.615509986877441]),
    # siou_loss(theta=2, eps=1e-7) on boxes far smaller than eps (1e-4 by 2e-8; the 10^9 sweep's 958 ULP): the shape
    # cost's 1 - exp(-omega), omega ~ 1e-4, lost its digits (float32 6.5e-5 of the scale, float64 1.7e-13); now expm1
    ("siou_loss", {"theta": 2.0, "eps": 1e-7},
     [-0.00010839157766895369, -1.5756450011394918e-06, 0.0001148918381659314, -1.5514387996518053e-06],
     [-0.0001496603072155267, -1.576337126607541e-06, 7.335514965234324e-05, -1.5521019349762355e-06]),
    ("siou_loss", {"theta": 2.0, "eps": 1e-7},
     [-0.0001848557876655832, -8.418248853558907e-08, 0.00017158000264316797, -4.85389080040477e-08],
     [-0.0002979101554956287, -7.758823272752124e-08, 5.852563845110126e-05, -4.194465574869355e-08]),
]


@pytest.mark.parametrize("loss, params, p, t", _SWEPT)
def test_float32_worst_pairs_of_the_box_sweep(loss, params, p, t):
    v32, g32 = _box_grad_error(loss, np.float32(p).astype(float), np.float32(t).astype(float), np.float32, **params)
    assert g32 <= 5.4e-5 and v32 <= 1e-6


# (the float64 focal kernels had the same cancellations, up to 4e-12 and 1e-10 of the scale; now double-double there)
@pytest.mark.parametrize("loss, params, p, t", _SWEPT)
def test_float64_at_the_worst_pairs_of_the_box_sweep(loss, params, p, t):
    _, g64 = _box_grad_error(loss, np.float32(p).astype(float), np.float32(t).astype(float), np.float64, **params)
    assert g64 <= 1e-13


# the pairs whose float64 gradients the double-double evaluation changed most, of 4,022,692 pairs of the sweep's box
# space per row (seed 7): errors before, 1.0e-10 (an EIoU value of 0.99999: the slope's ln x) and 3.8e-12 of the scale
@pytest.mark.parametrize("loss, params, p, t", [
    ("focal_l1_eiou_loss", {"beta": 1.0}, [-16696.490234375, -1682.1939697265625, -11251.564453125, 22920.0859375],
     [-19289.064453125, -2873.81201171875, -6435.67041015625, 26213.15625]),
    ("focal_eiou_loss", {"weight_grad": True}, [-42.36159133911133, 2.0617005825042725, 51.01752853393555, 2.0851142406463623],
     [-16.79824447631836, 2.0382423400878906, 11.604793548583984, 2.115218162536621]),
])
def test_float64_focal_losses_where_their_terms_cancel(loss, params, p, t):
    _, g64 = _box_grad_error(loss, np.array(p), np.array(t), np.float64, **params)
    assert g64 <= 1e-13


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_l1_eiou_where_float32_takes_the_other_branch(dtype):
    # found by the sweep of the fix above: float32's rounded EIoU value x <= 1 where the exact one is > 1 (the linear
    # branch: at beta = 1 its slope -alpha ln(beta) is 0); the float64 slope at that x, -alpha x ln x with ln x > 0,
    # gave 2.3e-5 where the gradient is 0 (12,570 ULP of the natural scale); now ln(min(x, 1))
    p = [-1.6089287996292114, -16.056289672851562, -1.598272442817688, 15.442322731018066]
    t = [-1.607134222984314, -36.03664779663086, -1.6010929346084595, 19.52504539489746]
    P, T = np.float32([p]).astype(dtype), np.float32([t]).astype(dtype)
    _, egp, egt = box_oracle.focal_l1_eiou_loss(P[0].astype(float), T[0].astype(float), beta=1.0)
    assert all(float(g) == 0 for g in (*egp, *egt))  # exact: the linear branch
    _, (gp, gt) = rl.focal_l1_eiou_loss.value_and_grad(P, T, beta=1.0)
    assert not np.any(gp) and not np.any(gt)


# found by the 1e7-point float32 sweeps of the rotated losses: GWD's products of four sides (~1e8) overflowed float32
# (NaN and inf gradients; now from the sides divided by the largest), and KLD's target-angle derivative
# 2uv(1/w_t^2 - 1/h_t^2) was two terms that cancel for a nearly square target (8.9e4 ULP of the gradient scale)
@pytest.mark.parametrize("loss, p, t", [
    ("gwd_loss", [-778670336.0, -130317880.0, 38935832.0, 327483584.0, 0.6409483551979065],
     [478405536.0, -52144336.0, 88732600.0, 57286984.0, 1.3126600980758667]),
    ("kld_loss", [5077015.5, -3856881.75, 1205518.625, 731772.1875, 0.9574523568153381],
     [2827896.25, 17788.22265625, 914042.75, 914041.625, -0.6786801218986511]),
])
def test_rotated_float32_worst_pairs(loss, p, t):
    from refloss._measures import box_errors, rotated_extent
    from refloss.oracle import rotated

    P, T = np.asarray([p], np.float32), np.asarray([t], np.float32)
    ev, egp, egt = getattr(rotated, loss)(P[0].astype(float), T[0].astype(float))
    exact = np.array([[float(g) for g in (*egp, *egt)]])
    for dtype, bar in ((np.float64, 1e-13), (np.float32, 5.4e-5)):
        v, (gp, gt) = getattr(rl, loss).value_and_grad(P.astype(dtype), T.astype(dtype))
        _, gerr = box_errors(v, np.c_[gp, gt], [float(ev)], exact, P.astype(float), T.astype(float),
                             size=rotated_extent(P, T))
        assert gerr[0] <= bar, (dtype, gerr)


@pytest.mark.parametrize("loss", ["giou", "giou_loss"])
@pytest.mark.parametrize("eps", [8.98839677091395e-303, 1e-305, 1e-200])
def test_giou_gradient_at_zero_union_with_a_tiny_eps(loss, eps):
    # two point boxes 1e3 apart: U = I = 0, so U + eps = eps and E/(U + eps) overflows; the gradient term
    # (I/(U + eps)) E/(U + eps) was printed as (I/U') (E/U') = 0 * inf, NaN (found by the bounds property
    # with eps = 9e-303); it is (I/U') E / U' now, 0 for I = 0.  What is left is the penalty's
    # d/ds [-C/(C + eps)] = -eps dC/ds / (C + eps)^2 (the 50-digit oracle rounds it to 0: C + eps keeps eps only
    # to 200 digits), with C = W H, W = 1024, H = 1664 here: dC/dpx1 = -H, dC/dpy2 = W, dC/dtx2 = H, dC/dty1 = -W.
    p, t = np.array([0.0, 0.0, 0.0, 0.0]), np.array([1024.0, -1664.0, 1024.0, -1664.0])
    _, (gp, gt) = getattr(rl, loss).value_and_grad(p, t, eps=eps)
    w, h = 1024.0, 1664.0
    d_c = np.array([-h, 0.0, 0.0, w, 0.0, -w, h, 0.0])
    want = -eps * d_c / (w * h) ** 2 * (1.0 if loss == "giou" else -1.0)
    np.testing.assert_allclose(np.concatenate([gp, gt]), want, rtol=1e-12, atol=0)
