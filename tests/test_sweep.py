"""refloss sweep: exact, order-independent reduction of chunks; the same result on a dask
LocalCluster, after an interruption, and for any chunking; planted faults found with their
worst input; the float64 reference against the 50-digit oracle; the command line."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest

from refloss import _measures, sweep
from refloss.sweep import _chunk, _merge, _spaces

ONE = 0x3F800000  # the bit pattern of 1.0f
BIG = 0x5F800000  # 2**64: x*x overflows float32 from about here


# ---------------------------------------------------------------- planted faults (float32 NumPy)

def smooth_l1_overflowing(pred, target, beta=1.0):
    """Smooth L1 as 0.5 (x^2 - relu(x - beta)^2) / beta: right in exact arithmetic, but x*x
    cancels and then overflows float32 (inf - inf = NaN) for |x| >= ~2**64."""
    x = np.abs(pred - target)
    return 0.5 * (x * x - np.maximum(x - beta, 0) ** 2) / beta


def smooth_l1_off_at_beta(pred, target, beta=1.0):
    """Textbook float32 Smooth L1 whose |x| == beta branch is one ULP high."""
    x = np.abs(pred - target)
    b = x.dtype.type(beta)
    lin = x - 0.5 * b
    return np.where(x < b, 0.5 * x * x / b, np.where(x == b, np.nextafter(lin, np.inf), lin))


def _same(a: sweep.Result, b: sweep.Result) -> None:
    """The two results agree exactly: counts, maxima and the worst lists, bit for bit."""
    assert a.summary == b.summary
    assert a.to_json()["worst"] == b.to_json()["worst"]


# ---------------------------------------------------------------- the measure and the ranking

def test_compiled_ulp_errors_equal_refloss_measure():
    """The compiled per-point pass is refloss._measures.ulp_error (lo = 0), special values,
    subnormals, overflow and floors included."""
    from refloss.sweep._fast import ulp_errors

    rng = np.random.default_rng(7)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-320, 5e-324, 3.5e38, 3.4028235e38, 1.4e-45, 2.0**-150, 1.0]
    for dt in (np.float32, np.float64):
        ref = np.concatenate([rng.standard_normal(4000) * 10.0 ** rng.uniform(-47, 40, 4000), special])
        got = (ref * (1 + rng.standard_normal(len(ref)) * 1e-6)).astype(dt)
        got[::5] = ref[::5].astype(dt)
        got[3], got[-1] = np.nan, np.inf
        for floor in (np.zeros(1), np.abs(rng.standard_normal(len(ref))) * 10.0 ** rng.uniform(-40, 3, len(ref))):
            err, near, fail = np.zeros(len(ref)), np.zeros(len(ref), bool), np.zeros(len(ref), bool)
            with np.errstate(all="ignore"):
                top = ulp_errors(got, ref, floor, dt == np.float32, 8.0, err, near, 4.0, fail)
                want = _measures.ulp_error(got, ref, 0.0, dt, floor=None if len(floor) == 1 else floor)
            np.testing.assert_array_equal(err, want)
            assert top == want.max() and np.array_equal(fail, want > 4.0)


def test_top_indices_break_ties_by_inputs():
    err = np.array([1.0, 3.0, 3.0, 0.0, 3.0, 2.0, 3.0])
    x = np.array([5.0, 2.0, -0.0, 9.0, 0.0, 1.0, -7.0])
    top = _chunk.top_indices(err, lambda idx: x[idx][:, None], 3)
    assert top.tolist() == [6, 2, 4]  # the 3-ULP points by input: -7, -0.0, then 0.0
    assert _chunk.top_indices(np.zeros(4), lambda idx: x[idx][:, None], 3).tolist() == []  # 0 error: not "worst"


def test_merge_is_exact_in_any_order_and_any_chunking():
    """Summaries reduce to the same result in any order and grouping, and cutting the same
    bits into other chunks changes nothing (oracle off: its re-checks follow the chunks)."""
    bits = (ONE - 2**19, ONE + 2**19)
    coarse = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=bits, chunk=2**20, workers=1, oracle=False)
    parts = [_chunk.run_chunk({**t, "loss": "smooth_l1", "params": {"beta": 1.0}, "dtype": "float32", "top_k": 8,
                               "oracle": False})
             for t in sweep.plan("smooth_l1", {}, "float32", True, bits, 0.0, None, None, 0, 2**17)[1]]
    assert len(parts) == 8 and sum(p["points"] for p in parts) == coarse.points == 2**20
    orders = [_merge.merge_all(parts, 8)]
    for seed in range(3):
        shuffled = parts[:]
        random.Random(seed).shuffle(shuffled)
        orders.append(_merge.merge_all(shuffled, 8))
    halves = _merge.merge(_merge.merge_all(parts[:3], 8), _merge.merge_all(parts[3:], 8), 8)
    for total in orders[1:] + [halves]:
        assert total == orders[0]
    for key in ("points", "failures", "max", "worst"):
        assert orders[0][key] == coarse.summary[key]


# ---------------------------------------------------------------- execution

def test_local_cluster_gives_the_in_process_result(tmp_path):
    """A dask LocalCluster of two worker processes: the API with client=, and the command line
    with --scheduler ADDRESS, give the in-process result."""
    distributed = pytest.importorskip("distributed")
    from refloss import cli

    bits = (ONE - 2**21, ONE + 2**21)
    here = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=bits, chunk=2**20, workers=1)
    small = sweep.run("huber", exhaustive=True, bits=(ONE, ONE + 2**16), workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        there = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=bits, chunk=2**20, client=client)
        out = tmp_path / "h.json"
        assert cli.main(["sweep", "huber", "--exhaustive", "--bits", f"{ONE}:{ONE + 2**16}", "--scheduler",
                         cluster.scheduler_address, "-q", "-o", str(out)]) == 0
    assert there.points == 2**22 and there.chunks == 4
    _same(here, there)
    assert json.loads(out.read_text())["worst"] == small.to_json()["worst"]


def test_process_pool_gives_the_in_process_result():
    bits = (0xBF000000, 0xBF000000 + 2**20)  # -0.5 .. -0.75: the quadratic branch at negative x
    here = sweep.run("huber", {"delta": 0.5}, exhaustive=True, bits=bits, chunk=2**18, workers=1)
    pool = sweep.run("huber", {"delta": 0.5}, exhaustive=True, bits=bits, chunk=2**18, workers=2)
    _same(here, pool)


def test_a_script_without_a_main_guard_gets_the_reason(tmp_path):
    """The spawned workers import the calling script: without ``if __name__ == "__main__":`` each
    of them runs the sweep again and dies, and the pool breaks; the caller is told why."""
    script = tmp_path / "noguard.py"
    script.write_text("from refloss import sweep\n"
                      "sweep.run('huber', exhaustive=True, bits=(0x3f800000, 0x3f800000 + 2**20), chunk=2**18, "
                      "workers=2)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode != 0
    # (the dying workers write their own tracebacks to the same stderr, and one may come after the caller's
    # error: the clean-clone run at d4009c7 failed on the last line being a worker's)
    told = [ln for ln in run.stderr.splitlines() if ln.startswith("RuntimeError: a sweep worker process died")]
    assert told and "__main__" in told[-1], run.stderr[-2000:]


class _Stop(Exception):
    pass


def test_an_interrupted_sweep_resumes_to_the_same_result(tmp_path):
    bits = (ONE - 2**20, ONE + 2**20)
    kw = dict(exhaustive=True, bits=bits, chunk=2**18, workers=1)
    whole = sweep.run("smooth_l1", {"beta": 1.0}, **kw)
    out = tmp_path / "r.json"

    def stop_after_3(done, total, running_max):
        if done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        sweep.run("smooth_l1", {"beta": 1.0}, output=out, progress=stop_after_3, **kw)
    side = tmp_path / "r.json.chunks.jsonl"
    assert len(side.read_text().splitlines()) == 1 + 3 and not out.exists()
    with open(side, "a") as f:
        f.write('{"id": "bits:3f8')  # a line cut short by the interruption
    seen = []
    resumed = sweep.run("smooth_l1", {"beta": 1.0}, output=out, progress=lambda d, t, m: seen.append(d), **kw)
    assert seen == [4, 5, 6, 7, 8]  # only the five missing chunks ran
    _same(whole, resumed)
    assert json.loads(out.read_text())["points"] == 2**21
    with pytest.raises(ValueError, match="another sweep"):
        sweep.run("smooth_l1", {"beta": 0.5}, output=out, **kw)


def test_a_sweep_does_not_resume_from_chunks_of_other_kernels(tmp_path, monkeypatch):
    """A kernel regenerated between two runs: the chunks measured with the old one are refused."""
    kw = dict(exhaustive=True, bits=(ONE, ONE + 2**12), chunk=2**11, workers=1, output=tmp_path / "r.json")
    sweep.run("smooth_l1", {"beta": 1.0}, **kw)
    monkeypatch.setattr(sweep, "_kernels_hash", lambda loss, dtype=None: "0123456789abcdef")
    with pytest.raises(ValueError, match="kernels regenerated since"):
        sweep.run("smooth_l1", {"beta": 1.0}, **kw)


# ---------------------------------------------------------------- planted faults

def test_overflowing_square_is_found_with_its_first_input():
    r = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=(BIG - 2**21, BIG + 2**21),
                  impl=smooth_l1_overflowing, workers=1)
    assert r.max_ulp["value"] == np.inf and r.max_ulp["d_pred"] is None  # NumPy function: values only
    worst = r.worst[0]
    x = np.float32(worst["inputs"]["pred"])
    with np.errstate(over="ignore"):
        assert np.isinf(x * x) and np.isfinite(np.nextafter(x, np.float32(0)) ** 2)  # the first overflowing x
    assert np.isnan(worst["got"]) and worst["expected"] == pytest.approx(float(x) - 0.5)
    # below the overflow x*x - (x-1)^2 cancels to 0 in float32: failures on both sides
    assert r.failures == r.points == 2**22
    # the worst inputs are a check_loss case list that reproduces the fault
    from refloss.testing import check_loss

    report = check_loss(smooth_l1_overflowing, "smooth_l1", cases=r.cases, dtype="float32", grad=False, beta=1.0)
    assert not report.ok and len(r.cases) == 2 and len(r.cases[0]) >= 1


def test_one_ulp_branch_at_beta_is_the_worst_point():
    r = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=(ONE - 2**21, ONE + 2**21),
                  impl=smooth_l1_off_at_beta, workers=1, chunk=2**20)
    assert r.max_ulp["value"] == 1.0  # one ULP of 0.5, measured against the oracle's exact 0.5
    assert r.worst[0]["inputs"] == {"pred": 1.0, "target": 0.0} and r.worst[0]["reference"] == "oracle"
    assert all(e["ulp"] <= 0.5 for e in r.worst[1:])  # every other point correctly rounded
    assert r.failures == 0  # one ULP is within the 4-ULP bar: found as the worst, not a failure


# ---------------------------------------------------------------- the reference

def test_run_many_gives_each_sweep_alone():
    """Sweeps run together (interleaved chunk by chunk, each chunk's boxes drawn once) give what
    each gives alone, bit for bit; a second request resumes every one from its results file."""
    specs = [dict(loss="giou_loss", samples=3000, chunk=1000, seed=5), dict(loss="ciou_loss", samples=3000, chunk=1000,
                                                                              seed=5),
             dict(loss="huber", exhaustive=True, bits=(ONE, ONE + 2**12), chunk=2**11)]
    _spaces._CACHE.clear()
    many = sweep.run_many(specs, workers=1)
    assert [r.loss for r in many] == ["giou_loss", "ciou_loss", "huber"]
    for r, kw in zip(many, specs):
        _spaces._CACHE.clear()
        _same(r, sweep.run(workers=1, **kw))


@pytest.mark.parametrize("sweeps, says", [([{"los": "giou_loss"}], "with a 'loss'"), (["giou_loss"], "with a 'loss'"),
                                          ([{"loss": "giou_loss", "samples": 10, "workers": 2}], "run_many's own"),
                                          ([{"loss": "giou_los", "samples": 10}], "unknown 'giou_los'")])
def test_run_many_says_what_is_wrong_with_a_request(sweeps, says):
    with pytest.raises(ValueError, match=says):
        sweep.run_many(sweeps, workers=1)


def test_run_many_resumes_from_each_results_file(tmp_path):
    specs = [dict(loss=loss, samples=2000, chunk=500, output=tmp_path / f"{loss}.json") for loss in ("iou_loss",
                                                                                                  "diou_loss")]
    first = sweep.run_many(specs, workers=1)
    calls = []
    again = sweep.run_many(specs, workers=1, progress=lambda *a: calls.append(a))
    assert calls == []  # every chunk was recorded: nothing ran
    for a, b in zip(first, again):
        _same(a, b)
    assert [json.loads((tmp_path / f"{loss}.json").read_text())["points"] for loss in ("iou_loss", "diou_loss")] == \
        [first[0].points, first[1].points]


def test_chunk_points_are_drawn_once_and_read_only():
    task = {"loss": "giou_loss", "params": {}, "dtype": "float32", "kind": "samples", "space": "boxes", "seed": 9,
            "index": 2, "n": 500, "id": "x"}
    s = _chunk.setup(task)
    _spaces._CACHE.clear()
    first = _spaces.inputs(task, s)
    assert _spaces.inputs(task, s) is first  # the second sweep over the chunk: no new draw
    assert not any(a.flags.writeable for a in first[2])
    fresh = _spaces._draw(task, s)
    assert all(np.array_equal(a, b) for a, b in zip(first[2], fresh[2]))
    other = _spaces.inputs({**task, "index": 3}, s)
    assert not np.array_equal(other[2][0][:10], first[2][0][:10])


def test_compiled_box_scale_equals_the_numpy_form():
    """The compiled gradient scale of axis-aligned pairs equals box_floors's NumPy form (given
    no gradient arrays), on sampled boxes whose gradients hold NaN, infinities and zeros."""
    task = {"loss": "giou_loss", "params": {}, "dtype": "float32", "kind": "samples", "space": "boxes", "seed": 1,
            "index": 0, "n": 5000, "id": "x"}
    s = _chunk.setup(task)
    _, _, inputs = _spaces.inputs(task, s)
    cols, grads = _chunk.kernel(s, inputs, "f64", raw=True)
    grads = [g.copy() for g in grads]
    rng = np.random.default_rng(0)
    for g in grads:
        g[rng.integers(0, len(g), 50), rng.integers(0, 4, 50)] = rng.choice([np.nan, np.inf, -np.inf, 0.0], 50)
    cols = [cols[0]] + [g[:, k] for g in grads for k in range(4)]
    fast = _chunk.box_floors(s, inputs, cols, grads)
    slow = _chunk.box_floors(s, inputs, cols)
    assert np.array_equal(fast[1], slow[1]) and all(f is fast[1] for f in fast[1:])


def test_box_samples_against_the_oracle():
    """giou_loss on 200 sampled box pairs (every class of the boxes space) in float32: the
    maxima against the float64 kernel equal those against the 50-digit oracle."""
    from refloss.oracle import giou_loss as oracle_giou
    from refloss.oracle.rounding import split

    r = sweep.run("giou_loss", samples=200, workers=1, seed=3)
    task = {"loss": "giou_loss", "params": {}, "dtype": "float32", "kind": "samples", "space": "boxes", "seed": 3,
            "index": 0, "n": 200, "id": "x"}
    s = _chunk.setup(task)
    labels, codes, (pred, target) = _spaces.inputs(task, s)
    assert r.points == len(pred) > 150 and {labels[c] for c in codes} >= {"nested_pred_in_target", "far_apart",
                                                                          "near_identical", "disjoint_xy"}
    got = np.stack(_chunk.kernel(s, (pred, target), "f32"), axis=1).astype(np.float64)
    exact = []
    for p, t in zip(pred.astype(np.float64), target.astype(np.float64)):
        v, gp, gt = oracle_giou(tuple(p), tuple(t))
        exact.append([split(z) for z in [v, *gp, *gt]])
    hi, lo = np.array(exact)[..., 0], np.array(exact)[..., 1]
    floors = _chunk.box_floors(s, (pred, target), list(hi.T))
    errs = [_measures.ulp_error(got[:, c], hi[:, c], lo[:, c], np.float32, floor=np.broadcast_to(floors[c], len(pred)))
            for c in range(9)]
    want = {"value": errs[0].max(), "d_pred": np.max(errs[1:5]), "d_target": np.max(errs[5:9])}
    for g, w in want.items():
        assert r.max_ulp[g] == pytest.approx(w, rel=1e-6, abs=1e-6), g


def test_rotated_samples_against_the_oracle():
    """kld_loss on 200 sampled pairs of rotated boxes (every class of the rotated space) in float32: the maxima
    against the float64 kernel equal those against the 50-digit oracle, and are within the box bar."""
    from refloss.oracle.rotated import kld_loss as oracle_kld
    from refloss.oracle.rounding import split

    r = sweep.run("kld_loss", samples=200, workers=1, seed=5)
    task = {"loss": "kld_loss", "params": {}, "dtype": "float32", "kind": "samples", "space": "rotated", "seed": 5,
            "index": 0, "n": 200, "id": "x"}
    s = _chunk.setup(task)
    labels, codes, (pred, target) = _spaces.inputs(task, s)
    assert r.points == len(pred) >= 200 and {labels[c] for c in codes} >= {"swapped", "thin", "large_angles", "tiny"}
    got = np.stack(_chunk.kernel(s, (pred, target), "f32"), axis=1).astype(np.float64)
    exact = []
    for p, t in zip(pred.astype(np.float64), target.astype(np.float64)):
        v, gp, gt = oracle_kld(tuple(p), tuple(t))
        exact.append([split(z) for z in [v, *gp, *gt]])
    hi, lo = np.array(exact)[..., 0], np.array(exact)[..., 1]
    floors = _chunk.box_floors(s, (pred, target), list(hi.T))
    errs = [_measures.ulp_error(got[:, c], hi[:, c], lo[:, c], np.float32, floor=np.broadcast_to(floors[c], len(pred)))
            for c in range(11)]
    want = {"value": errs[0].max(), "d_pred": np.max(errs[1:6]), "d_target": np.max(errs[6:11])}
    for g, w in want.items():
        assert r.max_ulp[g] == pytest.approx(w, rel=1e-6, abs=1e-6), g
    assert r.failures == 0


def test_float64_self_sweep_is_measured_by_the_oracle(monkeypatch):
    # the fallback of a float64 sweep of a loss without a double-double twin (every sweepable loss of refloss has
    # one now): the finite-difference screen, the oracle measuring where it points
    from refloss.sweep import _chunk

    monkeypatch.setattr(_chunk, "reference_module", lambda drivers: None)
    monkeypatch.setattr(_chunk, "_SETUPS", {})
    r = sweep.run("balanced_l1", {"beta": 1 / 9}, dtype="float64", samples=2000, chunk=1000, workers=1, top_k=4)
    assert r.points == 2000 and 0 < r.measured == r.oracle_points <= 2 * 2 * 4
    assert all(e["reference"] == "oracle" for e in r.worst)
    assert r.max_ulp["value"] <= 4 and r.max_ulp["d_pred"] <= 4 and r.failures == 0


def test_float64_box_sweep_measures_every_point_against_the_double_double_reference():
    # (the sweep of focal_l1_eiou_loss(beta=1) at 2^20 pairs found 5 pairs over the float64 bar, 3,764 ULP of the
    # scale, in its kernel before the double-double fix (8330710); the finite-difference screen had found none)
    for loss in ("giou_loss", "obb_angle_loss"):  # (a rotated-box loss: five numbers a box)
        r = sweep.run(loss, {}, dtype="float64", samples=4000, chunk=2000, workers=1, top_k=4)
        assert r.points == r.measured >= 4000 and "double-double" in r.reference  # (classes drawn in equal parts)
        assert 0 < r.oracle_points and any(e["reference"] == "oracle" for e in r.worst)
        assert r.failures == 0 and r.max_ulp["d_pred"] <= 100


def bce_naive(logits, targets):
    """-log(sigmoid(x)) computed directly: inf and NaN at confident logits."""
    p = 1 / (1 + np.exp(-logits))
    return -(targets * np.log(p) + (1 - targets) * np.log(1 - p))


def test_logits_space_to_the_float32_limit():
    """Logits up to 3.4e38: refloss's kernel stays within its bar (the oracle's exact gradient
    there, about e**-1e38, rounds to 0), the textbook form does not."""
    ok = sweep.run("bce_with_logits", samples=4000, workers=1, seed=1)
    assert ok.failures == 0 and ok.max_ulp["value"] <= 8 and ok.max_ulp["d_logits"] <= 8
    assert max(abs(x) for x in ok.cases[0]) < 3.5e38
    with np.errstate(all="ignore"):
        bad = sweep.run("bce_with_logits", samples=4000, workers=1, seed=1, impl=bce_naive)
    assert bad.max_ulp["value"] == np.inf and bad.points == ok.points
    worst = bad.worst[0]
    assert worst["reference"] == "oracle" and abs(worst["inputs"]["logits"]) > 1e37 and not np.isfinite(worst["got"])


def test_classification_exhaustive_at_a_hard_target():
    r = sweep.run("bce_with_logits", exhaustive=True, bits=(0xC1A00000, 0xC1A00000 + 2**18), target=1.0, workers=1)
    assert r.points == 2**18 and r.space["target"] == 1.0  # logits -20 .. -20.5 against target 1
    assert r.failures == 0 and 0 < r.max_ulp["value"] <= 8 and 0 < r.max_ulp["d_logits"] <= 8


def test_bit_chunks_skip_nan_and_inf_and_align():
    assert _spaces.bit_chunks(0x7F7FFFF0, 0x80000010, 2**4) == [(0x7F7FFFF0, 0x7F800000), (0x80000000, 0x80000010)]
    assert _spaces.finite_count(0, 2**32) == 2**32 - 2 * 2**23
    assert _spaces.bit_chunks(5, 40, 16) == [(5, 16), (16, 32), (32, 40)]


# ---------------------------------------------------------------- command line

def _cli(*args, cwd=None):
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this checkout's refloss, from any folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "refloss", "sweep", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_cli_writes_the_result_json(tmp_path):
    from refloss import cli

    out = tmp_path / "r.json"
    assert cli.main(["sweep", "l1", "--exhaustive", "--bits", f"{ONE}:{ONE + 2**16}", "--workers", "1", "-q",
                     "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"loss", "params", "dtype", "points", "failures", "max_ulp", "worst", "cases"} <= set(data)
    assert data["points"] == 2**16 and data["max_ulp"] == {"value": 0.0, "d_pred": 0.0, "d_target": 0.0}
    assert (tmp_path / "r.json.chunks.jsonl").exists()


def test_cli_impl_over_the_bar_exits_1(tmp_path):
    (tmp_path / "mine.py").write_text("import numpy as np\n"
                                      "def sl1(p, t, beta=1.0):\n"
                                      "    x = np.abs(p - t)\n"
                                      "    return 0.5 * (x * x - np.maximum(x - beta, 0) ** 2) / beta\n")
    res = _cli("smooth_l1", "--exhaustive", "--bits", f"{BIG}:{BIG + 2**16}", "--impl", "mine.py:sl1",
               "--impl-param", "beta=1", "--workers", "1", "-q", "-o", "out.json", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["failures"] == 2**16 and data["max_ulp"]["value"] == "inf" and data["impl"] == "mine.py:sl1"
    assert data["cases"]["pred"][0] == 2.0**64


@pytest.mark.parametrize("args, says", [
    (["smooth_l1"], "give --exhaustive or --samples"),
    (["smooth_l1", "--exhaustive", "--dtype", "float64"], "needs --dtype float32"),
    (["giou_loss", "--exhaustive"], "--samples N --space boxes"),
    (["giou_loss", "--samples", "10", "--space", "logits"], "space 'logits' is for classification"),
    (["nope", "--samples", "10"], "unknown loss"),
    (["smooth_l1", "--exhaustive", "--bits", "1:x"], "--bits must be LO:HI"),
    (["smooth_l1", "--samples", "10", "--bits", "0:4"], "--bits applies to --exhaustive"),
    (["smooth_l1", "--exhaustive", "--param", "beta=-1"], "beta"),
    (["smooth_l1", "--exhaustive", "--impl", "no_such_module:f"], "cannot load"),
    (["yolo_decode", "--samples", "10"], "family"),
])
def test_cli_usage_errors_are_one_line(args, says, capsys):
    from refloss import cli

    assert cli.main(["sweep", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and "Traceback" not in err


def test_python_m_refloss_sweep_runs():
    res = _cli("mse", "--exhaustive", "--bits", f"{ONE}:{ONE + 2**12}", "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "4096 points" in res.stdout and "max ULP" in res.stdout


def test_torch_function_gradients_are_measured():
    """A PyTorch function's gradients come from autograd: torch's own smooth_l1_loss in float32
    on [0.5, 1.0078) (both branches, the kink at 1) is within half an ULP of the exact result,
    gradients included (torch takes the linear branch at |x| = beta, as refloss does)."""
    torch = pytest.importorskip("torch")

    def torch_smooth_l1(p, t):
        return torch.nn.functional.smooth_l1_loss(p, t, beta=1.0, reduction="none")

    r = sweep.run("smooth_l1", {"beta": 1.0}, exhaustive=True, bits=(0x3F000000, ONE + 2**16), chunk=2**23,
                  impl=torch_smooth_l1, workers=1)
    assert set(r.max_ulp) == {"value", "d_pred", "d_target"} and None not in r.max_ulp.values()
    assert r.max_ulp["value"] <= 0.5 and r.max_ulp["d_pred"] <= 0.5 and r.failures == 0


def test_a_float32_sweep_says_where_a_parameter_is_not_a_float32_number():
    """The float32 kernel computes with its parameters rounded to float32 (docs/accuracy.md); a float32 sweep
    measures it against the loss at the parameter as given, so the errors it reports at beta = 0.3 include
    beta's rounding (QFL at hard targets, logits near 39: 10.4 ULP; 5.29 at most at float32(0.3)).  The
    result says so, naming the float32 value to pass instead; a float32 number, or a float64 sweep, gets no note."""
    from refloss import sweep

    r = sweep.run("qfl_loss", {"beta": 0.3}, dtype="float32", samples=512, space="soft_logits", workers=1)
    notes = [ln for ln in str(r).splitlines() if ln.lstrip().startswith("note:")]
    assert len(notes) == 1 and "beta=0.3 is not a float32 number" in notes[0] and "0.30000001192092896" in notes[0]
    for params, dtype in (({"beta": 0.5}, "float32"), ({"beta": 0.3}, "float64")):
        r = sweep.run("qfl_loss", params, dtype=dtype, samples=512, space="soft_logits", workers=1)
        assert "note:" not in str(r), (params, dtype)


# ---------------------------------------------------------------- resuming only what the same code measured

def _scaled(k):
    """A Smooth L1 in NumPy scaled by k above |x| = 1e3 (a different k: a different function, one name)."""
    def sl1(pred, target):
        x = np.abs(pred - target)
        return np.where(x < 1, 0.5 * x * x, (x - 0.5) * np.where(x > 1e3, x.dtype.type(k), 1))
    return sl1


def test_a_sweep_of_another_function_of_the_same_name_is_not_resumed(tmp_path):
    """The checkpoint records the implementation's code, not only its name: a function changed since (the same
    qualified name, another closure value) is refused, not resumed with the old function's errors."""
    kw = dict(exhaustive=True, bits=(0x4B000000, 0x4B000000 + 2**12), chunk=2**11, workers=1, output=tmp_path / "r.json")
    bad, good = _scaled(1.001), _scaled(1.0)
    assert _fingerprint_name(bad) == _fingerprint_name(good)
    assert sweep.run("smooth_l1", impl=bad, **kw).failures == 2**12  # (2**23.., all over 1e3: 1.001 off)
    with pytest.raises(ValueError, match="another sweep.*impl_fingerprint"):
        sweep.run("smooth_l1", impl=good, **kw)
    assert sweep.run("smooth_l1", impl=good, resume=False, **kw).failures == 0


def _fingerprint_name(fn):
    return sweep._impl_name(fn)


def test_a_changed_file_function_is_not_resumed(tmp_path, monkeypatch):
    """--impl mine.py:f, the file edited between two runs (same function name): the second run is refused."""
    from refloss import cli

    monkeypatch.chdir(tmp_path)
    src = ("import numpy as np\n"
           "def sl1(p, t):\n"
           "    x = np.abs(p - t)\n"
           "    return np.where(x < 1, 0.5 * x * x, (x - 0.5) * np.where(x > 1e3, x.dtype.type({k}), 1))\n")
    (tmp_path / "mine_fp.py").write_text(src.format(k="1.001"))
    args = ["sweep", "smooth_l1", "--exhaustive", "--bits", "0x4b000000:0x4b001000", "--chunk", "2048",
            "--workers", "1", "-q", "--impl", "mine_fp.py:sl1", "-o", "out.json"]
    assert cli.main(args) == 1
    (tmp_path / "mine_fp.py").write_text(src.format(k="1.0"))
    assert cli.main(args) == 2  # refused: another sweep (the file changed)
    assert cli.main(args + ["--no-resume"]) == 0


def test_an_implementation_without_a_fingerprint_starts_over(tmp_path):
    """No fingerprint (state printed with a memory address): the chunks recorded are not trusted, all run again."""
    class Fn:
        def __init__(self):
            self.token = object()

        def __call__(self, pred, target):
            return np.abs(pred - target)

    import warnings

    kw = dict(exhaustive=True, bits=(ONE, ONE + 2**12), chunk=2**11, workers=1, output=tmp_path / "r.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (nothing to resume yet: nothing to say)
        sweep.run("l1", impl=Fn(), **kw)
    seen = []
    with pytest.warns(RuntimeWarning, match="starts over"):
        sweep.run("l1", impl=Fn(), progress=lambda d, t, m: seen.append(d), **kw)
    assert seen == [1, 2]


def test_the_fingerprint_is_the_same_in_every_process_and_sees_a_bound_objects_state(tmp_path):
    """A set literal in the function (``reduction not in {"none", "mean"}``: a frozenset constant) printed in an
    order PYTHONHASHSEED makes different in every process, so the fingerprint changed from run to run and no resume
    was possible; a bound method's object was hashed by its repr, which may leave its state out (torch's
    ``SmoothL1Loss()`` whatever beta is), so a changed parameter resumed the old results (a review, 2026-12-07)."""
    import subprocess
    import sys

    (tmp_path / "myimpl_fp.py").write_text(
        "import numpy as np\n"
        "def loss(x, y, reduction='none'):\n"
        "    if reduction not in {'none', 'mean', 'sum', 'batchmean', 'elementwise'}:\n"
        "        raise ValueError(reduction)\n"
        "    return np.abs(x - y)\n")
    code = ("import myimpl_fp; from refloss.sweep import _fingerprint; "
            "print(_fingerprint.implementation(myimpl_fp.loss))")
    prints = {subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
              for seed in (1, 2, 3)}
    assert len(prints) == 1 and prints.pop().strip() not in ("", "None")

    from refloss.sweep import _fingerprint

    class Scaled:
        def __init__(self, k):
            self.k = k

        def __repr__(self):  # (state left out, as torch's loss modules print)
            return "Scaled()"

        def loss(self, pred, target):
            return self.k * np.abs(pred - target)

    assert _fingerprint.implementation(Scaled(1.0).loss) != _fingerprint.implementation(Scaled(2.0).loss)
    assert _fingerprint.implementation(Scaled(1.0).loss) == _fingerprint.implementation(Scaled(1.0).loss)


def test_the_checkpoint_records_the_files_that_draw_and_measure_the_points(monkeypatch):
    """A change to the sampling spaces (or the measure) changes the recorded sources hash."""
    from pathlib import Path

    from refloss.sweep import _fingerprint

    before = _fingerprint.sources()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(self) + (b"#" if self.name == "_spaces.py" else b""))
    assert _fingerprint.sources() != before
    monkeypatch.setattr(Path, "read_bytes", lambda self: real(self) + (b"#" if self.name == "box_cases.py" else b""))
    assert _fingerprint.sources() != before


def test_a_float64_implementation_equal_to_the_kernel_is_measured_against_the_exact_result():
    """--dtype float64 --impl: the errors are against the double-double twin (and the oracle), not the float64
    kernel; a function that returns the kernel's own results is not 0 ULP everywhere (the kernel is 1 ULP off at
    some residuals), and its worst point's error is what mpmath gives there."""
    import mpmath

    import refloss as rl

    r = sweep.run("smooth_l1", dtype="float64", samples=4000, impl=lambda p, t: rl.smooth_l1(p, t), workers=1)
    assert r.max_ulp["value"] > 0 and r.oracle_points > 0
    e = r.worst[0]
    assert e["component"] == "value" and e["reference"] == "oracle"
    p, t = mpmath.mpf(e["inputs"]["pred"]), mpmath.mpf(e["inputs"]["target"])
    with mpmath.workdps(50):
        x = abs(p - t)
        exact = x - mpmath.mpf(0.5) if x >= 1 else x * x / 2
        ulp = np.spacing(abs(float(exact)))
        assert abs(abs(float((mpmath.mpf(e["got"]) - exact) / ulp)) - e["ulp"]) < 1e-6


# ---------------------------------------------------------------- the API checks its arguments

@pytest.mark.parametrize("kw, error, says", [
    (dict(exhaustive=True, bits=(0x3F000000, 0x3F000010), chunk=-5), ValueError, "chunk: must be at least 1"),
    (dict(samples=10, chunk=-5), ValueError, "chunk: must be at least 1"),
    (dict(samples=10, chunk=2.5), ValueError, "chunk: must be a whole number"),
    (dict(samples=1000.5), ValueError, "samples: must be a whole number"),
    (dict(samples="10"), TypeError, "samples: must be a whole number"),
    (dict(samples=10, seed=1.7), ValueError, "seed: must be a whole number"),
    (dict(samples=10, seed=-3), ValueError, "seed: must be at least 0"),
    (dict(exhaustive=True, bits=(0x3F000000, 0x3F000010), target=float("nan")), ValueError, "target: nan is not a finite float32"),
    (dict(exhaustive=True, bits=(0x3F000000, 0x3F000010), target=1e39), ValueError, "not a finite float32"),
    (dict(exhaustive=True, bits=(0x7F800000, 0x7F800010)), ValueError, "no finite float32"),
    (dict(samples=10, top_k=-1), ValueError, "top_k: must be at least 0"),
    (dict(samples=10, framework="torch"), ValueError, "framework='torch' applies to impl"),
    (dict(samples=10, impl_params={"beta": 1.0}), ValueError, "impl_params"),
    (dict(samples=10, workers=0), ValueError, "workers: must be at least 1"),
])
def test_run_checks_its_arguments(kw, error, says):
    with pytest.raises(error, match=says):
        sweep.run("smooth_l1", **{"workers": 1, **kw})


def test_run_checks_an_exhaustive_target_against_the_loss():
    with pytest.raises(ValueError, match=r"target 5.0: targets: must lie in \[0, 1\]"):
        sweep.run("bce_with_logits", exhaustive=True, bits=(0x3F000000, 0x3F000010), target=5.0, workers=1)


def test_run_takes_a_whole_float_as_a_count():
    assert sweep.run("l1", samples=1e2, chunk=50.0, workers=1, oracle=False).points == 100


# ---------------------------------------------------------------- the checkpoint file, read with care

_KW8 = dict(exhaustive=True, bits=(ONE, ONE + 2**12), chunk=2**9, workers=1)  # 8 chunks


def _stop_after(n):
    def progress(done, total, running_max):
        if done == n:
            raise _Stop
    return progress


def test_checkpoint_lines_that_are_not_chunk_summaries_are_run_again(tmp_path):
    out = tmp_path / "r.json"
    whole = sweep.run("smooth_l1", **_KW8)
    with pytest.raises(_Stop):
        sweep.run("smooth_l1", output=out, progress=_stop_after(3), **_KW8)
    side = tmp_path / "r.json.chunks.jsonl"
    lines = side.read_text().splitlines()
    ids = [json.loads(ln)["id"] for ln in lines[1:]]
    # the third chunk's line replaced by its bare id, and lines that are no summaries at all
    side.write_text("\n".join(lines[:3] + [json.dumps({"id": ids[2]}), '{"x": 1}', "[1, 2]", '"text"']) + "\n")
    seen = []
    resumed = sweep.run("smooth_l1", output=out, progress=lambda d, t, m: seen.append(d), **_KW8)
    assert seen == [3, 4, 5, 6, 7, 8]  # the bare id's chunk ran again
    _same(whole, resumed)


def test_a_line_cut_short_is_cut_off_before_the_next_chunk_is_appended(tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(_Stop):
        sweep.run("smooth_l1", output=out, progress=_stop_after(3), **_KW8)
    side = tmp_path / "r.json.chunks.jsonl"
    with open(side, "a") as f:
        f.write('{"id": "bits:3f8')  # killed mid-line: no newline
    with pytest.raises(_Stop):
        sweep.run("smooth_l1", output=out, progress=_stop_after(4), **_KW8)
    lines = side.read_text().splitlines()
    assert len(lines) == 1 + 4 and all(sweep._is_summary(json.loads(ln)) for ln in lines[1:])
    seen = []
    sweep.run("smooth_l1", output=out, progress=lambda d, t, m: seen.append(d), **_KW8)
    assert seen == [5, 6, 7, 8]


def test_an_unreadable_checkpoint_header_is_called_unreadable(tmp_path):
    out = tmp_path / "r.json"
    (tmp_path / "r.json.chunks.jsonl").write_text('{"sweep": {"schema": "refl\n')
    with pytest.raises(ValueError, match=r"chunks.jsonl: unreadable \(its first line"):
        sweep.run("smooth_l1", output=out, **_KW8)
    assert sweep.run("smooth_l1", output=out, resume=False, **_KW8).points == 2**12


def test_a_checkpoint_that_is_a_folder_is_refused_in_one_line(tmp_path, capsys):
    from refloss import cli

    (tmp_path / "r.json.chunks.jsonl").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        sweep.run("smooth_l1", output=tmp_path / "r.json", **_KW8)
    assert cli.main(["sweep", "l1", "--exhaustive", "--bits", f"{ONE}:{ONE + 2**10}", "--workers", "1", "-q",
                     "-o", str(tmp_path / "r.json")]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_output_to_a_device_writes_no_checkpoint_beside_it():
    from pathlib import Path

    r = sweep.run("l1", output="/dev/null", **_KW8)
    assert r.points == 2**12 and not Path("/dev/null.chunks.jsonl").exists()


def test_a_default_parameter_written_out_or_as_an_int_is_the_same_sweep(tmp_path):
    """beta=1 (smooth_l1's default, as an int) added to a sweep that ran without it resumes it."""
    out = tmp_path / "r.json"
    with pytest.raises(_Stop):
        sweep.run("smooth_l1", output=out, progress=_stop_after(3), **_KW8)
    for params in ({"beta": 1}, {"beta": 1.0}, {"beta": np.float64(1.0)}):
        seen = []
        sweep.run("smooth_l1", params, output=out, progress=lambda d, t, m: seen.append(d), **_KW8)
        assert not seen or seen[0] == 4, (params, seen)  # resumed: the chunks recorded did not run again
    with pytest.raises(ValueError, match="another sweep.*differs in: params"):
        sweep.run("smooth_l1", {"beta": 0.5}, output=out, **_KW8)


def test_numpy_parameters_are_written_into_the_header_as_python_values():
    """np.True_ (ciou_loss's alpha_grad) and an array image_size (mpdiou_loss) stayed NumPy objects, and writing the
    checkpoint header failed ('Object of type bool is not JSON serializable'; a review, 2026-12-07)."""
    import json

    a = sweep._normal_params("ciou_loss", {"alpha_grad": np.True_})
    b = sweep._normal_params("mpdiou_loss", {"image_size": np.array([640, 480])})
    assert a["alpha_grad"] is True and b["image_size"] == (640.0, 480.0)
    assert b == sweep._normal_params("mpdiou_loss", {"image_size": (640, 480.0)})
    json.dumps([a, b])


def test_the_float32_parameter_note_suggests_only_a_value_the_loss_takes():
    """alpha=1e-300 rounds to float32 0.0, which alpha_iou_loss refuses (0 < alpha): the note names the smallest
    positive float32 (2**-149) instead."""
    r = sweep.run("alpha_iou_loss", {"alpha": 1e-300}, samples=16, workers=1, oracle=False)
    notes = [ln for ln in str(r).splitlines() if ln.lstrip().startswith("note: alpha")]
    assert len(notes) == 1 and "alpha=0.0 measures" not in notes[0]
    assert f"--param alpha={2.0**-149!r} measures the kernel alone" in notes[0]


def test_a_box_sweep_says_how_many_points_it_drew_for_the_samples_asked():
    """The boxes space draws each chunk's share in ten classes, each at least 4 pairs, dropping convention pairs:
    samples=1 gives at most 40 points, and the summary says how many for how many asked."""
    r = sweep.run("giou_loss", samples=1, workers=1, oracle=False)
    assert 1 < r.points <= 40 and r.space["samples"] == 1 and r.to_json()["points"] == r.points
    assert f"note: {r.points} points for samples=1" in str(r)
    assert "note:" not in str(sweep.run("l1", samples=10, workers=1, oracle=False))


def test_a_worker_ends_when_its_parent_is_gone():
    """A pool worker watches its parent: told that its parent is another process (as after the sweep's process
    was killed, when it is re-parented), it ends within a second or two instead of waiting for ever."""
    code = ("import time; from refloss.sweep import _worker_init; _worker_init(parent=-1, every=0.1); "
            "time.sleep(30); print('still here')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=25)
    assert res.returncode == 1 and "still here" not in res.stdout and "Traceback" not in res.stderr, res.stderr
