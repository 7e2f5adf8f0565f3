#!/usr/bin/env bash
# Times an epoch of the tutorial's training on CIFAR-10 four ways on this CPU, in one
# invocation, and prints one table:
#   1. `minivgg train` (the command line; its epoch times from the history CSV),
#   2. the tutorial's MiniVGGNet, SGD and fit call through minivgg.keras (Python),
#   3. the same through TensorFlow 2.21's tf.keras, which is Keras 3, with the edits Keras 3
#      needs (SGD's lr= is refused and decay= ignored: learning_rate= an InverseTimeDecay),
#   4. the same through tf.keras with Keras 2 semantics (tf_keras, TF_USE_LEGACY_KERAS=1;
#      optimizers.legacy.SGD takes lr= and decay= as printed).
# Each runs EPOCHS epochs in turn, ROUNDS times, the contestants alternating so that drift of
# the machine hits all of them; each keeps its fastest epoch, validation on the test split
# included, as in Keras' epoch time. Both sides use every core.
#
# Usage: scripts/bench_python_vs_keras.sh [--epochs N] [--rounds R] [--limit N] [--no-install]
#
#   --epochs N    epochs per contestant and round (default 1)
#   --rounds R    rounds (default 2)
#   --limit N     only the first N images of each split (a quick trial; default all)
#   --no-install  don't create/fill the virtual environment
#
# Environment: MINIVGG_DATA (CIFAR-10's archive, else the user cache), BENCH_KERAS_VENV (the
# virtual environment with minivgg and TensorFlow; default <repo>/.venv-keras).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EPOCHS=1
ROUNDS=2
LIMIT=()
INSTALL=1
VENV=${BENCH_KERAS_VENV:-$ROOT/.venv-keras}
die() { echo "bench_python_vs_keras: $*" >&2; exit 1; }
while (($#)); do
    case $1 in
        --epochs) EPOCHS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --limit) LIMIT=(--limit "$2"); shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        *) die "unknown argument $1" ;;
    esac
done
# shellcheck source=lib/bench_common.sh
source "$ROOT/scripts/lib/bench_common.sh"

PY=$VENV/bin/python
if ((INSTALL)); then
    [[ -x $PY ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "tensorflow-cpu==2.21.*" "tf_keras==2.21.*"
    "$VENV/bin/pip" install --quiet "$ROOT"
fi
"$PY" -c "import tensorflow, tf_keras, minivgg.keras" 2>/dev/null || die "$VENV lacks tensorflow, tf_keras or minivgg"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"

describe_cpu
echo "minivgg $(git -C "$ROOT" rev-parse --short HEAD), MiniVGGNet with BN, batch 64, $EPOCHS epochs a round, $ROUNDS rounds, $cores threads"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

epoch_times() { sed -n 's/^epoch [0-9]*: \([0-9.]*\) s.*/\1/p'; }
for round in $(seq "$ROUNDS"); do
    echo "== round $round: minivgg train"
    "$ROOT/target/release/minivgg" train --epochs "$EPOCHS" "${LIMIT[@]}" --seed "$round" \
        --output "$work/cli.png" >"$work/cli.log"
    tail -n +2 "$work/cli.csv" | cut -d, -f2 | awk '{printf "epoch %d: %.2f s\n", NR, $1}' | tee -a "$work/cli.times"
    echo "== round $round: minivgg.keras"
    "$PY" "$ROOT/scripts/bench_python_epoch.py" --keras minivgg --epochs "$EPOCHS" "${LIMIT[@]}" | tee -a "$work/py.times"
    echo "== round $round: tf.keras (Keras 3)"
    "$PY" "$ROOT/scripts/bench_python_epoch.py" --keras keras3 --epochs "$EPOCHS" "${LIMIT[@]}" | tee -a "$work/keras3.times"
    echo "== round $round: tf.keras (tf_keras, Keras 2)"
    "$PY" "$ROOT/scripts/bench_python_epoch.py" --keras tf_keras --epochs "$EPOCHS" "${LIMIT[@]}" | tee -a "$work/tf_keras.times"
done
best() { epoch_times <"$1" | sort -n | head -n1; }
cli=$(best "$work/cli.times")
py=$(best "$work/py.times")
keras3=$(best "$work/keras3.times")
tf_keras=$(best "$work/tf_keras.times")

echo
printf '%-44s %10s %s\n' "fastest epoch" "seconds" "ratio"
printf '%-44s %10.2f\n' "minivgg train (command line)" "$cli"
printf '%-44s %10.2f %s\n' "minivgg.keras fit" "$py" "$(awk -v a="$py" -v b="$cli" 'BEGIN{printf "%.3f× the command line", a/b}')"
ratio() { awk -v a="$py" -v b="$1" 'BEGIN{printf "minivgg.keras is %.2f× its time", a/b}'; }
printf '%-44s %10.2f %s\n' "tf.keras 2.21 fit (Keras 3)" "$keras3" "$(ratio "$keras3")"
printf '%-44s %10.2f %s\n' "tf.keras 2.21 fit (tf_keras, Keras 2)" "$tf_keras" "$(ratio "$tf_keras")"
