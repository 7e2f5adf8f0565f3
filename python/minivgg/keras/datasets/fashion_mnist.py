"""Keras' ``datasets.fashion_mnist``."""

from __future__ import annotations

from ._load import Arrays, load

__all__ = ["load_data"]


def load_data() -> Arrays:
    """Fashion-MNIST as Keras returns it: ``(x_train, y_train), (x_test, y_test)``, x of shape
    (60000, 28, 28) / (10000, 28, 28) uint8 (no channel axis: add one, ``x[..., None]``, for a
    Conv2D), y of shape (N,) uint8 (10 kinds of clothing)."""
    x_train, y_train, x_test, y_test = load("fashion_mnist")
    return (x_train.reshape(x_train.shape[:3]), y_train.reshape(-1).astype("uint8", copy=False)), (
        x_test.reshape(x_test.shape[:3]),
        y_test.reshape(-1).astype("uint8", copy=False),
    )
