"""The conformance matrix of the built-in peers, pinned: agreements must agree, and every
documented discrepancy must still be detected, with the same diagnosis (docs/conformance.md,
docs/peers.md).  A peer that is not installed is skipped; CI installs torch, torchvision,
fvcore, jax, optax, ultralytics, mmdetection and mmrotate (the ``peers`` extra, .ci/run)."""
import pytest

from refloss import cli, peers

A, C, D, N = "agrees", "convention", "differs", "-"

# (peer, function) -> (float64, float32, convention points), and for the differences the
# diagnosis they must carry and the cases the worst float64 point may lie in
EXPECTED = {
    "torch": {
        "F.l1_loss": (A, A, A), "F.mse_loss": (A, A, A), "F.smooth_l1_loss(beta=1)": (A, A, A),
        "F.smooth_l1_loss(beta=1/9)": (A, A, A), "F.smooth_l1_loss(beta=0)": (A, A, A),
        "F.huber_loss(delta=1)": (A, A, A), "F.huber_loss(delta=2.5)": (A, A, A),
        "F.binary_cross_entropy_with_logits": (A, A, N),
    },
    "torchvision": {
        # touching edges: the strict intersection mask gives gradient 0, as clamp(min=0) in torch 2.14.1
        "ops.generalized_box_iou_loss": (A, A, A), "ops.distance_box_iou_loss": (A, A, A),
        # zero-height boxes: atan(w/h) has a NaN gradient (a convention; refloss's atan2 is finite)
        "ops.complete_box_iou_loss": (A, A, C),
        # eps ignored in the IoU/DIoU part: wrong for small boxes
        "ops.complete_box_iou_loss(eps=0)": (D, D, D),
        # zero-area boxes: NaN gradients from the 0/0 entries of other pairs in the N x N matrix
        "ops.box_iou(...).diagonal()": (A, A, C), "ops.generalized_box_iou(...).diagonal()": (A, A, C),
        # eps in c^2 only
        "ops.distance_box_iou(...).diagonal()": (D, D, D), "ops.complete_box_iou(...).diagonal()": (D, D, D),
        "ops.sigmoid_focal_loss": (A, A, N), "ops.sigmoid_focal_loss(alpha=-1, gamma=1.5)": (A, A, N),
    },
    "fvcore": {
        "nn.smooth_l1_loss(beta=1)": (A, A, A), "nn.smooth_l1_loss(beta=1/9)": (A, A, A),
        "nn.smooth_l1_loss(beta=0)": (A, A, A), "nn.giou_loss": (A, A, A),
        # computes in float32 whatever the input dtype
        "nn.sigmoid_focal_loss(alpha=0.25)": (D, A, N), "nn.sigmoid_focal_loss (alpha=-1)": (D, A, N),
    },
    "optax": {
        "losses.squared_error": (A, A, A), "losses.huber_loss(delta=1)": (A, A, A),
        "losses.huber_loss(delta=2.5)": (A, A, A), "losses.sigmoid_binary_cross_entropy": (A, A, N),
        # the gradient w.r.t. hard labels drops a term
        "losses.sigmoid_focal_loss(alpha=0.25)": (D, D, N), "losses.sigmoid_focal_loss (alpha=None)": (D, D, N),
    },
    "ultralytics": {  # eps added to the heights: differs wherever eps/h shows
        "1 - bbox_iou(xywh=False)": (D, D, D), "1 - bbox_iou(xywh=False, GIoU=True)": (D, D, D),
        "1 - bbox_iou(xywh=False, DIoU=True)": (D, D, D), "1 - bbox_iou(xywh=False, CIoU=True)": (D, D, D),
        # float32: the clamp bound 6.99 rounds onto the float32 "end" target (d/dtarget 0 there)
        "DFLoss(reg_max=n_bins)": (A, D, A),
        # its BCE in float32 whatever the dtype
        "VarifocalLoss()": (D, A, N),
        # eps = 1e-7 in six places and B_D clamped to [eps, 100]; the training form adds floor = 0.01 to the variances
        "1 - probiou(pred, target)": (D, D, D), "1 - probiou(pred, target, floor=0.01)": (D, D, D),
        # the same formula (eps = 1e-9 added to the target's sides; its wrap of the angle difference is rounding only)
        "v8OBBLoss.calculate_angle_loss": (A, A, A),
    },
    "mmdetection": {  # the loss modules of mmdet 3.3.0 (refloss.peers._mmdet loads them beside mmcv-lite)
        # bbox_overlaps floors U (and C) at eps: boxes of area ~eps differ
        "iou_loss": (D, D, D), "iou_loss(mode='linear')": (D, D, D), "giou_loss": (D, D, D),
        "diou_loss": (A, A, A),
        # alpha gated at IoU > 0.5 (alpha_gate=0.5 agrees); eps in the heights below the tolerance; NaN at identical
        "ciou_loss": (A, A, D),
        "eiou_loss": (D, D, D),  # the Extended-IoU loss
        # YOLOv6's eps placement, the default a reward
        "siou_loss": (D, D, D), "siou_loss(neg_gamma=True)": (D, D, D),
        "smooth_l1_loss(beta=1)": (A, A, A), "smooth_l1_loss(beta=1/9)": (A, A, A), "l1_loss": (A, A, A),
        "mse_loss": (A, A, A), "balanced_l1_loss": (A, A, A),
        "balanced_l1_loss(beta=1/9)": (D, D, D),  # the copied (b|x|+1) form
        "quality_focal_loss": (A, A, N),
        # GFLHead's targets from bbox2distance(..., eps=0.1): dfl_loss(clamp=0.1); the bound 6.9 is not on a battery
        # target (the adapter clamped at 6.99, ultralytics' bound, and differed in float32 there, before 2026-12-07)
        "distribution_focal_loss": (A, A, A),
        # alpha |sigma - q|^gamma: d/dq at q = 0
        "varifocal_loss": (D, D, N), "varifocal_loss(iou_weighted=False)": (D, D, N),
    },
    # mmrotate 1.0.0rc1's Gaussian losses (refloss.peers._mmrotate loads them beside mmdet 3.3.0): its clamps (box
    # sides, the divergence, det products) differ wherever they bind; test_mmrotate_clamps_are_the_cause
    "mmrotate": {f: (D, D, D) for f in (
        "GDLoss kld_loss(fun='log1p', tau=1.0, sqrt=False)", "GDLoss kld_loss(fun='sqrt', tau=2.0, sqrt=False)",
        "GDLoss gwd_loss(fun='none', tau=1.0, normalize=False)", "GDLoss_v1 gwd_loss(fun='sqrt', tau=2.0)",
        "GDLoss_v1 gwd_loss(fun='log1p', tau=1.0)")},
}

DIAGNOSES = {
    "nn.sigmoid_focal_loss(alpha=0.25)": "float32 arithmetic inside",
    "nn.sigmoid_focal_loss (alpha=-1)": "float32 arithmetic inside",
    "VarifocalLoss()": "float32 arithmetic inside",
}
# the diagnosis codes of every run that does not agree: (float64, float32, convention points), each
# traced to the peer's code (docs/peers.md)
CODES = {
    # ultralytics/utils/metrics.py bbox_iou: h1 = b1_y2 - b1_y1 + eps (xyxy)
    **{f: (["eps_in_box_size"],) * 3 for f in EXPECTED["ultralytics"] if f.startswith("1 - bbox_iou")},
    # ultralytics/utils/loss.py DFLoss: target.clamp_(0, self.reg_max - 1 - 0.01), the bound rounded to float32
    # (no recogniser: known, traced by test_ultralytics_dfl_float32_difference_is_the_rounded_bound)
    "DFLoss(reg_max=n_bins)": ([], ["unexplained"], []),
    # ultralytics/utils/loss.py VarifocalLoss: binary_cross_entropy_with_logits(pred_score.float(), gt_score.float())
    "VarifocalLoss()": (["float32_inside"], [], []),
    # ultralytics/utils/metrics.py probiou: its eps placements (the variant probiou_ultralytics_eps); in float32 a thin
    # box's determinant a b - c^2 rounds to <= 0, clamp_(0) and sqrt'(0) = inf make NaN gradients (the values are
    # right, which the where-recogniser names), and rounding beyond the float64 variant is left unexplained
    "1 - probiou(pred, target)": (["probiou_ultralytics_eps"],
                                  ["probiou_ultralytics_eps", "nan_gradient_from_where", "unexplained"],
                                  ["probiou_ultralytics_eps"]),
    "1 - probiou(pred, target, floor=0.01)": (["probiou_ultralytics_floor"], ["probiou_ultralytics_floor", "unexplained"],
                                              ["probiou_ultralytics_floor"]),
    # mmdet/structures/bbox/bbox_overlaps.py: union = torch.max(union, eps), enclose_area = torch.max(enclose_area, eps);
    # mmdet/models/losses/iou_loss.py iou_loss: ious.clamp(min=eps)
    "iou_loss": (["eps_as_floor"],) * 3, "iou_loss(mode='linear')": (["eps_as_floor"],) * 3,
    "giou_loss": (["eps_as_floor"],) * 3,
    # iou_loss.py ciou_loss: alpha = (ious > 0.5).float() * v / (1 - ious + v) under no_grad, 0/0 at identical boxes
    "ciou_loss": ([], [], ["nan_at_identical_boxes"]),
    # iou_loss.py eiou_loss: the Extended-IoU loss (Peng et al.)
    "eiou_loss": (["extended_iou_not_efficient_iou"],) * 3,
    # iou_loss.py siou_loss: s_cw + eps, h + eps, enclose_wh.clamp(min=eps), sious.clamp(-1, 1); gamma = 2 - Lambda
    # by default (neg_gamma=False)
    "siou_loss": (["siou_yolov6_eps"],) * 3, "siou_loss(neg_gamma=True)": (["siou_yolov6_eps"],) * 3,
    # balanced_l1_loss.py: alpha / b * (b * diff + 1) * torch.log(b * diff / beta + 1) - alpha * diff
    "balanced_l1_loss(beta=1/9)": (["copied_balanced_l1_form"],) * 3,
    # varifocal_loss.py: alpha * (pred_sigmoid - target).abs().pow(gamma) * (target <= 0.0).float()
    "varifocal_loss": (["vfl_abs_weight"], ["vfl_abs_weight"], []),
    "varifocal_loss(iou_weighted=False)": (["vfl_abs_weight"], ["vfl_abs_weight"], []),
    # torchvision/ops/ciou_loss.py: _diou_iou_loss(boxes1, boxes2) without eps; alpha's eps = 0 is 0/0 once
    # U + 1e-7 rounds to U at identical boxes
    "ops.complete_box_iou_loss(eps=0)": (["eps_ignored"], ["eps_ignored"], ["eps_ignored", "nan_at_identical_boxes"]),
    # torchvision/ops/boxes.py _box_diou_iou: iou = box_iou(...) (no eps), diagonal_distance_squared + eps
    "ops.distance_box_iou(...).diagonal()": (["eps_in_c2_only"],) * 3,
    "ops.complete_box_iou(...).diagonal()": (["eps_in_c2_only"],) * 3,
    # fvcore/nn/focal_loss.py: inputs = inputs.float()
    "nn.sigmoid_focal_loss(alpha=0.25)": (["float32_inside"], [], []),
    "nn.sigmoid_focal_loss (alpha=-1)": (["float32_inside"], [], []),
    # optax: JAX's logsumexp drops a zero weight's derivative (no recogniser: known, not diagnosed)
    "losses.sigmoid_focal_loss(alpha=0.25)": (["unexplained"], ["unexplained"], []),
    "losses.sigmoid_focal_loss (alpha=None)": (["unexplained"], ["unexplained"], []),
    # mmrotate/models/losses/gaussian_dist_loss{,_v1}.py: clamps no refloss parameter reproduces (no recogniser:
    # traced by test_mmrotate_clamps_are_the_cause); in float32 the KLD's matrix inverse of a thin box rounds to a
    # NaN gradient with a right value
    **{f: (["unexplained"], ["nan_gradient_from_where", "unexplained"], ["unexplained"])
       for f in EXPECTED["mmrotate"] if "kld" in f},
    **{f: (["unexplained"],) * 3 for f in EXPECTED["mmrotate"] if "gwd" in f},
    # its log1p form: float32 rounding of the cancelling matrix form reads as float32 arithmetic at some points
    "GDLoss_v1 gwd_loss(fun='log1p', tau=1.0)": (["float32_inside", "unexplained"], ["unexplained"], ["float32_inside"]),
    # NaN gradients at zero-area or zero-height boxes, a convention point (see CONVENTION_CASES)
    "ops.complete_box_iou_loss": ([], [], ["convention_only"]),
    "ops.box_iou(...).diagonal()": ([], [], ["convention_only"]),
    "ops.generalized_box_iou(...).diagonal()": ([], [], ["convention_only"]),
}
# where the float64 differences must lie
DIFFERENCE_CASES = {
    "ops.complete_box_iou_loss(eps=0)": {"small_far_from_origin", "disjoint_x", "disjoint_y", "disjoint_xy", "generic",
                                         "near_identical", "thin_tall", "contained_pred_in_target",
                                         "contained_target_in_pred", "far_apart"},
    "losses.sigmoid_focal_loss(alpha=0.25)": {"hard", "confident"},  # hard labels (0, 1) of either group
    "losses.sigmoid_focal_loss (alpha=None)": {"hard", "confident"},
}
# where the convention-only differences must lie (touching boxes agree since torch 2.14.1's clamp)
CONVENTION_CASES = {
    "ops.complete_box_iou_loss": {"zero_area"},
    "ops.box_iou(...).diagonal()": {"zero_area"},
    "ops.generalized_box_iou(...).diagonal()": {"zero_area"},
}


def _min_height(f):
    return min(f.inputs[0][3] - f.inputs[0][1], f.inputs[1][3] - f.inputs[1][1])


def test_ultralytics_eps_in_heights_is_the_cause():
    """Every float64 value difference of ultralytics' IoU is of the size eps/h predicts."""
    if not peers.available("ultralytics"):
        pytest.skip("ultralytics not installed")
    res = peers.run("ultralytics", only=["iou_loss"])[0]
    for f in res.reports["float64"].failures:
        if f.component == "value":
            assert f.rel <= 4 * 1e-7 / _min_height(f), f


def test_ultralytics_dfl_float32_difference_is_the_rounded_bound():
    """DFLoss's only difference: float32 targets 7 - 0.01 on its bound float32(6.99), where its clamp_ gives
    dL/dy = 0; the float64 reference puts them just inside, and so does refloss's float32 kernel, which decides
    against the exact bound 7 - float32(0.01) (it gave 0 too before 2026-12-05: docs/accuracy.md)."""
    if not peers.available("ultralytics"):
        pytest.skip("ultralytics not installed")
    import numpy as np

    import refloss

    res = peers.run("ultralytics", only=["dfl_loss"])[0]
    failures = res.reports["float32"].failures
    assert failures and all(f.component == "d/dtarget" and f.got == 0.0 for f in failures)
    assert {np.float32(f.inputs[1]) for f in failures} == {np.float32(8 - 1 - 0.01)}
    z = np.array([f.inputs[0] for f in failures], np.float32)
    y = np.full(len(failures), 8 - 1 - 0.01, np.float32)
    ours = refloss.dfl_loss.value_and_grad(z, y, clamp=0.01)[1][1]
    wide = refloss.dfl_loss.value_and_grad(z.astype(np.float64), y.astype(np.float64),
                                           clamp=float(np.float32(0.01)))[1][1]
    assert np.all(ours != 0.0) and np.allclose(ours, wide, rtol=1e-6)


def test_ultralytics_vfl_adapter_sums_to_the_peers_own_reduction():
    """The per-element VarifocalLoss (vmap over (1, 1) slices) adds up to the peer's own .mean(1).sum() on
    (n, 1), in value and gradient."""
    if not peers.available("ultralytics"):
        pytest.skip("ultralytics not installed")
    import torch
    from ultralytics.utils.loss import VarifocalLoss

    from refloss.peers._ultralytics import _vfl

    g = torch.Generator().manual_seed(0)
    q = torch.rand(200, generator=g, dtype=torch.float64) * (torch.rand(200, generator=g) > 0.5)
    x = torch.randn(200, generator=g, dtype=torch.float64) * 3

    def per_element(p):
        return _vfl()()(p, q).sum()

    def its_own(p):
        return VarifocalLoss()(p[:, None], q[:, None], (q > 0)[:, None].double())

    grads = []
    for total in (per_element, its_own):
        p = x.clone().requires_grad_()
        v = total(p)
        v.backward()
        grads.append((v.detach(), p.grad))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-6) and torch.allclose(grads[0][1], grads[1][1], rtol=1e-6)


# mmrotate check -> (divergence bound, W^2 bound, det-product bound) below which its clamps bind (0: none)
MMROTATE_CLAMPS = {
    "GDLoss kld_loss(fun='log1p', tau=1.0, sqrt=False)": (0, 0, 0),
    "GDLoss kld_loss(fun='sqrt', tau=2.0, sqrt=False)": (1e-7, 0, 0),
    "GDLoss gwd_loss(fun='none', tau=1.0, normalize=False)": (0, 1e-7, 1e-7),
    "GDLoss_v1 gwd_loss(fun='sqrt', tau=2.0)": (0, 1e-6, 0),
    "GDLoss_v1 gwd_loss(fun='log1p', tau=1.0)": (0, 1e-6, 0),
}


def test_mmrotate_clamps_are_the_cause():
    """Every float64 difference of mmrotate's Gaussian losses lies where one of its clamps binds: a side outside
    [1e-7, 1e7] (xy_wh_r_2_xy_sigma), the divergence below 1e-7 (postprocess's sqrt), W^2 below 1e-7 (GDLoss) or
    1e-6 (GDLoss_v1), det(Sigma_p) det(Sigma_t) below 1e-7 (GDLoss's GWD); refloss's exact D and W^2 decide."""
    if not peers.available("mmrotate"):
        pytest.skip("mmrotate not installed")
    import numpy as np

    import refloss

    for res in peers.run("mmrotate"):
        d_bound, w_bound, det_bound = MMROTATE_CLAMPS[res.check.function]
        failures = res.reports["float64"].failures
        assert failures, res.check.function
        for f in failures:
            p, t = np.array(f.inputs[0]), np.array(f.inputs[1])
            sides = np.r_[p[2:4], t[2:4]]
            d = (1 / (1 - refloss.kld_loss(p, t, reverse=True, fun="sqrt", tau=1.0)) - 1) ** 2
            w2 = (1 / (1 - refloss.gwd_loss(p, t, fun="sqrt", tau=1.0)) - 1) ** 2
            det = np.prod(sides) ** 2 / 256
            assert (sides.min() < 1e-7 or sides.max() > 1e7 or d < d_bound or w2 < w_bound or det < det_bound), f


def test_mmdet_gfl_targets_are_clamped_with_the_coders_default_eps():
    """The mmdetection DFL row's clamp, read from mmdet's own source (its coder module cannot be imported without
    mmcv's compiled ops): GFLHead calls bbox_coder.encode(centers, targets, self.reg_max) without eps, and
    DistancePointBBoxCoder.encode's eps (passed on to bbox2distance) defaults to 0.1, so the targets are clamped to
    reg_max - 0.1 (the adapter used 0.01, ultralytics' bound, before 2026-12-07)."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("mmdet")
    if spec is None:
        pytest.skip("mmdetection not installed")
    root = Path(spec.origin).parent
    coder = ast.parse((root / "models/task_modules/coders/distance_point_bbox_coder.py").read_text())
    encode = next(f for f in ast.walk(coder) if isinstance(f, ast.FunctionDef) and f.name == "encode")
    names = [a.arg for a in encode.args.args]
    defaults = dict(zip(names[len(names) - len(encode.args.defaults):], encode.args.defaults))
    assert ast.literal_eval(defaults["eps"]) == 0.1
    head = (root / "models/dense_heads/gfl_head.py").read_text()
    calls = [c for c in ast.walk(ast.parse(head)) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
             and c.func.attr == "encode"]
    assert calls and all(len(c.args) == 3 and not c.keywords for c in calls)
    check = next(c for c in peers.checks("mmdetection") if c.function == "distribution_focal_loss")
    assert check.params == {"clamp": 0.1}


@pytest.fixture(scope="module", params=list(EXPECTED))
def peer_results(request):
    peer = request.param
    if not peers.available(peer):
        pytest.skip(f"{peer} not installed")
    return peer, {r.check.function: r for r in peers.run(peer)}


def test_every_function_is_pinned(peer_results):
    peer, results = peer_results
    assert set(results) == set(EXPECTED[peer])


def test_statuses_are_as_documented(peer_results):
    peer, results = peer_results
    got = {f: tuple(r.status(k) for k, _, _ in peers.RUNS) for f, r in results.items()}
    assert got == EXPECTED[peer]


def test_every_difference_carries_its_code(peer_results):
    peer, results = peer_results
    for function, res in results.items():
        got = tuple(res.codes(key) for key, _, _ in peers.RUNS)
        assert got == CODES.get(function, ([], [], [])), function
        assert [code for code, _ in res.diagnoses] == next((c for c in got if c), []), function


def test_differences_keep_their_diagnosis_and_place(peer_results):
    peer, results = peer_results
    for function, res in results.items():
        if function in DIAGNOSES:
            assert DIAGNOSES[function] in res.diagnosis, function
        if function in DIFFERENCE_CASES:
            cases = {f.case for f in res.reports["float64"].failures}
            assert cases and cases <= DIFFERENCE_CASES[function], (function, cases)
        if res.status("edge") == C:  # convention-only differences are gradients at convention points
            assert all(f.component != "value" for f in res.reports["edge"].failures)
            assert {f.case for f in res.reports["edge"].failures} <= CONVENTION_CASES[function], function
        if not res.ok:
            assert res.check.known, f"{function}: a difference without a documented explanation"


def test_optax_hard_label_gradient_is_the_wrong_one():
    """The difference is optax's: its own finite differences agree with refloss."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    import numpy as np

    import refloss

    jax.config.update("jax_enable_x64", True)

    def f(y):
        return optax.losses.sigmoid_focal_loss(jax.numpy.float64(2.0), y)

    h = 1e-6
    fd = (f(1.0 + h) - f(1.0 - h)) / (2 * h)
    ours = refloss.sigmoid_focal_loss.value_and_grad(np.array([2.0]), np.array([1.0]), alpha=None)[1][1][0]
    assert abs(fd - ours) < 1e-8 * abs(ours)
    assert abs(jax.grad(f)(jax.numpy.float64(1.0)) - ours) > 0.1 * abs(ours)


def test_cli_verify_peer_and_user_function(tmp_path, capsys):
    pytest.importorskip("torch")
    assert cli.main(["verify", "torch", "-q"]) == 0
    out = capsys.readouterr().out
    assert "F.smooth_l1_loss(beta=1/9)" in out and "8 agree, 0 differ" in out
    mod = tmp_path / "mylosses.py"
    mod.write_text("import numpy as np\n"
                   "def good(p, t):\n    x = np.abs(p - t)\n    return np.where(x < 0.5, x * x, x - 0.25)\n"
                   "def bad(p, t):\n    x = np.abs(p - t)\n    return np.where(x < 0.5, 0.5 * x * x, x - 0.25)\n")
    assert cli.main(["verify", f"{mod}:good", "--loss", "smooth_l1", "--param", "beta=0.5"]) == 0
    assert ": OK" in capsys.readouterr().out
    assert cli.main(["verify", f"{mod}:bad", "--loss", "smooth_l1", "--param", "beta=0.5"]) == 1
    out = capsys.readouterr().out
    assert "failures" in out and "\n  diagnosis [unexplained]: matches no variant refloss implements" in out
    assert cli.main(["verify", f"{mod}:good"]) == 2  # no --loss
    assert cli.main(["verify", "nopeer"]) == 2
    assert cli.main(["verify", "json:nope", "--loss", "l1"]) == 2


def test_conformance_page(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "c.md"
    assert cli.main(["conformance", "torch", "-o", str(out)]) == 0
    text = out.read_text()
    assert "| `F.smooth_l1_loss(beta=1/9)` | `smooth_l1(beta=0.1111111111111111)` | agrees | agrees | agrees |" in text
    assert text.startswith("# Conformance")


# --- whole detector losses and matching (DetectorPeerCheck: torchvision.models.detection) ----------

K, DIFF = "known", "differs"
EMPTY_IMAGES = ["seed 4 K=4 boxes 3+0 / image 1", "seed 10 K=5 boxes 3+0 / image 1",
                "crowded K=4 6 boxes on 8 anchors / image 1"]
# function -> (status, the items where the difference is known and traced)
DETECTOR_EXPECTED = {
    **{f"RetinaNetHead.compute_loss (_loss_type={t!r})": (A, []) for t in ("l1", "smooth_l1", "giou", "ciou", "diou")},
    "SSD.compute_loss": (A, []),
    # more positives than negatives: torchvision counts positives twice; refloss's paper default does not
    "SSD.compute_loss (vs the paper's mining)": (K, ["crowded K=4 6 boxes on 8 anchors"]),
    # torchvision's Matcher raises on an image without boxes; refloss gives all -1
    "det_utils.Matcher(0.5, 0.4)": (K, EMPTY_IMAGES),
    "det_utils.Matcher(0.5, 0.4, allow_low_quality_matches=True)": (K, EMPTY_IMAGES),
}


@pytest.fixture(scope="module")
def detector_results():
    pytest.importorskip("torchvision")
    return {r.check.function: r for r in peers.run_detectors("torchvision")}


def test_detector_checks_are_pinned(detector_results):
    from refloss.peers._detection import RTOL, battery

    assert len(battery()) == 5
    got = {f: (r.status, r.names("known")) for f, r in detector_results.items()}
    assert got == DETECTOR_EXPECTED
    for f, r in detector_results.items():
        assert len(r.items) == (10 if r.check.kind == "matcher" else 5)
        assert all(v <= RTOL for v in r.worst().values()), f  # the batches that agree, to the bar
        if r.status == K:
            assert r.check.known
    # the known SSD difference is a real one (the classification part), and only there
    ssd = detector_results["SSD.compute_loss (vs the paper's mining)"]
    crowded = next(i for i in ssd.items if i.status == K)
    assert crowded.errors["classification"] > 1e-2 and crowded.errors["bbox_regression"] <= RTOL
    matcher = detector_results["det_utils.Matcher(0.5, 0.4)"]
    assert all("No ground-truth boxes" in i.raised for i in matcher.items if i.status == K)


def _off_by(loss, rel, key):
    """A refloss detector loss whose total (key None) or gradient ``key`` is off by ``rel``."""
    class Faulty:
        def value_and_grad(self, *args, **kwargs):
            result, grads = loss.value_and_grad(*args, **kwargs)
            if key is None:
                result.total = result.total * (1 + rel)
            else:
                grads[key] = grads[key] * (1 + rel)
            return result, grads

    return Faulty()


@pytest.mark.parametrize("loss,key", [("ssd_loss", None), ("retinanet_loss", "cls_logits")])
def test_a_planted_fault_of_1e9_fails_the_detector_check(monkeypatch, loss, key):
    pytest.importorskip("torchvision")
    from refloss import _retinanet_ssd

    only = ["SSD.compute_loss (vs the paper's mining)", "SSD.compute_loss"] if loss == "ssd_loss" else \
        ["RetinaNetHead.compute_loss (_loss_type='giou')"]
    monkeypatch.setattr(_retinanet_ssd, loss, _off_by(getattr(_retinanet_ssd, loss), 1e-9, key))
    results = peers.run_detectors("torchvision", only=only)
    assert [r.status for r in results] == [DIFF] * len(only)  # the known trace does not excuse it either
    assert all(not r.ok and len(r.names("differs")) == 5 for r in results)


def test_a_planted_matcher_fault_fails(monkeypatch):
    pytest.importorskip("torchvision")
    from refloss import _matching

    real = _matching.match_by_iou

    def tie_to_the_last(iou, *args, **kwargs):  # ties between ground truths to the highest index
        flipped = real(iou[::-1], *args, **kwargs)
        return [m if m < 0 else len(iou) - 1 - m for m in flipped]

    monkeypatch.setattr(_matching, "match_by_iou", tie_to_the_last)
    res = peers.run_detectors("torchvision", only=["det_utils.Matcher(0.5, 0.4)"])[0]
    assert res.status == DIFF and res.names("differs") == ["ties K=3 / image 0"]


def test_cli_verify_torchvision_detectors_and_the_page(detector_results, capsys):
    from refloss.peers import conformance

    assert cli.main(["verify", "torchvision", "-q", "--loss", "retinanet_loss"]) == 0
    out = capsys.readouterr().out
    assert "ok   RetinaNetHead.compute_loss (_loss_type='ciou')  vs refloss.retinanet_loss(bbox_reg_loss_type='ciou')" in out
    assert "5 agree, 0 differ" in out
    assert cli.main(["verify", "torchvision", "-q", "--loss", "ssd_loss"]) == 1  # the paper's mining: known
    out = capsys.readouterr().out
    assert "KNOWN SSD.compute_loss (vs the paper's mining)" in out and "(1 of them known and traced)" in out
    assert cli.main(["verify", "torchvision", "--loss", "nope"]) == 2
    page = conformance.detector_section(list(detector_results.values()))
    assert "| `SSD.compute_loss` | `ssd_loss(mining='torchvision')` | 5 of 5 batches |" in page
    assert "| `det_utils.Matcher(0.5, 0.4)` | `match_by_iou(high_threshold=0.5, low_threshold=0.4, " \
           "allow_low_quality_matches=False)` | 7 of 10 images equal |" in page


def test_mmrotate_missing_names_its_install(monkeypatch):
    """Without mmrotate, `refloss verify mmrotate` says what to install (mmrotate's line, not mmdetection's)."""
    import importlib.util

    from refloss.peers import _mmrotate

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mmrotate" else real(name, *a))
    with pytest.raises(ImportError, match="pip install torch mmrotate==1.0.0rc1"):
        _mmrotate.require()
