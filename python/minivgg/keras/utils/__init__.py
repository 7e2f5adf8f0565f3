"""Keras' ``utils``: ``to_categorical``, ``set_random_seed`` and ``Progbar``, and minivgg's
``load_image_folder`` (a folder of images, one sub-folder per class, as arrays).

``set_random_seed(seed)`` seeds Python's ``random`` and NumPy's global generator, as Keras
does, and makes the next ``Sequential`` made take exactly ``seed`` as its engine seed (the
weights, shuffling and dropout of ``minivgg train --seed SEED``), each later model the next
value of a stream of that seed, so a script gives the same weights run after run.
"""

from __future__ import annotations

import numbers
import os
import random
from typing import Any, Optional, Sequence

import numpy as np

from .. import _seed
from .._progbar import Progbar

__all__ = ["to_categorical", "set_random_seed", "load_image_folder", "Progbar", "np_utils"]


def to_categorical(y: Any, num_classes: Optional[int] = None, dtype: str = "float32") -> np.ndarray:
    """Keras 2's to_categorical: class indices ``y`` (any shape; a last axis of 1 is dropped)
    as one-hot rows of ``num_classes`` (default ``max(y) + 1``), of ``dtype``. The same as
    Keras, to the letter."""
    y = np.array(y, dtype="int")
    input_shape = y.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    y = y.ravel()
    if not num_classes:
        num_classes = int(np.max(y)) + 1
    n = y.shape[0]
    categorical = np.zeros((n, num_classes), dtype=dtype)
    categorical[np.arange(n), y] = 1
    output_shape = input_shape + (num_classes,)
    return np.reshape(categorical, output_shape)


def set_random_seed(seed: int) -> None:
    """Keras' set_random_seed: seeds Python's ``random`` and NumPy's global generator, and
    makes the next ``Sequential`` made take exactly ``seed`` as its engine seed (so
    ``set_random_seed(42)`` then the tutorial's MiniVGGNet starts from the weights of
    ``minivgg train --seed 42``), each later one the next value of a ``random.Random(seed)``
    stream. (Models from ``load_model`` keep their file's seed and draw nothing.) Difference: seeds up to 2**64 - 1 are accepted (the engine's range); NumPy is
    seeded with ``seed % 2**32`` (the same as Keras for every seed Keras accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(
            f"Expected `seed` argument to be an integer. Received: seed={seed!r} (of type {type(seed)})"
        )
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"set_random_seed: seed must be in [0, 2**64), got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _seed.set_seed(seed)


def load_image_folder(
    directory: Any,
    image_size: Sequence[int] = (32, 32),
    color_mode: str = "rgb",
    validation_split: Optional[float] = None,
    skip_bad_images: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], list[str]]:
    """A folder of images, one sub-folder per class (``animals/cats/*.jpg``, …), as arrays
    (minivgg's addition, the arrays-returning sibling of Keras'
    ``image_dataset_from_directory``): ``(x_train, y_train), (x_test, y_test), class_names``.

    x is (N, height, width, 3) uint8 (``color_mode="grayscale"``: 1 channel), resized to
    ``image_size`` (height, width); y is (N,) uint8 class indices into ``class_names`` (the
    sub-folders' names, sorted). A folder with ``train/`` and ``test/`` (or ``val/``,
    ``validation/``) sub-folders is split as they are; otherwise ``validation_split`` holds
    out that fraction of each class as the test part (without it, everything is training
    data and the test arrays are empty). Images are decoded once on all cores and cached, as
    ``minivgg data --data DIRECTORY`` does. ``skip_bad_images=True`` skips files that do not
    decode instead of raising ValueError naming them."""
    from ... import _minivgg

    if color_mode not in ("rgb", "grayscale"):
        if color_mode == "rgba":
            raise NotImplementedError(
                "load_image_folder: color_mode='rgba' is not supported by minivgg; use 'rgb' or 'grayscale'"
            )
        raise ValueError(
            f"load_image_folder: color_mode must be 'rgb' or 'grayscale', got {color_mode!r}"
        )
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in image_size)
    ):
        raise ValueError(
            f"load_image_folder: image_size must be (height, width) of positive integers, got {image_size!r}"
        )
    if validation_split is not None and (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, numbers.Real)
        or not 0 < validation_split < 1
    ):
        raise ValueError(
            f"load_image_folder: validation_split must be None or a number in (0, 1), got {validation_split!r}"
        )
    x_train, y_train, x_test, y_test, class_names = _minivgg.load_image_folder(
        os.fspath(directory),
        (int(image_size[0]), int(image_size[1])),
        color_mode == "grayscale",
        None if validation_split is None else float(validation_split),
        bool(skip_bad_images),
    )
    return (
        (np.asarray(x_train), np.asarray(y_train)),
        (np.asarray(x_test), np.asarray(y_test)),
        list(class_names),
    )


from . import np_utils  # noqa: E402 - it imports to_categorical from here
