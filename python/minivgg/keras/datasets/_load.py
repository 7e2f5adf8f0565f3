"""The data sets as Keras' ``load_data()`` returns them, read by minivgg's engine."""

from __future__ import annotations

from typing import Any

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load(name: str, label_mode: str = "fine") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from ... import _minivgg

    x_train, y_train, x_test, y_test, _class_names = _minivgg.load_dataset(name, label_mode)
    return np.asarray(x_train), np.asarray(y_train), np.asarray(x_test), np.asarray(y_test)


def default_path(owner: str, path: Any, default: str) -> None:
    if path != default:
        raise NotImplementedError(
            f"{owner}.load_data: path={path!r} is not supported by minivgg; it finds the data "
            "set as the minivgg command does ($MINIVGG_DATA for CIFAR-10, its cache, a verified "
            f"download): leave path={default!r}"
        )
