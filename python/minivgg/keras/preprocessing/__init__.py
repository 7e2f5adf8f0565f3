"""Not in minivgg: tf.keras' preprocessing module."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotImplementedError(
        f"minivgg.keras.preprocessing.{name} is not in minivgg: load folders of images with minivgg.keras.utils.load_image_folder, and augment with `minivgg train --augment`"
    )
