#!/usr/bin/env python3
"""PyTorch reference trainer: what the tutorial's MiniVGGNet recipe reaches in PyTorch.

Trains the network of bench_pytorch.py (`minivggnet`) on CIFAR-10 with the recipe that
`minivgg train` follows (Keras semantics): pixels / 255, categorical cross-entropy,
Glorot-uniform kernels and zero biases, BN momentum 0.99 (torch 0.01) and epsilon 1e-3,
Keras' SGD (lr 0.01, momentum 0.9, Nesterov, `lr_t = lr / (1 + decay*t)`, decay lr/epochs)
or `--schedule linear` (`lr_t = lr * max(0, 1 - t/T)`), batch 64, 40 epochs, reshuffled
every epoch (last partial batch kept), validated on the 10,000 test images after each epoch.
The SGD update is Keras' own (`v = m*v - lr_t*g; w += m*v - lr_t*g`), not torch.optim.SGD,
which differs from it once the rate changes. Strict FP32: TF32 is off, as in minivgg.

On the GPU machine (the data set lives on the device as uint8; --augment crops and flips there):

    python scripts/train_pytorch_reference.py --data ../shared/data/cifar-10-binary.tar.gz
    python scripts/train_pytorch_reference.py --data DIR --augment --schedule linear

Quick CPU smoke test: add `--device cpu --limit 512 --epochs 2`; `--self-check` tests the crop.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pytorch import minivggnet  # noqa: E402

TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
PAD = 4


def load_cifar(path: str) -> dict[str, bytes]:
    """The six .bin files' bytes, from the .tar.gz (not extracted) or a directory."""
    wanted = TRAIN_FILES + [TEST_FILE]
    if os.path.isfile(path):
        with tarfile.open(path, "r:*") as tar:
            found = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            missing = [f for f in wanted if f not in found]
            if missing:
                sys.exit(f"{path}: missing {missing}")
            return {f: tar.extractfile(found[f]).read() for f in wanted}
    sub = os.path.join(path, "cifar-10-batches-bin")
    folder = sub if os.path.isdir(sub) else path
    out = {}
    for f in wanted:
        with open(os.path.join(folder, f), "rb") as fh:
            out[f] = fh.read()
    return out


def records(blobs: list[bytes], limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and images (N, 3, 32, 32) uint8: a record is 1 label byte + R, G, B planes."""
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, 3073)[:limit]
    return raw[:, 0].astype(np.int64), raw[:, 1:].reshape(-1, 3, 32, 32)


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Batched crop of each image zero-padded by PAD, at offsets dy, dx in -PAD..=PAD (relative
    to the unpadded image), then mirrored where `flip`: out[y, x] = img[y + dy, x' + dx] with
    x' = W-1-x when flipped, 0 outside the image. One gather, no per-image loop."""
    n, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))  # zeros
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = (dy + PAD)[:, None] + ar_h  # (N, H)
    cols = (dx + PAD)[:, None] + torch.where(flip[:, None], ar_w.flip(0), ar_w)  # (N, W)
    n_i = torch.arange(n, device=x.device)[:, None, None, None]
    c_i = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[n_i, c_i, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: torch.Tensor) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    dy = torch.randint(-PAD, PAD + 1, (n,), device=dev)
    dx = torch.randint(-PAD, PAD + 1, (n,), device=dev)
    flip = torch.randint(0, 2, (n,), device=dev).bool()
    return crop_flip(x, dy, dx, flip)


def self_check() -> None:
    img = torch.arange(1, 1 + 2 * 3 * 5 * 5).reshape(2, 3, 5, 5).to(torch.uint8)  # no zeros
    dy, dx, flip = torch.tensor([1, -4]), torch.tensor([-2, 4]), torch.tensor([False, True])
    out = crop_flip(img, dy, dx, flip)
    assert out.shape == img.shape and out.dtype == torch.uint8
    for n in range(2):
        for c in range(3):
            for y in range(5):
                for x in range(5):
                    xs = (4 - x if flip[n] else x) + int(dx[n])
                    ys = y + int(dy[n])
                    want = int(img[n, c, ys, xs]) if 0 <= ys < 5 and 0 <= xs < 5 else 0
                    assert int(out[n, c, y, x]) == want, (n, c, y, x, int(out[n, c, y, x]), want)
    # Spelled out: image 0 is shifted up 1 and right 2 (two zero columns on the left, one
    # zero row at the bottom); image 1 (dy=-4, dx=4, flipped) keeps only img[0, 4], at (4, 4).
    assert out[0, 0, 0].tolist() == [0, 0, *img[0, 0, 1, :3].tolist()]
    assert out[0, :, 4].eq(0).all() and out[0, :, :, :2].eq(0).all()
    assert out[1, :, 4, 4].tolist() == img[1, :, 0, 4].tolist()
    assert int(out[1].ne(0).sum()) == 3
    r = random_crop_flip(torch.ones(4096, 1, 32, 32, dtype=torch.uint8))
    zeros_per_image = r.eq(0).flatten(1).sum(1)  # (|dy|+|dx|) strips of zeros
    assert 0 < zeros_per_image.float().mean() < 32 * 32 and zeros_per_image.max() <= 32 * 32 - 28 * 28
    print("self-check passed: crop offsets, flip and zero padding are as documented")


def lr_at(t: int, args: argparse.Namespace, total: int) -> float:
    """The rate of update t (t updates done before it), as minivgg's SgdConfig::lr_at."""
    anneal = max(0.0, 1.0 - t / total) if args.schedule == "linear" else 1.0
    return args.lr / (1.0 + args.decay * t) * anneal


@torch.no_grad()
def keras_sgd_step(params, velocity, lr_t: float, m: float, wd: float) -> None:
    grads = [p.grad for p in params]
    if wd:
        torch._foreach_add_(grads, params, alpha=wd)  # g += wd*w, as minivgg's --weight-decay
    torch._foreach_mul_(velocity, m)
    torch._foreach_add_(velocity, grads, alpha=-lr_t)  # v = m*v - lr_t*g
    torch._foreach_add_(params, velocity, alpha=m)  # w += m*v - lr_t*g (Nesterov)
    torch._foreach_add_(params, grads, alpha=-lr_t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="cifar-10-binary.tar.gz, or a folder with the .bin files")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--decay", type=float, default=None, help="default lr/epochs (keras), 0 (linear)")
    p.add_argument("--schedule", choices=["keras", "linear"], default="keras")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0, help="g += wd*w on every parameter")
    p.add_argument("--augment", action="store_true", help="random crop (pad 4) and flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--limit", type=int, default=None, help="first N train and N test images")
    p.add_argument("--no-bn", action="store_true")
    p.add_argument("--self-check", action="store_true", help="test the crop/flip and exit")
    args = p.parse_args()
    if args.self_check:
        self_check()
        return 0
    if not args.data:
        p.error("--data is required")
    if args.decay is None:
        args.decay = args.lr / args.epochs if args.schedule == "keras" else 0.0

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    blobs = load_cifar(args.data)
    ty, tx = records([blobs[f] for f in TRAIN_FILES], args.limit)
    vy, vx = records([blobs[TEST_FILE]], args.limit)
    train_x, train_y = torch.from_numpy(tx.copy()).to(dev), torch.from_numpy(ty).to(dev)
    val_x, val_y = torch.from_numpy(vx.copy()).to(dev), torch.from_numpy(vy).to(dev)
    n_train, n_val, bs = len(ty), len(vy), args.batch_size

    model = minivggnet(bn=not args.no_bn, classes=10)
    for mod in model.modules():  # bench_pytorch keeps torch's default init: make it Keras'
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(mod.weight)  # fans count the 3x3 field, as Keras' do
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            mod.eps, mod.momentum = 1e-3, 0.01
    model.to(dev)
    params = [q for q in model.parameters()]
    velocity = [torch.zeros_like(q) for q in params]

    per_epoch = -(-n_train // bs)
    total_updates, t = args.epochs * per_epoch, 0
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        order = torch.randperm(n_train, device=dev)
        for i in range(0, n_train, bs):
            idx = order[i : i + bs]
            xb = train_x[idx]
            if args.augment:
                xb = random_crop_flip(xb)
            xb, yb = xb.float() / 255.0, train_y[idx]
            lr_t = lr_at(t, args, total_updates)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            model.zero_grad(set_to_none=True)
            loss.backward()
            keras_sgd_step(params, velocity, lr_t, args.momentum, args.weight_decay)
            t += 1
            loss_sum += loss.detach().double() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
        model.eval()
        val_loss = torch.zeros((), device=dev, dtype=torch.float64)
        val_correct = torch.zeros((), device=dev, dtype=torch.int64)
        with torch.inference_mode():
            for i in range(0, n_val, bs):
                xb, yb = val_x[i : i + bs].float() / 255.0, val_y[i : i + bs]
                logits = model(xb)
                val_loss += F.cross_entropy(logits, yb, reduction="sum").double()
                val_correct += (logits.argmax(1) == yb).sum()
        loss_v, acc = loss_sum.item() / n_train, correct.item() / n_train
        val_l, val_acc = val_loss.item() / n_val, val_correct.item() / n_val
        secs = time.perf_counter() - epoch_start
        print(
            f"Epoch {epoch}/{args.epochs} - {secs:.0f}s - loss: {loss_v:.4f} - acc: {acc:.4f}"
            f" - val_loss: {val_l:.4f} - val_acc: {val_acc:.4f} - lr: {lr_t:.5f}",
            flush=True,
        )
    print(f"final val_acc: {val_acc:.4f}")
    print(f"total: {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
