"""Off the README's exact path, as a newcomer goes: every usage error is one line and exit status
2 (for `refloss` and `python -m refloss` alike), no traceback; the API takes arrays by name,
follows NumPy's result types, refuses tensors that require grad, and says what is wrong."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import refloss as rl
from refloss import cli
from refloss.testing import ImplementationError, check_loss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, cwd=None, env=None):
    env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    return subprocess.run([sys.executable, "-m", "refloss", *args], capture_output=True, text=True, cwd=cwd, env=env)


def _one_line_usage_error(out):
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refloss: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


# ---------------------------------------------------------------------------- the command


def test_python_dash_m_refloss_version_and_help_naming_every_peer():
    assert _run("--version").stdout.strip() == f"refloss {rl.__version__}"
    help_text = _run("verify", "--help").stdout
    from refloss.peers import PEERS

    assert all(p in help_text for p in PEERS) and "ultralytics" in help_text and "--impl-param" in help_text


@pytest.mark.parametrize("args,says", [
    (("verify", "--bogus"), "unrecognized arguments: --bogus"),
    ((), "the following arguments are required: command"),
    (("verify", "--loss", "smooth_l"), "unknown loss(es) smooth_l"),
    (("verify", "nomod:f", "--loss", "giou_loss"), "No module named 'nomod'"),
    (("verify", "numpy:nope", "--loss", "giou_loss"), "numpy has no attribute 'nope'"),
    (("verify", "numpy:abs", "--loss", "giou_loss", "--param", "eps=abc"), "eps: must be a real scalar, got 'abc'"),
    (("verify", "--param", "beta=1"), "--param and --impl-param apply to module:function"),
    (("verify", "torchvision", "--param", "eps=0"), "--param and --impl-param apply to module:function"),
    (("vectors", "giou_loss", "--param", "eps=abc", "-o", "x.json"), "eps: must be a real scalar"),
    (("conformance", "nopeer"), "unknown peer(s) nopeer"),
])
def test_usage_errors_are_one_line_with_exit_status_2(args, says, tmp_path):
    assert says in _one_line_usage_error(_run(*args, cwd=tmp_path))
    assert cli.main(list(args)) == 2  # the console script's entry point alike


def test_verify_on_cuda_without_a_device_is_one_line(tmp_path):
    """No GPU and no simulator: one line naming the simulator, exit 2; the API raises RuntimeError."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = subprocess.run([sys.executable, "-c", "from refloss._backends import cuda_unavailable as u; print(u())"],
                           capture_output=True, text=True, env={**env, "PYTHONPATH": REPO})
    if probe.stdout.strip() == "None":
        pytest.skip("a CUDA device is present here")
    full = {**env, "PYTHONPATH": REPO}
    out = subprocess.run([sys.executable, "-m", "refloss", "verify", "--device", "cuda"], capture_output=True,
                         text=True, env=full, cwd=tmp_path)
    assert "NUMBA_ENABLE_CUDASIM=1" in _one_line_usage_error(out)
    code = textwrap.dedent("""
        import numpy as np, refloss as rl
        b = np.array([[0.0, 0.0, 1.0, 1.0]])
        for call in (lambda: rl.giou_loss(b, b, device="cuda"), lambda: rl.yolo_decode(np.zeros((1, 4)),
                     np.ones((1, 2)), np.zeros((1, 2)), device="cuda")):
            try:
                call()
            except RuntimeError as e:
                print("RuntimeError:", e)
    """)
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)
    assert api.stdout.count("RuntimeError: device='cuda': no CUDA device or driver was found") == 2, api.stderr


def test_user_files_import_their_neighbours_and_the_current_directory(tmp_path):
    (tmp_path / "helper_geometry.py").write_text("def area(b):\n    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])\n")
    (tmp_path / "mylosses.py").write_text(textwrap.dedent("""
        import numpy as np
        from helper_geometry import area


        def iou_loss(p, t, eps=0.0):
            iw = np.clip(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0, None)
            ih = np.clip(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0, None)
            inter = iw * ih
            return 1 - inter / (area(p) + area(t) - inter + eps)


        def mean_loss(p, t):
            return iou_loss(p, t).mean()


        def broken(p, t):
            raise ZeroDivisionError("by design")
    """))
    sub = tmp_path / "sub"
    sub.mkdir()
    ok = _run("verify", "mylosses:iou_loss", "--loss", "iou_loss", cwd=tmp_path)  # module next to the cwd
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
    ok = _run("verify", "../mylosses.py:iou_loss", "--loss", "iou_loss", "--impl-param", "eps=1e-7", "--param",
              "eps=1e-7", cwd=sub)  # a file whose folder is not the cwd, importing its neighbour
    assert ok.returncode == 0, ok.stdout + ok.stderr
    reduced = _run("verify", "mylosses:mean_loss", "--loss", "iou_loss", cwd=tmp_path)
    assert reduced.returncode == 1 and "not a reduced (mean or sum) loss" in reduced.stderr
    assert "Traceback" not in reduced.stderr
    broken = _run("verify", "mylosses:broken", "--loss", "iou_loss", cwd=tmp_path)
    assert broken.returncode == 1 and "raised ZeroDivisionError: by design" in broken.stderr
    missing = _run("verify", "mylosses.py:nope", "--loss", "iou_loss", cwd=tmp_path)
    assert "mylosses.py has no attribute 'nope'" in _one_line_usage_error(missing)
    assert "_refloss_user_module" not in missing.stderr


def test_conformance_makes_its_folder_and_says_what_was_run(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "new" / "folder" / "conformance.md"
    assert cli.main(["conformance", "torch", "-o", str(out)]) == 0
    assert f"Generated by `refloss conformance torch -o {out}`" in out.read_text()


def test_verify_table_aligns_long_names_says_its_measure_and_shows_progress():
    out = _run("verify", "--loss", "sigmoid_focal_loss", "--loss", "iou", "--device", "cpu", "--dtype", "float64")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = next(line for line in lines if line.startswith("loss"))
    rows = [line for line in lines if line.endswith("pass")]
    assert "measure" in head and "value err" in head
    col = head.index("backend")
    assert all(r[col:col + 3] == "cpu" for r in rows)  # one column, whatever the name's length
    assert {r.split()[0] for r in rows} == {"sigmoid_focal_loss", "iou"}
    assert any("abs/rel" in r for r in rows) and any(" ulp " in r for r in rows)
    assert "[1/2] sigmoid_focal_loss" in out.stderr and "[2/2] iou" in out.stderr


# ---------------------------------------------------------------------------- the API


def test_arrays_by_name_and_the_inputs_own_names():
    p, t = np.array([0.5, 2.0]), np.array([0.0, 0.0])
    want = rl.smooth_l1(p, t)
    np.testing.assert_array_equal(rl.smooth_l1(pred=p, target=t), want)
    np.testing.assert_array_equal(rl.smooth_l1(p, target=t, beta=1.0), want)
    np.testing.assert_array_equal(rl.smooth_l1.value_and_grad(target=t, pred=p)[0], want)
    x, y = np.array([0.3, -2.0]), np.array([1.0, 0.0])
    np.testing.assert_array_equal(rl.bce_with_logits(logits=x, targets=y), rl.bce_with_logits(x, y))
    import inspect

    assert list(inspect.signature(rl.sigmoid_focal_loss).parameters)[:2] == ["logits", "targets"]
    doc = rl.sigmoid_focal_loss.__doc__
    assert "logits : array_like" in doc and "targets : array_like" in doc and "pred" not in doc.split("Conventions")[0]
    assert "alpha is None or alpha <= 1" in doc
    for call, says in ((lambda: rl.smooth_l1(p), "missing array argument(s) target"),
                       (lambda: rl.smooth_l1(p, t, pred=p), "multiple values for pred"),
                       (lambda: rl.smooth_l1(p, t, p), "takes 2 arrays (pred, target), got 3")):
        with pytest.raises(TypeError, match=says.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_result_types_follow_numpy():
    p32 = np.array([0.5, 2.0, -3.0], np.float32)
    assert rl.smooth_l1(p32, 0.0).dtype == np.float32  # a Python number does not widen
    assert rl.smooth_l1(p32, np.zeros(3)).dtype == np.float64  # float32 with float64: float64
    assert rl.smooth_l1([0.5, 1], [0, 0]).dtype == np.float64 and rl.smooth_l1(np.arange(3), 1).dtype == np.float64
    v, (gp, gt) = rl.smooth_l1.value_and_grad(p32, np.float32(0))
    assert v.dtype == gp.dtype == gt.dtype == np.float32
    # float16: computed in float32, returned as float16
    p16 = p32.astype(np.float16)
    v16, (g16, _) = rl.huber.value_and_grad(p16, 0.0)
    v32, (g32, _) = rl.huber.value_and_grad(p16.astype(np.float32), 0.0, dtype=np.float32)
    assert v16.dtype == g16.dtype == np.float16
    np.testing.assert_array_equal(v16, v32.astype(np.float16))
    np.testing.assert_array_equal(g16, g32.astype(np.float16))
    assert rl.huber(p16, 0.0, reduction="mean").dtype == np.float16
    assert rl.smooth_l1(p32, 0.0, dtype=np.float64).dtype == np.float64  # dtype= overrides
    boxes = np.array([[0, 0, 2, 1], [1, 1, 3, 4]], np.float32)
    assert rl.giou_loss(boxes, boxes[::-1]).dtype == np.float32


def test_tensors_are_arrays_unless_they_require_grad():
    torch = pytest.importorskip("torch")
    b = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    got = rl.giou_loss(b, torch.tensor([[0.5, 0.0, 2.5, 1.5]]))
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    with pytest.raises(TypeError, match=r"pred: a tensor that requires grad.*pred.detach\(\)"):
        rl.giou_loss(b.clone().requires_grad_(True), b)
    with pytest.raises(TypeError, match="target: a tensor that requires grad"):
        rl.smooth_l1.value_and_grad(torch.ones(3), torch.zeros(3, requires_grad=True), device="cuda")


def test_help_names_the_box_layout_and_broadcast_errors_the_box_shapes():
    doc = rl.giou_loss.__doc__
    assert "pred, target : array_like (..., 4)" in doc and "(x1, y1, x2, y2)" in doc
    assert "(x, y, w, h)" in rl.yolov1_box_loss.__doc__
    with pytest.raises(ValueError, match=r"pred \(2, 4\), target \(3, 4\)"):
        rl.giou_loss(np.zeros((2, 4)), np.zeros((3, 4)))


def test_check_loss_says_a_reduced_loss_is_not_per_element():
    with pytest.raises(ImplementationError, match="not a reduced"):
        check_loss(lambda p, t: np.mean(np.abs(p - t)), "l1")
    with pytest.raises(ImplementationError, match="raised KeyError"):
        check_loss(lambda p, t: {}["x"], "l1")


def test_a_misspelt_keyword_gets_the_name_it_resembles():
    """A typo in a keyword (or the classification losses' two spellings, targets= / target=) names
    the closest argument, not only the list of them."""
    x, y = np.array([0.3, -1.0]), np.array([0.5, 1.0])
    with pytest.raises(TypeError, match=r"targets= is not an argument \(did you mean target=\?\)"):
        rl.qfl_loss(logits=x, targets=y)
    with pytest.raises(TypeError, match=r"bta= is not an argument \(did you mean beta=\?\)"):
        rl.qfl_loss(x, y, bta=2.0)
    with pytest.raises(TypeError, match=r"traget= is not an argument \(did you mean target=\?\)"):
        rl.giou_loss(pred=np.zeros(4), traget=np.ones(4))
    # a parameter written in another case (NWD's C, as in its paper): difflib finds no match for one letter
    with pytest.raises(TypeError, match=r"C= is not an argument \(did you mean c=\?\)"):
        rl.nwd_loss(np.zeros(4), np.ones(4), C=12.8)
    # the call's own keywords are guessed too, and named in the message
    with pytest.raises(TypeError, match=r"reducton= is not an argument \(did you mean reduction=\?\)"):
        rl.giou_loss(np.zeros(4), np.ones(4), reducton="sum")
    with pytest.raises(TypeError, match=r"call's reduction=, dtype=, device=, validate=.*did you mean validate="):
        rl.giou_loss.value_and_grad(np.zeros(4), np.ones(4), valdate=False)
