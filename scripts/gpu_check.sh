#!/usr/bin/env bash
# Every GPU check in one go, on a machine with an NVIDIA GPU and a CUDA PyTorch, each result a
# file in OUT_DIR:
#   parity_{auto,im2col,cudnn}.log   the CPU/GPU parity tests (strict fp32 at 1e-4, tf32 at its
#                                    stated 2e-2) on each convolution path
#   bench_gpu_layers_im2col.txt      the per-layer table before cuDNN (MINIVGG_CUDA_CONV=im2col)
#   bench_gpu_layers.txt             ... and after (auto: each layer's faster path), fp32
#   bench_gpu_layers_tf32.txt        ... in tf32
#   bench_gpu_vs_pytorch{,_tf32}.txt minivgg against PyTorch eager on the same card
#   cifar10_minivggnet_with_bn_cuda{,_tf32}.*   the tutorial's 40 epochs: log, CSV, report, plots
# Build first, where cargo is, and carry the two binaries (stripped: see cuda-notes.md):
#   cargo build --release --features cuda
#   cargo test --release --features cuda --test cuda --no-run   # prints the test binary's path
# Usage: scripts/gpu_check.sh DATA OUT_DIR [CUDA_TEST_BINARY]
#   DATA: CIFAR-10 (cifar-10-batches-bin/ or the .tar.gz). STEPS (default 200) sets the
#   benchmarks' timed steps; EPOCHS (default 40) the training runs'.
set -uo pipefail
[ $# -ge 2 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
data=$1 out=$2 tests=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MINIVGG_BIN:-$here/../target/release/minivgg}
steps=${STEPS:-200} epochs=${EPOCHS:-40}
mkdir -p "$out"
failed=()
# Runs the rest of the line, its output also in $out/$1; a failure is noted, and the checks
# after it still run (the GPU time is short: one failure must not waste the rest).
step() {
    local file=$1; shift
    echo "== $file: $*"
    if ! "$@" > >(tee "$out/$file") 2>&1; then failed+=("$file"); fi
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
if [ -n "$tests" ]; then
    for path in auto im2col cudnn; do
        step "parity_$path.log" env MINIVGG_CUDA_CONV=$path "$tests" --include-ignored --test-threads 1
    done
fi
step bench_gpu_layers_im2col.txt env MINIVGG_CUDA_CONV=im2col "$bin" bench --device cuda --steps "$steps"
step bench_gpu_layers.txt "$bin" bench --device cuda --steps "$steps"
step bench_gpu_layers_tf32.txt "$bin" bench --device cuda --steps "$steps" --precision tf32
step bench_gpu_vs_pytorch.txt env MINIVGG_BIN="$bin" BENCH_STEPS="$steps" "$here/bench_gpu_vs_pytorch.sh"
step bench_gpu_vs_pytorch_tf32.txt env MINIVGG_BIN="$bin" BENCH_STEPS="$steps" BENCH_PRECISION=tf32 \
    "$here/bench_gpu_vs_pytorch.sh"
for precision in fp32 tf32; do
    suffix=$([ "$precision" = fp32 ] && echo "" || echo "_$precision")
    step "cifar10_minivggnet_with_bn_cuda$suffix.log" env MINIVGG_DATA="$data" "$bin" train \
        --device cuda --precision "$precision" --seed 42 --epochs "$epochs" \
        --output "$out/cifar10_minivggnet_with_bn_cuda$suffix.png"
done
rm -rf "$out"/*_checkpoint  # 17 MB each: the runs' state stays on the machine
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" | tee "$out/FAILED"
    exit 1
fi
echo "all checks passed" | tee "$out/PASSED"
