"""512-bit vectors on AVX-512 CPUs (refloss/_numba_options.py) change the machine code, not one result: the same
outputs bit for bit with REFLOSS_VECTOR_WIDTH=256 and =512 (benchmarks/same_outputs.py), and the setting is made
only where it applies."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

from refloss import _numba_options as options  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _avx512() -> bool:
    from numba.core import codegen

    return "+avx512f" in codegen.get_host_cpu_features().split(",")


@pytest.mark.skipif(not _avx512(), reason="no AVX-512 on this CPU: both settings compile the same code")
def test_512_bit_vectors_change_no_result():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "same_outputs.py"),
                           "--a", "REFLOSS_VECTOR_WIDTH=256", "--b", "REFLOSS_VECTOR_WIDTH=512",
                           "--loss", "giou_loss,ciou_loss,smooth_l1,bce_with_logits,softmax_cross_entropy",
                           "--n", "2000"], capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all the same" in done.stdout and done.stdout.count(" same") == 11


def test_wide_features_where_they_apply(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", None)
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(options, "VECTOR_WIDTH", "512")
    wide = options._wide_features()
    assert (wide is not None) == _avx512()
    if wide is not None:
        assert wide.endswith(",-prefer-256-bit") and "+avx512f" in wide.split(",")
    monkeypatch.setattr(options, "VECTOR_WIDTH", "256")
    assert options._wide_features() is None
    for width in ("1024", "", "avx512"):  # LLVM's choice kept, and a warning says why
        monkeypatch.setattr(options, "VECTOR_WIDTH", width)
        with pytest.warns(RuntimeWarning, match="REFLOSS_VECTOR_WIDTH"):
            assert options._wide_features() is None
    monkeypatch.setattr(options, "VECTOR_WIDTH", "512")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2")  # the user's NUMBA_CPU_FEATURES stands
    assert options._wide_features() is None
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(config, "CPU_NAME", "generic")  # and their NUMBA_CPU_NAME
    assert options._wide_features() is None


def test_auto_keeps_llvms_choice_on_the_cores_512_bit_code_slows(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", None)
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    monkeypatch.setattr(options, "VECTOR_WIDTH", "auto")
    monkeypatch.setattr(options._llvm, "get_host_cpu_name", lambda: "skylake-avx512")
    assert options._wide_features() is None
    monkeypatch.setattr(options, "VECTOR_WIDTH", "512")
    assert (options._wide_features() is not None) == _avx512()


def test_the_setting_holds_in_the_tests_and_the_benchmarks_and_says_where_it_came_too_late():
    """Numba fixes its CPU features at the first @njit of a process: the test workers (tests/conftest.py) and the
    benchmarks' baselines (benchmarks/_baselines.py) import refloss's settings first, and the benchmark's header
    says when they did not hold (it said "512-bit vectors (refloss)" over kernels compiled with LLVM's choice)."""
    assert options.features_in_effect() == (options.WIDE_FEATURES or options.features_in_effect())
    code = ("import sys; sys.path.insert(0, 'benchmarks'); {first}\n"
            "import refloss._numba_options as o\n"
            "print(o.features_in_effect() == (o.WIDE_FEATURES or o.features_in_effect()), o.vectors())")
    baselines = subprocess.run([sys.executable, "-c", code.format(first="import _baselines")], capture_output=True,
                               text=True, cwd=REPO, timeout=300)
    assert baselines.stdout.startswith("True"), baselines.stdout + baselines.stderr
    late = subprocess.run([sys.executable, "-c", code.format(first="from numba import njit; njit(lambda x: x)")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    if options.WIDE_FEATURES is not None:
        assert late.stdout.startswith("False") and "came after Numba's first function" in late.stdout, late.stderr
    else:
        assert late.stdout.startswith("True") and "LLVM's vector width" in late.stdout, late.stderr


@pytest.mark.parametrize("first", ["import refloss\nfrom numba import njit\nnjit(lambda x: x)",
                                   "import numba\nimport refloss\nnumba.njit(lambda x: x)",
                                   "import numba.core.config\nimport refloss\nfrom numba import njit\nnjit(lambda x: x)"])
def test_the_setting_holds_for_the_users_functions_defined_after_import_refloss(first):
    """A script that imports numba and refloss and then defines its own @njit functions, before refloss's first
    kernel: refloss's kernels compiled at LLVM's 256-bit choice (the setting was made when the first kernel was
    loaded, after Numba had made its codegen).  `import refloss` now sets it, in Numba's configuration module or
    when that is imported (refloss/_cpu_features.py), without importing Numba itself, and its finder is gone once
    used."""
    code = (f"{first}\nimport sys\nimport refloss._numba_options as o\nfrom refloss import _cpu_features as c\n"
            "print(o.features_in_effect() == (o.WIDE_FEATURES or o.features_in_effect()), o.vectors(),\n"
            "      any(isinstance(f, c._Finder) for f in sys.meta_path), c.APPLIED == o.WIDE_FEATURES)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.stdout.startswith("True") and done.stdout.rstrip().endswith("False True"), done.stdout + done.stderr
    if options.WIDE_FEATURES is not None:
        assert "512-bit vectors (refloss)" in done.stdout


def test_import_refloss_leaves_a_users_numba_setting_and_the_256_bit_choice_alone():
    code = ("import refloss\nfrom numba import njit\nnjit(lambda x: x)\nimport refloss._numba_options as o\n"
            "print(o.WIDE_FEATURES, o.features_in_effect())")
    import os

    for env, expect in (({"NUMBA_CPU_FEATURES": "+avx2"}, "None +avx2"), ({"REFLOSS_VECTOR_WIDTH": "256"}, "None"),
                        ({"NUMBA_CPU_NAME": "generic"}, "None"), ({"NUMBA_ENABLE_AVX": "0"}, "None")):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                              env={**os.environ, **env})
        assert done.stdout.startswith(expect) and "-prefer-256-bit" not in done.stdout, done.stdout + done.stderr



def test_the_import_hook_sets_numbas_configuration_on_any_cpu():
    """The finder and _apply run whatever the CPU (on one without AVX-512 the tests above compare None with None):
    with the host's features replaced by a stand-in, Numba's configuration holds it once numba is imported, and the
    finder is gone; the configuration module is Numba's own (its source readable through the wrapped loader)."""
    code = ("import sys, inspect\nimport refloss\nfrom refloss import _cpu_features as c\n"
            "c.host_wide = lambda config: '+stand-in'\n"
            "assert 'numba' not in sys.modules and any(isinstance(f, c._Finder) for f in sys.meta_path)\n"
            "import numba.core.config as config\n"
            "print(config.CPU_FEATURES, c.APPLIED, any(isinstance(f, c._Finder) for f in sys.meta_path),\n"
            "      'CPU_FEATURES' in inspect.getsource(config))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.stdout.split() == ["+stand-in", "+stand-in", "False", "True"], done.stdout + done.stderr


def test_wide_features_from_a_features_string():
    from refloss import _cpu_features as c

    assert c.wide("+avx2,+avx512f,+fma", "znver4", "auto") == "+avx2,+avx512f,+fma,-prefer-256-bit"
    assert c.wide("+avx2,-avx512f", "znver4", "auto") is None
    assert c.wide("+avx512f", "skylake-avx512", "auto") is None
    assert c.wide("+avx512f", "skylake-avx512", "512") == "+avx512f,-prefer-256-bit"
    assert c.wide("+avx512f", "znver4", "256") is None and c.wide("+avx512f", "znver4", "1024") is None
