"""Keras' ``datasets.cifar100``."""

from __future__ import annotations

from ._load import Arrays, load

__all__ = ["load_data"]


def load_data(label_mode: str = "fine") -> Arrays:
    """CIFAR-100 as Keras returns it: x (N, 32, 32, 3) uint8, y (N, 1) int64, with the 100
    ``"fine"`` classes or the 20 ``"coarse"`` superclasses (``label_mode``)."""
    if label_mode not in ("fine", "coarse"):
        raise ValueError(
            '`label_mode` must be one of `"fine"`, `"coarse"`. '
            f"Received: label_mode={label_mode!r}."
        )
    x_train, y_train, x_test, y_test = load("cifar100", label_mode)
    return (x_train, y_train.reshape(-1, 1).astype("int64", copy=False)), (
        x_test,
        y_test.reshape(-1, 1).astype("int64", copy=False),
    )
