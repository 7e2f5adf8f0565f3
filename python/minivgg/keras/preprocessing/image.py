"""Not in minivgg: ImageDataGenerator, img_to_array and the rest of tf.keras.preprocessing.image."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotImplementedError(
        f"minivgg.keras.preprocessing.image.{name} is not in minivgg: load folders of images with minivgg.keras.utils.load_image_folder (arrays, as img_to_array gives), and augment with `minivgg train --augment`"
    )
