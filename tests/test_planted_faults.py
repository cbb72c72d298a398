"""Planted faults: deliberately wrong implementations, written here in NumPy, PyTorch and JAX,
must be reported as failing at the right points (and diagnosed where refloss implements the
variant); the same formulas written correctly must pass, in float64 and float32."""
import math

import numpy as np
import pytest

import refloss.testing as rt

# ------------------------------------------------------------------ formulas, any array module


def smooth_l1(xp, p, t, beta, fault=False):
    x = xp.abs(p - t)
    quad = 0.5 * x * x if fault else 0.5 * x * x / beta  # fault: no 1/beta, discontinuous at beta != 1
    return xp.where(x < beta, quad, x - 0.5 * beta)


def balanced_l1(xp, p, t, beta, alpha=0.5, gamma=1.5, copied=False):
    x = xp.abs(p - t)
    b = math.exp(gamma / alpha) - 1
    if copied:  # the widely copied form, right only at beta = 1
        inner = alpha / b * (b * x + 1) * xp.log(b * x / beta + 1) - alpha * x
        return xp.where(x < beta, inner, gamma * x + gamma / b - alpha * beta)
    u = b * x / beta
    inner = alpha * beta / b * ((1 + u) * xp.log1p(u) - u)
    return xp.where(x < beta, inner, gamma * x + gamma * beta / b - alpha * beta)


def _geometry(xp, p, t):
    def clamp0(v):
        return xp.where(v > 0, v, 0 * v)

    iw = clamp0(xp.minimum(p[:, 2], t[:, 2]) - xp.maximum(p[:, 0], t[:, 0]))
    ih = clamp0(xp.minimum(p[:, 3], t[:, 3]) - xp.maximum(p[:, 1], t[:, 1]))
    inter = iw * ih
    wp, hp, wt, ht = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], t[:, 2] - t[:, 0], t[:, 3] - t[:, 1]
    union = wp * hp + wt * ht - inter
    cw = xp.maximum(p[:, 2], t[:, 2]) - xp.minimum(p[:, 0], t[:, 0])
    ch = xp.maximum(p[:, 3], t[:, 3]) - xp.minimum(p[:, 1], t[:, 1])
    return inter, union, cw, ch, (wp, hp, wt, ht)


def giou_loss(xp, p, t, union_for_enclosing=False):
    inter, union, cw, ch, _ = _geometry(xp, p, t)
    c = union if union_for_enclosing else cw * ch
    return 1 - inter / union + (c - union) / c


def ciou_loss(xp, p, t, atan, no_grad, drop_av=False):
    inter, union, cw, ch, (wp, hp, wt, ht) = _geometry(xp, p, t)
    iou = inter / union
    rho2 = ((p[:, 0] + p[:, 2] - t[:, 0] - t[:, 2]) ** 2 + (p[:, 1] + p[:, 3] - t[:, 1] - t[:, 3]) ** 2) / 4
    c2 = cw * cw + ch * ch
    v = (4 / math.pi**2) * (atan(wt / ht) - atan(wp / hp)) ** 2
    alpha = no_grad(v / (1 - iou + v))
    return 1 - iou + rho2 / c2 + (0 if drop_av else alpha * v)


# ------------------------------------------------------------------ the same formulas in each framework


def impls(xp, atan, no_grad, as_float32):
    """Every correct and faulty implementation in the array module ``xp``."""
    return {
        "smooth_l1": lambda p, t: smooth_l1(xp, p, t, 0.5),
        "smooth_l1_discontinuous": lambda p, t: smooth_l1(xp, p, t, 0.5, fault=True),
        "balanced_l1": lambda p, t: balanced_l1(xp, p, t, 1 / 9),
        "balanced_l1_copied": lambda p, t: balanced_l1(xp, p, t, 1 / 9, copied=True),
        "giou": lambda p, t: giou_loss(xp, p, t),
        "giou_union": lambda p, t: giou_loss(xp, p, t, union_for_enclosing=True),
        "ciou": lambda p, t: ciou_loss(xp, p, t, atan, no_grad),
        "ciou_no_av": lambda p, t: ciou_loss(xp, p, t, atan, no_grad, drop_av=True),
        "giou_float32_inside": lambda p, t: giou_loss(xp, as_float32(p), as_float32(t)).astype(p.dtype)
        if xp is np else giou_loss(xp, as_float32(p), as_float32(t)).to(p.dtype),
    }


def np_impls():  # NumPy has no no_grad: its CIoU is the exact derivative (alpha_grad=True)
    return impls(np, np.arctan, lambda a: a, lambda a: a.astype(np.float32))


def torch_impls():
    torch = pytest.importorskip("torch")

    def wrong_sign_giou(p, t):  # value right, d/dtarget[0] of the wrong sign
        flip = 2 * t[:, :1].detach() - t[:, :1]
        return giou_loss(torch, p, torch.cat([flip, t[:, 1:]], dim=1))

    return {**impls(torch, torch.atan, lambda a: a.detach(), lambda a: a.float()), "giou_wrong_sign": wrong_sign_giou}


def jax_impls():
    jax = pytest.importorskip("jax")
    return impls(jax.numpy, jax.numpy.arctan, jax.lax.stop_gradient, None)


FRAMEWORKS = {"numpy": np_impls, "torch": torch_impls, "jax": jax_impls}
CORRECT = {"smooth_l1": ("smooth_l1", {"beta": 0.5}), "balanced_l1": ("balanced_l1", {"beta": 1 / 9}),
           "giou": ("giou_loss", {}), "ciou": ("ciou_loss", {})}
# NumPy has no no_grad: finite differences of its CIoU see alpha vary, the exact derivative
CORRECT_PARAMS = {("numpy", "ciou"): {"alpha_grad": True}}
WRITTEN = {"numpy": ["smooth_l1", "smooth_l1_discontinuous", "balanced_l1", "balanced_l1_copied", "giou", "giou_union",
                     "ciou", "ciou_no_av", "giou_float32_inside"],
           "torch": ["smooth_l1", "smooth_l1_discontinuous", "balanced_l1", "balanced_l1_copied", "giou", "giou_union",
                     "giou_wrong_sign", "ciou", "ciou_no_av", "giou_float32_inside"],
           "jax": ["smooth_l1", "smooth_l1_discontinuous", "giou", "giou_union", "ciou"]}
FAULTS = {"smooth_l1_discontinuous": ("smooth_l1", {"beta": 0.5}),
          "balanced_l1_copied": ("balanced_l1", {"beta": 1 / 9}),
          "giou_union": ("giou_loss", {}), "giou_wrong_sign": ("giou_loss", {}), "ciou_no_av": ("ciou_loss", {}),
          "giou_float32_inside": ("giou_loss", {})}


def _impl(framework, name):
    return FRAMEWORKS[framework]()[name]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("framework,name", [(f, n) for f, ns in WRITTEN.items() for n in ns if n in CORRECT])
def test_correct_implementations_pass(framework, name, dtype):
    loss, params = CORRECT[name]
    params = {**params, **CORRECT_PARAMS.get((framework, name), {})}
    report = rt.check_loss(_impl(framework, name), loss, framework=framework, dtype=dtype, **params)
    assert report.ok, str(report)


def _abs_x(f):
    return abs(f.inputs[0] - f.inputs[1])


@pytest.mark.parametrize("framework,name", [(f, n) for f, ns in WRITTEN.items() for n in ns if n in FAULTS])
def test_planted_faults_fail_at_the_right_points(framework, name):
    loss, params = FAULTS[name]
    params = {**params, **CORRECT_PARAMS.get((framework, name.split("_")[0]), {})}
    r = rt.check_loss(_impl(framework, name), loss, framework=framework, **params)
    assert not r.ok
    cases = {f.case for f in r.failures}
    if name == "smooth_l1_discontinuous":  # wrong only inside the quadratic zone |x| < beta
        assert all(_abs_x(f) < 0.5 for f in r.failures) and any(f.component == "value" for f in r.failures)
    elif name == "balanced_l1_copied":  # gradient wrong only for |x| < beta (the value also beyond), and named
        assert all(_abs_x(f) < 1 / 9 for f in r.failures if f.component != "value")
        assert any(_abs_x(f) > 1 / 9 for f in r.failures if f.component == "value")
        assert "copied (b|x|+1) Balanced L1" in r.diagnosis and r.codes[0] == "copied_balanced_l1_form"
    elif name == "giou_union":  # the enclosing box is the union only when one box contains the other
        assert {"disjoint_x", "disjoint_y", "disjoint_xy", "generic"} <= cases
        assert not cases & {"contained_pred_in_target", "contained_target_in_pred"}
    elif name == "giou_wrong_sign":  # exactly one component, everywhere it is not zero
        assert {f.component for f in r.failures} == {"d/dtarget[0]"}
        assert all(math.copysign(1, f.got) != math.copysign(1, f.expected) for f in r.failures)
    elif name == "ciou_no_av":  # the alpha*v term vanishes only for equal aspect ratios
        assert {"generic", "thin_tall", "disjoint_x"} <= cases
        assert r.diagnosis == "agrees with refloss.diou_loss instead: DIoU: the alpha*v term is missing"
        assert r.codes == ["ciou_without_alpha_v"]
    elif name == "giou_float32_inside":
        assert any(f.component == "value" for f in r.failures)
        assert "float32 arithmetic inside" in r.diagnosis and r.codes[0] == "float32_inside"
        # ... and in float32 the same implementation is right
        assert rt.check_loss(_impl(framework, name), loss, framework=framework, dtype="float32", **params).ok
