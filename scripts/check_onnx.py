#!/usr/bin/env python3
"""Checks `minivgg export` with onnxruntime and OpenCV's dnn on the CIFAR-10 test set.

    python scripts/check_onnx.py MODEL.safetensors cifar-10-binary.tar.gz [--minivgg BIN]

Exports MODEL to ONNX with the minivgg binary, runs the 10,000 test images (NHWC float32,
pixels/255) through the .onnx with each runtime, and prints each one's loss (mean categorical
cross-entropy) and accuracy to 4 decimals beside what `minivgg evaluate` prints for MODEL.
Exits 1 if any of them differs at 4 decimals.

minivgg computes the loss from the logits (log-sum-exp), so it never takes log(0); the ONNX
model outputs probabilities, whose log here is taken in float64 after clipping them to at least
the smallest positive float32, only so an underflowed probability gives a finite loss.

Needs numpy, onnxruntime and opencv-python-headless; with the onnx package installed it also
runs ONNX's own checker (full check, with shape inference) on the file.
"""

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile

import cv2
import numpy as np
import onnxruntime as ort

try:
    import onnx
except ImportError:
    onnx = None

TEST_BATCH = "cifar-10-batches-bin/test_batch.bin"
RECORD = 1 + 3 * 32 * 32


def load_test(archive):
    """The test split: images NHWC float32 in [0, 1], labels int64."""
    with tarfile.open(archive, "r:gz") as tar:
        raw = tar.extractfile(TEST_BATCH).read()
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    planar = records[:, 1:].reshape(-1, 3, 32, 32)  # channel-planar RGB
    images = planar.transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(images), labels


def metrics(probs, labels):
    """(mean cross-entropy, accuracy) of probabilities [n, classes] against labels."""
    p = probs[np.arange(len(labels)), labels].astype(np.float64)
    p = np.maximum(p, np.finfo(np.float32).smallest_subnormal)
    loss = float(np.mean(-np.log(p)))
    accuracy = float(np.mean(np.argmax(probs, axis=1) == labels))
    return loss, accuracy


def run_onnxruntime(model, images):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": images})[0]


def run_opencv(model, images, batch=500):
    net = cv2.dnn.readNetFromONNX(model)
    out = []
    for start in range(0, len(images), batch):
        net.setInput(images[start : start + batch])
        out.append(net.forward().copy())
    return np.concatenate(out)


def minivgg_evaluate(binary, weights, archive, workdir):
    """(loss, accuracy) as the 4-decimal strings `minivgg evaluate` prints."""
    result = subprocess.run(
        [binary, "evaluate", "--weights", weights, "--data", archive,
         "--confusion", os.path.join(workdir, "confusion.png")],
        check=True, capture_output=True, text=True)
    found = re.search(r"loss (\d+\.\d{4}), accuracy (\d+\.\d{4})", result.stdout)
    if not found:
        sys.exit(f"no loss/accuracy line in minivgg evaluate's output:\n{result.stdout}")
    return found.group(1), found.group(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a model saved by minivgg train --save")
    parser.add_argument("data", help="the official cifar-10-binary.tar.gz")
    parser.add_argument("--minivgg", default="minivgg", help="the minivgg binary")
    parser.add_argument("--onnx", help="where to write the exported model (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        model = args.onnx or os.path.join(workdir, "model.onnx")
        subprocess.run([args.minivgg, "export", "--weights", args.weights, "--output", model],
                       check=True, stdout=subprocess.DEVNULL)
        expected = minivgg_evaluate(args.minivgg, args.weights, args.data, workdir)
        images, labels = load_test(args.data)
        print(f"{len(labels)} CIFAR-10 test images, {args.weights}")
        print(f"onnxruntime {ort.__version__}, OpenCV {cv2.__version__}")
        if onnx is not None:
            onnx.checker.check_model(onnx.load(model), full_check=True)
            print(f"onnx {onnx.__version__} checker (full check): passed")
        print(f"{'minivgg evaluate':<18} loss {expected[0]}, accuracy {expected[1]}")
        outputs = {
            "onnxruntime": run_onnxruntime(model, images),
            "opencv dnn": run_opencv(model, images),
        }
        failed = False
        for name, probs in outputs.items():
            loss, accuracy = metrics(probs, labels)
            got = (f"{loss:.4f}", f"{accuracy:.4f}")
            verdict = "same" if got == expected else "DIFFERENT"
            failed |= got != expected
            print(f"{name:<18} loss {got[0]}, accuracy {got[1]}: {verdict}")
        diff = np.max(np.abs(outputs["onnxruntime"] - outputs["opencv dnn"]))
        print(f"max |onnxruntime - opencv dnn| of the probabilities: {diff:.3e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
