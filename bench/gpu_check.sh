#!/usr/bin/env bash
# Device check for one GPU (about 5 minutes on an H100): samples/s of a bare step and of every model's
# full step in fp32 and in bf16 side by side (and their ratio) at the paper's batch size and larger ones,
# the dSprites network's step, the fraction of the GPU's matmul peak in each precision, and evaluation
# times, data resident on the GPU; then 2 epochs of MNIST in each precision if the data is there.
# Runs from the repository root; MNIST-shaped random images stand in for MNIST in the benchmark (no data
# travels; speed does not depend on the pixels).
#     bash bench/gpu_check.sh > gpu_check.txt
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
PYTHONPATH=. python bench/speed.py --device cuda --synthetic --batch-sizes 256 1024 4096 16384 \
    --samples 409600 --rounds 3 --dsprites-step
for precision in fp32 bf16; do
    PYTHONPATH=. timeout 300 python -m imae train --dataset mnist --device cuda --precision "$precision" --epochs 2 \
        --out "${OUT:-/tmp}/gpu-run-$precision" --data-dir "${MNIST_DIR:-../shared/data/mnist}" --no-progress \
        || echo "(training on real MNIST in $precision skipped: no data)"
done
