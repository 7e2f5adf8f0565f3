#!/usr/bin/env bash
# Exports MODEL with minivgg and checks the .onnx with onnxruntime and OpenCV's dnn on the
# CIFAR-10 test set against `minivgg evaluate` (scripts/check_onnx.py).
# Usage: scripts/check_onnx.sh MODEL.safetensors DATA.tar.gz
#   MINIVGG: the binary (default: target/release/minivgg, or $CARGO_TARGET_DIR's);
#   PYTHON: a Python with numpy, onnxruntime and opencv-python-headless (default: python3).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
minivgg=${MINIVGG:-${CARGO_TARGET_DIR:-$here/../target}/release/minivgg}
exec "${PYTHON:-python3}" "$here/check_onnx.py" "$1" "$2" --minivgg "$minivgg"
