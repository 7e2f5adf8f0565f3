#!/usr/bin/env bash
# The GPU checks in one go, on a machine with an NVIDIA GPU and a CUDA PyTorch: the CPU/GPU
# parity tests, the tutorial's 40-epoch run on the GPU (log, CSV, report, plot), and the
# comparison with PyTorch eager on the same card. Build first, where cargo is:
#   cargo build --release --features cuda
#   cargo test --release --features cuda --test cuda --no-run   # prints the test binary's path
# Usage: scripts/gpu_check.sh DATA OUT_DIR [CUDA_TEST_BINARY]
#   DATA: CIFAR-10 (cifar-10-batches-bin/ or the .tar.gz); OUT_DIR: where the results go.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
data=$1 out=$2 tests=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MINIVGG_BIN:-$here/../target/release/minivgg}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ -n "$tests" ]; then
    "$tests" --include-ignored 2>&1 | tee "$out/parity.log"
fi
MINIVGG_DATA=$data "$bin" train --device cuda --seed 42 --output "$out/cifar10_minivggnet_with_bn_cuda.png" \
    --save "$out/minivggnet_with_bn_cuda.safetensors" 2>&1 | tee "$out/cifar10_minivggnet_with_bn_cuda.log"
MINIVGG_BIN=$bin "$here/bench_gpu_vs_pytorch.sh" 2>&1 | tee "$out/bench_gpu_vs_pytorch.txt"
