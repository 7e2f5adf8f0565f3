#!/usr/bin/env bash
# Times minivgg's MiniVGGNet training step and inference batch on every CPU path this machine
# runs (MINIVGG_CPU=portable|avx2|avx512, and bf16 where the CPU has AVX512_BF16), in
# alternating rounds, and optionally an older minivgg binary beside them: the check that a
# change made no path slower. Prints the CPU, then one line per run.
#
# Usage: scripts/bench_cpu_paths.sh [--rounds 3] [--steps 30] [--against OLD_MINIVGG_BINARY]
#                                   [--no-portable]
#
#   --against BIN   also time BIN (e.g. a build of an earlier commit: `git worktree add
#                   /tmp/old COMMIT && cargo build --release --manifest-path /tmp/old/Cargo.toml
#                   --target-dir /tmp/old-target`), run with its own default path
#   --no-portable   leave out the portable path (several times slower; it is there for CPUs
#                   without AVX2, and for the tests)
#   MINIVGG_BIN     the binary under test (default: <repo>/target/release/minivgg, built first)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=3 STEPS=30 OLD="" PORTABLE=1
while (($#)); do
    case $1 in
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --steps) STEPS=${2:?}; shift 2 ;;
        --against) OLD=${2:?}; shift 2 ;;
        --no-portable) PORTABLE=0; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "bench_cpu_paths: unknown argument: $1" >&2; exit 1 ;;
    esac
done
BIN=${MINIVGG_BIN:-$ROOT/target/release/minivgg}
[[ -n ${MINIVGG_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)

flag() { grep -qw "$1" /proc/cpuinfo && echo yes || echo no; }
model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
number=$(sed -n 's/^model[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
echo "CPU: $model (family $family model $number), $(nproc) CPUs, avx2: $(flag avx2), avx512f: $(flag avx512f), avx512_bf16: $(flag avx512_bf16)"
echo "$("$BIN" --version) at $BIN, $STEPS timed steps after 5 warm-up, 2 threads, MiniVGGNet with BN, batch 64"

# name|environment|extra flags
runs=()
[[ -n $OLD ]] && runs+=("older binary|OLD|")
((PORTABLE)) && runs+=("portable fp32|MINIVGG_CPU=portable|")
[[ $(flag avx2) == yes ]] && runs+=("avx2 fp32|MINIVGG_CPU=avx2|")
[[ $(flag avx512f) == yes ]] && runs+=("avx512 fp32|MINIVGG_CPU=avx512|")
[[ $(flag avx512_bf16) == yes ]] && runs+=("avx512 bf16|MINIVGG_CPU=avx512|--precision bf16")

for ((r = 1; r <= ROUNDS; r++)); do
    for run in "${runs[@]}"; do
        IFS='|' read -r name env extra <<<"$run"
        if [[ $env == OLD ]]; then
            out=$("$OLD" bench --steps "$STEPS" --threads 2)
        else
            # shellcheck disable=SC2086 # $extra is a list of flags on purpose
            out=$(env "$env" "$BIN" bench --steps "$STEPS" --threads 2 $extra)
        fi
        train=$(sed -n 's/^train step: median \([0-9.]*\) ms (min \([0-9.]*\), max \([0-9.]*\)).*/\1 ms (min \2, max \3)/p' <<<"$out")
        infer=$(sed -n 's/^inference (eval mode): median \([0-9.]*\) ms.*(min \([0-9.]*\), max \([0-9.]*\)).*/\1 ms (min \2, max \3)/p' <<<"$out")
        kernels=$(sed -n 's/^cpu kernels: //p' <<<"$out")
        printf 'round %d  %-14s train step %-30s inference %-30s %s\n' "$r" "$name" "$train" "$infer" "${kernels:-(prints no path)}"
    done
done
