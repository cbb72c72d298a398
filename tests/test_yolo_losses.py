"""rl.yolov1_loss .. rl.yolov4_loss: an independent 50-digit mpmath composition written from the
papers' formulas (refloss/oracle/yolo_losses.py: its own assignment loops, IoU, CIoU, sigmoid,
BCE; no refloss kernel), finite
differences of the gradients, float32, the edge cases, and the worked example of
docs/yolo-losses.md."""
import math
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest

import refloss as rl
from refloss.oracle.yolo_losses import gradient, oracle_anchor, oracle_v1

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------

GT = [np.array([[0.31, 0.27, 0.42, 0.5], [0.74, 0.61, 0.5, 0.3], [0.36, 0.22, 0.2, 0.2]]),
      np.zeros((0, 4)),
      np.array([[0.52, 0.88, 0.9, 0.2]])]
LABELS = [np.array([0, 2, 1]), np.array([], np.int64), np.array([1])]
ANCHORS = [np.array([[0.5, 0.45], [0.9, 0.3]]), np.array([[0.15, 0.2], [0.3, 0.4], [0.45, 0.5]])]


def v1_head(seed=0, dt=np.float64):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, (3, 3, 3, 2 * 5 + 3)).astype(dt)


def anchor_heads(seed=0, dt=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (3, 2, 2, 2, 8)).astype(dt), rng.normal(0, 1, (3, 4, 4, 3, 8)).astype(dt)]


def _compare(result, oracle, rtol=1e-14):
    names = {"box": "coord", "class": "cls"}
    for key, value in list(result.parts.items()) + [("total", result.total)]:
        want = oracle[names.get(key, key)]
        with mp.workdps(50):
            err = abs(mp.mpf(float(value)) - want) / max(abs(want), mp.mpf(1e-300))
        assert err <= rtol, f"{key}: got {float(value)!r}, oracle {mp.nstr(want, 20)} (rel {mp.nstr(err, 3)})"


# ---------------------------------------------------------------------------------------------
# values against the oracle
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"obj_target": "one"}, {"size_output": "sqrt"},
                                {"lambda_coord": 2.0, "lambda_noobj": 0.25}], ids=repr)
def test_yolov1_matches_oracle(kw):
    head = v1_head()
    res = rl.yolov1_loss(head, GT, LABELS, **kw)
    ok = {"lc": kw.get("lambda_coord", 5), "ln": kw.get("lambda_noobj", 0.5),
          "obj_target": kw.get("obj_target", "iou"), "size_output": kw.get("size_output", "w")}
    _compare(res, oracle_v1(head, GT, LABELS, **ok))
    assert res.details["responsible"].sum() == 4  # four boxes in four cells (the 2nd image has none)


@pytest.mark.parametrize("version,kw", [
    ("v2", {}), ("v2", {"obj_target": "one", "pos_iou_threshold": None, "xy_loss": "t"}),
    ("v3", {}), ("v3", {"xy_loss": "sigmoid", "ignore_threshold": 0.3}), ("v3", {"pos_iou_threshold": 0.3}),
    ("v4", {}), ("v4", {"scale_xy": 1.0})], ids=repr)
def test_anchor_yolos_match_oracle(version, kw):
    heads = anchor_heads()
    anchors = ANCHORS
    if version == "v2":  # one scale
        heads, anchors = heads[1:], ANCHORS[1:]
    loss = {"v2": rl.yolov2_loss, "v3": rl.yolov3_loss, "v4": rl.yolov4_loss}[version]
    res = loss(heads[0] if version == "v2" else heads, anchors[0] if version == "v2" else anchors, GT, LABELS, **kw)
    ok = dict(ignore=kw.get("ignore_threshold"), xy_loss=kw.get("xy_loss"), scale_xy=kw.get("scale_xy", 1.1),
              obj_target=kw.get("obj_target", "iou"),
              pos_thr=kw.get("pos_iou_threshold", 0.3 if version == "v2" else None))
    _compare(res, oracle_anchor(version, heads, anchors, GT, LABELS, **ok))
    n_pos = sum(int(p.sum()) for p in res.details["positive"])
    assert n_pos >= 4 and sum(int(i.sum()) for i in res.details["ignore"]) >= 0


def test_v2_accepts_darknet_channel_layout():
    head = anchor_heads()[1]
    flat = head.reshape(3, 4, 4, 24)
    a, ga = rl.yolov2_loss.value_and_grad(head, ANCHORS[1], GT, LABELS)
    b, gb = rl.yolov2_loss.value_and_grad(flat, ANCHORS[1], GT, LABELS)
    assert a.total == b.total and gb.shape == flat.shape and np.array_equal(gb.reshape(head.shape), ga)


# ---------------------------------------------------------------------------------------------
# gradients: central differences in float64 with the assignment held fixed
# ---------------------------------------------------------------------------------------------

def _fd_check(f, x, grad, h=1e-6, tol=3e-8, positive=None, n_random=40):
    """Central differences of f at x against grad (relative to the largest gradient): every
    element, or with ``positive`` (a mask of the anchors, x.shape[:-1]) every channel of those
    anchors and ``n_random`` further elements drawn at random."""
    worst = 0.0
    scale = max(np.abs(grad).max(), 1e-3)
    indices = list(np.ndindex(x.shape))
    if positive is not None:
        rng = np.random.default_rng(7)
        chosen = {i for i in indices if positive[i[:-1]]}
        chosen |= {indices[j] for j in rng.choice(len(indices), n_random, replace=False)}
        indices = sorted(chosen)
    for idx in indices:
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (f(xp) - f(xm)) / (2 * h)
        worst = max(worst, abs(fd - grad[idx]) / scale)
    assert worst <= tol, f"finite differences: worst relative error {worst:.3g}"
    return worst


@pytest.mark.parametrize("kw", [{}, {"size_output": "sqrt"}], ids=repr)
def test_yolov1_gradient_matches_finite_differences(kw):
    head = v1_head(1)
    res, grad = rl.yolov1_loss.value_and_grad(head, GT, LABELS, **kw)
    fixed = res.details["assignment"]  # the responsible boxes and the IoU targets held constant
    _fd_check(lambda x: rl.yolov1_loss(x, GT, LABELS, assignment=fixed, **kw).total, head, grad)


@pytest.mark.parametrize("version,kw", [("v2", {"obj_target": "one"}), ("v3", {}), ("v3", {"xy_loss": "sigmoid",
                                        "size_weight": True}), ("v4", {"box_params": {"alpha_grad": True}})],
                         ids=repr)
def test_anchor_gradients_match_finite_differences(version, kw):
    heads = anchor_heads(2)
    if version == "v2":
        args = (heads[1][:2, :3, :3], ANCHORS[1], GT[:2], LABELS[:2])
        res, grad = rl.yolov2_loss.value_and_grad(*args, **kw)
        fixed = res.details["assignment"]
        _fd_check(lambda x: rl.yolov2_loss(x, *args[1:], assignment=fixed, **kw).total, args[0], grad,
                  positive=fixed.matched[0] >= 0)
        return
    loss = rl.yolov3_loss if version == "v3" else rl.yolov4_loss
    heads = [h[:2] for h in heads]
    res, grads = loss.value_and_grad(heads, ANCHORS, GT[:2], LABELS[:2], **kw)
    fixed = res.details["assignment"]
    for k in range(2):
        def f(x, k=k):
            hs = list(heads)
            hs[k] = x
            return loss(hs, ANCHORS, GT[:2], LABELS[:2], assignment=fixed, **kw).total
        _fd_check(f, heads[k], grads[k], positive=fixed.matched[k] >= 0)


# ---------------------------------------------------------------------------------------------
# gradients: against the oracle's own (mpmath.diff at 50 digits, its decisions held)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v2", "v3", "v4"])
def test_gradients_match_the_oracle(version):
    """The worked example's heads moved off their round values, image 0 (the one with boxes):
    every entry's derivative within 1e-14 of the largest (measured: at most 2.6e-16)."""
    gt, labels, v1, heads, anchors = worked_example()
    rng = np.random.default_rng(4)
    if version == "v1":
        head = v1 + rng.uniform(-0.05, 0.05, v1.shape)
        res, got = rl.yolov1_loss.value_and_grad(head, gt, labels)
        base = oracle_v1(head, gt, labels)
        want = gradient(lambda hs: oracle_v1(hs[0], gt, labels, frozen=base["_decisions"])["total"], [head],
                        images=(0,))[0]
        got = [got]
    else:
        heads = [heads[0] + rng.normal(0, 0.5, heads[0].shape)]
        kw = {"box_params": {"alpha_grad": True}} if version == "v4" else {}  # the oracle differentiates alpha
        loss = {"v2": rl.yolov2_loss, "v3": rl.yolov3_loss, "v4": rl.yolov4_loss}[version]
        if version == "v2":
            res, got = loss.value_and_grad(heads[0], anchors[0], gt, labels)
            got = [got]
        else:
            res, got = loss.value_and_grad(heads, anchors, gt, labels, **kw)
        ok = {"pos_thr": 0.3} if version == "v2" else {}
        base = oracle_anchor(version, heads, anchors, gt, labels, **ok)
        _compare(res, base)
        want = gradient(lambda hs: oracle_anchor(version, hs, anchors, gt, labels, frozen=base["_decisions"],
                                                 **ok)["total"], heads, images=(0,))[0]
    got = got[0][0]
    want = np.array(want[0], dtype=float)
    assert np.abs(got - want).max() <= 1e-14 * np.abs(want).max(), np.abs(got - want).max()


# ---------------------------------------------------------------------------------------------
# float32, edge cases, errors
# ---------------------------------------------------------------------------------------------

def test_float32_in_float32_out_close_to_float64():
    h64 = v1_head(3)
    r32, g32 = rl.yolov1_loss.value_and_grad(h64.astype(np.float32), GT, LABELS)
    r64, g64 = rl.yolov1_loss.value_and_grad(h64.astype(np.float32).astype(np.float64), GT, LABELS)
    assert isinstance(r32.total, np.float32) and g32.dtype == np.float32
    assert abs(r32.total - r64.total) <= 1e-6 * r64.total
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)
    heads = [h.astype(np.float32) for h in anchor_heads(3)]
    for loss in (rl.yolov3_loss, rl.yolov4_loss):
        r32, g32 = loss.value_and_grad(heads, ANCHORS, GT, LABELS)
        r64, g64 = loss.value_and_grad([h.astype(np.float64) for h in heads], ANCHORS, GT, LABELS)
        assert r32.total.dtype == np.float32 and all(g.dtype == np.float32 for g in g32)
        assert abs(r32.total - r64.total) <= 1e-5 * r64.total
        for a, b in zip(g32, g64):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    r32, g32 = rl.yolov2_loss.value_and_grad(heads[1], ANCHORS[1], GT, LABELS)
    r64, g64 = rl.yolov2_loss.value_and_grad(heads[1].astype(np.float64), ANCHORS[1], GT, LABELS)
    assert r32.total.dtype == g32.dtype == np.float32 and abs(r32.total - r64.total) <= 1e-5 * r64.total
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


def test_images_without_boxes_have_only_noobj():
    head = v1_head()
    empty = [np.zeros((0, 4))] * 3
    no_labels = [np.array([], np.int64)] * 3
    res, grad = rl.yolov1_loss.value_and_grad(head, empty, no_labels)
    assert res.parts["coord"] == res.parts["obj"] == res.parts["class"] == 0
    assert res.total == pytest.approx(0.5 * (head[..., [4, 9]] ** 2).sum() / 3, rel=1e-14)
    assert np.all(grad[..., [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12]] == 0)
    heads = anchor_heads()
    res = rl.yolov3_loss(heads, ANCHORS, empty, no_labels)
    assert res.parts["coord"] == res.parts["obj"] == res.parts["class"] == 0 and res.parts["noobj"] > 0


def test_two_boxes_in_one_cell_first_keeps_it():
    head = v1_head()
    gt = [np.array([[0.1, 0.1, 0.2, 0.2], [0.2, 0.2, 0.3, 0.3]]), np.zeros((0, 4)), np.zeros((0, 4))]
    lab = [np.array([0, 1]), np.array([], int), np.array([], int)]
    a = rl.yolov1_assign(head, gt, lab)
    assert a.cell_gt[0, 0, 0] == 0 and a.dropped == [(0, 1)]


def test_v1_tie_goes_to_the_lower_predictor():
    head = np.full((1, 2, 2, 12), 0.5)  # both predictors of a cell identical: equal IoU
    a = rl.yolov1_assign(head, [np.array([[0.3, 0.3, 0.4, 0.4]])], [np.array([1])])
    assert a.responsible[0, 0, 0].tolist() == [True, False]


def test_best_anchor_tie_goes_to_the_lowest_index():
    anchors = [np.array([[0.2, 0.2]]), np.array([[0.2, 0.2], [0.1, 0.1]])]
    a = rl.yolo_assign([(2, 2), (4, 4)], anchors, [np.array([[0.3, 0.3, 0.2, 0.2]])])
    assert a.matched[0][0, 0, 0, 0] == 0 and not a.positive[1].any()


@pytest.mark.parametrize("boxes,match", [
    ([[0.5, 0.5, 0.0, 0.2]], r"gt_boxes\[0\]\[0\].*degenerate"),
    ([[0.5, 0.5, 0.2, -0.1]], r"gt_boxes\[0\]\[0\].*degenerate"),
    ([[1.5, 0.5, 0.2, 0.1]], r"gt_boxes\[0\]\[0\].*centre"),
    ([[0.5, np.nan, 0.2, 0.1]], r"gt_boxes\[0\].*finite"),
    ([[0.5, 0.5, 0.2]], r"gt_boxes\[0\].*shape")])
def test_bad_ground_truth_is_a_clear_value_error(boxes, match):
    gt = [np.array(boxes), np.zeros((0, 4)), np.zeros((0, 4))]
    lab = [np.zeros(len(boxes), int), np.array([], int), np.array([], int)]
    for call in (lambda: rl.yolov1_loss(v1_head(), gt, lab),
                 lambda: rl.yolov3_loss(anchor_heads(), ANCHORS, gt, lab),
                 lambda: rl.yolov4_loss(anchor_heads(), ANCHORS, gt, lab)):
        with pytest.raises(ValueError, match=match):
            call()


def test_other_bad_input():
    with pytest.raises(ValueError, match=r"gt_labels\[0\]\[2\] = 3"):
        rl.yolov1_loss(v1_head(), GT, [np.array([0, 1, 3]), LABELS[1], LABELS[2]])
    with pytest.raises(ValueError, match="gt_boxes: must be a list of 3"):
        rl.yolov1_loss(v1_head(), GT[:2], LABELS[:2])
    bad = v1_head()
    bad[0, 1, 2, 7] = -0.1
    with pytest.raises(ValueError, match=r"head_outputs\[0, 1, 2, 7\].*w < 0"):
        rl.yolov1_loss(bad, GT, LABELS)
    with pytest.raises(ValueError, match="anchors: must be a list of 2"):
        rl.yolov3_loss(anchor_heads(), ANCHORS[:1], GT, LABELS)
    with pytest.raises(ValueError, match=r"head_outputs\[1\]: must have shape"):
        rl.yolov3_loss([anchor_heads()[0], anchor_heads()[1][..., :2, :]], ANCHORS, GT, LABELS)
    with pytest.raises(ValueError, match="normalize"):
        rl.yolov3_loss(anchor_heads(), ANCHORS, GT, LABELS, normalize="positives")
    with pytest.raises(ValueError, match="cell border"):  # the paper's t-space target is infinite there
        rl.yolov3_loss(anchor_heads(), ANCHORS, [np.array([[0.5, 0.3, 0.2, 0.2]]), GT[1], GT[2]],
                       [np.array([0]), LABELS[1], LABELS[2]])


def test_normalize_sum_is_n_times_batch():
    heads = anchor_heads()
    a = rl.yolov3_loss(heads, ANCHORS, GT, LABELS)
    b = rl.yolov3_loss(heads, ANCHORS, GT, LABELS, normalize="sum")
    assert b.total == pytest.approx(3 * a.total, rel=1e-15)


# ---------------------------------------------------------------------------------------------
# the worked example of docs/yolo-losses.md
# ---------------------------------------------------------------------------------------------

def worked_example():
    """2 images, a 2 x 2 grid; image 0 has two boxes, image 1 none (docs/yolo-losses.md)."""
    gt = [np.array([[0.3, 0.3, 0.4, 0.5], [0.7, 0.6, 0.5, 0.3]]), np.zeros((0, 4))]
    labels = [np.array([0, 1]), np.array([], np.int64)]
    v1 = np.zeros((2, 2, 2, 12))
    v1[..., 0:5] = [0.5, 0.5, 0.5, 0.5, 0.5]   # predictor 0 of every cell
    v1[..., 5:10] = [0.4, 0.6, 0.2, 0.3, 0.2]  # predictor 1
    v1[..., 10:12] = [0.7, 0.3]                # class probabilities
    heads = [np.zeros((2, 2, 2, 2, 7))]        # t = 0 everywhere: each box is its anchor, centred in its cell
    anchors = [np.array([[0.3, 0.4], [0.6, 0.4]])]
    return gt, labels, v1, heads, anchors


WORKED = {  # the numbers printed in docs/yolo-losses.md (there to 12 significant digits)
    "v1": {"coord": 0.37744034939650195, "obj": 0.019796261289645057, "noobj": 0.455, "class": 0.58,
           "total": 1.432236610686147},
    "v2": {"coord": 2.6161373381938504, "obj": 0.042549443082821756, "noobj": 0.75, "class": 1.0,
           "total": 4.408686781276672},
    "v3": {"coord": 1.3317870307687474, "obj": math.log(2), "noobj": 3.25 * math.log(2), "class": 2 * math.log(2),
           "total": 5.663956909268405},
    "v4": {"box": 0.5541764082200182, "obj": math.log(2), "noobj": 3.25 * math.log(2), "class": 2 * math.log(2),
           "total": 4.886346286719676},
}


def test_worked_example_matches_oracle_and_docs():
    gt, labels, v1, heads, anchors = worked_example()
    page = (REPO / "docs" / "yolo-losses.md").read_text()
    results = {"v1": (rl.yolov1_loss(v1, gt, labels), oracle_v1(v1, gt, labels)),
               "v2": (rl.yolov2_loss(heads[0], anchors[0], gt, labels),
                      oracle_anchor("v2", heads, anchors, gt, labels, pos_thr=0.3)),
               "v3": (rl.yolov3_loss(heads, anchors, gt, labels), oracle_anchor("v3", heads, anchors, gt, labels)),
               "v4": (rl.yolov4_loss(heads, anchors, gt, labels), oracle_anchor("v4", heads, anchors, gt, labels))}
    for version, (res, oracle) in results.items():
        _compare(res, oracle)
        for key, value in list(res.parts.items()) + [("total", res.total)]:
            want = WORKED[version][key]
            assert float(value) == pytest.approx(want, rel=1e-14), (version, key)
            assert f"{want:.12g}" in page, f"docs/yolo-losses.md lacks {version} {key} = {want:.12g}"


def test_given_assignment_is_used_and_checked():
    heads = anchor_heads()
    res = rl.yolov3_loss(heads, ANCHORS, GT, LABELS)
    again = rl.yolov3_loss(heads, ANCHORS, GT, LABELS, assignment=res.details["assignment"])
    assert again.total == res.total
    none = rl.yolo_assign([h.shape[1:3] for h in heads], ANCHORS, [np.zeros((0, 4))] * 3)
    bare = rl.yolov3_loss(heads, ANCHORS, GT, LABELS, assignment=none)  # every anchor negative
    assert bare.parts["coord"] == bare.parts["obj"] == bare.parts["class"] == 0
    with pytest.raises(ValueError, match="assignment: must be a YoloAssignment"):
        rl.yolov3_loss(heads, ANCHORS, GT, LABELS, assignment=rl.yolo_assign([(2, 2)], ANCHORS[:1], GT))
    with pytest.raises(ValueError, match="assignment: must be a YoloV1Assignment"):
        rl.yolov1_loss(v1_head(), GT, LABELS, assignment=none)
    with pytest.raises(ValueError, match=r"gt_boxes\[1\]\[0\].*degenerate"):
        rl.yolo_assign([(2, 2)], ANCHORS[:1], [np.zeros((0, 4)), np.array([[0.5, 0.5, 0.1, 0.0]])])


def test_signatures_show_the_arguments_not_with_grad():
    import inspect

    for loss in (rl.yolov1_loss, rl.yolov2_loss, rl.yolov3_loss, rl.yolov4_loss):
        params = list(inspect.signature(loss).parameters)
        assert params[0] == "head_outputs" and "with_grad" not in params, params
        assert "arXiv" in loss.__doc__ and "normalize" in loss.__doc__


# ---------------------------------------------------------------------------------------------
# refloss verify's rows (refloss/_verify_detection.py)
# ---------------------------------------------------------------------------------------------

def test_verify_rows_pass_and_the_stored_values_are_the_oracles(capsys):
    from refloss import _verify_detection, cli

    assert cli.main(["verify", "--loss", "yolov1_loss", "--loss", "yolov4_loss", "--device", "cpu", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("yolov1_loss ") >= 4 and "yolov4_loss" in out and "FAIL" not in out
    for (name, params), stored in zip(_verify_detection.CASES, _verify_detection.stored()):
        fresh = _verify_detection.exact(name, params, with_grad=name == "yolov1_loss")  # v1's gradient is cheap
        assert fresh["parts"] == stored["parts"], name
        if fresh["grads"]:
            assert fresh["grads"] == stored["grads"], name


def test_verify_rows_catch_a_wrong_gradient(monkeypatch):
    from refloss import _verify_detection

    real = rl.yolov3_loss.value_and_grad

    def off(*args, **kw):
        res, grads = real(*args, **kw)
        grads[0][0, 0, 0, 0, 4] *= 1 + 1e-12
        return res, grads

    monkeypatch.setattr(rl.yolov3_loss, "value_and_grad", off)  # the same object as _yolo_losses.yolov3_loss
    rows = _verify_detection.rows(["yolov3_loss"], ("float64",))
    assert rows and not any(r.ok for r in rows) and "entry (0, 0, 0, 0, 4)" in rows[0].worst


@pytest.mark.parametrize("loss", [rl.yolov1_loss, rl.yolov3_loss, rl.retinanet_loss, rl.ssd_loss],
                         ids=lambda f: f.name)
def test_a_misspelt_keyword_names_the_loss_and_its_arguments(loss):
    """A newcomer's typo: the TypeError names the public loss, not the function inside it."""
    with pytest.raises(TypeError, match=rf"^{loss.name}\(\): got an unexpected keyword argument 'gama'; its "
                                        r"arguments are \["):
        loss([], [], [], [], gama=2.0)
    with pytest.raises(TypeError, match=rf"^{loss.name}\(\): "):
        loss.value_and_grad(gama=2.0)


@pytest.mark.parametrize("version", ["v2", "v3", "v4"])
def test_a_decoded_size_that_overflows_is_not_ignored(version):
    """A negative anchor's t_w = 90 (float32; 710 float64) decodes to an infinitely wide box: IoU 0 with every
    ground truth, so not ignored, and the loss is the one at t_w = 0 wherever t_w enters only the ignore test (a
    probe: 'pred: must be finite' from the iou kernel, naming an internal array)."""
    for dt, big in ((np.float32, 90.0), (np.float64, 710.0)):
        h = np.zeros((1, 2, 2, 1, 6), dt)
        gt, labels = [np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]
        call = getattr(rl, f"yolo{version}_loss")
        head = h if version == "v2" else [h]
        anchors = np.array([[0.3, 0.4]]) if version == "v2" else [np.array([[0.3, 0.4]])]
        before = call(head, anchors, gt, labels).total
        h[0, 1, 1, 0, 2] = big  # the anchor of cell (1, 1): the ground truth's centre is in cell (0, 0)
        assert call(head, anchors, gt, labels).total == before


def test_ignore_mask_inputs():
    p = np.array([[0, 0, 1, 1], [0.1, 0, 1, 1.0]])
    assert rl.yolo_ignore_mask(p, []).tolist() == [False, False]  # an image without boxes, as a list
    assert rl.yolo_ignore_mask(p, [0, 0, 1, 1]).tolist() == [True, True]  # one box, 1-D
    assert rl.yolo_ignore_mask([], [[0, 0, 1, 1]]).shape == (0,)
    assert rl.yolo_ignore_mask([[-np.inf, 0, np.inf, 1], [0, 0, 1, 1]], [[0, 0, 1, 1]]).tolist() == [False, True]
    assert rl.yolo_ignore_mask([[0, 0, 0, 0.0]], [[0, 0, 0, 0.0]]).tolist() == [False]  # 0/0: not ignored
    for bad, err, match in ((None, TypeError, "^threshold: must be a real number"),
                            ("0.5", TypeError, "^threshold: must be a real number"),
                            (1.5, ValueError, "^threshold: must satisfy 0 <= threshold <= 1")):
        with pytest.raises(err, match=match):
            rl.yolo_ignore_mask(p, [[0, 0, 1, 1]], bad)
    with pytest.raises(ValueError, match=r"^pred_boxes: must not be NaN; pred_boxes\[0, 0\]"):
        rl.yolo_ignore_mask([[np.nan, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"^gt_boxes: last dimension must be 4"):
        rl.yolo_ignore_mask(p, [[0, 0, 1]])
    assert rl.yolo_ignore_mask([0, 0, 10, 10], [[0, 0, 10, 10]]).shape == ()  # one prediction, (4,): 0-d
    with pytest.raises(ValueError, match="^fmt: must be one of"):
        rl.yolo_ignore_mask([[0, 0, 1, 1]], [], fmt="bogus")
    with pytest.raises(ValueError, match=r"^pred_boxes: boxes must have x2 >= x1"):
        rl.yolo_ignore_mask([[2, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"^gt_boxes: must be finite"):
        rl.yolo_ignore_mask([], [[np.nan, 0, 1, 1]])
    with pytest.raises(TypeError, match="^ignore_threshold: must be a real number"):
        rl.yolo_assign([(2, 2)], [np.array([[0.2, 0.2]])], [np.array([[0.3, 0.3, 0.2, 0.2]])], ignore_threshold=None)


def test_yolo_encode_checks_the_last_axes():
    for args, match in ((([0.5, 0.5, 1.0], [1, 1], [0, 0]), "^boxes: last dimension must be 4"),
                        (([0.25, 0.5, 2, 1], [2.0], [0, 0]), "^anchors: last dimension must be 2"),
                        (([0.25, 0.5, 2, 1], [2, 1], [0]), "^grid: last dimension must be 2")):
        with pytest.raises(ValueError, match=match):
            rl.yolo_encode(*args)
    with pytest.raises(TypeError, match="^scale_xy: must be a real number"):
        rl.yolo_decode([0, 0, 0, 0], [1, 1], [0, 0], variant="v4", scale_xy="1.1")


def test_grid_shapes_and_pred_boxes_are_checked_by_name():
    gt = [np.array([[0.3, 0.3, 0.2, 0.2]])]
    anchors = [np.array([[0.2, 0.2]])]
    for grid in ([2], [(2.5, 2)], [(0, 2)]):
        with pytest.raises(ValueError, match="^grid_shapes: must be a list of"):
            rl.yolo_assign(grid, anchors, gt)
    with pytest.raises(ValueError, match=r"^pred_boxes\[0\]: must have shape \(N, H, W, B, 4\) = \(1, 2, 2, 1, 4\)"):
        rl.yolo_assign([(2, 2)], anchors, gt, pred_boxes=[np.zeros((1, 3, 3, 1, 4))])
    pb = np.zeros((1, 2, 2, 1, 4))
    pb[..., 2:] = 0.5
    bad = pb.copy()
    bad[0, 1, 0, 0, 3] = np.nan
    for pred, match in (([], r"^pred_boxes: must be a list of 1"), ([bad], r"^pred_boxes\[0\]: must not be NaN; "
                                                                    r"pred_boxes\[0\]\[0, 1, 0, 0, 3\]")):
        with pytest.raises(ValueError, match=match):
            rl.yolo_assign([(2, 2)], anchors, gt, pred_boxes=pred)
    with pytest.raises(ValueError, match=r"^head_outputs\[0\]: must have shape .* a grid of at least one cell"):
        rl.yolov3_loss([np.zeros((1, 0, 0, 1, 6))], anchors, gt, [np.array([0])])


def _overflow_case(dt, big, channel=2):
    """One image, a 2 x 2 grid, one anchor (0.3, 0.4); the ground truth (0.3, 0.3, 0.4, 0.5) makes the anchor of
    cell (0, 0) positive; its t_w (channel 2) or t_h (3) is ``big``, its t_o is 1."""
    h = np.zeros((1, 2, 2, 1, 7), dt)
    h[0, 0, 0, 0, channel] = big
    h[0, 0, 0, 0, 4] = 1.0
    return h, np.array([[0.3, 0.4]]), [np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]


def test_v2_iou_target_of_an_overflowed_positive_box_is_zero():
    """A positive anchor's decoded size that overflows is an infinitely large box: its IoU with the ground truth, the
    v2 objectness target, is 0 (the probe: 'pred: must be finite', naming the iou kernel's argument)."""
    sig = 1 / (1 + math.exp(-1.0))
    for dt, big in ((np.float32, 90.0), (np.float64, 710.0)):
        for channel in (2, 3):
            h, a, gt, lab = _overflow_case(dt, big, channel)
            res = rl.yolov2_loss(h, a, gt, lab)  # lambda_obj 1, N = 1: (sigma(t_o) - 0)^2
            assert float(res.parts["obj"]) == pytest.approx(sig ** 2, rel=1e-6)
            one = rl.yolov2_loss(h, a, gt, lab, obj_target="one")  # (sigma(t_o) - 1)^2
            assert float(one.parts["obj"]) == pytest.approx((sig - 1) ** 2, rel=1e-6)


def test_v4_box_term_of_an_overflowed_positive_box_names_the_head_output():
    for dt, big in ((np.float32, 90.0), (np.float64, 710.0)):
        for channel, what in ((2, "width"), (3, "height")):
            h, a, gt, lab = _overflow_case(dt, big, channel)
            with pytest.raises(ValueError, match=rf"^head_outputs\[0\]\[0, 0, 0, 0, {channel}\] = {big}: the "
                                                 rf"predicted box {what} .* overflows {np.dtype(dt).name}"):
                rl.yolov4_loss([h], [a], gt, lab)
    # float32 heads computed in float64 hold the size: 1 - CIoU -> 1 + alpha v as w -> inf (IoU and rho^2/c^2 -> 0,
    # v = 4/pi^2 (atan(w^/h^) - pi/2)^2, alpha = v / (1 + v))
    h, a, gt, lab = _overflow_case(np.float32, 90.0)
    v = 4 / math.pi ** 2 * (math.atan(0.4 / 0.5) - math.pi / 2) ** 2
    res = rl.yolov4_loss([h], [a], gt, lab, dtype=np.float64)
    assert res.parts["box"] == pytest.approx(1 + v * v / (1 + v), rel=1e-12)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_sigmoid_centre_gradient_is_finite_where_the_size_overflowed(version):
    """xy_loss='sigmoid' (v2's default) carried the centre's cotangent (g, 0) through yolo_decode's VJP: 0 times
    the overflowed size's derivative p e^t gave a NaN gradient for t_w.  The coordinate term's own gradients:
    d/dt_x lambda (sigma(t_x) - (cx W - c_x))^2 = 2 lambda (0.5 - 0.6) / 4 and d/dt_w lambda (t_w - ln(w^/p_w))^2 =
    2 lambda (t_w - ln(0.4/0.3))."""
    lam = 5.0 if version == "v2" else 1.0
    for dt, big in ((np.float32, 90.0), (np.float64, 710.0)):
        h, a, gt, lab = _overflow_case(dt, big)
        if version == "v2":
            _, g = rl.yolov2_loss.value_and_grad(h, a, gt, lab, obj_target="one")
        else:
            _, (g,) = rl.yolov3_loss.value_and_grad([h], [a], gt, lab, xy_loss="sigmoid")
        assert np.isfinite(g).all()
        rtol = 1e-6 if dt == np.float32 else 1e-13
        np.testing.assert_allclose(g[0, 0, 0, 0, :4], [2 * lam * -0.1 / 4, 2 * lam * -0.1 / 4,
                                                       2 * lam * (big - math.log(0.4 / 0.3)),
                                                       2 * lam * (0 - math.log(0.5 / 0.4))], rtol=rtol)


@pytest.mark.parametrize("size_output", ["w", "sqrt"])
def test_v1_lambda_coord_zero_is_accepted_everywhere(size_output):
    """lambda_coord = 0 (an ablation) was refused by the generated yolov1_box_loss's domain (lambda_coord > 0) when a
    ground truth was there, accepted without one or with size_output='sqrt'.  By hand: every channel 0.5, one ground
    truth (0.3, 0.3, 0.4, 0.5) in cell (0, 0) of a 2 x 2 grid; predictor 0 responsible (a tie).  size_output 'w':
    box (0.25, 0.25, 0.5, 0.5), IoU 0.18/0.27 = 2/3; 'sqrt': (0.25, 0.25, 0.25, 0.25), IoU 0.0625/0.2 = 0.3125.
    obj (0.5 - IoU)^2, noobj 0.5 * 7 * 0.25, class (0.5 - 1)^2 + 0.5^2."""
    head = np.full((1, 2, 2, 12), 0.5)
    gt, lab = [np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]
    iou = 2 / 3 if size_output == "w" else 0.3125
    res, grad = rl.yolov1_loss.value_and_grad(head, gt, lab, lambda_coord=0, size_output=size_output)
    assert res.parts["coord"] == 0 and np.all(grad[0, 0, 0, :4] == 0)
    assert res.total == pytest.approx((0.5 - iou) ** 2 + 0.5 * 7 * 0.25 + 0.5, rel=1e-14)
    assert grad[0, 0, 0, 4] == pytest.approx(2 * (0.5 - iou), rel=1e-14)


@pytest.mark.parametrize("name", ["lambda_coord", "lambda_noobj", "lambda_obj", "lambda_class", "lambda_box"])
def test_weights_beyond_float32_are_refused_in_float32(name):
    """lambda_noobj = 1e39 with float32 heads gave total nan with overflow warnings (lambda_coord was refused)."""
    gt, lab = [np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]
    v1 = np.full((1, 2, 2, 12), 0.5)
    h, a, _, _ = _overflow_case(np.float64, 0.0)
    calls = {"v1": lambda dt, kw: rl.yolov1_loss(v1.astype(dt), gt, lab, **kw),
             "v2": lambda dt, kw: rl.yolov2_loss(h.astype(dt), a, gt, lab, **kw),
             "v3": lambda dt, kw: rl.yolov3_loss([h.astype(dt)], [a], gt, lab, **kw),
             "v4": lambda dt, kw: rl.yolov4_loss([h.astype(dt)], [a], gt, lab, **kw)}
    for version, call in calls.items():
        if (name == "lambda_box") != (version == "v4") and name in ("lambda_coord", "lambda_box"):
            continue  # v4 names its box weight lambda_box, v1-v3 lambda_coord
        kw = {name: 1e39}
        for dt in (np.float32, np.float16):
            with pytest.raises(ValueError, match=rf"^{name}: 1e\+39 is beyond float32's range"):
                call(dt, kw)
        assert np.isfinite(call(np.float64, kw).total)  # float64 holds it


def test_tensors_that_require_grad_get_refloss_type_error():
    """yolo_encode, yolo_ignore_mask, the losses' gt_boxes and anchors and yolo_assign's inputs gave torch's raw
    "Can't call numpy() on Tensor that requires grad"; yolo_decode's TypeError names the argument."""
    torch = pytest.importorskip("torch")

    def req(x):
        return torch.tensor(np.asarray(x, np.float64), requires_grad=True)

    box, gt, lab = [0.3, 0.3, 0.4, 0.5], [np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]
    h, a, _, _ = _overflow_case(np.float64, 0.0)
    for name, call in (
            ("boxes", lambda: rl.yolo_encode(req([1.5, 2.5, 2, 3]), [2, 3], [1, 2])),
            ("anchors", lambda: rl.yolo_encode([1.5, 2.5, 2, 3], req([2, 3]), [1, 2])),
            ("grid", lambda: rl.yolo_encode([1.5, 2.5, 2, 3], [2, 3], req([1, 2]))),
            ("pred_boxes", lambda: rl.yolo_ignore_mask(req([[0, 0, 1, 1]]), [[0, 0, 1, 1]])),
            ("gt_boxes", lambda: rl.yolo_ignore_mask([[0, 0, 1, 1]], req([[0, 0, 1, 1]]))),
            (r"gt_boxes\[0\]", lambda: rl.yolov1_loss(np.full((1, 2, 2, 12), 0.5), [req([box])], lab)),
            (r"gt_boxes\[0\]", lambda: rl.yolov2_loss(h, a, [req([box])], lab)),
            (r"gt_boxes\[0\]", lambda: rl.yolov3_loss([h], [a], [req([box])], lab)),
            (r"gt_boxes\[0\]", lambda: rl.yolov4_loss([h], [a], [req([box])], lab)),
            ("anchors", lambda: rl.yolov2_loss(h, req(a), gt, lab)),
            (r"anchors\[0\]", lambda: rl.yolov4_loss([h], [req(a)], gt, lab)),
            (r"anchors\[0\]", lambda: rl.yolo_assign([(2, 2)], [req(a)], gt)),
            (r"gt_boxes\[0\]", lambda: rl.yolo_assign([(2, 2)], [a], [req([box])])),
            (r"pred_boxes\[0\]", lambda: rl.yolo_assign([(2, 2)], [a], gt, [req(np.zeros((1, 2, 2, 1, 4)))]))):
        with pytest.raises(TypeError, match=rf"^{name}: a tensor that requires grad; .* pass {name}\.detach\(\)"):
            call()


def test_v4_scale_xy_is_checked_as_yolo_decode_checks_it():
    """yolov4_loss took scale_xy='1.2' and True (as 1.0) and 0-d arrays, which yolo_decode refuses; np.array([1.2])
    raised NumPy's 'only 0-dimensional arrays can be converted', naming nothing."""
    h, a, gt, lab = _overflow_case(np.float64, 0.0)
    for bad in ("1.2", True, np.array(1.2), np.array([1.2]), None):
        with pytest.raises(TypeError, match="^scale_xy: must be a real number"):
            rl.yolo_decode([0, 0, 0, 0], [1, 1], [0, 0], variant="v4", scale_xy=bad)
        with pytest.raises(TypeError, match="^scale_xy: must be a real number"):
            rl.yolov4_loss([h], [a], gt, lab, scale_xy=bad)
    for bad in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match=r"^scale_xy: must satisfy 0 < scale_xy \(finite\)"):
            rl.yolov4_loss([h], [a], gt, lab, scale_xy=bad)
    heads = anchor_heads()
    with pytest.raises(TypeError, match=r"^scale_xy\[1\]: must be a real number, got '1\.1'"):
        rl.yolov4_loss(heads, ANCHORS, GT, LABELS, scale_xy=[1.2, "1.1"])
    # a NumPy scalar is a number: the same loss as the float
    assert rl.yolov4_loss([h], [a], gt, lab, scale_xy=np.float32(1.25)).total == \
        rl.yolov4_loss([h], [a], gt, lab, scale_xy=1.25).total


def test_ignore_mask_batch_shapes_are_named_as_passed():
    """pred (3, 2, 4) with gt (5, 1, 4) said 'shapes not broadcastable ... pred (3, 2, 1, 4), target (5, 1, 1, 4)'
    (the iou kernel's arguments, reshaped) and gt (5, 0, 4) NumPy's bare 'shape mismatch'."""
    p = np.zeros((3, 2, 4))
    p[..., 2:] = 1
    for g in (np.zeros((5, 1, 4)), np.zeros((5, 0, 4))):
        with pytest.raises(ValueError, match=rf"^pred_boxes \(\.\.\., N, 4\) and gt_boxes \(\.\.\., M, 4\): the batch "
                                             rf"axes .* not broadcastable: pred_boxes \(3, 2, 4\), gt_boxes "
                                             rf"\({g.shape[0]}, {g.shape[1]}, 4\)$"):
            rl.yolo_ignore_mask(p, g)
    # broadcastable batches still work: image 1's ground truth is the unit box (IoU 1 with both predictions)
    g = np.array([[[5, 5, 6, 6]], [[0, 0, 1, 1]], [[0, 0, 2, 2]]], float)  # IoU 0, 1, 0.25
    assert rl.yolo_ignore_mask(p, g).tolist() == [[False, False], [True, True], [False, False]]
    assert rl.yolo_ignore_mask(p, np.zeros((1, 0, 4))).shape == (3, 2)


def test_yolo_assign_checks_anchors_as_the_losses_do():
    """An infinite anchor silently took the ground truth; string anchors raised NumPy's bare 'could not convert string
    to float'."""
    gt = [np.array([[0.3, 0.3, 0.2, 0.2]])]
    h, _, _, lab = _overflow_case(np.float64, 0.0)
    for bad, err, match in (([[np.inf, 0.2]], ValueError, r"must be finite; anchors\[0\]\[0, 0\] = inf"),
                            ([["a", "b"]], TypeError, "must be a real numeric array"),
                            ([[0.0, 0.2]], ValueError, "anchor sizes must be > 0"),
                            (np.zeros((0, 2)), ValueError, r"must have shape \(B, 2\)"),
                            ([0.2, 0.2], ValueError, r"must have shape \(B, 2\)")):
        for call in (lambda: rl.yolo_assign([(2, 2)], [np.array(bad)], gt),
                     lambda: rl.yolov3_loss([h], [np.array(bad)], gt, lab)):
            with pytest.raises(err, match=rf"^anchors\[0\]: {match}"):
                call()
    with pytest.raises(ValueError, match=r"^anchors: must be a list of 1 \(B_k, 2\) arrays"):
        rl.yolo_assign([(2, 2)], None, gt)


def test_v1_empty_grid_is_a_clear_value_error():
    """A 0 x 0 grid with a ground-truth box raised a bare IndexError (v2-v4 refuse an empty grid by name)."""
    for gt, lab in (([np.array([[0.3, 0.3, 0.4, 0.5]])], [[0]]), ([np.zeros((0, 4))], [np.array([], int)])):
        for call in (rl.yolov1_loss, rl.yolov1_assign):
            with pytest.raises(ValueError, match=r"^head_outputs: the grid must be square \(N, S, S, 5B \+ C\) with at "
                                                 r"least one cell, got shape \(1, 0, 0, 12\)"):
                call(np.zeros((1, 0, 0, 12)), gt, lab)


def test_given_assignment_is_checked_against_the_ground_truth():
    """An assignment of other ground truth of the same head shape: only the shape was checked, then IndexError (an
    index past the boxes) or a loss of the wrong boxes.  Ground truth in cells (0, 0) and (1, 1) of a 2 x 2 grid."""
    two = [np.array([[0.3, 0.3, 0.4, 0.5], [0.8, 0.8, 0.4, 0.5]])], [np.array([0, 1])]
    first, moved = ([np.array([[0.3, 0.3, 0.4, 0.5]])], [np.array([0])]), ([np.array([[0.8, 0.8, 0.4, 0.5]])],
                                                                           [np.array([0])])
    v1 = np.full((1, 2, 2, 12), 0.5)
    h, a, _, _ = _overflow_case(np.float64, 0.0)
    for assign, loss in ((lambda gt: rl.yolov1_assign(v1, *gt),
                          lambda gt, asg: rl.yolov1_loss(v1, *gt, assignment=asg)),
                         (lambda gt: rl.yolo_assign([(2, 2)], [a], gt[0]),
                          lambda gt, asg: rl.yolov3_loss([h], [a], *gt, assignment=asg, xy_loss="sigmoid")),
                         (lambda gt: rl.yolo_assign([(2, 2)], [a], gt[0]),
                          lambda gt, asg: rl.yolov2_loss(h, a, *gt, assignment=asg))):
        with pytest.raises(ValueError, match=r"^assignment: .*cell \(1, 1\) .*answers for gt_boxes\[0\]\[1\], but "
                                             r"image 0 has 1 ground-truth box: an assignment of other ground truth"):
            loss(first, assign(two))
        with pytest.raises(ValueError, match=r"^assignment: .*cell \(0, 0\) .*answers for gt_boxes\[0\]\[0\] = "
                                             r"\[0\.8, 0\.8, 0\.4, 0\.5\], whose centre is in cell \(1, 1\)"):
            loss(moved, assign(first))
        assert np.isfinite(loss(first, assign(first)).total)  # its own assignment is taken
    bad = rl.yolov1_assign(v1, *first)
    bad.responsible[0, 1, 1, 0] = True  # a responsible predictor in a cell without ground truth
    with pytest.raises(ValueError, match=r"^assignment: cell \(1, 1\) of image 0 has 1 responsible predictors and no "
                                         "ground truth"):
        rl.yolov1_loss(v1, *first, assignment=bad)


def test_float16_heads_give_float16_results_computed_in_float32():
    """float16 heads gave float32 total, parts and gradients; the rule (README, yolo_decode, yolo_encode): computed
    in float32, returned as float16, rounded once at the end."""
    v1 = v1_head(3).astype(np.float16)
    heads = [h.astype(np.float16) for h in anchor_heads(3)]
    calls = {"v1": (rl.yolov1_loss, lambda hs: (hs[0], GT, LABELS), [v1]),
             "v2": (rl.yolov2_loss, lambda hs: (hs[0], ANCHORS[1], GT, LABELS), heads[1:]),
             "v3": (rl.yolov3_loss, lambda hs: (hs, ANCHORS, GT, LABELS), heads),
             "v4": (rl.yolov4_loss, lambda hs: (hs, ANCHORS, GT, LABELS), heads)}
    for version, (loss, args, hs) in calls.items():
        r16, g16 = loss.value_and_grad(*args(hs))
        r32, g32 = loss.value_and_grad(*args([h.astype(np.float32) for h in hs]))  # float16 is exact in float32
        assert type(r16.total) is np.float16 and r16.total == np.float16(r32.total), version
        assert all(type(v) is np.float16 and v == np.float16(r32.parts[k]) for k, v in r16.parts.items()), version
        for a, b in zip(g16 if isinstance(g16, list) else [g16], g32 if isinstance(g32, list) else [g32]):
            assert a.dtype == np.float16 and np.array_equal(a, b.astype(np.float16)), version
    # by hand: every channel 0.5, one ground truth (0.3, 0.3, 0.4, 0.5) in cell (0, 0) (see
    # test_v1_lambda_coord_zero_is_accepted_everywhere), coord 5 [2 (0.5 - 0.6)^2 + (sqrt 0.5 - sqrt 0.4)^2]
    want = 5 * (2 * 0.01 + (math.sqrt(0.5) - math.sqrt(0.4)) ** 2) + (0.5 - 2 / 3) ** 2 + 0.875 + 0.5
    got = rl.yolov1_loss(np.full((1, 2, 2, 12), 0.5, np.float16), [np.array([[0.3, 0.3, 0.4, 0.5]])], [[0]]).total
    assert type(got) is np.float16 and got == pytest.approx(want, rel=2 ** -10)


def test_an_assignment_from_float64_boxes_fits_float32_heads_at_a_cell_border():
    """A centre on a cell border (3/19 on a 19x19 grid) rounds to either side in float32: the assignment computed
    from the float64 boxes, used with float32 heads, was refused as 'an assignment of other ground truth' (a review,
    2026-12-07); a centre a cell away is still refused."""
    gt, labels, anchors = [np.array([[3 / 19, 0.5, 0.2, 0.2]])], [np.array([0])], [np.array([[0.2, 0.2]])]
    heads = [np.zeros((1, 19, 19, 1, 6))]
    assignment = rl.yolov3_loss(heads, anchors, gt, labels, xy_loss="sigmoid").details["assignment"]
    assert [np.argwhere(np.asarray(m) >= 0).tolist() for m in assignment.matched] == [[[0, 9, 3, 0]]]
    own = rl.yolov3_loss([heads[0].astype(np.float32)], anchors, gt, labels, xy_loss="sigmoid")
    given = rl.yolov3_loss([heads[0].astype(np.float32)], anchors, gt, labels, xy_loss="sigmoid",
                           assignment=assignment)
    assert np.isfinite(given.total) and given.total.dtype == np.float32 and np.isfinite(own.total)
    with pytest.raises(ValueError, match="assignment of other ground truth"):
        rl.yolov3_loss([heads[0].astype(np.float32)], anchors, [np.array([[5.5 / 19, 0.5, 0.2, 0.2]])], labels,
                       xy_loss="sigmoid", assignment=assignment)
