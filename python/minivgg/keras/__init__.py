"""minivgg's Keras: the part of tf.keras 2 the PyImageSearch series uses, on minivgg's engine.

Replace ``tensorflow.keras`` with ``minivgg.keras`` in a script::

    from minivgg.keras.models import Sequential
    from minivgg.keras.layers import Conv2D, Activation, BatchNormalization
    from minivgg.keras.optimizers import SGD
    from minivgg.keras.datasets import cifar10

Modules: ``models`` (Sequential, load_model), ``layers``, ``optimizers`` (SGD), ``losses``,
``callbacks``, ``datasets``, ``utils``, ``backend``. Keras 2 semantics (TF 2.x), with Keras'
names, arguments and defaults; whatever minivgg's engine cannot do raises
NotImplementedError naming the argument and what is supported. Each name's docstring says
what differs from tf.keras.
"""

from __future__ import annotations

from . import backend, callbacks, datasets, layers, losses, models, optimizers, preprocessing, regularizers, utils
from .layers import Input
from .models import Model, Sequential

__all__ = [
    "backend",
    "callbacks",
    "datasets",
    "layers",
    "losses",
    "models",
    "optimizers",
    "preprocessing",
    "regularizers",
    "utils",
    "Input",
    "Model",
    "Sequential",
]
