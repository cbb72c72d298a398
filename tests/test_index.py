"""One source of truth per loss: every derivation is in the generated index, every loss of the
index has its hand-written row (oracle, parameter sets, bar) and stored references, and reaches
every surface (refloss.<name>, refloss verify and --loss, refloss vectors, check_loss) with no
other edit: a throwaway loss added in a temporary copy shows it."""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import derivations
import refloss
from refloss import _stored, _verify, cli, testing, vectors
from refloss._generated._index import LOSSES
from refloss._info import FAMILIES
from refloss._reference import REFERENCES

REPO = Path(__file__).resolve().parent.parent


def test_every_derivation_is_in_the_index_and_the_table():
    assert sorted(derivations.names()) == sorted(LOSSES)
    assert sorted(REFERENCES) == sorted(LOSSES), "a loss without a row in refloss/_reference.py, or the reverse"
    for name, info in LOSSES.items():
        assert info.family in FAMILIES and info.derivation == f"derivations/{name}.py"


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_row_has_an_oracle_parameter_sets_a_bar_and_stored_values(name):
    ref = REFERENCES[name]
    assert ref.param_sets and ref.bar.value > 0 and ref.bar.grad > 0
    module, _, fn = ref.oracle.rpartition(".")
    assert (REPO / "refloss" / "oracle" / f"{module}.py").exists()
    assert f"def {fn}(" in (REPO / "refloss" / "oracle" / f"{module}.py").read_text()
    for index in range(len(ref.param_sets)):
        for dtype in _stored.DTYPES:
            row = _stored.stored_row(name, index, dtype)
            assert len(row["hi"]) == len(row["group"]) > 0


def test_verify_and_its_loss_option_know_every_loss(capsys):
    from refloss import _verify_detection, _verify_retinanet_ssd

    assert list(_verify.names()) == list(LOSSES)
    assert cli.main(["verify", "--loss", "no_such_loss"]) == 2
    wholes = [*_verify_detection.names(), *_verify_retinanet_ssd.names()]  # the whole detector losses' rows
    assert wholes == ["yolov1_loss", "yolov2_loss", "yolov3_loss", "yolov4_loss", "retinanet_loss", "ssd_loss"]
    assert capsys.readouterr().err.strip().split("known: ")[1].split(", ") == list(LOSSES) + wholes


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_reaches_every_surface(name):
    info = LOSSES[name]
    if info.kind == "coding":  # yolo_decode: its own API (refloss.yolo_decode), not refloss.ALL_LOSSES
        assert name not in refloss.ALL_LOSSES
        fn = getattr(refloss, name)
    else:
        fn = getattr(refloss, name)
        assert name in refloss.ALL_LOSSES and fn.info is info
    # the first parameter set of the reference table (a required parameter, MPDIoU's image_size, has no default)
    kw = dict(REFERENCES[name].param_sets[0])
    data = vectors.golden_vectors(name, n_random=8, **kw)
    assert data["meta"]["loss"] == name and data["meta"]["points"] > 0
    # check_loss runs on the loss's battery (its gradient conventions are not all true derivatives:
    # finite differences of the kernel's own values are not a fair check here, values are)
    report = testing.check_loss(lambda *a: fn(*a, **kw), name, framework="numpy", grad=False, cases="all", **kw)
    assert report.ok and report.points > 0, str(report)
    wrong = testing.check_loss(lambda *a: fn(*a, **kw) * (1 + 1e-6), name, framework="numpy", grad=False, **kw)
    assert not wrong.ok


HAND_WRITTEN = [p for p in (REPO / "refloss").glob("*.py") if p.name not in ("_reference.py",)]
# names used on purpose: the hand-written API of the coding family (and its export), the IoU the
# YOLOv3 ignore rule is defined by
ALLOWED = {("_yolo.py", "yolo_decode"), ("__init__.py", "yolo_decode"), ("_yolo.py", "iou")}
# the whole detector losses (issue 14) and their verify rows are compositions of named losses: RetinaNet
# *is* sigmoid_focal_loss plus l1 (or giou, ...); naming its parts is its definition, not a switch
COMPOSITIONS = {"_retinanet_ssd.py", "_yolo_losses.py", "_verify_retinanet_ssd.py", "_verify_detection.py"}


@pytest.mark.parametrize("path", HAND_WRITTEN, ids=lambda p: p.name)
def test_no_module_switches_on_a_loss_name(path):
    strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    if path.name in COMPOSITIONS:
        return
    named = sorted((path.name, s) for s in strings & set(LOSSES) if (path.name, s) not in ALLOWED)
    assert not named, f"{path.name} names losses {named}: read refloss/_generated/_index.py instead"


THROWAWAY_DERIVATION = '''
"""A throwaway element-wise loss for tests/test_index.py: L = lam a^2 / 2 (a < 1), lam (a - 1/2)."""
import sympy as sp

from refloss._derive.core import LossSpec, Param, Plot, Step, prove_equal
from refloss._derive.elementwise import a, kernel

NAME = "throwaway_l1"
lam = sp.Symbol("lam", positive=True)


def derive() -> LossSpec:
    checks = []
    prove_equal(sp.diff(lam * a**2 / 2, a).subs(a, 1), sp.diff(lam * (a - sp.Rational(1, 2)), a), "C^1 at a = 1", checks)
    program = kernel([(a < 1, lam * a * a / 2, lam * a, "quadratic"), (None, lam * (a - sp.Rational(1, 2)), lam, "linear")],
                     args=(lam,))
    return LossSpec(name=NAME, title="Throwaway loss", formula="L = lam a^2/2 (a < 1), lam (a - 1/2)", references=[],
                    params=[Param("lam", lam, 2.0, "scale", lower=sp.Integer(0), lower_closed=False)], constants=[],
                    kernels={p: program for p in ("f64", "f32")}, steps=[Step("The loss.", "L", lam * a**2 / 2)],
                    plots=[Plot("throwaway", [("lam = 2", {"lam": 2.0})])], checks=checks, family="elementwise")
'''

THROWAWAY_BOX_DERIVATION = '''
"""A throwaway box loss for tests/test_index.py: L = 1 - IoU^2."""
from . import _boxes as B
from .iou_loss import EPS

NAME = "throwaway_box_loss"


def derive():
    checks = []
    kernel = B.box_kernel([(None, 1 - B.iou**2, 1 - B.iou**2, "")], args=(B.eps,), checks=checks)
    return B.box_spec(NAME, "Throwaway box loss", "L = 1 - IoU^2", [], [EPS], {p: kernel for p in ("f64", "f32")},
                      [], [B.slide_plot("Throwaway")], "", "", checks)
'''

THROWAWAY_ORACLES = {
    "elementwise.py": '''

def throwaway_l1(pred, target, lam) -> Triple:
    """The throwaway loss of tests/test_index.py, written out."""
    with mp.workdps(DPS):
        lam = _to_mpf(lam)
        x = mp.fsub(_to_mpf(pred), _to_mpf(target), exact=True)
        a = abs(x)
        value, slope = (lam * a * a / 2, lam * a) if a < 1 else (lam * (a - mp.mpf(0.5)), lam)
        return value, slope * mp.sign(x), -slope * mp.sign(x)
''',
    "boxes.py": '''

def throwaway_box_loss(pred, target, eps=0.0) -> Result:
    """1 - IoU^2 (tests/test_index.py)."""
    return _geometry_run(pred, target, eps, lambda g: 1 - g.iou * g.iou)
''',
}

THROWAWAY_ROWS = '''    "throwaway_l1": Reference("elementwise.throwaway_l1", ({"lam": 2.0}, {"lam": 0.5}), ULP4),
    "throwaway_box_loss": Reference("boxes.throwaway_box_loss", ({},), BOX),
'''


def _copy(tmp: Path) -> Path:
    root = tmp / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc")
    for d in ("derivations", "refloss"):
        shutil.copytree(REPO / d, root / d, ignore=ignore)
    return root


def test_a_throwaway_loss_reaches_every_surface_with_no_other_edit(tmp_path):
    """The documented steps of adding a loss, and nothing else: its derivation file, its oracle
    entry (the function and the table row), then the two generating commands."""
    root = _copy(tmp_path)
    (root / "derivations" / "throwaway_l1.py").write_text(THROWAWAY_DERIVATION)
    (root / "derivations" / "throwaway_box_loss.py").write_text(THROWAWAY_BOX_DERIVATION)
    for module, code in THROWAWAY_ORACLES.items():
        with open(root / "refloss" / "oracle" / module, "a") as f:
            f.write(code)
    table = (root / "refloss" / "_reference.py").read_text()
    table = table.rstrip().removesuffix("}") + THROWAWAY_ROWS + "}\n"
    (root / "refloss" / "_reference.py").write_text(table)
    env = {**os.environ, "PYTHONPATH": str(root), "REFLOSS_NUMBA_CACHE": "0"}

    def run(*args, check=True):
        out = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True)
        assert not check or out.returncode == 0, out.stdout + out.stderr
        return out

    run("-m", "derivations", "--only", "throwaway_l1", "throwaway_box_loss")
    run("-m", "refloss._stored", "--only", "throwaway_l1", "throwaway_box_loss")
    assert (root / "docs" / "derivations" / "throwaway_l1.md").exists()
    assert "[throwaway_box_loss](throwaway_box_loss.md)" in (root / "docs" / "derivations" / "README.md").read_text()
    out = run("-m", "refloss.cli", "verify", "--loss", "throwaway_l1", "--loss", "throwaway_box_loss", "--device", "cpu", "--dtype",
              "float64", "-q")
    rows = [line for line in out.stdout.splitlines() if line.startswith("throwaway")]
    assert len(rows) == 3 and all(r.endswith("pass") for r in rows), out.stdout
    run("-m", "refloss.cli", "vectors", "throwaway_l1", "--param", "lam=0.5", "-o", str(tmp_path / "v.json"))
    code = textwrap.dedent('''
        import numpy as np, refloss
        from refloss import _verify
        from refloss.testing import check_loss
        assert "throwaway_l1" in refloss.ELEMENTWISE_LOSSES and "throwaway_box_loss" in refloss.BOX_LOSSES
        assert {"throwaway_l1", "throwaway_box_loss"} <= set(_verify.names())
        good = lambda p, t: np.where(np.abs(p - t) < 1, 0.5 * (p - t)**2, np.abs(p - t) - 0.5)
        assert check_loss(good, "throwaway_l1", lam=1.0).ok
        bad = lambda p, t: np.where(np.abs(p - t) < 1, 0.5 * (p - t)**2, np.abs(p - t) - 0.4)
        assert not check_loss(bad, "throwaway_l1", lam=1.0).ok
        iou = refloss.iou
        assert check_loss(lambda p, t: 1 - iou(p, t)**2, "throwaway_box_loss").ok
        print("ok")
    ''')
    assert run("-c", code).stdout.strip() == "ok"
