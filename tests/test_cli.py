"""`refloss verify` prints the table and signals failures through its exit status."""
import json
import subprocess
import sys

import pytest

from refloss import _verify, cli


def test_verify_one_loss_passes(capsys):
    assert cli.main(["verify", "--loss", "huber", "--device", "cpu", "--random", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert "huber" in out and "pass" in out and "FAIL" not in out
    assert "value err" in out and "ulp" in out


def test_verify_exits_1_on_failure(monkeypatch, capsys):
    from refloss._reference import REFERENCES, Bar

    monkeypatch.setitem(REFERENCES, "l1", REFERENCES["l1"]._replace(bar=Bar(-1.0, -1.0)))  # nothing passes this bar
    assert cli.main(["verify", "--loss", "l1", "--device", "cpu", "--dtype", "float64", "-q"]) == 1
    assert "FAIL l1" in capsys.readouterr().out


def test_verify_rejects_unknown_loss(capsys):
    assert cli.main(["verify", "--loss", "nope"]) == 2


def test_verify_takes_comma_separated_losses(capsys):
    assert cli.main(["verify", "--loss", "huber,l1", "--loss", "mse", "--device", "cpu", "--dtype", "float64",
                     "--random", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} " in out for name in ("huber", "l1", "mse")) and "FAIL" not in out
    assert cli.main(["verify", "--loss", "huber,nope"]) == 2
    assert "unknown loss(es) nope;" in capsys.readouterr().err
    assert cli.main(["verify", "--loss", "softmax_crossentropy"]) == 2  # a typo gets its guess
    assert "(did you mean softmax_cross_entropy?)" in capsys.readouterr().err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "refloss.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "verify" in out.stdout


def test_verify_in_worker_processes_gives_the_serial_rows(monkeypatch, tmp_path):
    """-j: losses checked in spawned processes (a first run compiles there, in parallel) give the
    same rows, in table order; `cached` tells a first run (nothing in Numba's cache) apart."""
    serial = _verify.run(["l1", "iou"], dtypes=("float64",), devices=["cpu"])
    parallel = _verify.run(["l1", "iou"], dtypes=("float64",), devices=["cpu"], workers=2)
    assert [(r.loss, r.params, r.value_err, r.grad_err) for r in parallel] == \
        [(r.loss, r.params, r.value_err, r.grad_err) for r in serial]
    assert _verify.cached("l1")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not _verify.cached("l1")


def test_verify_live_without_mpmath_says_what_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "mpmath", None)  # import mpmath now raises ImportError
    assert cli.main(["verify", "--live", "--loss", "l1"]) == 2
    assert "pip install 'refloss[verify]'" in capsys.readouterr().err
    assert cli.main(["verify", "--loss", "l1", "--device", "cpu", "-q"]) == 0  # the stored references need none


def test_parameters_reduction_pairs_and_ints():
    # (a probe, 2026-12-07) reduction=none reached a user's function as None; image_size had no CLI form
    assert cli._parse_params(["reduction=none", "image_size=(640, 480)", "beta=1/9", "flag=true", "eps=none"]) == {
        "reduction": "none", "image_size": (640.0, 480.0), "beta": 1 / 9, "flag": True, "eps": None}
    assert cli._parse_params(["s=[2,3]", "t=4,5"]) == {"s": (2.0, 3.0), "t": (4.0, 5.0)}
    assert cli._parse_params(["n=3", "x=2.5"], ints=True) == {"n": 3, "x": 2.5}


@pytest.mark.parametrize("argv", [
    ["vectors", "giou_los", "-o", "v.json"],  # a typo: its guess
    ["vectors", "smooth_l1", "-o", "."],  # a folder
    ["sweep", "smooth_l1", "--samples", "1000", "--workers", "1", "--chunk", "-3"],
    ["sweep", "smooth_l1", "--exhaustive", "--bits", "0:16", "--target", "nan", "--workers", "1"],
    ["sweep", "bce_with_logits", "--exhaustive", "--bits", "0:16", "--target", "5", "--workers", "1"],
    ["sweep", "smoth_l1", "--samples", "10"],
    ["sweep", "smooth_l1", "--samples", "1000", "--workers", "1", "-o", "."],
    ["sweep", "smooth_l1", "--samples", "10", "--seed", "-1"],
    ["verify", "--random", "-3", "--loss", "l1"],
    ["verify", "-j", "0", "--loss", "l1"],
])
def test_usage_errors_before_the_work(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as e:  # (argparse's own errors)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "refloss: error:" in err
    assert "did you mean" in err or "giou_los" not in argv and "smoth_l1" not in argv


def test_vectors_of_mpdiou_with_its_image_size(tmp_path):
    out = tmp_path / "sub" / "v.json"
    assert cli.main(["vectors", "mpdiou_loss", "--param", "image_size=(640, 640)", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["meta"]["params"]["image_size"] in ([640.0, 640.0], [640, 640])


def test_sweep_quiet_prints_the_summary_only(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "l1", "--samples", "2000", "--workers", "1", "-q", "--no-resume", "-o", "s.json"]) == 0
    out = capsys.readouterr().out
    assert "max ULP" in out and " ULP at " not in out and "reference:" in out
    assert json.loads((tmp_path / "s.json").read_text())["worst"]


@pytest.mark.parametrize("option", [["--random", "5"], ["--live"], ["-j", "2"]])
def test_verify_of_a_function_refuses_the_kernels_options(option, capsys, tmp_path, monkeypatch):
    """--random, --live, -j (and --device for a peer) are refloss's own kernels' options: with module:function or a
    peer they were accepted and ignored silently."""
    (tmp_path / "myimpl_cli.py").write_text("def l1(p, t):\n    import numpy as np\n    return np.abs(p - t)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["verify", "myimpl_cli:l1", "--loss", "l1", *option]) == 2
    assert "apply to refloss's own kernels" in capsys.readouterr().err
    assert cli.main(["verify", "torchvision", "--device", "cpu"]) == 2
    assert "peer torchvision runs its own checks" in capsys.readouterr().err


def test_verify_options_that_do_not_apply_are_refused(capsys):
    """--dtype, --framework and --cases with a built-in peer, and --framework or --cases without a target, were
    accepted and ignored silently (a peer's rows always run float64, float32 and the convention points)."""
    for argv, option in ((["verify", "torch", "--loss", "l1", "--dtype", "float32"], "--dtype"),
                         (["verify", "torch", "--loss", "l1", "--framework", "numpy"], "--framework"),
                         (["verify", "torch", "--loss", "l1", "--cases", "edge"], "--cases"),
                         (["verify", "--loss", "l1", "--cases", "edge"], "--cases"),
                         (["verify", "--loss", "l1", "--framework", "jax"], "--framework")):
        assert cli.main(argv) == 2, argv
        assert f"{option}: apply to module:function" in capsys.readouterr().err


@pytest.mark.parametrize("args, says", [
    (["--exhaustive", "--bits", "0x3f000000:0x3f001000", "--target", "1e39"], "--target must be a finite float32"),
    (["--exhaustive", "--bits", "0x7f800000:0x7f800010"], "no finite float32"),
    (["--samples", "10", "--top", "-1"], "--top"),
    (["--samples", "10", "--framework", "torch"], "--framework applies to --impl"),
])
def test_sweep_usage_errors_are_one_line(args, says, capsys):
    assert cli.main(["sweep", "smooth_l1", "--workers", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err


@pytest.mark.parametrize("args, says", [
    (["sweep", "smooth_l1", "--samples", "10", "--param", "beta=1e400"], "--param beta=1e400: beyond float64's range"),
    (["sweep", "smooth_l1", "--samples", "10", "--impl", "refloss:smooth_l1", "--impl-param", "beta=1e400"],
     "--impl-param beta=1e400: beyond float64's range"),
    (["vectors", "smooth_l1", "--param", "beta=1e400", "-o", "v.json"], "--param beta=1e400: beyond float64's range"),
])
def test_sweep_and_vectors_parameters_beyond_float64_are_usage_errors(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err


def test_sweep_unreachable_scheduler_is_one_line(capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")

    def refuse(address, *a, **k):
        raise OSError(f"Timed out trying to connect to {address} after 30 s")

    monkeypatch.setattr(distributed, "Client", refuse)
    assert cli.main(["sweep", "l1", "--exhaustive", "--bits", "0x3f000000:0x3f000100", "-q",
                     "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scheduler 'tcp://127.0.0.1:1': cannot connect" in err
