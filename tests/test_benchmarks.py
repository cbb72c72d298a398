"""`python -m benchmarks` runs (issue 16): its hand-fused baselines agree with refloss on ordinary
boxes (else the speed comparison would be against a wrong kernel), and a small run prints its
tables and writes its JSON. No timing is asserted: speed is the benchmark's, not the tests'."""
import json

import pytest

pytest.importorskip("numba")


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
