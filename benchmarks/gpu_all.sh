#!/usr/bin/env bash
# Kernel checks on a CUDA machine, in one go: the GPU kernel tests, then the three kernel
# benchmarks. Everything lands in $OUT (default ./kernel-results): env.txt, tests.log,
# {attention,logprobs,sample}.log and .json. Takes about 5-8 minutes on an H200.
#
#   OUT=/tmp/results bash benchmarks/gpu_all.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/kernel-results}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

# panoseek maps its folders into one namespace, so it must be installed (no network needed).
if ! "$PYTHON" -c "import panoseek.kernels" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/env.txt" 2>&1 || true
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$PYTHON" -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
    "$PYTHON" -c "import liger_kernel; print('liger-kernel', liger_kernel.__version__)" 2>/dev/null || echo "liger-kernel not installed"
} >>"$OUT/env.txt" 2>&1

status=0
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_kernel_gpu.py tests/test_kernel_hf_attention.py 2>&1 | tee "$OUT/tests.log" || status=1
for name in attention logprobs sample; do
    "$PYTHON" "benchmarks/kernel_$name.py" --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.log" || status=1
done
exit $status
