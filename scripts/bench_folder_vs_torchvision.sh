#!/usr/bin/env bash
# Times loading a folder of images, minivgg against torchvision, on this machine, in one
# invocation: CIFAR-10's 50,000 training images written out as PNGs (DIR/<class>/<n>.png),
# each resized to the same size on both sides and made a uint8 tensor.
#
#   - minivgg decoding (`minivgg data --data DIR --val-split 0.2`, an empty cache): the first
#     run on a folder, which decodes every file and writes the cache;
#   - minivgg from its cache (the same command again): every later run;
#   - torchvision's ImageFolder + DataLoader with as many workers as CPUs, one pass, in two
#     idioms (PIL + transforms.Resize + PILToTensor, and torchvision.io.decode_image +
#     v2.Resize) and two batch sizes (64, 512); the table keeps each one's best round and the
#     ratio is taken against the fastest of them.
#
# Both sides are timed from inside (minivgg's "loaded in" line; torchvision from building the
# data set to its last batch, worker start-up included, Python's imports not), with the files
# in the page cache (they were just written or read by the previous round). Then one epoch of
# MiniVGGNet on the cached folder (`minivgg train --epochs 1`) gives the share of an epoch that
# a cached run spends loading.
#
# Usage: scripts/bench_folder_vs_torchvision.sh [--images DIR] [--image-size N] [--rounds R]
#                                               [--no-epoch] [--no-build] [--no-install]
#
#   --images DIR     where the PNGs are written once and read from (default:
#                    <repo>/target/bench/cifar10_train_png)
#   --image-size N   the size both sides resize to (default 32, the images' own: the
#                    tutorial's SimplePreprocessor(32, 32))
#   --rounds R       rounds of every contestant, run alternately (default 3)
#   --no-epoch       skip the one-epoch training run
#   --no-build       don't run `cargo build --release` (env MINIVGG_BIN picks another binary)
#   --no-install     don't create/fill the virtual environment; fail if torchvision is missing
#
# Environment: MINIVGG_DATA (the CIFAR-10 archive, default ../shared/data/cifar-10-binary.tar.gz),
# BENCH_VENV, BENCH_TORCH_SPEC, BENCH_PIP_ARGS and MINIVGG_BIN as in scripts/bench_vs_pytorch.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES=$ROOT/target/bench/cifar10_train_png
SIZE=32
ROUNDS=3
EPOCH=1
BUILD=1
INSTALL=1
VENV=${BENCH_VENV:-$ROOT/.venv-bench}
TORCH_SPEC=${BENCH_TORCH_SPEC:-torch==2.15.0}
BIN=${MINIVGG_BIN:-$ROOT/target/release/minivgg}
ARCHIVE=${MINIVGG_DATA:-$ROOT/../shared/data/cifar-10-binary.tar.gz}
[[ -n ${MINIVGG_BIN:-} ]] && BUILD=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "bench_folder_vs_torchvision: $*" >&2; exit 1; }

while (($#)); do
    case $1 in
        --images) IMAGES=${2:?--images needs a value}; shift 2 ;;
        --image-size) SIZE=${2:?--image-size needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --no-epoch) EPOCH=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-install) INSTALL=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for v in SIZE ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ -f $ARCHIVE ]] || die "no CIFAR-10 archive at $ARCHIVE (set MINIVGG_DATA)"

# shellcheck source=scripts/lib/bench_common.sh
source "$ROOT/scripts/lib/bench_common.sh"
describe_cpu
ensure_torch "$TORCH_SPEC" numpy torchvision
if ((BUILD)); then
    echo "cargo build --release" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x $BIN ]] || die "no minivgg binary at $BIN"
TORCHVISION_HELPER=$ROOT/scripts/bench_folder_torchvision.py

echo "writing CIFAR-10's training split as PNGs into $IMAGES (once)..." >&2
"$PY" "$TORCHVISION_HELPER" write "$ARCHIVE" "$IMAGES"
files=$(find "$IMAGES" -name '*.png' | wc -l)
((files == 50000)) || die "$IMAGES holds $files PNGs, not 50000 (remove it and run again)"
echo "minivgg: $("$BIN" --version), torch $("$PY" -c 'import torch; print(torch.__version__)'), torchvision $("$PY" -c 'import torchvision; print(torchvision.__version__)')"
echo "data: $files PNGs of 32×32 ($(du -sh "$IMAGES" | cut -f1)), resized to ${SIZE}×${SIZE}, RGB; $cores workers/threads"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
minivgg_load() { # CACHE_ROOT: prints the seconds of minivgg's "loaded in" line
    XDG_CACHE_HOME=$1 "$BIN" data --data "$IMAGES" --val-split 0.2 --image-size "$SIZE" \
        | sed -n 's/.*, loaded in \([0-9.]*\)s$/\1/p'
}

declare -A best
keep_best() { # NAME SECONDS
    if [[ -z ${best[$1]:-} ]] || awk -v a="$2" -v b="${best[$1]}" 'BEGIN { exit !(a < b) }'; then
        best[$1]=$2
    fi
}
contestants=("minivgg, decoding (empty cache)" "minivgg, from its cache")
for loader in pil io; do
    for batch in 64 512; do
        contestants+=("torchvision $loader, batch $batch")
    done
done
for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round/$ROUNDS" >&2
    rm -rf "$SCRATCH/cache"
    keep_best "${contestants[0]}" "$(minivgg_load "$SCRATCH/cache")"
    keep_best "${contestants[1]}" "$(minivgg_load "$SCRATCH/cache")"
    for loader in pil io; do
        for batch in 64 512; do
            seconds=$("$PY" "$TORCHVISION_HELPER" time "$IMAGES" --loader "$loader" \
                --size "$SIZE" --workers "$cores" --batch-size "$batch" | cut -d' ' -f1)
            keep_best "torchvision $loader, batch $batch" "$seconds"
        done
    done
done

torch_best=
for name in "${contestants[@]:2}"; do
    if [[ -z $torch_best ]] || awk -v a="${best[$name]}" -v b="$torch_best" 'BEGIN { exit !(a < b) }'; then
        torch_best=${best[$name]}
    fi
done
echo
echo "best of $ROUNDS rounds, one pass over the 50,000 images:"
printf '%-40s %10s %12s %22s\n' "contestant" "seconds" "images/s" "torchvision's best / it"
for name in "${contestants[@]}"; do
    awk -v n="$name" -v s="${best[$name]}" -v t="$torch_best" \
        'BEGIN { printf "%-40s %10.3f %12.0f %21.2f×\n", n, s, 50000 / s, t / s }'
done
echo "(torchvision pil: ImageFolder + transforms.Resize((${SIZE}, ${SIZE})) + PILToTensor; io: loader torchvision.io.decode_image(RGB) + v2.Resize((${SIZE}, ${SIZE}), antialias=True); DataLoader(num_workers=$cores))"

if ((EPOCH)); then
    echo "one epoch of MiniVGGNet on the cached folder..." >&2
    minivgg_load "$SCRATCH/cache" >/dev/null # the cache for this image size, if a round left none
    log=$(XDG_CACHE_HOME=$SCRATCH/cache "$BIN" train --data "$IMAGES" --val-split 0.2 \
        --image-size "$SIZE" --epochs 1 --output "$SCRATCH/epoch.png")
    load=$(sed -n 's/.*, loaded in \([0-9.]*\)s$/\1/p' <<<"$log")
    epoch=$(sed -n 's/^Epoch 1\/1 - \([0-9]*\)s - .*/\1/p' <<<"$log")
    [[ -n $load && -n $epoch ]] || die "could not read the load time or the epoch from: $log"
    echo
    grep -E 'loaded in|^Epoch' <<<"$log"
    awk -v l="$load" -v e="$epoch" \
        'BEGIN { printf "a cached run: loading %.2f s, its epoch %d s: loading is %.2f %% of an epoch\n", l, e, 100 * l / e }'
fi
