"""Complete-IoU loss (Zheng et al., arXiv:1911.08287) with the conventions peers use.

v = (4/pi^2) (arctan(w_t/h_t) - arctan(w_p/h_p))^2, alpha = v / ((1 - IoU) + v),
L = 1 - IoU + rho^2/c^2 + alpha v.  Options, each a kernel argument:
- alpha_grad: False (default) treats alpha as a constant in the gradient, as the
  official code (alpha under no_grad) and most peers; True is the exact derivative;
- alpha_gate: None, or t: alpha is 0 unless IoU > t (YOLACT, mmdetection: t = 0.5);
- darknet: the DIoU paper's simplification of dv/dw, dv/dh that drops 1/(w^2 + h^2).
arctan(w/h) is atan2(w, h): finite value and gradient at h = 0; at a point box (w = h = 0)
atan2(0, 0) = 0 and, as atan2 has no derivative there, its gradient is taken as 0.
"""
import sympy as sp

from . import _boxes as B
from refloss._derive.core import Param, Step, Variant
from refloss._derive.functions import AtanRatio, Decide64, Detach, Group, Step as Gate
from .diou_loss import distance
from .iou_loss import EPS
from refloss._info import Properties

NAME = "ciou_loss"
g = sp.Symbol("alpha_grad", nonnegative=True)
gate = sp.Symbol("alpha_gate", real=True)
dk = sp.Symbol("darknet", nonnegative=True)
d_atan = sp.Symbol("d_atan", real=True)

D = AtanRatio(B.wt, B.ht, 0) - AtanRatio(B.wp, B.hp, dk)
v = 4 / sp.pi**2 * D**2
# eps where torchvision puts it (0 by default: the exact formula).  The denominators are 0 only at identical
# boxes (eps = 0), where v = 0: 1 - [v > 0] (0 wherever v > 0, an exact addition) keeps them from 0/0 there, so
# that alpha = 0 and alpha v = 0 in the kernel's one branch (as alpha_iou_loss; two branches, one for v = 0,
# made the compiler evaluate both for every element of a vector loop)
no_aspect = Group(1 - Gate(v))
alpha = v / (B.one_minus_iou_diff + v + B.eps + no_aspect)
# the gate decided in float64 in the float32 kernel, as the float64 kernel decides it: on float32's rounded IoU,
# pairs whose IoU is within ~3e-8 of the threshold switched alpha v on or off (found by the 10^9-point sweep)
gated = Gate(Decide64(B.iou - gate))
alpha_eff = gated * (g * alpha + (1 - g) * Detach(alpha))
aspect_value = gated * v**2 / (B.one_minus_iou + v + B.eps + no_aspect)  # alpha v, 0 if v = 0

PARAMS = [
    EPS,
    Param("alpha_grad", g, False, "differentiate alpha (True) or treat it as a constant (False, as the official "
          "code and most peers)", kind="bool"),
    Param("alpha_gate", gate, None, "alpha = 0 unless IoU > alpha_gate (0.5 in YOLACT and mmdetection)",
          lower=sp.Integer(0), upper=sp.Integer(1), upper_closed=False, kind="optional", none_value=-1.0),
    Param("darknet", dk, False, "use the DIoU paper's dv/dw, dv/dh without the 1/(w^2+h^2) factor", kind="bool"),
]
ARGS = (B.eps, g, gate, dk)
# the alpha conventions peers use, for diagnoses (shared with the metric, derivations/ciou.py)
VARIANTS = [
    Variant("ciou_alpha_grad", "alpha_grad=True (the exact derivative)", params={"alpha_grad": True}),
    Variant("ciou_alpha_constant", "alpha_grad=False (alpha constant, as the official code)",
            params={"alpha_grad": False}),
    Variant("ciou_alpha_gate", "alpha_gate=0.5 (mmdetection, YOLACT)", params={"alpha_gate": 0.5}),
    Variant("ciou_darknet_gradient", "darknet=True (the paper's simplified dv/dw)", params={"darknet": True}),
]
CONVENTIONS = (B.CONVENTIONS + " CIoU(b, b) = 0: alpha v is evaluated as v^2 / ((1 - IoU) + v) and is 0 when "
               "v = 0 (equal aspect ratios). A zero-height box has arctan(w/0) = pi/2 (atan2), finite with a finite "
               "gradient. A point box (w = h = 0) has arctan = atan2(0, 0) = 0, and as atan2 has no derivative (nor "
               "a limit) there, the aspect term passes it no gradient (0, as clamp's at its kink); the value is finite.")


def doc_steps(metric: bool) -> list:
    """The page's steps after the shared geometry: the CIoU loss (metric=False) or the metric."""
    w_p, h_p = sp.symbols("w_p h_p", positive=True)
    D = sp.Symbol("D")
    total = ("\\mathrm{CIoU} = \\mathrm{IoU} - \\frac{\\rho^2}{c^2 + \\epsilon} - \\alpha v" if metric else
             "L = 1 - \\mathrm{IoU} + \\frac{\\rho^2}{c^2 + \\epsilon} + \\alpha v")
    return B.DISTANCE_STEPS + [
        Step("The aspect-ratio term compares the predicted and target aspect ratios through $D$ (`d_atan` in the "
             "kernel below; $\\arctan(w/h)$ is evaluated as atan2(w, h)):", "D",
             "\\arctan(w_t/h_t) - \\arctan(w_p/h_p)"),
        Step("", "v", 4 * D**2 / sp.pi**2),
        Step("with its weight", "\\alpha", "\\frac{v}{1 - \\mathrm{IoU} + v + \\epsilon}"),
        Step(("CIoU" if metric else "The loss") + ", with $\\alpha v$ evaluated as $v^2/((1 - \\mathrm{IoU}) + v)$ "
             "(0 at identical boxes):", total),
        Step("Gradient conventions: with `alpha_grad=False` (default) $\\alpha$ is a constant, "
             "$\\partial(\\alpha v) = \\alpha\\,\\partial v$; with `alpha_grad=True` the exact derivative "
             "$\\partial(\\alpha v) = \\alpha\\,\\partial v + v\\,\\partial\\alpha$. `alpha_gate=t` multiplies "
             "$\\alpha$ by $[\\mathrm{IoU} > t]$. `darknet=True` replaces the exact derivative of $v$ with respect "
             "to the predicted width,", "\\frac{\\partial v}{\\partial w_p}", -8 / sp.pi**2 * D * h_p / (w_p**2 + h_p**2)),
        Step("by $-\\frac{8}{\\pi^2} D h_p$ (and $\\partial v/\\partial h_p$ likewise by $\\frac{8}{\\pi^2} D w_p$).")]


# what the figures show (shared with the metric, derivations/ciou.py)
def slide_note(metric: bool) -> str:
    return (f"Along this slide both boxes are unit squares, so $v = 0$ and the curves are those of DIoU"
            f"{'' if metric else ' loss'}: the distance term $\\rho^2/c^2$ keeps a non-zero derivative where the boxes "
            f"do not overlap, and at dy = 1.5 the {'maximum' if metric else 'minimum'} is near |x| = 0.42 (not at 0).")


def aspect_note(metric: bool) -> str:
    name, verb, reference = ("CIoU", "subtracts", "from IoU") if metric else ("CIoU loss", "adds", "to 1 - IoU")
    return (f"With equal centres $\\rho = 0$, so {name} {verb} only $\\alpha v$ {reference}: "
            "$v = 0$ where the predicted box is square (width 0.5, 1 and 2 on the three curves), and $\\alpha v$ stays "
            "below 0.05 on this figure. The gradient holds $\\alpha$ constant (alpha_grad=False, the default), so "
            "it is not exactly the derivative of the drawn value.")


def kernel(sign, checks):
    """CIoU loss (sign = 1) or the CIoU metric 1 - loss (sign = -1)."""
    base_value = (B.one_minus_iou + distance) if sign == 1 else (B.iou - distance)
    base_diff = (1 - B.iou + distance) if sign == 1 else (B.iou - distance)
    return B.box_kernel(
        [(None, base_value + sign * aspect_value, base_diff + sign * alpha_eff * v, "aspect term alpha v (0 where v = 0)")],
        args=ARGS, prelude=((d_atan, D),), checks=checks)


def derive():
    checks = []
    k = kernel(1, checks)
    return B.box_spec(
        NAME, "CIoU loss", "L = 1 - IoU + rho^2/(c^2 + eps) + alpha*v, v = 4/pi^2 (atan(wt/ht) - atan(wp/hp))^2, "
        "alpha = v / (1 - IoU + v + eps).", ["Z. Zheng et al., Distance-IoU Loss, arXiv:1911.08287",
                                        "Z. Zheng et al., Enhancing Geometric Factors (CIoU), arXiv:2005.03572"],
        PARAMS, {p: k for p in ("f64", "f32")},
        doc_steps(metric=False), [B.slide_plot("CIoU loss", note=slide_note(False))], CONVENTIONS, "", checks,
        aspect={"note": aspect_note(False)},
        variants=VARIANTS + [Variant("ciou_without_alpha_v", "DIoU: the alpha*v term is missing", loss="diou_loss")],
        properties=Properties(value_range=(0.0, 3.0),
                              true_derivative={"alpha_grad": True, "darknet": False}, gate="alpha_gate"))
