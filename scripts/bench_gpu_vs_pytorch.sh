#!/usr/bin/env bash
# minivgg against PyTorch eager on the same NVIDIA GPU, in one invocation: ms per training
# step, ms per inference batch and one measured epoch (50,000 + 10,000 images, data already on
# the GPU) for each, and how many times faster minivgg is per epoch.
#
# Needs a minivgg built with `cargo build --release --features cuda` (MINIVGG_BIN, default
# target/release/minivgg) and python3 with a CUDA PyTorch. BENCH_STEPS sets the timed steps,
# BENCH_PRECISION minivgg's --precision (fp32, the default, or tf32).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${MINIVGG_BIN:-$here/../target/release/minivgg}
steps=${BENCH_STEPS:-200}
precision=${BENCH_PRECISION:-fp32}
[ -x "$bin" ] || { echo "no minivgg binary at $bin (cargo build --release --features cuda)" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

minivgg_out=$("$bin" bench --device cuda --steps "$steps" --precision "$precision")
echo "$minivgg_out"
torch_cl=$(python3 "$here/bench_pytorch.py" --device cuda --steps "$steps" --epoch --channels-last)
torch_cf=$(python3 "$here/bench_pytorch.py" --device cuda --steps "$steps" --epoch)

python3 - "$minivgg_out" "$torch_cl" "$torch_cf" <<'PY'
import json, re, sys

minivgg, *torch_runs = sys.argv[1], *map(json.loads, sys.argv[2:])
def grab(pattern):
    match = re.search(pattern, minivgg)
    if not match:
        sys.exit(f"cannot read {pattern!r} in minivgg's output:\n{minivgg}")
    return float(match.group(1))
precision = re.search(r"CUDA graphs, (\w+) products", minivgg)
rows = [(f"minivgg (CUDA graphs, {precision.group(1) if precision else 'fp32'})", grab(r"train step: median ([\d.]+) ms"),
         grab(r"inference \(eval mode\): median ([\d.]+) ms"), grab(r"epoch \(measured[^)]*\): ([\d.]+) s"))]
for run in torch_runs:
    rows.append((f"PyTorch {run['torch']} eager, {run['layout']}", run["train_ms"]["median"],
                 run["infer_ms"]["median"], run["epoch_s"]))
print()
print(f"{'':34}{'train ms/step':>15}{'infer ms/batch':>16}{'s/epoch':>10}")
for name, step, infer, epoch in rows:
    print(f"{name:34}{step:15.3f}{infer:16.3f}{epoch:10.2f}")
best = min(rows[1:], key=lambda r: r[3])
print(f"\nminivgg is {best[3] / rows[0][3]:.1f}x faster per epoch than {best[0]} "
      f"({best[1] / rows[0][1]:.1f}x per training step); 40 epochs: {40 * rows[0][3]:.1f} s")
PY
