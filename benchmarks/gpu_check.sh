#!/usr/bin/env bash
# One call on a CUDA machine: the CUDA tests, then the GPU benchmark, logs under $1.
#   benchmarks/gpu_check.sh OUT_DIR        (run from the repository root)
set -u -o pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.max.sm \
  --format=csv > "$out/nvidia.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" \
  | tee -a "$out/nvidia.txt"
# the CUDA tests of the captured epoch (the CPU ones run in CI)
timeout "${TEST_TIMEOUT:-170}" python3 -m pytest -q -rs -k cuda tests/test_graphs.py 2>&1 \
  | tee "$out/tests.log"
echo "tests exit: $?" | tee -a "$out/tests.log"
timeout "${BENCH_TIMEOUT:-230}" python3 benchmarks/bench_gpu.py --out "$out/bench.jsonl" \
  --profile "$out/kernels.txt" \
  ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.log"
echo "bench exit: $?"
