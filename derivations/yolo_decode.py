"""YOLO box decoding (v2/v3, v4 grid sensitivity, Scaled-YOLOv4 / YOLOv5) with its VJP.

With the network outputs t = (t_x, t_y, t_w, t_h), anchor (p_w, p_h), grid cell
(c_x, c_y), the centre scale s and the stride:

    b_x = (s sigma(t_x) - (s - 1)/2 + c_x) * stride          (b_y alike)
    b_w = p_w exp(t_w)                      (v2, v3, v4)     (b_h alike)
    b_w = p_w (2 sigma(t_w))^2              (Scaled-YOLOv4, YOLOv5)

v2/v3 are s = 1 (Redmon & Farhadi, arXiv 1612.08242, 1804.02767), v4's grid
sensitivity a general s (Bochkovskiy et al., arXiv 2004.10934; 1.05 to 1.2 in the
released heads), and the Scaled-YOLOv4 centre 2 sigma - 0.5 is s = 2 (Wang et al.,
arXiv 2011.08036).  The kernel returns the box (cx, cy, w, h) and the vector-Jacobian
product of a cotangent u with respect to t: d/dt sum_k u_k b_k.
"""
import sympy as sp

from refloss._derive.core import Branch, Kernel, LossSpec, Param, Plot, Step, prove_equal
from refloss._derive.functions import EvalAccurate, Group, Sigmoid, SigmoidSize, plain

NAME = "yolo_decode"
tx, ty, tw, th = sp.symbols("tx ty tw th", real=True)
pw, ph = sp.symbols("pw ph", real=True)  # not positive: INVALID would simplify to False
cx, cy = sp.symbols("cx cy", real=True)
ux, uy, uw, uh = sp.symbols("ux uy uw uh", real=True)
s = sp.Symbol("scale_xy", positive=True)
scaled = sp.Symbol("scaled_wh", nonnegative=True)  # 1: Scaled-YOLOv4 sizes, 0: exponential sizes
stride = sp.Symbol("stride", positive=True)
ARRAYS = (("t", 4, (tx, ty, tw, th)), ("anchors", 2, (pw, ph)), ("grid", 2, (cx, cy)),
          ("cotangent", 4, (ux, uy, uw, uh)))
INVALID = sp.Or(pw <= 0, ph <= 0)


def _centre_terms(t, c):
    # ((s - 1)/2 as one rounded number: SymPy distributes the 1/2, and s sigma - s/2 + 1/2 cancelled in its first
    # sum, 14 ULP64 at s = 1.05, t = -5.7 with no cancellation of the whole)
    return s * Sigmoid(t), Group(s - 1) / 2, c


def centre(t, c):
    """(s sigma(t) - (s - 1)/2 + c) stride, the sum in the kernel's precision."""
    a, h, c = _centre_terms(t, c)
    return (a - h + c) * stride


def centre_kept(t, c):
    """Positive where the centre's sum keeps its digits: |sum| above a quarter of |s sigma| + |(s - 1)/2|, the terms
    that carry rounding errors (c, a cell index, is exact): their errors, amplified at most 4 times, stay within the
    bar. (Half of all three terms, at first, sent every t in (-1.61, 1.10) of cell 0 to the slow branch for s = 2,
    t = 0 among them: the exhaustive float32 sweep of that centre did not finish in 20 minutes.)"""
    a, h, c = _centre_terms(t, c)
    return sp.Abs(a - h + c) - (sp.Abs(a) + sp.Abs(h)) / 4


def centre_accurate(t, c):
    """The centre with its sum one precision up (float64 in the float32 kernel, double-double with ~100-bit
    functions in the float64 one) where it is below a quarter of |s sigma| + |(s - 1)/2|, rounded once: in cell c = 0 with s > 1 near
    t = log((s - 1)/(s + 1)) (an object at the image's left or top edge; Scaled-YOLOv4/YOLOv5's s = 2, t near
    -log 3) the offset is much smaller than its terms, and sigma's rounding made the centre 108 ULP64 off at t =
    -1.1076036591740275 (a probe, 2026-12-07; bar 8). In a rare branch (cell 0 only, for s <= 3): in the common
    branch the double-double kept the CPU loop from vectorising (decode 3x slower in float64); the CPU loops' fast
    form leaves it out and flags its elements (docs/performance-log.md, 2026-12-07)."""
    a, h, c = _centre_terms(t, c)
    return EvalAccurate(a - h + c, centre_kept(t, c)) * stride


def derive() -> LossSpec:
    checks = []
    bx, by = centre(tx, cx), centre(ty, cy)
    exp_wh = (pw * sp.exp(tw), ph * sp.exp(th))
    scaled_wh = (SigmoidSize(pw, tw), SigmoidSize(ph, th))
    sig = 1 / (1 + sp.exp(-tx))
    d = 1 + sp.exp(-abs(tw))
    for sign, n in ((1, 1), (-1, sp.exp(2 * tw))):
        t_sign = sp.Symbol("tw", positive=True) * sign
        prove_equal((4 * pw * n / d**2).subs(tw, t_sign), plain(scaled_wh[0]).subs(tw, t_sign),
                    f"the evaluation form 4 p n/(1 + e^(-|t|))^2 is p (2 sigma(t))^2 for t {'>' if sign > 0 else '<'} 0",
                    checks)
    dh, dl = sp.symbols("d_h d_l", positive=True)
    prove_equal(sp.series(1 / (dh + dl) ** 2, dl, 0, 2).removeO(), (1 - 2 * dl / dh) / dh**2,
                "1/(d_h + d_l)^2 = (1 - 2 d_l/d_h)/d_h^2 + O(d_l^2): the correction for the rounding error d_l of d",
                checks)
    prove_equal(sp.diff(plain(scaled_wh[0]), tw), plain(SigmoidSize(pw, tw).diff(tw)),
                "d/dt p (2 sigma(t))^2 = 2 p (2 sigma(t))^2 sigma(-t)", checks)
    prove_equal(plain(bx).subs(s, 1), (sig + cx) * stride, "s = 1 is the v2/v3 centre sigma(t) + c", checks)
    prove_equal(plain(bx).subs(s, 2), (2 * sig - sp.Rational(1, 2) + cx) * stride,
                "s = 2 is the Scaled-YOLOv4 centre 2 sigma(t) - 0.5 + c", checks)
    hi = sp.limit(plain(bx) / stride - cx, tx, sp.oo)
    prove_equal(sp.limit(plain(bx) / stride - cx, tx, -sp.oo), -(s - 1) / 2, "reachable centre offsets start at -(s-1)/2", checks)
    prove_equal(hi, (s + 1) / 2, "and end at (s+1)/2: s > 1 reaches the cell borders 0 and 1", checks)
    prove_equal(sp.limit(plain(scaled_wh[0]) / pw, tw, sp.oo), 4, "Scaled-YOLOv4 sizes are below 4 p_w", checks)

    branches = []
    cancels = sp.Or(centre_kept(tx, cx) <= 0, centre_kept(ty, cy) <= 0)
    for cond, (bw, bh), label in ((sp.Eq(scaled, 1), scaled_wh, "Scaled-YOLOv4 / YOLOv5 sizes p (2 sigma(t))^2"),
                                  (None, exp_wh, "exponential sizes p exp(t)")):
        vjp_form = ux * bx + uy * by + uw * bw + uh * bh
        outputs = {"bx": bx, "by": by, "bw": bw, "bh": bh}
        outputs.update({f"d_{v.name}": sp.diff(vjp_form, v) for v in (tx, ty, tw, th)})
        # a centre that cancels (cell 0, s > 1): a rare branch, its centres one precision up
        accurate = {**outputs, "bx": centre_accurate(tx, cx), "by": centre_accurate(ty, cy)}
        branches.append(Branch(sp.And(cancels, *([cond] if cond is not None else [])), accurate,
                               f"{label}, a centre that cancels", rare=True))
        branches.append(Branch(cond, outputs, label))
    kernel = Kernel(arrays=ARRAYS, args=(s, scaled, stride), prelude=(), branches=tuple(branches), invalid=INVALID,
                    value_names=("bx", "by", "bw", "bh"), grad_arrays=("t",),
                    unswitch=sp.Eq(scaled, 1))  # (the size form: value and VJP of 10^6 boxes 0.72x the time, float64)
    x = sp.Symbol("t")
    return LossSpec(
        name=NAME, title="YOLO box decoding",
        formula="b_x = (s*sigmoid(t_x) - (s-1)/2 + c_x)*stride, b_w = p_w*exp(t_w) (v2/v3/v4) or p_w*(2*sigmoid(t_w))**2 "
        "(Scaled-YOLOv4/YOLOv5); returns (b_x, b_y, b_w, b_h) and the VJP w.r.t. t.",
        references=["J. Redmon, A. Farhadi, YOLO9000, arXiv:1612.08242", "J. Redmon, A. Farhadi, YOLOv3, arXiv:1804.02767",
                    "A. Bochkovskiy et al., YOLOv4, arXiv:2004.10934", "C.-Y. Wang et al., Scaled-YOLOv4, arXiv:2011.08036"],
        params=[Param("scale_xy", s, 1.0, "centre scale s (1: v2/v3; 1.05-1.2: v4; 2: Scaled-YOLOv4)",
                      lower=sp.Integer(0), lower_closed=False),
                Param("scaled_wh", scaled, False, "sizes p (2 sigmoid(t))^2 instead of p exp(t)", kind="bool"),
                Param("stride", stride, 1.0, "cell size: centres are multiplied by it", lower=sp.Integer(0),
                      lower_closed=False)],
        constants=[], kernels={p: kernel for p in ("f64", "f32")},
        steps=[Step("Centres (sigmoid evaluated without overflow):", "b_x", plain(bx)),
               Step("The offset within the cell, $s\\sigma(t) - (s-1)/2$, ranges over $(-(s-1)/2, (s+1)/2)$: with "
                    "$s = 1$ the borders 0 and 1 of the cell are reached only as $t \\to \\pm\\infty$ (grid "
                    "sensitivity); $s > 1$ reaches them at finite $t$.", None),
               Step("Sizes:", "b_w", sp.Piecewise((plain(scaled_wh[0]), sp.Eq(sp.Symbol("scaled"), 1)),
                                                  (exp_wh[0], True))),
               Step("The vector-Jacobian product with a cotangent $u$ is the gradient of $\\sum_k u_k b_k$ with respect "
                    "to $t$, generated with the decode in one kernel.", None)],
        plots=[Plot("Centre offset in the cell", [(f"s = {v:g}", {"params": {"scale_xy": v}, "path": _centre_path})
                                                   for v in (1.0, 1.1, 1.2, 2.0)], x_range=(-6.0, 6.0),
                    xlabel="t_x", grad_title="d(offset)/dt_x", value_title="s sigmoid(t_x) - (s-1)/2",
                    caption="The centre offset s sigmoid(t) - (s-1)/2 within its cell and its derivative: with s = 1 "
                            "(v3) the cell borders 0 and 1 need infinite t and the gradient vanishes there; v4's s > 1 "
                            "reaches them with a gradient of s sigmoid'(t) > 0.")],
        conventions="Differentiable everywhere. Anchors must be positive.",
        accuracy="Sigmoid as 1/(1+exp(-t)) for t >= 0 and exp(t)/(1+exp(t)) below: no overflow. The centre's sum "
                 "s sigma(t) - (s-1)/2 + c is evaluated one precision up (float32 kernel: float64; float64 kernel: "
                 "double-double with ~100-bit exp) where it is below a quarter of |s sigma| + |(s-1)/2|, and "
                 "rounded once: it cancels in cell 0 for s > 1 near t = log((s-1)/(s+1)) (the image's edge; s = 2, "
                 "t -1.1076: 108 ULP64 from sigma's rounding before), and (s-1)/2 is one rounded number (s sigma - s/2 + 1/2 cancelled in its first sum: 14 ULP64 at s = 1.05, t = -5.7, before). Scaled-YOLOv4 "
                 "sizes as 4 p n/d^2 with d = 1 + e^(-|t|), n = 1 (t >= 0) or e^(2t) (t < 0), corrected by the "
                 "factor 1 - 2 d_l/d for the rounding error d_l of d, which Fast2Sum gives exactly: squaring d "
                 "would double its rounding error; the exact factor 4 comes last (4 p alone could overflow). "
                 "The plain form 4 p sigma(t)^2 is off by up to 4.7 ULP over t in [-8, 8]; this form by up to 3.04 ULP (float64, 20000 points against mpmath). It uses "
                 "no error-free product, so a compiler's FMA contraction cannot break it.",
        checks=checks, family="coding", kind="coding")


def _centre_path(t):
    """t_x -> (inputs, tangent): unit anchors, cell 0, stride 1, cotangent on b_x only."""
    return (t, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)
