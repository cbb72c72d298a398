"""Golden vectors: written, read back bit for bit, and right (kernels at the stored inputs, and
a sample against the 50-digit oracle)."""
import json

import numpy as np
import pytest

import refloss
import refloss.vectors as rv
from refloss import cli
from refloss.oracle import oracle, round_to, ulp_error

CASES = [("smooth_l1", {"beta": 1 / 9}), ("balanced_l1", {"beta": 2.0}), ("giou_loss", {"eps": 1e-7}),
         ("ciou_loss", {"alpha_grad": False}), ("sigmoid_focal_loss", {}), ("yolov1_box_loss", {})]


@pytest.mark.parametrize("fmt", rv.FORMATS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss,params", CASES, ids=[c[0] for c in CASES])
def test_round_trip_and_kernels(tmp_path, fmt, dtype, loss, params):
    data = rv.golden_vectors(loss, dtype=dtype, **params)
    back = rv.read_vectors(rv.write_vectors(data, tmp_path / f"v.{fmt}"))
    assert back["meta"] == data["meta"] and back["case"] == data["case"]
    np.testing.assert_array_equal(back["convention"], data["convention"])
    for name in data["inputs"]:
        np.testing.assert_array_equal(back["inputs"][name], data["inputs"][name])
        np.testing.assert_array_equal(back["grad"][name], data["grad"][name])
        if dtype == "float32":  # inputs a float32 port can hold exactly
            np.testing.assert_array_equal(back["inputs"][name].astype(np.float32), back["inputs"][name])
    # the stored numbers are refloss's float64 kernels at the stored inputs
    value, grads = getattr(refloss, loss).value_and_grad(*back["inputs"].values(), **params)
    np.testing.assert_array_equal(back["value"], value)
    for g, name in zip(grads, back["grad"]):
        np.testing.assert_array_equal(back["grad"][name], g)
    assert back["meta"]["points"] == len(back["value"]) and back["meta"]["params"] == {
        **{p.name: p.default for p in getattr(refloss, loss).params}, **params}


def test_values_against_the_oracle():
    data = rv.golden_vectors("balanced_l1", beta=1 / 9, cases="standard")
    p, t = data["inputs"]["pred"], data["inputs"]["target"]
    for i in range(0, len(p), 7):
        v, dp, _ = oracle("balanced_l1")(p[i], t[i], 1 / 9, 0.5, 1.5)
        assert ulp_error(data["value"][i], v, np.float64) <= 4
        assert ulp_error(data["grad"]["pred"][i], dp, np.float64) <= 4
    data = rv.golden_vectors("giou_loss", cases="standard")
    for i in range(0, data["meta"]["points"], 9):
        v, gp, gt = oracle("giou_loss")(data["inputs"]["pred"][i], data["inputs"]["target"][i], 0.0)
        assert abs(data["value"][i] - float(round_to(v, np.float64))) <= 1e-14
        big = max(abs(float(x)) for x in list(gp) + list(gt))
        assert max(abs(data["grad"]["pred"][i][k] - float(gp[k])) for k in range(4)) <= 1e-13 * big


def test_convention_points_and_cases():
    edge = rv.golden_vectors("smooth_l1", beta=0.5, cases="edge")
    x = np.abs(edge["inputs"]["pred"] - edge["inputs"]["target"])
    assert edge["convention"].all() and set(np.unique(x)) <= {0.0, 0.5}
    std = rv.golden_vectors("giou_loss", cases="standard")
    assert not std["convention"].any() and "identical" not in std["case"]
    everything = rv.golden_vectors("giou_loss", cases="all")
    assert {"identical", "edge_touching", "generic"} <= set(everything["case"])
    assert everything["convention"][[c == "identical" for c in everything["case"]]].all()


def test_non_finite_values_survive_json_and_csv(tmp_path):
    data = rv.golden_vectors("l1", cases="standard")
    data["value"] = data["value"].copy()
    data["value"][:3] = [np.nan, np.inf, -np.inf]
    for fmt in ("json", "csv"):
        back = rv.read_vectors(rv.write_vectors(data, tmp_path / f"v.{fmt}"))
        assert np.isnan(back["value"][0]) and back["value"][1] == np.inf and back["value"][2] == -np.inf
    doc = json.loads((tmp_path / "v.json").read_text())  # strict JSON: no NaN literals
    assert doc["value"][:3] == ["nan", "inf", "-inf"]


def test_cli_writes_and_rejects(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert cli.main(["vectors", "balanced_l1", "--param", "beta=1/9", "-o", str(out)]) == 0
    data = rv.read_vectors(out)
    assert data["meta"]["params"]["beta"] == 1 / 9 and data["meta"]["loss"] == "balanced_l1"
    assert cli.main(["vectors", "ciou_loss", "--param", "alpha_grad=false", "--dtype", "float32",
                     "--format", "json", "-o", str(tmp_path / "c.txt")]) == 0
    data = rv.read_vectors(tmp_path / "c.txt", "json")
    assert data["meta"]["params"]["alpha_grad"] is False and data["meta"]["dtype"] == "float32"
    assert cli.main(["vectors", "nope", "-o", str(out)]) == 2
    assert cli.main(["vectors", "smooth_l1", "--param", "beta=-1", "-o", str(out)]) == 2
    assert "beta: must satisfy" in capsys.readouterr().err
    assert cli.main(["vectors", "smooth_l1", "--param", "beta", "-o", str(out)]) == 2  # one line, no SystemExit
    assert "--param must be NAME=VALUE, got 'beta'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="format"):
        rv.write_vectors(data, tmp_path / "x.txt")
    (tmp_path / "bad.json").write_text(json.dumps({"meta": {"schema": "other"}, "case": [], "convention": [],
                                                   "inputs": {}, "value": [], "grad": {}}))
    with pytest.raises(ValueError, match="not refloss golden vectors"):
        rv.read_vectors(tmp_path / "bad.json")


def test_docstring_example_runs():
    import doctest

    assert doctest.testmod(rv).failed == 0
