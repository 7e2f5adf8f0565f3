"""A float that stands for a settable optimizer value (``model.optimizer.lr``)."""

from __future__ import annotations

from typing import Any

import numpy as np


class _Variable(float):
    """``model.optimizer.lr`` / ``learning_rate``: a Python float (its value when read) that,
    like the tf.Variable Keras returns, can also be set: ``lr.assign(0.001)``,
    ``K.set_value(model.optimizer.lr, 0.001)``; ``lr.numpy()`` and ``K.get_value(lr)`` read the
    current value."""

    _owner: Any
    _attr: str

    def __new__(cls, value: float, owner: Any, attr: str) -> "_Variable":
        obj = super().__new__(cls, value)
        obj._owner = owner
        obj._attr = attr
        return obj

    def _read(self) -> float:
        return float(getattr(self._owner, self._attr))

    def assign(self, value: Any) -> None:
        """Sets the optimizer's value (as ``optimizer.learning_rate = value``)."""
        setattr(self._owner, self._attr, value)

    def numpy(self) -> np.float32:
        """The current value as a NumPy float32 (as a tf.Variable's ``numpy()``)."""
        return np.float32(self._read())

    def __reduce__(self) -> Any:
        return (float, (float(self),))
