"""`python -m benchmarks` runs (issue 16): its hand-fused baselines agree with refloss on ordinary
boxes (else the speed comparison would be against a wrong kernel), and a small run prints its
tables and writes its JSON. No timing is asserted: speed is the benchmark's, not the tests'."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_command_checks_its_baselines_and_writes_json(tmp_path, capsys):
    from benchmarks.__main__ import main

    out = tmp_path / "bench.json"
    assert main(["--check", "--n", "10,100", "--repeat", "1", "--no-peers", "--dtype", "float64", "-o", str(out)]) == 0
    assert "baselines agree with refloss" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    impls = {r["impl"] for r in results}
    assert {"refloss value", "refloss value+grad", "baseline value+grad", "copy"} <= impls
    assert {r["loss"] for r in results} == {"giou_loss", "diou_loss", "ciou_loss", "smooth_l1"}
    assert all(r["seconds"] > 0 and r["gb_per_s"] > 0 for r in results)


def test_benchmark_memory_table():
    from benchmarks.__main__ import memory

    lines = memory(["giou_loss", "smooth_l1"], 1000)
    assert len(lines) == 6 and [line.split(" | ")[0] for line in lines[4:]] == ["| giou_loss", "| smooth_l1"]
    assert all(line.endswith("% |") for line in lines[4:])


def test_float32_benchmark_covers_every_loss_and_writes_its_table(tmp_path, capsys):
    from benchmarks import float32

    import refloss as rl

    assert set(float32.losses()) == {n for n in rl.ALL_LOSSES if getattr(rl, n).info.kind == "loss"}
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- float32 -->\nold\n<!-- /float32 -->\nafter\n")
    out = tmp_path / "f32.json"
    assert float32.main(["--n", "50", "--repeat", "1", "-o", str(out), "--doc", str(page)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["loss"] for r in rows] == float32.losses()  # every loss ran, both dtypes
    assert all(r["float64_ms"] > 0 and r["float32_ms"] > 0 for r in rows)
    assert all(r["float64_out_ms"] > 0 and r["float32_out_ms"] > 0 for r in rows)  # and with out= (outputs reused)
    text = page.read_text()
    assert text.startswith("before\n<!-- float32 -->\n| loss |") and text.endswith("<!-- /float32 -->\nafter\n")
    assert "old" not in text and text.count("\n| `") == len(rows)


def test_focal_prototype_computes_refloss_sigmoid_focal_loss(capsys):
    """benchmarks/focal_prototype.py times a one-branch sketch of sigmoid_focal_loss's common path: its value and
    d/dlogits must be refloss's to a few ulps, else the figure it prints is another loss's."""
    from benchmarks import focal_prototype

    assert focal_prototype.main(["--n", "20000", "--repeat", "1"]) == 0
    assert "float64 / float32, prototype" in capsys.readouterr().out


def test_float32_benchmark_names_an_unknown_loss():
    from benchmarks import float32

    with pytest.raises(SystemExit):
        float32.main(["--loss", "giou_los"])


def test_same_float32_finds_a_changed_bit_and_passes_the_same_kernel(tmp_path):
    # benchmarks/same_float32.py: whether a kernel change leaves docs/exhaustive.md's float32 rows as swept
    from pathlib import Path

    import numpy as np

    import refloss as rl
    from benchmarks.same_float32 import differing, main

    root = Path(__file__).resolve().parent.parent
    new = rl.smooth_l1._module("cpu")
    args = rl.smooth_l1.kernel_args({"beta": 1.0}, "f32")
    lo, hi = 0x3f000000, 0x3f100000  # residuals in [0.5, 0.5625)

    def one_ulp_off(module):
        class OneUlpOff:  # the same driver, its value one ulp up where the input's last bit is set
            @staticmethod
            def value_and_grad_f32(x, t, out, dp, dt, divisor, *a):
                module.value_and_grad_f32(x, t, out, dp, dt, divisor, *a)
                odd = (x.view(np.uint32) & 1) == 1
                out[odd] = np.nextafter(out[odd], np.float32(np.inf))
        return OneUlpOff

    OneUlpOff = one_ulp_off(new)

    assert differing(new, new, args, lo, hi) == 0
    assert differing(OneUlpOff, new, args, lo, hi) == (hi - lo) // 2
    assert main(["--old", str(root), "smooth_l1", "--bits", f"{lo:#x}:{hi:#x}"]) == 0  # this checkout against itself
    # a classification loss's rows (targets 0 and 1), picked by the table's numbers
    assert main(["--old", str(root), "qfl_loss", "--rows", "27,28", "--bits", f"{lo:#x}:{hi:#x}"]) == 0
    qfl = rl.qfl_loss._module("cpu")
    assert differing(one_ulp_off(qfl), qfl, rl.qfl_loss.kernel_args({"beta": 2.0}, "f32"), lo, hi,
                     target=1.0) == (hi - lo) // 2


def _without_simulator() -> dict:
    return {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}


def test_ab_kernels_times_two_checkouts_in_one_process(capsys):
    """benchmarks/ab_kernels.py against this checkout itself: a row a loss, both precisions, the loss's own
    parameters only (a row loss too: its value a row, its targets a vector); a parameter no loss has is an
    error, not a traceback."""
    from benchmarks.ab_kernels import main

    # (bce_with_logits: a classification loss without beta; QFL's kernels took half a minute to compile here)
    assert main(["--old", str(REPO), "bce_with_logits", "smooth_l1", "dfl_loss", "--param", "beta=0.5", "--zeros",
                 "0.9", "--n", "100", "--repeat", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `")]
    assert [r.split(" | ")[0] for r in rows] == ["| `bce_with_logits`", "| `smooth_l1`", "| `dfl_loss`"]
    assert all(len(r.split(" | ")) == 7 for r in rows)
    assert main(["--old", str(REPO), "sigmoid_focal_loss", "--zeros", "1", "--logits", "-60", "--value", "--n", "100",
                 "--repeat", "1"]) == 0
    assert [line.split(" | ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("| `")] == \
        ["| `sigmoid_focal_loss`"]
    with pytest.raises(SystemExit):
        main(["--old", str(REPO), "qfl_loss", "--param", "bta=2"])
    assert "no loss listed has the parameter" in capsys.readouterr().err


def test_same_rows_compares_the_row_drivers_of_two_checkouts(tmp_path, capsys):
    """benchmarks/same_rows.py against a copy of this checkout's row drivers whose DFL driver reads a kept value
    of the wrong row (a planted bug in its phases): some of DFL's calls, not all, are named as differing (exit 1);
    a bad --sizes or --loss is an error, not a traceback."""
    from benchmarks.same_rows import main

    planted = tmp_path / "refloss" / "_generated"
    planted.mkdir(parents=True)
    for loss in ("softmax_cross_entropy", "dfl_loss"):
        text = (REPO / "refloss" / "_generated" / f"{loss}_cpu.py").read_text()
        if loss == "dfl_loss":
            assert "            l = _keep_l[i - _c0]" in text
            text = text.replace("            l = _keep_l[i - _c0]", "            l = _keep_l[max(i - _c0 - 1, 0)]", 1)
        (planted / f"{loss}_cpu.py").write_text(text)
    assert main(["--old", str(tmp_path), "--sizes", "65", "--loss", "dfl_loss"]) == 1
    out = capsys.readouterr().out
    assert "differs: dfl_loss f64 value rows (65," in out
    assert 0 < int(out.splitlines()[-1].split()[0]) < int(out.splitlines()[-1].split()[2])
    with pytest.raises(SystemExit):
        main(["--old", str(REPO), "--sizes", "6x"])
    assert "--sizes: whole numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--old", str(REPO), "--loss", "giou_loss"])
    assert "invalid choice" in capsys.readouterr().err


def test_cuda_kernels_compile_to_ptx_without_a_gpu(tmp_path):
    """benchmarks/cuda_ptx.py compiles CUDA kernels as a GPU would (numba-cuda's front end and NVVM), with no
    device: the simulator, which runs the kernels in CI, never compiles them.  One loss of each family's kernel
    form (a rescaling box loss, an element-wise, a classification, a row and a rotated loss), float64 and float32,
    value and value_and_grad; every kernel: `python benchmarks/cuda_ptx.py`."""
    env = _without_simulator()
    probe = subprocess.run([sys.executable, "-c", "from numba.cuda.cudadrv import nvvm; nvvm.NVVM()"],
                           env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("no libNVVM here (CUDA's NVVM library): " + (probe.stderr.strip().splitlines() or ["?"])[-1])
    out = tmp_path / "ptx.json"
    names = "giou_loss,smooth_l1,bce_with_logits,softmax_cross_entropy,gwd_loss"
    run = subprocess.run([sys.executable, "benchmarks/cuda_ptx.py", "--loss", names, "--jobs", "2", "--json", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads(out.read_text())
    kernels = {(f"{n}_cuda", f"{k}_{p}") for n in names.split(",") for k in ("value", "value_and_grad")
               for p in ("f64", "f32")}
    assert {(r["module"], r["kernel"]) for r in rows} >= kernels
    assert all(r["error"] is None and r["ptx_lines"] > 100 for r in rows)


def test_fma_contraction_emulated_on_the_cpu():
    """benchmarks/fma_emulate.py: verify's rows on the simulated CUDA backend with the scalar kernels (the CUDA
    kernels' device functions) compiled with LLVM's contract flag, so that products fuse into additions as NVVM
    fuses them on a GPU (where alpha-IoU's gradient failed at identical boxes until e49f87d: the script
    reproduced that failure to the digit).  GIoU and a row loss in float32 here (CI time); every loss and dtype:
    `--jobs N` without --loss."""
    run = subprocess.run([sys.executable, "benchmarks/fma_emulate.py", "--loss", "giou_loss,softmax_cross_entropy",
                          "--dtype", "float32"], cwd=REPO, capture_output=True, text=True)
    if run.returncode == 2 and "nothing to emulate" in run.stdout:
        pytest.skip(run.stdout.strip())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "FMA contraction active" in run.stdout and " 0 failed" in run.stdout
    assert "giou_loss" in run.stdout and "softmax_cross_entropy" in run.stdout


def test_benchmark_on_cuda_runs_in_the_simulator_and_says_where_there_is_no_gpu():
    """`python -m benchmarks --device cuda` is benchmarks/gpu.py's comparison at each --n: under the simulator
    refloss's rows (no CUDA torch here); with neither a GPU nor the simulator, one line and exit 2."""
    cmd = [sys.executable, "-m", "benchmarks", "--device", "cuda", "--n", "16", "--repeat", "1"]
    run = subprocess.run(cmd, cwd=REPO, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "float32  giou_loss" in run.stdout and "N=16" in run.stdout
    bare = subprocess.run(cmd, cwd=REPO, env=_without_simulator(), capture_output=True, text=True)
    assert "Traceback" not in bare.stderr, bare.stderr[-2000:]
    assert bare.returncode == (2 if "no GPU to benchmark here" in bare.stdout else 0), bare.stdout[-2000:]
    assert bare.returncode == 0 or bare.stdout.count("\n") == 1  # (one line where there is no GPU)


def test_rows_benchmark_times_every_case():
    from benchmarks import rows

    results = rows.measure(2000, 1)
    assert [(r["loss"], r["width"], r["dtype"]) for r in results] == [
        (name, width, dtype) for name, width in rows.CASES for dtype in ("float64", "float32")]
    assert all(r["value_ms"] > 0 and r["value_and_grad_ms"] > 0 for r in results)


def test_sums_benchmark_times_every_case():
    from benchmarks import sums

    results = sums.measure(3000, 1)
    assert len(results) == 10 and {r["dtype"] for r in results} == {"float64", "float32"}
    assert all(v > 0 for r in results for k, v in r.items() if k.endswith("_ms"))


def test_param_probe_checks_its_worst_points_against_the_oracle():
    from benchmarks import param_probe

    w = param_probe.probe("smooth_l1", 2, 2000, 0)
    assert w["loss"] == "smooth_l1" and 0 < w["ulp"] < 4  # (Smooth L1 is within its bar at any beta)
    assert w["oracle_float32"] == pytest.approx(w["ulp"], abs=1.0) and w["oracle_float64"] <= 4
    assert param_probe.main(["--loss", "smooth_l1", "--sets", "1", "--n", "500"]) == 0
    with pytest.raises(SystemExit):
        param_probe.main(["--loss", "smooth_l"])


@pytest.mark.parametrize("argv,message", [
    (["--loss", "smooth_l1,giuo_loss"], "giuo_loss"), (["--dtype", "float16"], "float16"),
    (["--repeat", "0"], "--repeat"), (["--n", "-5"], "--n"), (["--n", "10,,20"], "--n"), (["--n", "0.4"], "--n"),
    (["--memory", "-3"], "--memory"), (["-o", "/nonexistent-folder/x.json"], "no folder")])
def test_benchmark_options_are_checked_before_any_work(argv, message, capsys):
    """A typo'd loss was refused only after the losses before it had been benchmarked (the run lost), a float16 or
    int64 dtype, N <= 0 or repeat 0 gave tracebacks or inf rows and invalid JSON, a missing output folder a
    traceback after the whole run (a probe, 2026-12-07): now argparse errors before anything is measured."""
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(argv + ["--no-peers"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_float32_benchmark_and_kernel_change_check_their_options_first(tmp_path, capsys):
    from benchmarks.float32 import main

    page = tmp_path / "page.md"
    page.write_text("no markers\n")
    for argv, message in ((["--repeat", "0"], "--repeat"), (["--n", "-3"], "--n"),
                          (["--doc", str(page), "--loss", "l1"], "markers")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
    for argv, message in ((["giuo_loss"], "did you mean giou_loss"), (["smooth_l1"], "not a box"),
                          (["giou_loss", "--param", "bogus=1"], "--param"), (["giou_loss", "--n", "0"], "--n")):
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "kernel_change.py"), *argv, "--old", str(REPO)],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
