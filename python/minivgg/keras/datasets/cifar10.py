"""Keras' ``datasets.cifar10``."""

from __future__ import annotations

from ._load import Arrays, load

__all__ = ["load_data"]


def load_data() -> Arrays:
    """CIFAR-10 as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, x of shape
    (50000, 32, 32, 3) / (10000, 32, 32, 3) uint8, y of shape (N, 1) uint8 (classes 0–9:
    airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck), in the files' order.
    Read from ``$MINIVGG_DATA`` (the binary archive) if set, else minivgg's cache or a verified
    download."""
    x_train, y_train, x_test, y_test = load("cifar10")
    return (x_train, y_train.reshape(-1, 1).astype("uint8", copy=False)), (
        x_test,
        y_test.reshape(-1, 1).astype("uint8", copy=False),
    )
