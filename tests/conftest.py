"""Test configuration.

CUDA kernels run under Numba's simulator (NUMBA_ENABLE_CUDASIM=1) unless
REFLOSS_TEST_REAL_GPU=1 is set on a machine with a GPU.  The variable must be set
before numba is first imported, hence here.
"""
import os

if os.environ.get("REFLOSS_TEST_REAL_GPU") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--update-generated", action="store_true",
                     help="rewrite the committed generated files instead of failing on drift")


@pytest.fixture
def update_generated(request):
    return request.config.getoption("--update-generated")
