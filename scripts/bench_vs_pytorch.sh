#!/usr/bin/env bash
# Times minivgg against PyTorch (eager, CPU) on this machine, in one invocation, and prints one
# table: the MiniVGGNet training step (batch 64, SGD with Nesterov momentum) and inference
# (eval mode, batch 64), with the same number of threads on both sides; in fp32 and, where the
# CPU has AVX512_BF16, in bf16 (minivgg --precision bf16 against PyTorch's bf16 autocast).
# It prints the CPU, and the kernels each side ran: minivgg's CPU path (MINIVGG_CPU forces
# one) and oneDNN's ISA and convolution implementations.
#
# Usage: scripts/bench_vs_pytorch.sh [--threads T] [--steps N] [--rounds R] [--no-bn]
#                                    [--no-build] [--no-install]
#
#   --threads T   worker threads for both (default 2; env BENCH_THREADS)
#   --steps N     timed training steps, and as many timed inference batches, after warm-up
#                 (minivgg: 5 steps; PyTorch: 30 in each of its two zero_grad orders, which
#                 alternate, the faster kept) (default 30; env BENCH_STEPS)
#   --rounds R    rounds of every contestant (minivgg fp32 and bf16, PyTorch channels_last fp32
#                 and bf16, PyTorch channels_first fp32), run alternately so that drift of the
#                 machine hits all of them; each keeps its best median (default 2; env
#                 BENCH_ROUNDS)
#   --no-bn       MiniVGGNet without its five batch-normalization layers, on both sides
#   --no-build    don't run `cargo build --release` (env MINIVGG_BIN picks another binary)
#   --no-install  don't create/fill the virtual environment; fail if torch is missing
#
# Other environment variables:
#   BENCH_VENV        the virtual environment (default: <repo>/.venv-bench)
#   BENCH_TORCH_SPEC  what pip installs for PyTorch (default: torch==2.15.0)
#   BENCH_PIP_ARGS    extra pip arguments, e.g. `--index-url <a CPU-only wheel index>`
#   MINIVGG_BIN       the minivgg binary (default: <repo>/target/release/minivgg)
#
# How PyTorch is installed, and why: the only Linux x86_64 torch wheel on PyPI is the CUDA
# build (2.15.0+cu132). `pip install --no-deps torch` plus its pure-Python dependencies does NOT
# give a usable CPU torch: libtorch.so and libtorch_python.so link libtorch_cuda.so, which needs
# libcudart, libcublas(Lt), libcudnn, libnccl, libcufft, libcusparse(Lt), libcufile, libnvrtc,
# libcupti and libnvshmem at load time, so `import torch` fails ("libcudart.so.13: cannot open
# shared object file"). Picking only the nvidia-* wheels that provide those libraries would save
# about 1.3 GB of 5.4 GB (triton, cusolver) at the price of pins that break with every torch
# release, so this script does a plain `pip install torch`: about 5.4 GB in the venv (torch
# 1.2 GB, nvidia-* 3.0 GB, triton 1.0 GB), about 2 minutes on a machine with a fast link to PyPI.
# The CUDA libraries are loaded but unused: no GPU is touched, and the CPU kernels (oneDNN, MKL,
# OpenMP) are the same as in the CPU-only build. Where a CPU-only wheel index is reachable,
# BENCH_PIP_ARGS="--index-url ..." gets a ~200 MB install instead. numpy is installed too, only
# to silence torch's "Failed to initialize NumPy" warning.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-30}
ROUNDS=${BENCH_ROUNDS:-2}
VENV=${BENCH_VENV:-$ROOT/.venv-bench}
TORCH_SPEC=${BENCH_TORCH_SPEC:-torch==2.15.0}
BIN=${MINIVGG_BIN:-$ROOT/target/release/minivgg}
NO_BN=()
BUILD=1
INSTALL=1
[[ -n ${MINIVGG_BIN:-} ]] && BUILD=0

usage() { sed -n '2,/^# How PyTorch/{/^# How PyTorch/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "bench_vs_pytorch: $*" >&2; exit 1; }

while (($#)); do
    case $1 in
        --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
        --threads=*) THREADS=${1#*=}; shift ;;
        --steps) STEPS=${2:?--steps needs a value}; shift 2 ;;
        --steps=*) STEPS=${1#*=}; shift ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --no-bn) NO_BN=(--no-bn); shift ;;
        --no-build) BUILD=0; shift ;;
        --no-install) INSTALL=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for v in THREADS STEPS ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer, got '${!v}'"
done

# --- the machine, and PyTorch in its own virtual environment ---------------------------------
# shellcheck source=scripts/lib/bench_common.sh
source "$ROOT/scripts/lib/bench_common.sh"
describe_cpu
BF16=$(has_flag avx512_bf16)
((THREADS <= cores)) || echo "warning: --threads $THREADS is more than the $cores CPUs online" >&2
ensure_torch "$TORCH_SPEC" numpy

# --- minivgg ---------------------------------------------------------------------------------
if ((BUILD)); then
    command -v cargo >/dev/null || die "cargo not found (or pass --no-build with MINIVGG_BIN)"
    echo "cargo build --release" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no minivgg binary at $BIN"

# --- is the machine quiet? -------------------------------------------------------------------
# Busy share of all CPUs over one second, from /proc/stat: other work on the machine skews the
# timings, PyTorch's spinning OpenMP threads more than most.
cpu_busy_pct() {
    local a b c total=0 idle
    read -r -a a </proc/stat # cpu user nice system idle iowait irq softirq steal ...
    sleep 1
    read -r -a b </proc/stat
    for c in 1 2 3 4 5 6 7 8; do total=$((total + b[c] - a[c])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    ((total > 0)) && echo $(((total - idle) * 100 / total)) || echo 0
}
busy=$(cpu_busy_pct)
if ((busy > 10)); then
    echo "warning: the machine is already ${busy}% busy; the timings below are contended" >&2
fi

# --- the runs, alternating -------------------------------------------------------------------
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS

run() { # NAME FILE COMMAND...: runs COMMAND with stdout to FILE, shows its stderr on failure
    local name=$1 file=$2 started=$SECONDS
    shift 2
    printf '  %-28s ' "$name" >&2
    if ! "$@" >"$file" 2>"$file.err"; then
        echo "failed" >&2
        cat "$file" "$file.err" >&2
        die "$name failed: $*"
    fi
    echo "$((SECONDS - started)) s" >&2
}

PRECISIONS=(fp32)
# bf16 runs on the avx512 path only: MINIVGG_CPU forcing a lower one leaves it out.
if [[ $BF16 == yes && ${MINIVGG_CPU:-avx512} == avx512 ]]; then
    PRECISIONS+=(bf16)
elif [[ $BF16 == yes ]]; then
    echo "MINIVGG_CPU=$MINIVGG_CPU: bf16 left out (it runs on the avx512 path)"
fi
for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r/$ROUNDS ($STEPS steps, $THREADS threads)" >&2
    for p in "${PRECISIONS[@]}"; do
        run "minivgg $p" "$RUNS/minivgg_$p.$r.txt" \
            "$BIN" bench --steps "$STEPS" --threads "$THREADS" --precision "$p" "${NO_BN[@]}"
    done
    run "PyTorch channels_last" "$RUNS/torch_cl_fp32.$r.json" \
        "$PY" "$ROOT/scripts/bench_pytorch.py" --threads "$THREADS" --steps "$STEPS" --channels-last "${NO_BN[@]}"
    if [[ $BF16 == yes ]]; then
        run "PyTorch channels_last bf16" "$RUNS/torch_cl_bf16.$r.json" \
            "$PY" "$ROOT/scripts/bench_pytorch.py" --threads "$THREADS" --steps "$STEPS" --channels-last --bf16 "${NO_BN[@]}"
    fi
    run "PyTorch channels_first" "$RUNS/torch_cf_fp32.$r.json" \
        "$PY" "$ROOT/scripts/bench_pytorch.py" --threads "$THREADS" --steps "$STEPS" "${NO_BN[@]}"
done

# --- the table -------------------------------------------------------------------------------
echo
"$PY" - "$RUNS" "$ROUNDS" "$THREADS" "$STEPS" "${#NO_BN[@]}" "$("$BIN" --version 2>/dev/null || echo minivgg)" "${PRECISIONS[@]}" <<'PY'
import json, re, sys

runs, rounds, threads, steps, no_bn, minivgg_version, *precisions = sys.argv[1:]
rounds, no_bn = int(rounds), int(no_bn) > 0
BATCH, TRAIN_BATCHES, VAL_BATCHES = 64, 782, 157  # ceil(50,000 / 64), ceil(10,000 / 64)

line = {
    "train_ms": re.compile(r"^train step: median ([\d.]+) ms \(min ([\d.]+), max ([\d.]+)\)", re.M),
    "infer_ms": re.compile(r"^inference \(eval mode\): median ([\d.]+) ms/batch \(min ([\d.]+), max ([\d.]+)\)", re.M),
}
kernels_line = re.compile(r"^cpu kernels: (.*)$", re.M)

def minivgg(path):
    text = open(path).read()
    out = {}
    for key, pattern in line.items():
        m = pattern.search(text)
        if not m:
            sys.exit(f"bench_vs_pytorch: cannot find the '{key}' line in minivgg's output:\n{text}")
        out[key] = dict(zip(("median", "min", "max"), map(float, m.groups())))
    m = kernels_line.search(text)
    out["kernels"] = m.group(1) if m else "?"
    return out

def pytorch(path):
    lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"bench_vs_pytorch: no JSON line in {path}")
    return json.loads(lines[-1])

def rounds_of(reader, stem):
    return [reader(f"{runs}/{stem}.{r}.txt" if reader is minivgg else f"{runs}/{stem}.{r}.json")
            for r in range(1, rounds + 1)]

# (name, precision, results by round)
contestants = [(f"minivgg {p}", p, rounds_of(minivgg, f"minivgg_{p}")) for p in precisions]
contestants.append(("PyTorch channels_last", "fp32", rounds_of(pytorch, "torch_cl_fp32")))
if "bf16" in precisions:
    contestants.append(("PyTorch cl bf16 autocast", "bf16", rounds_of(pytorch, "torch_cl_bf16")))
contestants.append(("PyTorch channels_first", "fp32", rounds_of(pytorch, "torch_cf_fp32")))
torch_info = contestants[len(precisions)][2][0]

# Per contestant and metric: the round with the best (lowest) median, with that round's min/max.
best = {
    name: {key: min((r[key] for r in results), key=lambda s: s["median"]) for key in ("train_ms", "infer_ms")}
    for name, _, results in contestants
}
for b in best.values():
    b["epoch_s"] = (TRAIN_BATCHES * b["train_ms"]["median"] + VAL_BATCHES * b["infer_ms"]["median"]) / 1e3

print(f"{minivgg_version} vs PyTorch {torch_info['torch']} (CPU kernels: {torch_info['cpu_capability']}), "
      f"{threads} threads, batch {BATCH}, MiniVGGNet {'without' if no_bn else 'with'} batch norm")
print(f"{steps} timed steps after warm-up (minivgg 5, PyTorch 30 in each zero_grad order); best median of {rounds} alternating round(s)")
print("kernels each side ran:")
for name, precision, results in contestants:
    first = results[0]
    if name.startswith("minivgg"):
        print(f"  {name:<26} {first['kernels']}")
    else:
        onednn = first.get("onednn") or {}
        print(f"  {name:<26} oneDNN ISA: {onednn.get('isa')}; convolutions: {', '.join(onednn.get('convolutions', [])) or '?'}")
        orders = "; ".join(f"zero_grad {o}: " + ", ".join(f"{r['train_ms_by_order'][o]:.1f}" for r in results)
                           for o in first["train_ms_by_order"])
        print(f"  {'':<26} train-step medians by round, {orders} ms (the faster order counts)")
print()
head = f"{'':<28}{'train step ms':>14}{'(min - max)':>18}{'images/s':>10}{'infer ms/batch':>16}{'(min - max)':>18}{'images/s':>10}{'s/epoch':>9}"
print(head)
print("-" * len(head))
for name, b in best.items():
    t, i = b["train_ms"], b["infer_ms"]
    spread = lambda s: "({:.1f} - {:.1f})".format(s["min"], s["max"])
    print(f"{name:<28}{t['median']:>14.1f}{spread(t):>18}{BATCH / t['median'] * 1e3:>10.0f}"
          f"{i['median']:>16.1f}{spread(i):>18}{BATCH / i['median'] * 1e3:>10.0f}{b['epoch_s']:>9.1f}")
print("-" * len(head))
print(f"s/epoch = {TRAIN_BATCHES} training steps + {VAL_BATCHES} validation batches (50,000 + 10,000 images)")
if rounds > 1:
    for name, _, results in contestants:
        print(f"  train-step medians by round, {name}: " + ", ".join(f"{r['train_ms']['median']:.1f}" for r in results))
print()

for precision in precisions:
    ours = best[f"minivgg {precision}"]
    peers = [n for n, p, _ in contestants if p == precision and not n.startswith("minivgg")]
    for label, key, pick in (
        ("training step", "train_ms", lambda n: best[n]["train_ms"]["median"]),
        ("inference", "infer_ms", lambda n: best[n]["infer_ms"]["median"]),
        ("epoch estimate", "epoch_s", lambda n: best[n]["epoch_s"]),
    ):
        faster = min(peers, key=pick)
        mine = ours[key]["median"] if key != "epoch_s" else ours[key]
        print(f"minivgg {precision} / {faster} ({label}): {mine / pick(faster):.2f}x")
print("(time ratios: below 1 means minivgg is faster, above 1 that PyTorch is)")
PY
