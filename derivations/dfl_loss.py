"""Distribution Focal Loss (Li et al., Generalized Focal Loss, arXiv:2006.04388, eq. 6).

A box side is predicted as a distribution S = softmax(z) over n = reg_max + 1 bins 0, 1, ..., n - 1
(the LAST axis of the logits); its continuous target y in [0, n - 1] lies between the bins
y_l = floor(y) and y_r = y_l + 1, and
    DFL(S, y) = -((y_r - y) log S_{y_l} + (y - y_l) log S_{y_r}).
The two weights are the hat function w_j = max(0, 1 - |j - y|) of the bin index j, so
L = sum_j w_j (lse(z) - z_j), the softmax cross-entropy to the "two-hot" target w (the row
machinery of derivations/softmax_cross_entropy.py, with the target one number per row).
At y = n - 1 the paper's y_r = n is out of range; its weight y - y_l is 0, so L = -log S_{n-1}.
dL/dz_j = softmax_j - w_j;  dL/dy = z_{y_l} - z_{y_r} (the loss is linear in y between bins; at an
integer y the right derivative, that of the paper's floor, and at y = n - 1 the left one, the
only one there).  ``clamp`` (None: the paper) clamps y into [0, n - 1 - clamp] first, as peers
do: ultralytics 0.01, D-FINE 0.1 (then dL/dy is 0 where the clamp is active and at its bounds, as torch 2.14.1's
clamp gives).
"""
import sympy as sp
from sympy.codegen.cfunctions import log1p

from refloss._derive.core import (ROW_INDEX, ROW_WIDTH, Branch, Kernel, LossSpec, Param, RowStep, Step, Variant,
                                  expand_row, prove_equal)
from refloss._derive.functions import Clamp0, RealAbs, Step as Above, Sub, TMax, TMin, Weighted, plain
from .softmax_cross_entropy import _exp_below, l, m, n, s, s1, t, z

NAME = "dfl_loss"
N_PROOF = 4  # the identities are proved for rows of this many bins

y = sp.Symbol("target", real=True)  # one number per row
clamp = sp.Symbol("clamp", real=True)  # None -> -1: no clamp
tc, on, e_end, g2, gate, top, dt = sp.symbols("t_c on e_end g_2 gate top delta_t", real=True)
big, held = sp.symbols("big held", real=True)
jf, C = ROW_INDEX, ROW_WIDTH
H1 = lambda x: sp.Heaviside(x, 1)  # noqa: E731 - 1 where x >= 0
H0 = lambda x: sp.Heaviside(x, 0)  # noqa: E731 - 1 where x > 0

ROW = (
    RowStep(on, "let", Above(clamp + sp.Rational(1, 2))),  # 1 where a clamp is given (None is -1)
    # 1 where the clamp holds the target at n - 1 - clamp (y >= n - 1 - clamp), decided exactly: as y >= n - 1 - clamp
    # where that bound is exact (clamp >= (n - 1)/2: Sterbenz's lemma), else as clamp >= (n - 1) - y (exact for
    # y >= (n - 1)/2; below it the target is not held whatever the rounding, (n - 1) - y >= (n - 1)/2 > clamp).
    # (clamp >= (n - 1) - y alone: a target a few ulps below a bound under (n - 1)/2 rounded onto it and was held,
    # n = 4, clamp 2.5, y = 0.5 - 2^-54: dL/dy 0 for 1.5, found by review)
    RowStep(big, "let", H1(clamp - (C - 1) / 2)),
    RowStep(held, "let", big * H1(y - Sub(C - 1, clamp)) + (1 - big) * H1(clamp - Sub(C - 1, y))),
    RowStep(top, "let", on * held),
    # the (clamped) target: n - 1 - clamp rounded where the clamp holds it, with delta_t = (n - 1 - clamp) - t_c, exact
    # (two subtractions exact by Sterbenz's lemma), put back into the weights: t_c's rounding (half an ulp of n - 1) would
    # be magnified by the small weight of the bin below (279 ULP in a float32 value at clamp 0.01 before); elsewhere
    # max(y, 0) itself and delta_t = 0
    RowStep(tc, "let", top * Sub(C - 1, clamp) + (1 - top) * (on * TMax(y, 0) + (1 - on) * y)),
    RowStep(dt, "let", top * Sub(Sub(C - 1, tc), clamp)),
    # d t_c / dy: 1, or (clamp given) 1 strictly inside (0, n - 1 - clamp), 0 where the clamp is active and at
    # its bounds (torch 2.14.1's clamp); "inside" is the complement of the value's decision, held: y > (n - 1 - clamp)
    # rounded decided it apart, and a target within half an ulp below the bound (float32, clamp 0.01, 8 bins:
    # 6.98999977 against 6.99) had its value from the target and dL/dy 0 (found by verify with clamp 0.01: 1.5e7 ULP)
    RowStep(gate, "let", (1 - on) + on * H0(y) * (1 - held)),
    RowStep(e_end, "let", H1(tc - (C - 1))),  # the last bin: the left derivative
    RowStep(g2, "let", H1(C - 2)),  # two bins or more (one bin: L = 0 and dL/dy = 0)
    RowStep(m, "max", z),
    RowStep(s1, "sum", Above(m - z) * _exp_below(z)),
    RowStep(n, "count", 1 - Above(m - z)),
    RowStep(t, "let", n - 1),
    RowStep(l, "let", log1p(s1 + t)),
    RowStep(s, "let", s1 + n),
)
U = Sub(jf, tc)  # j - t_c, exact where it matters (Sterbenz)
# the hat max(0, 1 - |j - t_c|), evaluated as the paper's weights: y - y_l = t_c - (j - 1) at j = y_r,
# y_r - y = (j + 1) - t_c at j = y_l (exact where t_c >= 1; 1 - |j - t_c| would lose the digits of a weight
# near 0, e.g. y = 1e-9), 0 elsewhere
# (with delta_t: the weights of t_c + delta_t, one rounding each; its side of bin j from j - t_c - delta_t, an exact
# sign; delta_t = 0 and the same operations as without it where the clamp does not hold the target)
UD = U - dt
W = Clamp0(H0(UD) * (Sub(tc, jf - 1) + dt) + H1(-UD) * (Sub(jf + 1, tc) - dt))
# d w_j / dt_c: -1 at j = y_l, +1 at j = y_r, with y_l = floor(t_c) (right derivative), or at the last bin
# y_l = n - 2 (left derivative)
RIGHT = H0(U) * H1(1 - U) - H1(-U) * H0(U + 1)
LEFT = H1(U) * H0(1 - U) - H0(-U) * H1(U + 1)
DW = (1 - e_end) * RIGHT + e_end * LEFT
LSE_MINUS_Z = Sub(m, z) + l
OUTPUTS = {"value": Weighted(W, LSE_MINUS_Z), "d_z": _exp_below(z) / s - W, "d_target": -gate * g2 * DW * z}
# the two bins where the value's terms (w_j) and dL/dy's (dw_j/dt_c) can be non-zero: y_l = floor(t_c) and y_r, or
# n - 2 and n - 1 at the last bin (the left derivative): the value's loop visits these alone (proved below)
# (where the clamp holds the target at t_c = n - 1 - clamp rounded up, delta_t < 0: if t_c rounded onto an integer K,
# the exact target lies just below it, in the bins K - 1 and K; the loop then takes the bin below too, whose terms
# are exactly 0 otherwise)
SUPPORT = (TMin(tc - Above(-dt), C - 2), 2 + Above(-dt))


def _plain(e):
    # first: Clamp0's Max and TMin's Min need comparable numbers
    e = e.replace(Sub, lambda a, b: a - b).replace(RealAbs, sp.Abs).replace(Above, lambda x: sp.Heaviside(x, 0))
    return plain(e).replace(log1p, lambda a: sp.log(1 + a))


def _prove(checks):
    zs = sp.symbols(f"z0:{N_PROOF}", real=True)
    lse = sp.log(sp.Add(*(sp.exp(zk) for zk in zs)))
    logS = [zk - lse for zk in zs]
    dom = {zk: (-4, 4) for zk in zs}
    idx = tuple(sp.Integer(j) for j in range(N_PROOF))
    for yv in (sp.Integer(0), sp.Rational(1, 3), sp.Integer(1), sp.Rational(7, 5), sp.Integer(2), sp.Rational(5, 2),
               sp.Integer(N_PROOF - 1)):
        yl = int(sp.floor(yv))
        yr = yl + 1
        paper = -((yr - yv) * logS[yl] + ((yv - yl) * logS[yr] if yr < N_PROOF else 0))
        sub = {y: yv, clamp: -1, C: N_PROOF}
        steps = [RowStep(st.symbol, st.op, st.expr.xreplace(sub)) for st in ROW]
        outs = [o.xreplace(sub) for o in OUTPUTS.values()] + [SUPPORT[0].xreplace(sub)]
        value, dz, dy, lower = expand_row(steps, {z: zs, jf: idx}, outs, _plain)
        where = f"n = {N_PROOF}, y = {yv}"
        first = int(sp.floor(lower[0]))
        outside = [k for k in range(N_PROOF) if not first <= k < first + 2]  # (delta_t = 0: no clamp)
        prove_equal(sp.Add(*(sp.Abs(value[k]) + sp.Abs(dy[k]) for k in outside)), 0, f"{where}: the terms of L and "
                    f"dL/dy are 0 outside the bins {first}, {first + 1} (at {outside})", checks, domain=dom, numeric=True)
        prove_equal(sp.Add(*value), paper, f"{where}: sum_j max(0, 1 - |j - y|)(lse - z_j) is the paper's DFL", checks,
                    domain=dom, numeric=True)
        for k in range(N_PROOF):
            prove_equal(dz[k], sp.diff(paper, zs[k]), f"{where}: dL/dz_{k} = softmax_{k} - w_{k}", checks, domain=dom,
                        numeric=True)
        lo = yl if yr < N_PROOF else N_PROOF - 2  # the last bin: the left piece
        piece = -((lo + 1 - y) * logS[lo] + (y - lo) * logS[lo + 1])
        prove_equal(sp.Add(*dy), sp.diff(piece, y), f"{where}: dL/dy is the derivative of the piece "
                    f"[{lo}, {lo + 1}] ({'right' if lo == yl else 'left'} derivative)", checks, domain=dom, numeric=True)
    # with a clamp: the target at or beyond n - 1 - clamp is held there (value and dL/dz the paper's at that target,
    # dL/dy 0), below it the target itself; clamps below 1 (ultralytics 0.01, D-FINE 0.1) and above
    for cv in (sp.Rational(1, 100), sp.Rational(1, 10), sp.Rational(3, 2)):
        bound = N_PROOF - 1 - cv
        for yv in (bound - sp.Rational(1, 7), bound, sp.Integer(N_PROOF - 1)):
            held = min(yv, bound)
            yl = int(sp.floor(held))
            paper = -((yl + 1 - held) * logS[yl] + (held - yl) * logS[yl + 1])
            sub = {y: yv, clamp: cv, C: N_PROOF}
            steps = [RowStep(st.symbol, st.op, st.expr.xreplace(sub)) for st in ROW]
            value, dz, dy, lower = expand_row(steps, {z: zs, jf: idx}, [o.xreplace(sub) for o in OUTPUTS.values()]
                                              + [SUPPORT[0].xreplace(sub)], _plain)
            where = f"n = {N_PROOF}, clamp = {cv}, y = {yv}"
            first = int(sp.floor(lower[0]))
            outside = [k for k in range(N_PROOF) if not first <= k < first + 2]  # (delta_t = 0 in exact arithmetic)
            prove_equal(sp.Add(*(sp.Abs(value[k]) + sp.Abs(dy[k]) for k in outside)), 0, f"{where}: the terms of L "
                        f"and dL/dy are 0 outside the bins {first}, {first + 1} (at {outside})", checks, domain=dom,
                        numeric=True)
            prove_equal(sp.Add(*value), paper, f"{where}: L is the paper's DFL at the target {held}", checks,
                        domain=dom, numeric=True)
            prove_equal(sp.Add(*(sp.Abs(dz[k] - sp.diff(paper, zs[k])) for k in range(N_PROOF))), 0,
                        f"{where}: dL/dz is the paper's at the target {held}", checks, domain=dom, numeric=True)
            want = 0 if yv >= bound else sp.diff(-((yl + 1 - y) * logS[yl] + (y - yl) * logS[yl + 1]), y)
            prove_equal(sp.Add(*dy), want, f"{where}: dL/dy is " + ("0 (the clamp holds the target)" if yv >= bound
                        else "the derivative of its piece"), checks, domain=dom, numeric=True)


def derive() -> LossSpec:
    checks = []
    _prove(checks)
    arrays = (("logits", None, (z,)), ("target", 1, (y,)))
    kernel = Kernel(arrays=arrays, args=(clamp,), prelude=(), branches=(Branch(None, dict(OUTPUTS)),),
                    invalid=sp.Or(y < 0, y > C - 1), row=ROW, support=SUPPORT)
    yl, yr, S = sp.Symbol("y_l"), sp.Symbol("y_r"), sp.Function("S")
    jj = sp.Symbol("j")
    return LossSpec(
        name=NAME, title="Distribution Focal Loss",
        formula="L = -((y_r - y) log S_{y_l} + (y - y_l) log S_{y_r}), S = softmax(logits) over the LAST axis "
        "(n_bins = reg_max + 1 bins 0..n_bins-1), y_l = floor(y), y_r = y_l + 1, for a continuous target y in "
        "[0, n_bins - 1] per row; at y = n_bins - 1 the out-of-range bin y_r has weight 0. clamp=c clamps y into "
        "[0, n_bins - 1 - c] first (ultralytics 0.01, D-FINE 0.1).",
        references=["X. Li et al., Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for "
                    "Dense Object Detection, arXiv:2006.04388 (eq. 6)"],
        params=[Param("clamp", clamp, None, "None (the paper); a number c >= 0: the target is clamped to at most "
                      "n_bins - 1 - c first (ultralytics 0.01, D-FINE 0.1)",
                      lower=sp.Integer(0), upper=C - 1, kind="optional", none_value=-1.0)],
        constants=[], kernels={p: kernel for p in ("f64", "f32")},
        variants=[Variant("dfl_clamp_ultralytics", "clamp=0.01 (ultralytics: the target clamped to n_bins - 1.01)",
                          params={"clamp": 0.01}),
                  Variant("dfl_clamp_dfine", "clamp=0.1 (D-FINE: the target clamped to n_bins - 1.1)",
                          params={"clamp": 0.1})],
        steps=[Step("Distribution Focal Loss (eq. 6 of the paper): the softmax $S$ of a row of logits $z$ over the "
                    "bins $0, \\dots, n - 1$ ($n$ = reg_max + 1, the last axis) against the continuous target "
                    "$y \\in [0, n - 1]$ between the bins $y_l = \\lfloor y \\rfloor$ and $y_r = y_l + 1$:", "L",
                    -((yr - sp.Symbol("y")) * sp.log(S(yl)) + (sp.Symbol("y") - yl) * sp.log(S(yr)))),
               Step("At $y = n - 1$ the bin $y_r = n$ does not exist; its weight $y - y_l$ is 0, so "
                    "$L = -\\log S_{n-1}$. The weights are the hat function of the bin index,", "w_j",
                    sp.Max(0, 1 - sp.Abs(jj - sp.Symbol("y")))),
               Step("so DFL is the softmax cross-entropy to the two-hot target $w$, evaluated as "
                    "softmax_cross_entropy is ($m = \\max_j z_j$, no overflow for logits of any magnitude):", "L",
                    sp.Sum(sp.Symbol("w_j") * (sp.Symbol("\\operatorname{lse}(z)") - sp.Symbol("z_j")),
                           (jj, 0, sp.Symbol("n") - 1))),
               Step("", "\\frac{\\partial L}{\\partial z_j}", sp.Symbol("\\operatorname{softmax}_j(z)") - sp.Symbol("w_j")),
               Step("$L$ is linear in $y$ between two bins, with a kink at each bin:", "\\frac{\\partial L}{\\partial y}",
                    sp.Symbol("z_{y_l}") - sp.Symbol("z_{y_r}")),
               Step("at an integer $y < n - 1$ this is the right derivative (the paper's $y_l = \\lfloor y \\rfloor$, "
                    "what autograd gives for the peers' code); at $y = n - 1$ the left one, $z_{n-2} - z_{n-1}$, the "
                    "only one there. With clamp $= c$ the target is $\\min(\\max(y, 0), n - 1 - c)$ and "
                    "$\\partial L / \\partial y = 0$ where the clamp is active and at its bounds (torch 2.14.1's clamp).")],
        conventions="The bin axis is the LAST axis of logits (n_bins = reg_max + 1 bins); target has the shape of "
        "logits without it (one number per row), in [0, n_bins - 1] (a target outside is invalid input, a "
        "ValueError naming it, with or without clamp). clamp=None (default, the paper): at y = n_bins - 1 the paper's out-of-range bin y_r = n_bins has "
        "weight y - y_l = 0, so L = -log S_{n_bins-1}. clamp=c: the target is clamped to at most n_bins - 1 - c "
        "first, as ultralytics' DFLoss (c = 0.01, reg_max there is the number of bins) and D-FINE's bbox2distance "
        "(c = 0.1) do, and dL/dtarget is 0 where the clamp is active and at its bounds 0 and n_bins - 1 - c (torch "
        "2.14.1's clamp passes no gradient there). dL/dy at "
        "an integer y is the right derivative z_y - z_{y+1} (floor(y) as the paper and the peers' autograd), at "
        "y = n_bins - 1 the left one; one bin (n_bins = 1) gives L = 0 and dL/dy = 0. reduction='mean' divides by "
        "the number of rows.",
        accuracy="lse(z) - z_j as (m - z_j) + log1p(s' + (n - 1)) with exp(z_j - m) corrected by the rounding error "
        "of z_j - m (softmax_cross_entropy's evaluation): the value is a sum of two non-negative terms, finite and "
        "accurate for logits of any magnitude; dL/dy = z_{y_l} - z_{y_r} is one rounded subtraction. The weights "
        "1 - |j - y| are exact where |j - y| is (Sterbenz) and within half an ulp otherwise. Whether the clamp holds the "
        "target (y >= n - 1 - clamp) is decided exactly: y against the bound where the bound is exact (clamp >= "
        "(n - 1)/2), clamp against (n - 1) - y elsewhere (exact for y >= (n - 1)/2, and never held below), and dL/dy's "
        "gate is its complement. Where the clamp holds the "
        "target at n - 1 - clamp, the weights take back t_c's rounding error (exact, by Sterbenz's lemma). The value "
        "and dL/dy sum over the two bins y_l, y_r alone (the other terms are 0: proved below for exact targets; where t_c = n - 1 - clamp rounds up "
        "onto an integer, the bins start one lower, as its rounding error says); logits more than the largest float "
        "apart give no NaN (a bin of weight 0 adds exactly 0; a weighted bin whose lse(z) - z_j overflows gives inf).",
        checks=checks, input_ranges={"target": (0.0, "row")}, family="distribution")
