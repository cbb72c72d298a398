"""Alpha-IoU loss (He et al., arXiv:2110.13675) on xyxy boxes.

The paper's power family: L = 1 - IoU^alpha + P^alpha, P the penalty of the base loss:
form="iou" (default) no penalty, "giou" P = (C - U)/C, "diou" P = rho^2/c^2 (the paper's
alpha-DIoU writes rho^{2 alpha}/c^{2 alpha}, the same number).  The paper's alpha-CIoU
((rho^2/c^2)^alpha + (beta v)^alpha) is not implemented here.
"""
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from . import _boxes as B
from . import giou_loss as G
from refloss._derive.core import Param, Step
from refloss._derive.functions import PowG
from .diou_loss import distance
from .iou_loss import EPS

NAME = "alpha_iou_loss"
alpha = sp.Symbol("alpha", positive=True)
form = sp.Symbol("form", nonnegative=True)  # 0 iou, 1 giou, 2 diou
i_sym = sp.Symbol("inter", nonnegative=True)
pg_sym = sp.Symbol("giou_penalty", nonnegative=True)
FORMS = ("iou", "giou", "diou")
# the penalty of each form, selected by polynomial indicators of the form's index (exact in floats)
ind_giou, ind_diou = form * (2 - form), form * (form - 1) / 2
penalty_value = ind_giou * PowG(G.penalty, alpha) + ind_diou * PowG(distance, alpha)
penalty_diff = ind_giou * PowG(G.penalty_diff, alpha) + ind_diou * PowG(distance, alpha)

PARAMS = [
    Param("alpha", alpha, 3.0, "power alpha of IoU and of the penalty (3 in the paper's experiments; 1 gives the base "
          "loss)", lower=sp.Integer(0), lower_closed=False),
    Param("form", form, "iou", "the base loss: 'iou' (1 - IoU^alpha), 'giou' (+ ((C - U)/C)^alpha), 'diou' "
          "(+ (rho^2/c^2)^alpha)", kind="choice", choices=FORMS),
    EPS,
]
CONVENTIONS = (B.CONVENTIONS + " Powers x^alpha of IoU and of the penalties have the derivative alpha x^(alpha - 1), "
               "taken as 0 where x = 0 (the limit for alpha > 1; for alpha < 1 the derivative is infinite there, and "
               "torch autograd gives NaN or inf; also for alpha = 1, so where the GIoU penalty is 0 (enclosing box = "
               "union) the gradient can differ from GIoU loss's one-sided one): so for disjoint boxes the IoU term "
               "passes no gradient, as in 1 - IoU.")
ACCURACY = (B.ACCURACY + " 1 - IoU^alpha is evaluated as -expm1(alpha log1p(-(1 - IoU))) for IoU >= 1/2, from the "
            "accurate 1 - IoU, so it keeps its digits as IoU approaches 1, and as 1 - IoU^alpha below; the GIoU "
            "penalty (C - U)/C is formed from C - U computed from coordinate differences.")
SLIDE_NOTE = ("With alpha = 3, 1 - IoU^3 is flatter than 1 - IoU near a perfect overlap and steeper at low overlap (the "
              "paper's up-weighting of high-IoU objects is the relative gradient |d IoU^alpha|/ IoU^alpha); like "
              "1 - IoU it is 1, with no gradient, wherever the boxes do not overlap (form='iou').")
ASPECT_NOTE = "1 - IoU^3 with equal centres: smallest (0) at width 1 for height 1, flat near it."


def derive():
    checks = []
    iou_pow_value = -expm1(alpha * log1p(-B.one_minus_iou))
    k = B.box_kernel(
        [(sp.And(sp.Eq(i_sym, 0), B.union + B.eps > 0), 1 + penalty_value, 1 + penalty_diff,
          "no overlap: IoU^alpha = 0 with no gradient"),
         (B.iou_plain < sp.Rational(1, 2), 1 - PowG(B.iou_plain, alpha) + penalty_value,
          1 - PowG(B.iou, alpha) + penalty_diff, "IoU < 1/2: 1 - IoU^alpha"),
         (None, iou_pow_value + penalty_value, 1 - PowG(B.iou, alpha) + penalty_diff,
          "IoU >= 1/2: -expm1(alpha log1p(-(1 - IoU)))")],
        args=(alpha, form, B.eps), prelude=((i_sym, B.inter), (pg_sym, G.penalty)), checks=checks,
        numeric_proof=True, in_gradients=((G.penalty_diff, pg_sym),))
    return B.box_spec(
        NAME, "Alpha-IoU loss", "L = 1 - IoU^alpha + P^alpha, P = 0 (form='iou'), (C - U)/(C + eps) ('giou') or "
        "rho^2/(c^2 + eps) ('diou').",
        ["J. He et al., Alpha-IoU: A Family of Power Intersection over Union Losses for Bounding Box Regression, "
         "arXiv:2110.13675"], PARAMS, {p: k for p in ("f64", "f32")},
        B.DISTANCE_STEPS + [
            Step("With $C = c_w c_h$ the enclosing area and $P$ the penalty of the chosen form (0, "
                 "$(C - U)/(C + \\epsilon)$ or $\\rho^2/(c^2 + \\epsilon)$), the power loss of the paper:", "L",
                 "1 - \\mathrm{IoU}^\\alpha + P^\\alpha"),
            Step("For $\\mathrm{IoU} \\ge 1/2$, $1 - \\mathrm{IoU}^\\alpha$ is evaluated as "
                 "$-\\operatorname{expm1}(\\alpha \\operatorname{log1p}(-(1 - \\mathrm{IoU})))$ from the accurate "
                 "$1 - \\mathrm{IoU}$; a power's derivative $\\alpha x^{\\alpha - 1}$ is 0 where $x = 0$.")],
        [B.slide_plot("Alpha-IoU loss", {"alpha": 3.0, "form": 0.0}, note=SLIDE_NOTE)], CONVENTIONS, ACCURACY, checks,
        aspect={"note": ASPECT_NOTE})
