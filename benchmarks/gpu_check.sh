#!/usr/bin/env bash
# The device checks in one run, for a session that is lent a GPU (docs/development.md,
# "Checking on a GPU"): `refloss verify --device cuda` (every CUDA kernel against the
# oracle), the CUDA tests on the real device, and benchmarks/gpu.py.  From the repo root:
#
#     bash benchmarks/gpu_check.sh          # writes verify.txt, pytest.txt, gpu.txt to $OUT (or .)
#
# numba-cuda 0.30 calls np.row_stack, which NumPy 2.5 removed: wheels in .whl (a NumPy
# 2.4 cp312 wheel) are installed first into /tmp/site and put on PYTHONPATH.
set -u
out="${OUT:-.}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import numpy, numba, numba_cuda; print('numpy', numpy.__version__, 'numba', numba.__version__,
'numba-cuda', numba_cuda.__version__)" || exit 1
status=0
time python3 -c "import sys; from refloss.cli import main; sys.exit(main(sys.argv[1:]))" verify --device cuda \
  >"$out/verify.txt" 2>&1 || status=1
tail -n 8 "$out/verify.txt"
# the oracle rows ran above; here the CUDA-vs-CPU, device-array and validation tests on the device
time env REFLOSS_TEST_REAL_GPU=1 python3 -m pytest -q -p no:cacheprovider -k "not real_gpu" \
  tests/test_backends.py tests/test_yolo.py >"$out/pytest.txt" 2>&1 || status=1
tail -n 15 "$out/pytest.txt"
(cd benchmarks && time python3 gpu.py --n 4000000 --repeat 20) >"$out/gpu.txt" 2>&1 || status=1
cat "$out/gpu.txt"
exit $status
