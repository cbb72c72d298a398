#!/usr/bin/env bash
# The device checks in one run, for a session that is lent a GPU (docs/development.md,
# "Checking on a GPU").  From the repo root, with a NumPy 2.4 cp312 wheel in .whl (carried):
#
#     bash benchmarks/gpu_check.sh                  # every stage: 205 s on an H200 (2026-12-04)
#     bash benchmarks/gpu_check.sh smoke verify     # or only the stages named
#
# smoke: one CUDA kernel compiles and runs (fails fast); compile: every CUDA kernel compiled in 14
# processes into numba-cuda's disk cache (benchmarks/cuda_ptx.py --warm: 71-76 s on the H200, 431 s
# of compiling); verify: `refloss verify --device cuda`, every CUDA kernel against the oracle; torch:
# refloss.torch on CUDA tensors; bench: benchmarks/gpu.py against PyTorch eager and torch.compile,
# the copy roofline and where the time goes; tests: the CUDA backend and YOLO tests on the device.
# Each stage has its own time limit (800 s together; a stage past its limit is stopped and the next
# runs) and writes <stage>.txt to $OUT (or .).  numba-cuda 0.30 calls np.row_stack, which NumPy 2.5
# removed: wheels in .whl go first into /tmp/site.
set -u
out="${OUT:-.}"
stages="${*:-smoke compile verify torch bench tests}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import numpy, numba, numba_cuda; print('numpy', numpy.__version__, 'numba', numba.__version__,
'numba-cuda', numba_cuda.__version__)" || exit 1

status=0
run() {  # run STAGE LIMIT COMMAND...: the command's output to $out/STAGE.txt, its tail here
  local stage=$1 limit=$2
  shift 2
  case " $stages " in *" $stage "*) ;; *) return ;; esac
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$stage.txt" 2>&1
  local rc=$?
  echo "== $stage: exit $rc in $((SECONDS - start)) s"
  tail -n 20 "$out/$stage.txt"
  [ "$rc" -eq 0 ] || status=1
}
cli='import sys; from refloss.cli import main; sys.exit(main(sys.argv[1:]))'
run smoke 90 python3 -c 'import numpy as np, refloss as rl
v, (g, _) = rl.smooth_l1.value_and_grad(np.array([0.05, 2.0]), np.zeros(2), beta=0.1, device="cuda")
assert np.allclose(v, [0.0125, 1.95]) and np.allclose(g, [0.5, 1.0]), (v, g); print("cuda ok", v, g)'
[ "$status" -eq 0 ] || exit 1
run compile 150 python3 benchmarks/cuda_ptx.py --warm --jobs 14 --json "$out/compile.json"
run verify 200 python3 -c "$cli" verify --device cuda
# refloss.torch on CUDA tensors (PyTorch's stream, __cuda_array_interface__), against CPU tensors
run torch 60 env REFLOSS_TEST_REAL_GPU=1 python3 -m pytest -q -p no:cacheprovider -k "cuda_tensors" tests/test_torch.py
run bench 150 bash -c "cd benchmarks && python3 gpu.py --n 10000000 --repeat 20 --detail --compile"
# the oracle rows ran in verify; here the CUDA-vs-CPU, device-array and validation tests
run tests 150 env REFLOSS_TEST_REAL_GPU=1 python3 -m pytest -q -p no:cacheprovider -k "not real_gpu" \
  tests/test_backends.py tests/test_yolo.py
exit $status
