"""Keras' ``optimizers``: SGD (Keras 2's, with ``lr=`` and ``decay=``), run by minivgg's engine.

``SGD`` here and ``optimizers.legacy.SGD`` are the same class (Keras 2 semantics in both:
``decay`` is the time-based decay ``lr / (1 + decay * iterations)``). Adam, RMSprop and the
other optimizers exist only to raise NotImplementedError with a clear message.
"""

from __future__ import annotations

from ._sgd import SGD, Adadelta, Adagrad, Adam, Adamax, Ftrl, Nadam, RMSprop, get
from . import legacy

__all__ = ["SGD", "get", "legacy", "Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl"]
