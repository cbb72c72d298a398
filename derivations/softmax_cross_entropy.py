"""Softmax cross-entropy on rows of logits (PyTorch ``cross_entropy``; the SSD classification term).

For a row of C logits z and (soft) targets y, the class axis being the LAST axis:
L = -sum_j y_j log softmax_j(z) = sum_j y_j (lse(z) - z_j), lse(z) = log sum_j exp(z_j).
Evaluated stably with m = max_j z_j: lse(z) - z_j = (m - z_j) + log1p(s' + (n - 1)), where s' is
the sum of exp(z_j - m) over the logits below the maximum and n the number of logits equal to it
(so s = s' + n >= 1 and nothing overflows or cancels).
dL/dz_j = Y softmax_j - y_j with Y = sum_j y_j; dL/dy_j = lse(z) - z_j.  label_smoothing e (torch's)
uses y'_j = (1 - e) y_j + e/C in place of y_j: dL/dz_j = Y' softmax_j - y'_j, dL/dy_j = (1 - e)(lse(z) - z_j).
"""
import sympy as sp
from sympy.codegen.cfunctions import log1p

from refloss._derive.core import (ROW_INDEX, ROW_WIDTH, Branch, Kernel, LossSpec, Param, RowStep, Step, expand_row,
                                  prove_equal)
from refloss._derive.functions import Group, NanTo0, ScaledExp, Step as Above, Sub, TwoSum, Weighted, plain

NAME = "softmax_cross_entropy"
C_PROOF = 3  # the identities are proved for rows of this many classes (and for a tie at the maximum)

z = sp.Symbol("z", real=True)  # element j of the logits row
y = sp.Symbol("y", real=True)  # element j of the targets row
m, Y, s1, s1k, n, t, l, s, c, w = sp.symbols("m Y s_1 s_1K n t l s C w", real=True)
eps = sp.Symbol("label_smoothing", real=True)  # torch's label_smoothing: y -> (1 - eps) y + eps / C



def _exp_below(zj):
    """exp(z_j - m) with the rounding error e of z_j - m put back, exp(d)(1 + e): the difference
    of two large logits loses no digit of the probability (|z_j - m| eps relative otherwise).  e is taken as 0
    where it is NaN (d = -inf for finite logits more than the largest float apart, where e = inf - inf is NaN).
    (DFL's form, whose bins' weights sum to 1; softmax cross-entropy keeps it times 2^K: _exp_below_scaled.)"""
    return sp.exp(TwoSum(zj, -m, 0)) * (1 + NanTo0(TwoSum(zj, -m, 1)))


# Softmax cross-entropy keeps exp(z_j - m) times 2^K: alone it is subnormal beyond a logit gap of 708 (float32: 87)
# and keeps fewer bits, while Y softmax_j, the gradient's term, is normal up to a gap of 708 + log Y (float32
# 87 + log Y): soft targets summing to Y > 1 lost up to 149-212 ULP (float32, 1,000 classes) and 29-492 ULP
# (float64).  2^K >= Y keeps the kept value normal wherever that term is; kept <= 2^K (z_j <= m), its product with
# Y' far below the largest float32.  The scalings are powers of two, exact where the values are normal: the same
# bits there as unscaled.
K = 64
UNSCALE = sp.Integer(2)**-K


def _exp_below_scaled(zj):
    """_exp_below(z_j) 2^K, exp(d)(1 + e) 2^K, the exp's form building 2^K into its power of two (``ScaledExp``):
    exp(d) itself is never formed."""
    return ScaledExp(TwoSum(zj, -m, 0), K) * (1 + NanTo0(TwoSum(zj, -m, 1)))


ROW = (
    RowStep(m, "max", z),
    RowStep(c, "count", sp.Integer(1)),  # the number of classes C
    RowStep(Y, "sum", y),
    RowStep(s1k, "sum", Above(m - z) * _exp_below_scaled(z)),  # the terms below the maximum, times 2^K
    RowStep(n, "count", 1 - Above(m - z)),  # how many logits equal the maximum (>= 1)
    RowStep(s1, "let", UNSCALE * s1k),  # exact where s' is normal
    RowStep(t, "let", n - 1),  # exact: an integer
    RowStep(l, "let", log1p(s1 + t)),  # log s, s = 1 + (s' + n - 1) >= 1: no cancellation
    RowStep(s, "let", s1 + n),
    RowStep(w, "let", (1 - eps) * Y + eps),  # the smoothed targets' sum
)
SMOOTHED = (1 - eps) * y + eps / c  # exactly y at label_smoothing = 0
LSE_MINUS_Z = Sub(m, z) + l  # lse(z) - z_j >= 0, the maximum's term exactly log s
# a class of target 0 adds exactly 0 (lse(z) - z_j overflows to inf for finite logits more than the largest float apart)
OUTPUTS = {"value": Weighted(SMOOTHED, LSE_MINUS_Z), "d_z": UNSCALE * Group(w * (_exp_below_scaled(z) / s)) - SMOOTHED, "d_y": (1 - eps) * LSE_MINUS_Z}


# class indices: the targets one number a row, the class k (as a float); the one-hot row's y_j = [j = k]
k = sp.Symbol("targets", real=True)
jf, C_ROW = ROW_INDEX, ROW_WIDTH
HOT = sp.Heaviside(jf - k, 1) * sp.Heaviside(k - jf, 1)  # [j = k]: 1.0 or 0.0, as the one-hot row holds it
spread = Above(eps)  # label smoothing spreads the value's terms over the row
INDEX_ROW = tuple(st for st in ROW if st.symbol not in (Y, w)) + (RowStep(w, "let", (1 - eps) + eps),)  # Y = 1 exactly
INDEX_OUTPUTS = {"value": OUTPUTS["value"].xreplace({y: HOT}), "d_z": OUTPUTS["d_z"].xreplace({y: HOT})}
# the value's terms vanish outside j = k without label smoothing; with it every class has a term
INDEX_SUPPORT = (k * (1 - spread), 1 + (C_ROW - 1) * spread)


def _plain(e):
    return plain(e).replace(log1p, lambda a: sp.log(1 + a))


def _prove(checks):
    zs, ys = sp.symbols(f"z0:{C_PROOF}", real=True), sp.symbols(f"y0:{C_PROOF}", real=True)
    lse = sp.log(sp.Add(*(sp.exp(zk) for zk in zs)))
    smoothed = [(1 - eps) * yk + eps / C_PROOF for yk in ys]
    textbook = -sp.Add(*(yk * sp.log(sp.exp(zk) / sp.exp(lse)) for yk, zk in zip(smoothed, zs)))
    domain = {**{zk: (-4, 4) for zk in zs}, **{yk: (0, 1) for yk in ys}, eps: (0, 1)}
    for tie, label in ((False, ""), (True, ", two logits tied at the maximum")):
        sub = {zs[1]: zs[0]} if tie else {}
        value, dz, dy = (rows for rows in expand_row(ROW, {z: zs, y: ys}, list(OUTPUTS.values()), _plain))
        value = sp.Add(*value).xreplace(sub)
        ref = textbook.xreplace(sub)
        prove_equal(value, ref, f"C = {C_PROOF}: sum_j y_j ((m - z_j) + log1p(s' + n - 1)) is "
                    f"-sum_j y'_j log softmax_j, y' = (1 - label_smoothing) y + label_smoothing / C{label}", checks, domain=domain, numeric=True)
        for j in range(C_PROOF):
            if tie and j == 1:
                continue  # z_1 is z_0 there
            prove_equal(dz[j].xreplace(sub), sp.diff(textbook, zs[j]).xreplace(sub),
                        f"C = {C_PROOF}: dL/dz_{j} = Y' softmax_{j} - y'_{j}{label}", checks, domain=domain, numeric=True)
            prove_equal(dy[j].xreplace(sub), sp.diff(textbook, ys[j]).xreplace(sub),
                        f"C = {C_PROOF}: dL/dy_{j} = (1 - label_smoothing)(lse(z) - z_{j}){label}", checks, domain=domain, numeric=True)


def _prove_index(checks):
    """The class-index kernel is the one-hot rows' kernel: its value and d/dz at C_PROOF classes, each class k,
    with and without label smoothing, equal the soft kernel's at y = e_k; its value's terms vanish outside
    its support."""
    zs = sp.symbols(f"z0:{C_PROOF}", real=True)
    idx = tuple(sp.Integer(j) for j in range(C_PROOF))
    domain = {**{zk: (-4, 4) for zk in zs}, eps: (0, 1)}
    plain_c = lambda e: _plain(e).xreplace({C_ROW: C_PROOF})  # noqa: E731
    for kv in range(C_PROOF):
        for e_val, label in ((sp.Integer(0), "no label smoothing"), (eps, "label smoothing")):
            hot = [sp.Integer(1 if j == kv else 0) for j in range(C_PROOF)]
            soft = expand_row([RowStep(st.symbol, st.op, st.expr.xreplace({eps: e_val})) for st in ROW],
                              {z: zs, y: hot}, [OUTPUTS["value"].xreplace({eps: e_val}), OUTPUTS["d_z"].xreplace({eps: e_val})],
                              _plain)
            sub = {k: kv, eps: e_val}
            steps = [RowStep(st.symbol, st.op, st.expr.xreplace(sub)) for st in INDEX_ROW]
            value, dz, lower, count = expand_row(steps, {z: zs, jf: idx}, [
                INDEX_OUTPUTS["value"].xreplace(sub), INDEX_OUTPUTS["d_z"].xreplace(sub),
                INDEX_SUPPORT[0].xreplace(sub), INDEX_SUPPORT[1].xreplace(sub)], plain_c)
            where = f"C = {C_PROOF}, class index {kv}, {label}"
            prove_equal(sp.Add(*value), sp.Add(*soft[0]), f"{where}: the value is the one-hot row's", checks,
                        domain=domain, numeric=True)
            prove_equal(sp.Add(*(sp.Abs(a - b) for a, b in zip(dz, soft[1]))), 0,
                        f"{where}: d/dz is the one-hot row's", checks, domain=domain, numeric=True)
            if e_val == 0:
                first, n = int(sp.floor(lower[0])), int(count[0])
                outside = [j for j in range(C_PROOF) if not first <= j < first + n]
                prove_equal(sp.Add(*(sp.Abs(value[j]) for j in outside)), 0, f"{where}: the value's terms are 0 "
                            f"outside the class {kv} (at {outside})", checks, domain=domain, numeric=True)


def derive() -> LossSpec:
    checks = []
    _prove(checks)
    _prove_index(checks)
    arrays = (("logits", None, (z,)), ("targets", None, (y,)))
    kernel = Kernel(arrays=arrays, args=(eps,), prelude=(), branches=(Branch(None, dict(OUTPUTS)),),
                    invalid=sp.Or(y < 0, y > 1), row=ROW)
    index_kernel = Kernel(arrays=(("logits", None, (z,)), ("targets", 1, (k,))), args=(eps,), prelude=(),
                          branches=(Branch(None, dict(INDEX_OUTPUTS)),), invalid=sp.Or(k < 0, k > C_ROW - 1),
                          grad_arrays=("logits",), row=INDEX_ROW, support=INDEX_SUPPORT)
    zj, yj, zk = sp.Symbol("z_j", real=True), sp.Symbol("y_j", real=True), sp.Symbol("z_k", real=True)
    lse = sp.Symbol("\\operatorname{lse}(z)")
    return LossSpec(
        name=NAME, title="Softmax cross-entropy",
        formula="L = -sum_j y_j log softmax_j(z) = sum_j y_j (lse(z) - z_j), lse(z) = log sum_j exp(z_j), over "
        "the LAST axis of logits z (C classes) with (soft) targets y in [0, 1] of the same shape, or an integer "
        "class index k per row (then L = lse(z) - z_k); label_smoothing e replaces y_j by (1 - e) y_j + e/C as "
        "torch does.",
        references=["PyTorch torch.nn.functional.cross_entropy (class axis dim 1 there, the last axis here)",
                    "Liu et al., SSD: Single Shot MultiBox Detector, arXiv:1512.02325 (the confidence loss)"],
        params=[Param("label_smoothing", eps, 0.0, "torch's label smoothing: the targets become "
                      "(1 - label_smoothing) y + label_smoothing / C", lower=sp.Integer(0), upper=sp.Integer(1))],
        constants=[], kernels={p: kernel for p in ("f64", "f32")},
        index_kernels={p: index_kernel for p in ("f64", "f32")},
        steps=[Step("Cross-entropy of the softmax of a row of logits $z$ (C classes, the last axis) against "
                    "targets $y_j$ (probabilities, or one-hot for a class index $k$):", "L",
                    -sp.Sum(yj * sp.log(sp.Symbol("\\operatorname{softmax}_j(z)")), (sp.Symbol("j"), 1, sp.Symbol("C")))),
               Step("with $\\operatorname{softmax}_j(z) = e^{z_j} / \\sum_i e^{z_i}$, i.e.", "L",
                    sp.Sum(yj * (lse - zj), (sp.Symbol("j"), 1, sp.Symbol("C")))),
               Step("For a class index $k$ (one-hot targets):", "L", lse - zk),
               Step("Evaluated with $m = \\max_j z_j$, $s_1 = \\sum_{z_j < m} e^{z_j - m}$ and $n$ the number of "
                    "logits equal to $m$ (so $s = \\sum_j e^{z_j - m} = s_1 + n \\ge 1$): no exponential overflows, "
                    "and the maximum's term is $\\log(1 + s_1 + (n - 1))$ by log1p, accurate however small:",
                    lse - zj, (m - zj) + log1p(s1 + (n - 1))),
               Step("Label smoothing $\\varepsilon$ (torch's label_smoothing) uses the targets "
                    "$y'_j = (1 - \\varepsilon) y_j + \\varepsilon / C$ in place of $y_j$ (exactly $y_j$ at "
                    "$\\varepsilon = 0$); their sum is $Y' = (1 - \\varepsilon) Y + \\varepsilon$, $Y = \\sum_j y_j$.",
                    None, None),
               Step("Two loops over the row compute $m$, $C$ and $Y$, then $s'$ and $n$; a third sums "
                    "the terms $y'_j (\\operatorname{lse}(z) - z_j)$ and writes the gradients:",
                    "\\frac{\\partial L}{\\partial z_j}", sp.Symbol("Y'") * sp.exp(zj - m) / s - sp.Symbol("y'_j")),
               Step("", "\\frac{\\partial L}{\\partial y_j}", (1 - sp.Symbol("\\varepsilon")) * (lse - zj))],
        conventions="The class axis is the LAST axis of logits (torch.nn.functional.cross_entropy uses dim 1: "
        "move it last, e.g. logits.movedim(1, -1)). Soft targets: the same shape as logits, each in [0, 1] (they "
        "need not sum to 1: dL/dz_j = Y softmax_j - y_j with Y their sum). Hard targets: an integer array of "
        "class indices broadcastable to logits.shape[:-1], each in [0, C); on the CPU (float32, float64) a kernel of "
        "their own takes them, one number a row (no one-hot rows built; the same results as the one-hot rows, bit "
        "for bit), elsewhere (a GPU, float16) they are one-hot rows for the kernel; value_and_grad returns (d_logits, "
        "None): no gradient for integer targets. reduction='mean' divides "
        "the sum by the number of rows (torch's mean for class indices without weights and for probabilities "
        "alike). Differentiable everywhere.",
        accuracy="m = max_j z_j first; exp(z_j - m) with the rounding error e of z_j - m put back "
        "(exp(d)(1 + e)), kept times 2^64 (built into the exp's power of two; undone on the sum s' and on "
        "Y exp(d)(1 + e)/s, exact where those are normal), so that exp(z_j - m), subnormal beyond a logit gap "
        "of 708 (float32: 87), keeps its bits where Y softmax_j is normal (soft targets summing to Y > 1); lse(z) - z_j as (m - z_j) + log1p(s' + (n - 1)): every term of the value is "
        "non-negative, so logits of any magnitude (1e30, -1e30) give finite, accurate values. Logits more than the "
        "largest float apart (1e308 and -1e308): no NaN; a class of target 0 adds exactly 0 and its exp(z_j - m) is 0, "
        "while a term y_j (lse(z) - z_j) with y_j > 0 whose lse(z) - z_j overflows is inf (as that d/dy_j). "
        "Sums are compensated in index order (float32: float64 sums of the float32 terms).",
        checks=checks, input_ranges={"targets": (0.0, 1.0)}, family="softmax", indices=("targets",))
