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


def test_finite_difference_steps_change_the_differences_or_are_not_checked():
    """A step on target below pred's ULP leaves pred - target as it was: a derivative of 0 where the
    true one is -1.  Steps are whole ULPs of the larger magnitude, or the point is not checked."""
    from refloss import _fd, _measures

    def l1(p, t):
        return np.abs(p - t)

    # |x| one ULP above smooth L1's kink at 0.5, target 0: a step that must not cross the kink is a
    # quarter ULP of pred, exact on target = 0, lost in pred - target
    p, t = np.array([np.nextafter(0.5, 1.0), 3.0]), np.array([0.0, 1.0])
    h = np.array([np.spacing(0.5) / 4, 1e-6])
    g, est = _fd.gradient(l1, [p, t], 1, h)
    assert g[0] == 0.0 and np.isfinite(est[0])  # the trap: 0, and an estimate that does not say so
    g, est = _fd.gradient(l1, [p, t], 1, h, quantum=_measures.ulp(np.maximum(abs(p), abs(t)), np.float64))
    assert np.isinf(est[0]) and g[1] == pytest.approx(-1.0, rel=1e-9)
    r = rt.check_loss(smooth_l1_np, "smooth_l1", cases=(p, t), beta=0.5)
    assert r.ok and r.unchecked == {"d/dpred": 1, "d/dtarget": 1}
    assert "not checked by finite differences: d/dpred at 1 points, d/dtarget at 1 points" in str(r)

    # target far below pred: its step is taken relative to pred, so pred - target moves and the
    # derivative is -1; an implementation that drops the target (values right to 1e-33) is caught
    p, t = np.array([1e3, -2.5, 7.0]), np.array([1e-30, -1e-35, 3e-33])
    assert rt.check_loss(l1, "l1", cases=(p, t)).ok

    def l1_without_target(p, t):
        return np.abs(p) + 0 * t

    r = rt.check_loss(l1_without_target, "l1", cases=(p, t))
    assert {f.component for f in r.failures} == {"d/dtarget"} and all(f.got == 0.0 for f in r.failures)
    assert not r.unchecked


def test_report_groups_mirrored_rows_and_measures_ulps_against_the_scale():
    from refloss import _measures
    from refloss.testing import _mirror_groups

    r = rt.check_loss(smooth_l1_discontinuous, "smooth_l1", beta=0.5)
    groups = _mirror_groups(r.failures)
    assert len(groups) * 3 <= len(r.failures)  # +-x and pred/target: one failure, several rows
    assert all(f"{abs(f.got):.6g}" == f"{abs(g[0].got):.6g}" for g in groups for f in g)
    text = str(r)
    assert f"({len(r.failures)} failures in {len(groups)} rows" in text
    shown = [line for line in text.splitlines() if line.startswith("  decades[") or line.startswith("  random[")]
    assert shown and max(int(line.split()[-1]) for line in shown) >= 4

    pytest.importorskip("torch")

    def mse_off(p, t):  # d/dpred off by 1e-9 everywhere, also where it is 0
        return (p - t) ** 2 + 1e-9 * p

    p, t = np.array([1.0, 2.0]), np.array([1.0, 0.5])
    r = rt.check_loss(mse_off, "mse", cases=(p, t), framework="torch")
    f = next(f for f in r.failures if f.index == 0 and f.component == "d/dpred")
    assert f.expected == 0.0 and f.got == pytest.approx(1e-9)
    # against the gradient's scale (max(|component|, 1e-3) = 1e-3), not against ulp(0) = 5e-324
    assert f.ulp == pytest.approx(1e-9 / _measures.ulp(1e-3, np.float64), rel=1e-6) and f.ulp < 1e10
    assert f" {rt._fmt_ulp(f.ulp)} " in str(r) and "e+3" not in str(r)  # not 1e-9 / ulp(0) = 2e+314 (inf)


def test_cli_prints_the_diagnosis_codes(tmp_path, capsys):
    from refloss import cli

    mod = tmp_path / "mybce.py"
    mod.write_text("import numpy as np\n"
                   "def bce(x, y):\n"
                   "    p = 1 / (1 + np.exp(-x))\n"
                   "    return -(y * np.log(p) + (1 - y) * np.log(1 - p))\n")
    assert cli.main(["verify", f"{mod}:bce", "--loss", "bce_with_logits"]) == 1
    assert "diagnosis [log_sigmoid_overflow]: digits lost for confident logits only" in capsys.readouterr().out


def test_batteries_are_dense_where_textbook_forms_lose_digits():
    """-log(sigmoid(x)) is 1.8e-9 off at x = 20; the logit grid used to jump from 17.8 to 31.6 and
    stop at 30, and it passed.  p*p - 2*p*t + t*t loses the digits of small values at large
    targets, which stopped at 1e3."""
    from refloss import _battery
    from refloss._loss import loss_named

    names, (x, _), _ = _battery.battery(loss_named("sigmoid_focal_loss"), "standard", {})
    confident = np.sort(np.abs(x[names == "confident"]))
    assert np.diff(np.unique(confident)).max() <= 0.25 and confident.max() == 30.0

    def focal_naive(x, y, alpha=0.25, gamma=2.0):
        p = 1 / (1 + np.exp(-x))
        ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        p_t = p * y + (1 - p) * (1 - y)
        return (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma

    r = rt.check_loss(focal_naive, "sigmoid_focal_loss")
    assert "confident" in {f.case for f in r.failures} and min(abs(f.inputs[0]) for f in r.failures) >= 12

    def mse_expanded(p, t):
        return p * p - 2 * p * t + t * t

    r = rt.check_loss(mse_expanded, "mse", grad=False)
    assert {f.case for f in r.failures} == {"large"}
    assert rt.check_loss(lambda p, t: (p - t) ** 2, "mse").ok


def _l1_ok(p, t):
    return np.abs(p - t)


@pytest.mark.parametrize("impl,message", [
    (lambda p, t: np.abs(p - t) * undefined_scale, "raised NameError"),  # noqa: F821 - its own error, not torch's
    (lambda p, t: None, "returned NoneType, not an array"),
    (lambda p, t: np.append(np.abs(p - t), 0.0), "one loss per element, shape"),
    (lambda p, t: np.abs(p - t)[:, None], "one loss per element, shape"),
    (lambda p, t: np.abs(p - t)[None, :], "one loss per element, shape"),
    (lambda p, t: np.abs(p - t).mean(), "not a reduced"),
])
def test_what_the_implementation_returned_is_named(impl, message):
    # (a probe, 2026-12-07: a (N, 1) result passed, a (1, N) one was called reduced, None and lists were reported
    # as errors inside refloss's comparison, and a NumPy function's own NameError as torch's)
    with pytest.raises(rt.ImplementationError, match=message):
        rt.check_loss(impl, "l1")


def test_tolerances_and_cases_are_checked():
    assert rt.check_loss(_l1_ok, "l1", rtol=0).ok  # rtol=0 is exact agreement, not the default tolerances
    for bad in (-1, float("nan"), "x", (1e-9, -1)):
        with pytest.raises(ValueError, match="rtol"):
            rt.check_loss(_l1_ok, "l1", rtol=bad)
    with pytest.raises(ValueError, match="cases: arrays of one length"):
        rt.check_loss(_l1_ok, "l1", cases=(np.array([0.5, 2.0]), np.array([0.0])))
    with pytest.raises(rt.ImplementationError, match=r"raised ZeroDivisionError"):
        rt.check_loss(lambda p, t: 1 / 0, "l1", rtol=0)


def test_complex_results_and_empty_cases_are_refused():
    # (a probe, 2026-12-07: a complex result passed after NumPy's ComplexWarning; empty cases reported "OK")
    with pytest.raises(rt.ImplementationError, match="complex"):
        rt.check_loss(lambda p, t: np.abs(p - t) + 0j, "l1")
    with pytest.raises(ValueError, match="cases: no points"):
        rt.check_loss(_l1_ok, "l1", cases=(np.zeros(0), np.zeros(0)))


def test_a_float32_result_of_float64_inputs_is_named():
    """torchvision's float64 GIoU returned as float32: its eps variant missed the float64 tolerance by float32's
    rounding and the diagnosis was "unexplained" (2026-12-07); now the variant is judged at float32's value
    tolerance and says so, and the points left over by the rounding alone are named. torchvision's own float64
    result keeps the plain eps diagnosis."""
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    from refloss.testing import check_loss

    plain = check_loss(lambda p, t: ops.generalized_box_iou_loss(p, t), "giou_loss")
    rounded = check_loss(lambda p, t: ops.generalized_box_iou_loss(p, t).to(torch.float32), "giou_loss")
    assert [c for c, _ in plain.diagnoses] == ["eps_ignored"] and "float32" not in plain.diagnoses[0][1]
    codes = [c for c, _ in rounded.diagnoses]
    assert codes[0] == "eps_ignored" and "float32 rounding" in rounded.diagnoses[0][1] and "unexplained" not in codes


def test_element_wise_cases_of_several_columns_with_gradients():
    """2-D element-wise cases (rows of several elements) with gradients: the finite-difference step's distance to
    the kinks is taken over each row (an internal broadcast error, reported as the user's function raising
    ValueError, before 2026-12-07); a wrong quadratic piece is still found."""
    cases = (np.array([[0.5, 2.0, 3.0], [0.999, 1.001, -4.0]]), np.zeros((2, 3)))
    assert rt.check_loss(lambda p, t: np.abs(p - t), "l1", cases=(np.ones((2, 3)), np.zeros((2, 3)))).ok
    good = rt.check_loss(lambda p, t: np.where(np.abs(p - t) < 1, 0.5 * (p - t) ** 2, np.abs(p - t) - 0.5),
                         "smooth_l1", cases=cases)
    bad = rt.check_loss(lambda p, t: np.where(np.abs(p - t) < 1, 0.6 * (p - t) ** 2, np.abs(p - t) - 0.5),
                        "smooth_l1", cases=cases)
    assert good.ok and not bad.ok


def test_argument_errors_up_front_and_a_detached_torch_result_named():
    """check_loss(3, ...) said the implementation 'raised TypeError: int object is not callable', rtol=(1e-3,) gave
    'not enough values to unpack', and a torch result not connected to its inputs 'raised RuntimeError: element 0
    of tensors does not require grad' (check_loss's own backward, 2026-12-07)."""
    with pytest.raises(TypeError, match="impl: must be a function"):
        rt.check_loss(3, "l1")
    with pytest.raises(ValueError, match="rtol: must be a number >= 0 or a pair"):
        rt.check_loss(_l1_ok, "l1", rtol=(1e-3,))
    assert rt.check_loss(_l1_ok, "l1", rtol=[1e-9, 1e-7]).ok
    torch = pytest.importorskip("torch")
    detached = (lambda p, t: torch.from_numpy(np.abs(p.detach().numpy() - t.detach().numpy())),
                lambda p, t: (p - t).abs().long())
    for f in detached:
        with pytest.raises(rt.ImplementationError, match="not connected to its inputs"):
            rt.check_loss(f, "l1", framework="torch")
    assert rt.check_loss(detached[0], "l1", framework="torch", grad=False).ok
    with pytest.raises(rt.ImplementationError, match="complex"):
        rt.check_loss(lambda p, t: (p - t).abs().to(torch.complex128), "l1", framework="torch")
