#!/usr/bin/env python3
"""Time one PyTorch (eager) training step and one inference batch of MiniVGGNet, on the CPU
or (--device cuda) on an NVIDIA GPU, where --epoch also times one whole epoch with the data
set already on the GPU.

The PyTorch counterpart of `minivgg bench`: the same network (the PyImageSearch MiniVGGNet
as built in Keras), the same optimizer, the same batch size, on random data that is already in
memory as float32, so only the network's own work is timed.

Prints exactly one JSON line on stdout, for example:

    {"contestant": "pytorch", "layout": "channels_last", "bn": true, "threads": 2,
     "batch_size": 64, "steps": 30, "warmup": 30, "zero_grad": "after the forward",
     "train_ms": {"median": 95.1, "min": 90.2, "max": 110.7},
     "train_ms_by_order": {"before the forward": 97.0, "after the forward": 95.1},
     "infer_ms": {"median": 20.3, "min": 19.8, "max": 25.0}, "torch": "2.15.0", ...}

The median is taken like minivgg's (`sorted[n // 2]`, the upper median for an even count) so
both sides are summarised the same way.

PyTorch at its best: the training step is timed in both of the common orders,
`optimizer.zero_grad(set_to_none=True)` before the forward and after it (just before
`backward`), alternating step by step so that drift hits both; `train_ms` is the faster
order's, and `zero_grad` says which. Each order warms up for --warmup steps (default 30).

Usage: bench_pytorch.py [--threads 2] [--steps 30] [--warmup 30] [--batch-size 64]
                        [--channels-last] [--no-bn] [--seed 0] [--device cpu|cuda] [--epoch]
                        [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--steps", type=int, default=30, help="timed steps, after warm-up (default 30)")
    p.add_argument("--warmup", type=int, default=30, help="untimed warm-up steps (default 30)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC memory format for the model and the input (default: contiguous NCHW)",
    )
    p.add_argument(
        "--no-bn", action="store_true", help="MiniVGGNet without its five batch-normalization layers"
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for the forward pass and the loss (weights and optimizer stay "
        "float32), as PyTorch's mixed-precision recipe does",
    )
    p.add_argument(
        "--probe-onednn",
        action="store_true",
        help=argparse.SUPPRESS,  # internal: one step under ONEDNN_VERBOSE, see onednn_kernels()
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument(
        "--epoch",
        action="store_true",
        help="also time one epoch: 50,000 training images (random, already on the device, "
        "reshuffled there) and 10,000 validation images",
    )
    args = p.parse_args(argv)
    for name in ("threads", "steps", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    return args


def minivggnet(bn: bool = True, classes: int = 10):
    """MiniVGGNet exactly as the Keras original (PyImageSearch), input 3×32×32.

    Keras' Conv2D(padding="same") → Activation("relu") → BatchNormalization(axis=chanDim):
    the batch norm comes after the ReLU. Keras' BN momentum 0.99 is PyTorch's 0.01
    (PyTorch weights the new batch statistic, Keras the running average), and Keras' epsilon
    is 1e-3.
    """
    import torch.nn as nn

    def bn2d(c):
        return [nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)] if bn else []

    def conv(cin, cout):
        return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True), *bn2d(cout)]

    layers = [
        *conv(3, 32),
        *conv(32, 32),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        *conv(32, 64),
        *conv(64, 64),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 512),
        nn.ReLU(inplace=True),
        *([nn.BatchNorm1d(512, eps=1e-3, momentum=0.01)] if bn else []),
        nn.Dropout(0.5),
        nn.Linear(512, classes),  # logits: CrossEntropyLoss applies the softmax
    ]
    return nn.Sequential(*layers)


def onednn_kernels(argv: list[str]) -> dict[str, object]:
    """What oneDNN ran for this configuration: its ISA line and the convolution
    implementations, from one training step and one inference batch in a child process with
    ONEDNN_VERBOSE=1 (the verbose output would slow the timed runs)."""
    import subprocess

    env = dict(os.environ, ONEDNN_VERBOSE="1")
    child = subprocess.run(
        [sys.executable, __file__, *argv, "--probe-onednn", "--steps", "1", "--warmup", "0"],
        env=env, capture_output=True, text=True, check=False,
    )
    isa, convs = None, set()
    for line in child.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "isa:" in line:
            isa = line.split("isa:", 1)[1].strip()
        elif len(fields) > 5 and fields[2] == "primitive" and fields[3] == "exec" and fields[5] == "convolution":
            convs.add(fields[6])
    return {"isa": isa, "convolutions": sorted(convs)}


def summarise(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in samples_s)
    return {"median": ms[len(ms) // 2], "min": ms[0], "max": ms[-1]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import torch
    import torch.nn as nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    def sync() -> None:
        # GPU work is asynchronous: a step is done when the device says so.
        if device.type == "cuda":
            torch.cuda.synchronize()

    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = minivggnet(bn=not args.no_bn).to(device=device, memory_format=layout)
    x = torch.rand(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    criterion = nn.CrossEntropyLoss()
    # Keras' SGD(lr=0.01, momentum=0.9, nesterov=True); the tutorial's decay=0.01/40 only changes
    # the learning rate's value, not the work of a step.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    BEFORE, AFTER = "before the forward", "after the forward"

    def train_step(inputs=x, targets=y, wait=True, zero_grad=BEFORE) -> float:
        started = time.perf_counter()
        if zero_grad == BEFORE:
            optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = criterion(model(inputs), targets)
        if zero_grad == AFTER:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if wait:
            sync()
        return time.perf_counter() - started

    model.train()
    orders = (BEFORE, AFTER)
    for _ in range(args.warmup):
        for order in orders:
            train_step(zero_grad=order)
    by_order = {order: [] for order in orders}
    for _ in range(args.steps):
        for order in orders:
            by_order[order].append(train_step(zero_grad=order))
    fastest = min(orders, key=lambda o: summarise(by_order[o])["median"])
    train = by_order[fastest]

    model.eval()

    def infer_step(inputs=x, wait=True) -> float:
        started = time.perf_counter()
        with torch.inference_mode(), autocast():
            model(inputs)
        if wait:
            sync()
        return time.perf_counter() - started

    for _ in range(args.warmup):
        infer_step()
    infer = [infer_step() for _ in range(args.steps)]

    if args.probe_onednn:
        return 0

    epoch_s = None
    if args.epoch:
        # One epoch as a training loop runs it: the data set on the device as bytes, a fresh
        # permutation, each batch gathered and scaled there; metrics read back once at the end.
        train_u8 = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, device=device)
        train_y = torch.randint(0, 10, (50_000,), device=device)
        val_u8 = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, device=device)
        sync()
        started = time.perf_counter()
        model.train()
        order = torch.randperm(50_000, device=device)
        for i in range(0, 50_000, args.batch_size):
            idx = order[i : i + args.batch_size]
            inputs = (train_u8[idx].float() / 255.0).contiguous(memory_format=layout)
            train_step(inputs, train_y[idx], wait=False, zero_grad=fastest)
        model.eval()
        for i in range(0, 10_000, args.batch_size):
            infer_step((val_u8[i : i + args.batch_size].float() / 255.0).contiguous(memory_format=layout), wait=False)
        sync()
        epoch_s = time.perf_counter() - started

    result = {
        "contestant": "pytorch",
        "layout": "channels_last" if args.channels_last else "channels_first",
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "bn": not args.no_bn,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "zero_grad": fastest,
        "train_ms": summarise(train),
        "train_ms_by_order": {o: summarise(by_order[o])["median"] for o in orders},
        "infer_ms": summarise(infer),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "onednn": onednn_kernels([a for a in (argv if argv is not None else sys.argv[1:])])
        if device.type == "cpu"
        else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        "epoch_s": epoch_s,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
