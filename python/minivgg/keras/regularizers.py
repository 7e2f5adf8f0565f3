"""Not in minivgg: tf.keras' regularizers (l1, l2)."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotImplementedError(
        f"minivgg.keras.regularizers.{name} is not in minivgg: layers take no regularizers; `minivgg train --weight-decay WD` is Keras' l2(WD / 2) on every weight"
    )
