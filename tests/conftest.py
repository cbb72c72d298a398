"""Test configuration.

CUDA kernels run under Numba's simulator (NUMBA_ENABLE_CUDASIM=1) unless
REFLOSS_TEST_REAL_GPU=1 is set on a machine with a GPU.  The variable must be set
before numba is first imported, hence here.

Hypothesis profiles (tests/test_properties.py, docs/testing.md): "ci" (the default: 1,000
examples per property, derandomized, so every run draws the same examples), "full" (2,000
with a fresh random seed each run: new examples) and "long"
(100,000 examples, a fresh random seed each run), chosen with HYPOTHESIS_PROFILE=long or
``pytest --hypothesis-profile=long``; "quick" (50 examples) for editing the tests.
"""
import os

if os.environ.get("REFLOSS_TEST_REAL_GPU") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

# refloss's Numba settings (refloss/_numba_options.py: 512-bit vectors where they pay) before any test module's
# @njit: Numba fixes its CPU features when its codegen is made, at the first decorator.  A run of some files
# (`pytest tests/test_benchmarks.py tests/test_float32.py`) defined the benchmarks' baselines first and compiled
# every later kernel with LLVM's 256-bit preference, under other keys of Numba's disk cache (449 s against 3 s warm),
# and tests that read machine code read another one than users get; a whole run was safe only because
# tests/test_compile_cost.py, collected early, imports these settings at module level
import refloss._numba_options  # noqa: E402,F401

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = dict(
    deadline=None,  # Numba compiles a kernel on its first call: seconds, not a slow example
    database=None,  # nothing written to .hypothesis/; a failure prints its reproduction blob
    print_blob=True,
    # each example draws whole arrays and evaluates batches of points: slower than Hypothesis expects
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# "ci" runs 1,000 examples a property (issue 12 ran 2,000; with issue 15's losses, 41 of them, the
# whole CI run took 37 minutes on 2 cores, over its 30-minute budget); "full" keeps 2,000, fresh
# examples each run (docs/testing.md has the measured times)
settings.register_profile("ci", max_examples=1_000, derandomize=True, **_COMMON)
settings.register_profile("full", max_examples=2_000, derandomize=False, **_COMMON)
settings.register_profile("long", max_examples=100_000, derandomize=False, **_COMMON)
settings.register_profile("quick", max_examples=50, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--update-generated", action="store_true",
                     help="rewrite the committed generated files instead of failing on drift")


@pytest.fixture
def update_generated(request):
    return request.config.getoption("--update-generated")


# the longest tests first: pytest-xdist hands tests out in collection order, and the derivation drift test (about
# 7 minutes of one worker) collected mid-run finished last, with the other worker idle for minutes of it
_LONG_FIRST = ("tests/test_generated.py::", "tests/test_index.py::test_a_throwaway_loss")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(_LONG_FIRST))  # (stable: the rest keep their order)
