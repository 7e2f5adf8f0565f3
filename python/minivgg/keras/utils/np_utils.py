"""Keras' old ``utils.np_utils`` module (``np_utils.to_categorical``)."""

from __future__ import annotations

from . import to_categorical

__all__ = ["to_categorical"]
