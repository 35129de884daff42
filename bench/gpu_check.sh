#!/usr/bin/env bash
# Device check for one GPU (about 3-4 minutes on an H100): samples/s of a bare step and of every model's
# full step at the paper's batch size and larger ones, the fraction of the GPU's fp32 matmul peak,
# and evaluation times, data resident on the GPU. Runs from the repository root; MNIST-shaped random
# images stand in for MNIST (no data travels; speed does not depend on the pixels).
#     bash bench/gpu_check.sh > gpu_check.txt
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
PYTHONPATH=. python bench/speed.py --device cuda --synthetic --batch-sizes 256 1024 4096 16384 \
    --samples 409600 --rounds 3
PYTHONPATH=. timeout 600 python -m imae train --dataset mnist --device cuda --epochs 2 --out "${OUT:-/tmp}/gpu-run" \
    --data-dir "${MNIST_DIR:-../shared/data/mnist}" --no-progress || echo "(training on real MNIST skipped: no data)"
