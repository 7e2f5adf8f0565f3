"""``tf.keras.optimizers.legacy``: the same SGD as ``minivgg.keras.optimizers.SGD``."""

from __future__ import annotations

from ._sgd import SGD, Adadelta, Adagrad, Adam, Adamax, Ftrl, Nadam, RMSprop

__all__ = ["SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl"]
