"""`import refloss` is light: no sympy/scipy/mpmath/numba(.cuda), nothing compiled."""
import json
import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, json, refloss\n"
        "mods = ['sympy', 'scipy', 'mpmath', 'numba', 'numba.cuda', 'torch']\n"
        "print(json.dumps({m: m in sys.modules for m in mods}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not any(loaded.values()), f"import refloss pulled in {[m for m, v in loaded.items() if v]}"


def test_first_use_imports_numba_but_not_cuda():
    code = (
        "import sys, json, numpy as np, refloss\n"
        "refloss.smooth_l1(np.ones(3), np.zeros(3))\n"
        "print(json.dumps({m: m in sys.modules for m in ['numba', 'numba.cuda', 'mpmath', 'sympy']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert loaded == {"numba": True, "numba.cuda": False, "mpmath": False, "sympy": False}
