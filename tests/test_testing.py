"""refloss.testing.check_loss: correct implementations pass, planted faults fail at the right
place, and known variants are diagnosed."""
import json
from functools import partial

import numpy as np
import pytest

import refloss.testing as rt


def smooth_l1_np(p, t, beta=0.5):
    x = np.abs(p - t)
    return np.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)


def smooth_l1_discontinuous(p, t, beta=0.5):  # keras-cv-like: no 1/beta in the quadratic part
    x = np.abs(p - t)
    return np.where(x < beta, 0.5 * x**2, x - 0.5 * beta)


def giou_np(p, t, enclosing=True):
    ix = np.clip(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0, None)
    iy = np.clip(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0, None)
    inter = ix * iy
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - inter
    c = (np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])) * (
        np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1]))
    c = c if enclosing else union
    return 1 - inter / union + (c - union) / c


def test_correct_numpy_implementations_pass():
    assert rt.check_loss(smooth_l1_np, "smooth_l1", beta=0.5).ok
    assert rt.check_loss(giou_np, "giou_loss").ok  # the textbook formula, finite-difference gradients


def test_planted_faults_fail_where_they_are():
    r = rt.check_loss(smooth_l1_discontinuous, "smooth_l1", beta=0.5)
    assert not r.ok and any(f.component == "value" for f in r.failures)
    assert "\n  value " in str(r) and r.worst.rel > 0.01 and r.worst.ulp > 1e10
    r = rt.check_loss(partial(giou_np, enclosing=False), "giou_loss")
    assert not r.ok and {f.case for f in r.failures} >= {"disjoint_x", "far_apart"}


def test_copied_balanced_l1_is_diagnosed():
    def copied(p, t, beta=1 / 9, alpha=0.5, gamma=1.5):
        x = np.abs(p - t)
        b = np.expm1(gamma / alpha)
        return np.where(x < beta, alpha / b * (b * x + 1) * np.log(b * x / beta + 1) - alpha * x,
                        gamma * x + gamma / b - alpha * beta)

    r = rt.check_loss(copied, "balanced_l1", beta=1 / 9)
    assert not r.ok and "copied (b|x|+1)" in r.diagnosis
    assert rt.check_loss(partial(copied, beta=1.0), "balanced_l1", beta=1.0).ok  # right at beta = 1


def test_report_json_and_assert():
    r = rt.check_loss(smooth_l1_discontinuous, "smooth_l1", beta=0.5, grad=False)
    data = json.loads(r.to_json())
    assert data["ok"] is False and data["failures"][0]["component"] == "value"
    with pytest.raises(AssertionError, match="check_loss: smooth_l1_discontinuous vs refloss.smooth_l1"):
        rt.assert_loss_matches(smooth_l1_discontinuous, "smooth_l1", beta=0.5)
    rt.assert_loss_matches(smooth_l1_np, "smooth_l1", beta=0.5)
    with pytest.raises(ValueError, match="loss: unknown"):
        rt.check_loss(smooth_l1_np, "nope")


def test_torch_adapter_faults_and_diagnoses():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision.ops")
    assert rt.check_loss(partial(torch.nn.functional.smooth_l1_loss, reduction="none", beta=1 / 9), "smooth_l1",
                         beta=1 / 9).ok
    assert rt.check_loss(partial(torch.nn.functional.smooth_l1_loss, reduction="none", beta=1 / 9), "smooth_l1",
                         beta=1 / 9, dtype=np.float32).ok

    def wrong_sign(p, t):  # value right, gradient w.r.t. target of the wrong sign
        return torch.nn.functional.l1_loss(p, t.detach() * 2 - t, reduction="none")

    r = rt.check_loss(wrong_sign, "l1")
    assert not r.ok and {f.component for f in r.failures} == {"d/dtarget"}
    assert rt.check_loss(partial(tv.generalized_box_iou_loss, eps=1e-7), "giou_loss", eps=1e-7).ok
    r = rt.check_loss(tv.generalized_box_iou_loss, "giou_loss", eps=0.0)
    assert r.diagnosis == "agrees with refloss's giou_loss with eps=1e-07, not with the eps=0.0 checked"
    assert r.codes == ["eps_ignored"]
    r = rt.check_loss(partial(tv.complete_box_iou_loss, eps=1e-7), "ciou_loss", eps=1e-7, alpha_grad=True)
    assert "alpha_grad=False" in r.diagnosis and r.codes == ["ciou_alpha_constant"]

    def ciou_without_av(p, t):
        return tv.distance_box_iou_loss(p, t, eps=1e-7)

    r = rt.check_loss(ciou_without_av, "ciou_loss", eps=1e-7)
    assert not r.ok and "refloss.diou_loss instead" in r.diagnosis and r.codes == ["ciou_without_alpha_v"]


def test_focal_eiou_versions_are_told_apart():
    import refloss

    def v1(p, t):  # a Focal-EIoU implemented as the paper's first version
        return refloss.focal_l1_eiou_loss(p, t)

    r = rt.check_loss(v1, "focal_eiou_loss", framework="numpy")
    assert r.diagnosis.startswith("agrees with refloss.focal_l1_eiou_loss instead")


def test_docstring_example_runs():
    import doctest

    import refloss.testing

    assert doctest.testmod(refloss.testing).failed == 0


def test_user_arrays_and_device_argument():
    p = np.array([0.1, 0.7, -3.0])
    t = np.zeros(3)
    r = rt.check_loss(smooth_l1_np, "smooth_l1", cases=(p, t), beta=0.5)
    assert r.ok and r.points == 3
    r = rt.check_loss(smooth_l1_discontinuous, "smooth_l1", cases=(p, t), beta=0.5)
    assert {f.case for f in r.failures} == {"user"} and {f.index for f in r.failures} == {0}  # only |x| < beta
    with pytest.raises(ValueError, match="device: only the torch adapter"):
        rt.check_loss(smooth_l1_np, "smooth_l1", framework="numpy", device="cuda")
    torch = pytest.importorskip("torch")
    assert rt.check_loss(partial(torch.nn.functional.l1_loss, reduction="none"), "l1", device="cpu").ok


def test_peer_check_and_vectors_need_no_mpmath_sympy_or_scipy():
    """A fresh `pip install refloss` (NumPy and Numba only) runs `refloss verify PEER` and
    `refloss vectors`: only `refloss verify` (the oracle) needs mpmath."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('mpmath', 'sympy', 'scipy'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, refloss.testing as rt, refloss.vectors as rv\n"
        "def f(p, t): return np.abs(p - t)\n"
        "assert rt.check_loss(f, 'l1').ok\n"
        "assert rv.golden_vectors('giou_loss')['meta']['points'] > 100\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
