"""The PyTorch side of scripts/bench_folder_vs_torchvision.sh.

  write ARCHIVE DIR   writes CIFAR-10's 50,000 training images from the official binary
                      archive as PNGs, DIR/<class>/<index>.png (skipped if DIR is complete)
  time DIR ...        one pass of torchvision's ImageFolder + DataLoader over DIR, each picture
                      resized to --size and made a uint8 tensor; prints the seconds, from
                      building the data set to the last batch (worker start-up included, as a
                      user's first epoch has it)
"""

import argparse
import os
import sys
import tarfile
import time

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
TRAIN_IMAGES = 50_000


def write(archive, out):
    import numpy as np
    from PIL import Image

    done = os.path.join(out, ".complete")
    if os.path.exists(done):
        return
    with tarfile.open(archive) as tar:
        records = np.concatenate([
            np.frombuffer(tar.extractfile(f"cifar-10-batches-bin/data_batch_{i}.bin").read(),
                          np.uint8).reshape(-1, 3073)
            for i in range(1, 6)
        ])
    assert len(records) == TRAIN_IMAGES
    for name in CLASSES:
        os.makedirs(os.path.join(out, name), exist_ok=True)
    for i, record in enumerate(records):
        pixels = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        Image.fromarray(pixels).save(os.path.join(out, CLASSES[record[0]], f"{i:05d}.png"))
    open(done, "w").close()


def one_pass(root, loader, size, workers, batch_size):
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets

    # One thread per worker process, as DataLoader sets it; the main process only collates.
    torch.set_num_threads(1)
    started = time.perf_counter()
    if loader == "pil":
        # The tutorial-style idiom: PIL decodes, Resize, then uint8 (no float conversion,
        # which minivgg does not do at load time either).
        from torchvision import transforms
        dataset = datasets.ImageFolder(root, transform=transforms.Compose(
            [transforms.Resize((size, size)), transforms.PILToTensor()]))
    else:
        # torchvision's own decoder straight to a uint8 tensor, resized on tensors.
        from torchvision.io import ImageReadMode, decode_image
        from torchvision.transforms import v2
        dataset = datasets.ImageFolder(
            root, loader=lambda path: decode_image(path, mode=ImageReadMode.RGB),
            transform=v2.Resize((size, size), antialias=True))
    images = 0
    for batch, _labels in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        assert batch.dtype == torch.uint8 and tuple(batch.shape[1:]) == (3, size, size)
        images += batch.shape[0]
    seconds = time.perf_counter() - started
    assert images == len(dataset), (images, len(dataset))
    print(f"{seconds:.3f} {images}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("write")
    w.add_argument("archive")
    w.add_argument("dir")
    t = commands.add_parser("time")
    t.add_argument("dir")
    t.add_argument("--loader", choices=["pil", "io"], required=True)
    t.add_argument("--size", type=int, required=True)
    t.add_argument("--workers", type=int, required=True)
    t.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    if args.command == "write":
        write(args.archive, args.dir)
    else:
        one_pass(args.dir, args.loader, args.size, args.workers, args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
