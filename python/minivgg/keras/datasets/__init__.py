"""Keras' ``datasets``: ``cifar10``, ``cifar100``, ``mnist`` and ``fashion_mnist``, each with
``load_data()`` returning Keras' arrays, shapes and dtypes.

They are found as the ``minivgg`` command finds them: ``$MINIVGG_DATA`` for CIFAR-10 (the
binary archive), else minivgg's cache, else a download verified against its checksum (as
Keras downloads to ``~/.keras/datasets``). Difference from tf.keras: the files are minivgg's
(the original binary archives), not Keras' cache; ``path=`` must stay at its default.
"""

from __future__ import annotations

from . import cifar10, cifar100, fashion_mnist, mnist

__all__ = ["cifar10", "cifar100", "mnist", "fashion_mnist"]
