"""Where the engine seed of the next model comes from (set by ``utils.set_random_seed``).

After ``set_random_seed(seed)`` the next Sequential made takes exactly ``seed`` (so the tutorial's
network built after ``set_random_seed(42)`` starts from the weights of
``minivgg train --seed 42``), and each later one the next 64-bit value of a
``random.Random(seed)`` stream kept here (not Python's global one, which scripts may use).
Without it a model's seed is drawn from ``os.urandom``.
"""

from __future__ import annotations

import os
import random
from typing import Optional

_SEED_LIMIT = 2**64

_first: Optional[int] = None
_stream: Optional[random.Random] = None


def set_seed(seed: int) -> None:
    """Makes the next model take ``seed`` and the ones after it draws of a stream of it."""
    global _first, _stream
    _first = seed
    _stream = random.Random(seed)


def next_model_seed() -> int:
    """The engine seed of a model being built now (consumes it)."""
    global _first
    if _first is not None:
        seed, _first = _first, None
        return seed
    if _stream is not None:
        return _stream.getrandbits(64)
    return int.from_bytes(os.urandom(8), "little")
