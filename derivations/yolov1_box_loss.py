"""YOLOv1 coordinate loss (Redmon et al., You Only Look Once, arXiv:1506.02640).

Per box, with pred = (x, y, w, h) and target (x^, y^, w^, h^) (centre and size):

    L = lambda_coord [ (x - x^)^2 + (y - y^)^2 + (sqrt(w) - sqrt(w^))^2 + (sqrt(h) - sqrt(h^))^2 ]

The square roots make an error matter more for a small box than for a large one.
(sqrt(w) - sqrt(w^))^2 is evaluated as ((w - w^) / (sqrt(w) + sqrt(w^)))^2, which keeps its
digits when w ~ w^ (and does not underflow for tiny sizes), and as 0 where w = w^ (at
w = w^ = 0 the quotient is 0/0); its derivative (sqrt(w) - sqrt(w^))/sqrt(w) as
(w - w^) / ((sqrt(w) + sqrt(w^)) sqrt(w)).  At w = 0 the derivative is infinite.
"""
import sympy as sp

from refloss._derive.autodiff import kernel_from_forms
from refloss._derive.core import LossSpec, Param, Plot, Step, prove_equal

NAME = "yolov1_box_loss"
x, y, w, h = sp.symbols("x y w h", real=True)
xt, yt, wt, ht = sp.symbols("xt yt wt ht", real=True)
lam = sp.Symbol("lambda_coord", positive=True)
ARRAYS = (("pred", 4, (x, y, w, h)), ("target", 4, (xt, yt, wt, ht)))
INVALID = sp.Or(w < 0, h < 0, wt < 0, ht < 0)


class SqrtDiff2(sp.Function):
    """(sqrt(a) - sqrt(b))^2, evaluated as ((a - b) / (sqrt(a) + sqrt(b)))^2, 0 where a = b."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        num = (a - b) / (sp.sqrt(a) + sp.sqrt(b))
        return num / sp.sqrt(a) if argindex == 1 else -num / sp.sqrt(b)


def derive() -> LossSpec:
    checks = []
    a, b = sp.symbols("a b", positive=True)
    prove_equal((a - b) ** 2 / (sp.sqrt(a) + sp.sqrt(b)) ** 2, (sp.sqrt(a) - sp.sqrt(b)) ** 2,
                "(sqrt a - sqrt b)^2 = (a - b)^2/(sqrt a + sqrt b)^2", checks)
    prove_equal(SqrtDiff2(a, b).diff(a), sp.diff((sp.sqrt(a) - sp.sqrt(b)) ** 2, a), "its a-derivative", checks)
    prove_equal(SqrtDiff2(a, b).diff(b), sp.diff((sp.sqrt(a) - sp.sqrt(b)) ** 2, b), "its b-derivative", checks)
    form = lam * ((x - xt) ** 2 + (y - yt) ** 2 + SqrtDiff2(w, wt) + SqrtDiff2(h, ht))
    kernel = kernel_from_forms(ARRAYS, [(None, form, form, "")], args=(lam,), invalid=INVALID)
    return LossSpec(
        name=NAME, title="YOLOv1 coordinate loss",
        formula="L = lambda_coord*((x - xt)**2 + (y - yt)**2 + (sqrt(w) - sqrt(wt))**2 + (sqrt(h) - sqrt(ht))**2) "
        "for boxes (x, y, w, h) (centre, size); sizes must be >= 0.",
        references=["J. Redmon et al., You Only Look Once: Unified, Real-Time Object Detection, arXiv:1506.02640"],
        params=[Param("lambda_coord", lam, 5.0, "weight of the coordinate term (5 in the paper)",
                      lower=sp.Integer(0), lower_closed=False)],
        constants=[], kernels={p: kernel for p in ("f64", "f32")},
        steps=[Step("The coordinate term of the YOLOv1 loss for one responsible box:", "L",
                    lam * ((x - xt) ** 2 + (y - yt) ** 2 + (sp.sqrt(w) - sp.sqrt(wt)) ** 2
                           + (sp.sqrt(h) - sp.sqrt(ht)) ** 2)),
               Step("Evaluated without cancellation as $w \\to \\hat w$ (and as 0 where $w = \\hat w$, "
                    "so also at $w = \\hat w = 0$, where the quotient is 0/0):", "(\\sqrt{w} - \\sqrt{\\hat w})^2",
                    sp.Pow((w - wt) / (sp.sqrt(w) + sp.sqrt(wt)), 2, evaluate=False)),
               Step("", "\\frac{\\partial L}{\\partial w}", lam * (w - wt) / ((sp.sqrt(w) + sp.sqrt(wt)) * sp.sqrt(w)))],
        plots=[Plot("YOLOv1 size term", [(f"target w = {v:g}", {"params": {}, "path": _size_path(v)})
                                         for v in (0.1, 0.5, 1.0)], x_range=(0.01, 1.5), xlabel="predicted width w",
                    grad_title="dL/dw", caption="The same absolute width error costs more for a small target box.")],
        conventions="Differentiable for w, h > 0; the derivative is infinite at w = 0 (inf or NaN there); "
        "the value is defined everywhere (0 for the size term at w = w^ = 0).",
        accuracy="Square-root differences as (a - b)/(sqrt a + sqrt b): no cancellation for w close to w^, no "
        "underflow for tiny sizes.",
        checks=checks, family="yolo", layouts={"pred": "xywh", "target": "xywh"})


def _size_path(target_w):
    def path(wp):
        return (0.0, 0.0, wp, 1.0, 0.0, 0.0, target_w, 1.0), (0, 0, 1.0, 0, 0, 0, 0, 0)
    return path
