#!/usr/bin/env bash
# The CUDA path at the VOC recipe's shapes (benchmarks/gpu_check.py): one process with bf16 and fp16,
# the kill-and-resume check, then DDP with NCCL over every GPU when there are several.
#   bash benchmarks/gpu_check.sh [--iters 50] [--batch 8] [--crop 512]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" benchmarks/gpu_check.py "$@"
gpus="$("$PY" -c 'import torch; print(torch.cuda.device_count())')"
if [ "$gpus" -gt 1 ]; then
  "$PY" -m torch.distributed.run --standalone --nproc_per_node "$gpus" benchmarks/gpu_check.py --skip-resume "$@"
fi
