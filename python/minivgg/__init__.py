"""minivgg: the PyImageSearch MiniVGGNet tutorial's Keras networks, trained by minivgg's Rust engine.

``minivgg.keras`` is the part of tf.keras 2 that the PyImageSearch series uses (Sequential,
Conv2D, BatchNormalization, SGD, the callbacks, the data sets), with the same names,
arguments and defaults, so a script runs with ``tensorflow.keras`` replaced by
``minivgg.keras``. What the engine cannot do raises NotImplementedError naming the argument
and what is supported; nothing is silently ignored.

``python -m minivgg`` (or the ``minivgg`` command) runs the command-line program.

``import minivgg`` stays light: ``minivgg.keras`` is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "keras"]


def __getattr__(name: str) -> Any:
    """Imports ``minivgg.keras`` on first use (``minivgg.keras.layers`` …)."""
    if name == "keras":
        return importlib.import_module(".keras", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + ["keras"])
