"""Keras' ``datasets.mnist``."""

from __future__ import annotations

from ._load import Arrays, default_path, load

__all__ = ["load_data"]


def load_data(path: str = "mnist.npz") -> Arrays:
    """MNIST as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, x of shape
    (60000, 28, 28) / (10000, 28, 28) uint8 (no channel axis: add one, ``x[..., None]``, for a
    Conv2D), y of shape (N,) uint8 (handwritten digits 0–9)."""
    default_path("mnist", path, "mnist.npz")
    x_train, y_train, x_test, y_test = load("mnist")
    return (x_train.reshape(x_train.shape[:3]), y_train.reshape(-1).astype("uint8", copy=False)), (
        x_test.reshape(x_test.shape[:3]),
        y_test.reshape(-1).astype("uint8", copy=False),
    )
