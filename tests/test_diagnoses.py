"""check_loss's diagnosis codes: each is given to a small faulty implementation, written in NumPy
and in PyTorch the way its authors write it (PyTorch or JAX alone where the fault only exists
with autograd), and recognised from its behaviour; correct implementations get none."""
import inspect
import math

import numpy as np
import pytest

import refloss.testing as rt
from refloss import _diagnose
from refloss._generated._index import LOSSES


class NP:
    """The array functions the formulas below use, NumPy's."""

    name = "numpy"
    atan = staticmethod(np.arctan)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def clamp0(v):
        return np.clip(v, 0, None)

    @staticmethod
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    @staticmethod
    def no_grad(v):  # NumPy has no autograd: finite differences see every term vary
        return v

    @staticmethod
    def cols(b):
        return b[:, 0], b[:, 1], b[:, 2], b[:, 3]


class TORCH:
    name = "torch"

    def __init__(self):
        self.torch = pytest.importorskip("torch")
        t = self.torch
        self.atan, self.log, self.exp, self.where = t.atan, t.log, t.exp, t.where
        self.minimum, self.maximum, self.sigmoid = t.minimum, t.maximum, t.sigmoid

    @staticmethod
    def clamp0(v):
        return v.clamp(min=0)

    @staticmethod
    def no_grad(v):
        return v.detach()

    @staticmethod
    def cols(b):
        return b.unbind(-1)


FRAMEWORKS = ["numpy", "torch"]


def xp_of(framework):
    return NP() if framework == "numpy" else TORCH()


# ------------------------------------------------------------------ box formulas as people write them


def box_loss(xp, p, t, kind="giou", eps=1e-7, eps_h=0.0, union_eps=None, c2_eps=None, diagonal="c2",
             alpha_eps=None, alpha_grad=True, gate=None, floor=False):
    """1 - IoU (+ the GIoU, DIoU or CIoU penalty) on xyxy boxes, each eps where its author put it
    (``floor``: the union and the enclosing area floored at eps, not eps added: mmdetection)."""
    union_eps = eps if union_eps is None else union_eps
    c2_eps = eps if c2_eps is None else c2_eps
    alpha_eps = eps if alpha_eps is None else alpha_eps
    px1, py1, px2, py2 = xp.cols(p)
    tx1, ty1, tx2, ty2 = xp.cols(t)
    w1, h1 = px2 - px1, py2 - py1 + eps_h
    w2, h2 = tx2 - tx1, ty2 - ty1 + eps_h
    inter = (xp.clamp0(xp.minimum(px2, tx2) - xp.maximum(px1, tx1))
             * xp.clamp0(xp.minimum(py2, ty2) - xp.maximum(py1, ty1)))
    union = w1 * h1 + w2 * h2 - inter
    union = xp.where(union > union_eps, union, 0 * union + union_eps) if floor else union + union_eps
    iou = inter / union
    cw = xp.maximum(px2, tx2) - xp.minimum(px1, tx1)
    ch = xp.maximum(py2, ty2) - xp.minimum(py1, ty1)
    if kind == "iou":
        return 1 - iou
    if kind == "giou":
        c_area = xp.where(cw * ch > eps, cw * ch, 0 * cw + eps) if floor else cw * ch + eps
        return 1 - iou + (c_area - union) / c_area
    c2 = (cw**2 + ch**2 if diagonal == "c2" else cw * ch) + c2_eps
    rho2 = ((tx1 + tx2 - px1 - px2) ** 2 + (ty1 + ty2 - py1 - py2) ** 2) / 4
    loss = 1 - iou + rho2 / c2
    if kind == "diou":
        return loss
    v = (4 / math.pi**2) * (xp.atan(w2 / h2) - xp.atan(w1 / h1)) ** 2
    alpha = v / (1 - iou + v + alpha_eps)
    alpha = alpha if alpha_grad else xp.no_grad(alpha)
    if gate is not None:
        alpha = xp.where(iou > gate, alpha, 0 * alpha)
    return loss + alpha * v


def eiou_loss(xp, p, t, eps=0.0):
    """Zhang et al.'s Efficient-IoU loss."""
    px1, py1, px2, py2 = xp.cols(p)
    tx1, ty1, tx2, ty2 = xp.cols(t)
    cw = xp.maximum(px2, tx2) - xp.minimum(px1, tx1)
    ch = xp.maximum(py2, ty2) - xp.minimum(py1, ty1)
    wdiff, hdiff = (px2 - px1) - (tx2 - tx1), (py2 - py1) - (ty2 - ty1)
    return (box_loss(xp, p, t, "diou", eps=eps) + wdiff**2 / (cw**2 + eps) + hdiff**2 / (ch**2 + eps))


def mmdet_eiou_loss(xp, p, t, smooth_point=0.1, eps=1e-7):
    """The Extended-IoU loss as mmdetection ships it under the name eiou_loss."""
    px1, py1, px2, py2 = xp.cols(p)
    tx1, ty1, tx2, ty2 = xp.cols(t)
    ex1, ey1 = xp.minimum(px1, tx1), xp.minimum(py1, ty1)
    ix1, iy1 = xp.maximum(px1, tx1), xp.maximum(py1, ty1)
    ix2, iy2 = xp.minimum(px2, tx2), xp.minimum(py2, ty2)
    xmin, ymin = xp.minimum(ix1, ix2), xp.minimum(iy1, iy2)
    xmax, ymax = xp.maximum(ix1, ix2), xp.maximum(iy1, iy2)
    inter = ((ix2 - ex1) * (iy2 - ey1) + (xmin - ex1) * (ymin - ey1) - (ix1 - ex1) * (ymax - ey1)
             - (xmax - ex1) * (iy1 - ey1))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter + eps
    x = 1 - inter / union
    return xp.where(x < smooth_point, 0.5 * x**2 / smooth_point, x - 0.5 * smooth_point)


def focal_l1_of(xp, x, beta=0.8):
    """Focal-L1 (Zhang et al., Focal-EIoU v1) of x >= 0, alpha = e * beta."""
    alpha = math.e * beta
    inner = alpha * x**2 * (1 - 2 * xp.log(beta * xp.where(x > 0, x, 1 + 0 * x))) / 4
    return xp.where(x <= 1, inner, -alpha * math.log(beta) * x + alpha * (2 * math.log(beta) + 1) / 4)


def focal_eiou_v2(xp, p, t, gamma=0.5):
    inter_iou = 1 - box_loss(xp, p, t, "iou", eps=0.0)
    return xp.no_grad(inter_iou**gamma) * eiou_loss(xp, p, t)


# ------------------------------------------------------------------ classification as people write it


def focal_naive(xp, x, y, alpha=0.25, gamma=2.0):
    p = xp.sigmoid(x)
    ce = -(y * xp.log(p) + (1 - y) * xp.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    return (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma


def bce_naive(xp, x, y):
    return -(y * xp.log(xp.sigmoid(x)) + (1 - y) * xp.log(1 - xp.sigmoid(x)))


def focal_stable(xp, x, y, alpha=0.25, gamma=2.0):
    p = xp.sigmoid(x)
    ce = xp.maximum(x, 0 * x) - x * y + xp.log(1 + xp.exp(-abs(x)))  # log1p(exp(-|x|)) would be better still
    p_t = p * y + (1 - p) * (1 - y)
    return (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma


def smooth_l1_textbook(xp, p, t, beta):
    x = abs(p - t)
    return xp.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)


def balanced_l1_copied(xp, p, t, beta=1 / 9, alpha=0.5, gamma=1.5):
    x = abs(p - t)
    b = math.exp(gamma / alpha) - 1
    return xp.where(x < beta, alpha / b * (b * x + 1) * xp.log(b * x / beta + 1) - alpha * x,
                    gamma * x + gamma / b - alpha * beta)


# ------------------------------------------------------------------ the faults, per code

# code -> (loss, check_loss parameters, fault(xp, p, t), {framework: extra parameters}, cases)
FAULTS = {
    "eps_in_box_size": ("giou_loss", {"eps": 1e-7}, lambda xp, p, t: box_loss(xp, p, t, "giou", eps_h=1e-7), {}),
    "eps_as_floor": ("giou_loss", {"eps": 1e-7}, lambda xp, p, t: box_loss(xp, p, t, "giou", floor=True), {}),
    "eps_in_c2_only": ("diou_loss", {"eps": 1e-7}, lambda xp, p, t: box_loss(xp, p, t, "diou", union_eps=0.0), {}),
    "eps_ignored": ("ciou_loss", {"eps": 0.0},  # the DIoU part keeps its own eps whatever eps is asked for
                    lambda xp, p, t: box_loss(xp, p, t, "ciou", eps=1e-7, alpha_eps=0.0, alpha_grad=False),
                    {"numpy": {"alpha_grad": True}}),
    "enclosing_area_for_diagonal": ("diou_loss", {"eps": 1e-7},
                                    lambda xp, p, t: box_loss(xp, p, t, "diou", diagonal="area"), {}),
    "extended_iou_not_efficient_iou": ("eiou_loss", {"eps": 1e-7}, lambda xp, p, t: mmdet_eiou_loss(xp, p, t), {}),
    "ciou_without_alpha_v": ("ciou_loss", {"eps": 1e-7}, lambda xp, p, t: box_loss(xp, p, t, "diou"), {}),
    "ciou_alpha_gate": ("ciou_loss", {"eps": 1e-7},
                        lambda xp, p, t: box_loss(xp, p, t, "ciou", alpha_grad=False, gate=0.5),
                        {"numpy": {"alpha_grad": True}}),
    "diou_giou_mixup": ("diou_loss", {"eps": 1e-7}, lambda xp, p, t: box_loss(xp, p, t, "giou"), {}),
    "focal_eiou_v1_v2": ("focal_eiou_loss", {}, lambda xp, p, t: focal_l1_of(xp, eiou_loss(xp, p, t)), {}),
    "log_sigmoid_overflow": ("sigmoid_focal_loss", {}, focal_naive, {}),
    "copied_balanced_l1_form": ("balanced_l1", {"beta": 1 / 9}, balanced_l1_copied, {}),
    "float32_inside": ("giou_loss", {"eps": 1e-7},
                       lambda xp, p, t: box_loss(xp, p.astype(np.float32), t.astype(np.float32), "giou").astype(p.dtype)
                       if xp.name == "numpy" else box_loss(xp, p.float(), t.float(), "giou").to(p.dtype), {}),
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("code", list(FAULTS))
def test_each_fault_gets_its_code(code, framework):
    loss, params, fault, extra = FAULTS[code]
    xp = xp_of(framework)
    r = rt.check_loss(lambda *a: fault(xp, *a), loss, framework=framework, **params, **extra.get(framework, {}))
    assert not r.ok and r.codes[0] == code, str(r)
    assert r.diagnosis == r.diagnoses[0][1] and f"diagnosis [{code}]: " in str(r)


def test_the_other_direction_of_each_mixup():
    """GIoU checked as DIoU above; DIoU checked as GIoU, Focal-EIoU v2 as v1, here (torch)."""
    xp = TORCH()
    r = rt.check_loss(lambda p, t: box_loss(xp, p, t, "diou"), "giou_loss", eps=1e-7)
    assert r.codes == ["diou_giou_mixup"] and r.diagnosis.startswith("agrees with refloss.diou_loss instead")
    r = rt.check_loss(lambda p, t: focal_eiou_v2(xp, p, t), "focal_l1_eiou_loss")
    assert r.codes == ["focal_eiou_v1_v2"] and "v2" in r.diagnosis


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ciou_alpha_conventions(framework):
    """alpha differentiated where it should be constant, and (torch) the other way round."""
    xp = xp_of(framework)
    r = rt.check_loss(lambda p, t: box_loss(xp, p, t, "ciou"), "ciou_loss", framework=framework, eps=1e-7)
    assert r.codes == ["ciou_alpha_grad"] and "alpha_grad=True (the exact derivative)" in r.diagnosis
    assert "not with the alpha_grad=False checked" in r.diagnosis
    if framework == "torch":
        r = rt.check_loss(lambda p, t: box_loss(xp, p, t, "ciou", alpha_grad=False), "ciou_loss", eps=1e-7,
                          alpha_grad=True)
        assert r.codes == ["ciou_alpha_constant"]


def test_ciou_darknet_gradient_in_torch():
    """darknet's backward of v (no 1/(w^2 + h^2)), ported as a torch autograd Function."""
    xp = TORCH()
    torch = xp.torch

    class DarknetAtan(torch.autograd.Function):  # atan(w / h), differentiated as darknet does
        @staticmethod
        def forward(ctx, w, h):
            ctx.save_for_backward(w, h)
            return torch.atan(w / h)

        @staticmethod
        def backward(ctx, g):
            w, h = ctx.saved_tensors
            return g * h, -g * w  # darknet drops the 1 / (w^2 + h^2) of the exact derivative

    def ciou(p, t, eps=1e-7):
        diou = box_loss(xp, p, t, "diou", eps=eps)
        iou = 1 - box_loss(xp, p, t, "iou", eps=eps)
        w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        v = 4 / math.pi**2 * (torch.atan((t[:, 2] - t[:, 0]) / (t[:, 3] - t[:, 1])) - DarknetAtan.apply(w, h)) ** 2
        alpha = (v / (1 - iou + v + eps)).detach()
        return diou + alpha * v

    r = rt.check_loss(ciou, "ciou_loss", eps=1e-7)
    assert r.codes == ["ciou_darknet_gradient"] and {f.component[:7] for f in r.failures} == {"d/dpred"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_nan_at_identical_boxes(framework):
    """CIoU with alpha = v / (1 - IoU + v), no eps: 0/0 at identical boxes, where refloss's is 0."""
    xp = xp_of(framework)
    p = np.array([[0, 0, 1, 1], [0.5, 0.25, 2.0, 3.0], [0, 0, 2, 1], [1, 1, 3, 4], [-1, 0.5, 0.5, 2.5]])
    t = np.array([[0, 0, 1, 1], [0.5, 0.25, 2.0, 3.0], [0.3, 0.2, 2.5, 1.4], [1.2, 0.7, 2.6, 4.5], [-0.5, 1, 1, 2]])
    extra = {"alpha_grad": True} if framework == "numpy" else {}
    r = rt.check_loss(lambda a, b: box_loss(xp, a, b, "ciou", eps=0.0, alpha_grad=framework == "numpy"), "ciou_loss",
                      framework=framework, cases=(p, t), eps=0.0, **extra)
    assert r.codes == ["nan_at_identical_boxes"] and {f.index for f in r.failures} == {0, 1}
    assert "NaN at identical boxes (2 points)" in r.diagnosis


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_nan_gradient_from_where(framework):
    """Textbook smooth L1 at beta = 0: the value is L1, the untaken branch 0.5 x^2 / 0 makes autograd NaN."""
    if framework == "torch":
        xp = TORCH()
    else:
        jax = pytest.importorskip("jax")
        xp = jax.numpy
    r = rt.check_loss(lambda p, t: smooth_l1_textbook(xp, p, t, 0.0), "smooth_l1", framework=framework, beta=0.0)
    assert r.codes == ["nan_gradient_from_where"]
    assert not any(f.component == "value" for f in r.failures) and all(math.isnan(f.got) for f in r.failures)
    # the same formula at beta = 0.5 is right: no diagnosis
    assert rt.check_loss(lambda p, t: smooth_l1_textbook(xp, p, t, 0.5), "smooth_l1", framework=framework,
                         beta=0.5).diagnoses == []


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_log_sigmoid_overflow_in_bce_too(framework):
    xp = xp_of(framework)
    r = rt.check_loss(lambda x, y: bce_naive(xp, x, y), "bce_with_logits", framework=framework)
    assert r.codes == ["log_sigmoid_overflow"]
    assert {f.case for f in r.failures} <= {"confident", "hard", "soft", "random"}
    assert min(abs(f.inputs[0]) for f in r.failures) > 12  # nothing at ordinary logits
    # float32: the same form breaks from |x| ~ 10 on
    r = rt.check_loss(lambda x, y: bce_naive(xp, x, y), "bce_with_logits", framework=framework, dtype="float32")
    assert r.codes == ["log_sigmoid_overflow"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_correct_implementations_get_no_diagnosis(framework, dtype):
    xp = xp_of(framework)
    numpy = framework == "numpy"
    checks = [
        (lambda p, t: box_loss(xp, p, t, "giou"), "giou_loss", {"eps": 1e-7}),
        (lambda p, t: box_loss(xp, p, t, "ciou", alpha_grad=numpy), "ciou_loss", {"eps": 1e-7, "alpha_grad": numpy}),
        (lambda p, t: eiou_loss(xp, p, t), "eiou_loss", {}),
        (lambda x, y: focal_stable(xp, x, y), "sigmoid_focal_loss", {}),
        (lambda p, t: smooth_l1_textbook(xp, p, t, 1 / 9), "smooth_l1", {"beta": 1 / 9}),
    ]
    for impl, loss, params in checks:
        r = rt.check_loss(impl, loss, framework=framework, dtype=dtype, **params)
        assert r.ok and r.diagnoses == [] and r.diagnosis == "", str(r)


def test_unexplained_and_convention_only():
    xp = TORCH()
    torch = xp.torch

    def wrong_sign(p, t):  # value right, d/dtarget of the wrong sign
        return torch.nn.functional.l1_loss(p, t.detach() * 2 - t, reduction="none")

    r = rt.check_loss(wrong_sign, "l1")
    assert r.codes == ["unexplained"] and r.diagnosis == "matches no variant refloss implements"

    def l1_other_side(p, t):  # |x| with the gradient +1 at x = 0 (sign(0) taken as 1)
        x = p - t
        return torch.where(x >= 0, x, -x)

    r = rt.check_loss(l1_other_side, "l1", cases="edge")
    assert r.convention_only and r.codes == ["convention_only"]


def test_codes_are_documented_and_every_variant_has_one():
    """Every code a diagnosis can carry is in the table (refloss.testing's docstring, README), and
    every variant a derivation declares carries one of them."""
    import pathlib

    doc = inspect.getdoc(rt)
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    variant_codes = {v.code for info in LOSSES.values() for v in info.variants}
    assert variant_codes <= set(_diagnose.CODES)
    for code in _diagnose.CODES:
        assert f"``{code}``" in doc, code
        assert f"`{code}`" in readme, code
    assert {r.code for r in _diagnose.RECOGNISERS} <= set(_diagnose.CODES)


def test_json_carries_the_codes():
    import json

    r = rt.check_loss(lambda p, t: box_loss(NP(), p, t, "diou", diagonal="area"), "diou_loss", eps=1e-7, grad=False)
    data = json.loads(r.to_json())
    assert data["diagnoses"][0][0] == "enclosing_area_for_diagonal" and data["diagnosis"] == data["diagnoses"][0][1]
