"""Keras' ``backend`` module, the parts the PyImageSearch series calls (``K.image_data_format()``).

Differences from tf.keras: the only image data format is ``"channels_last"`` and the only
float type ``"float32"``; ``get_value``/``set_value`` work on the numbers minivgg's objects
return (``model.optimizer.lr``, ``model.optimizer.iterations``), not on TensorFlow variables.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "image_data_format",
    "set_image_data_format",
    "clear_session",
    "floatx",
    "set_floatx",
    "epsilon",
    "get_value",
    "set_value",
    "get_uid",
]

_uids: dict[str, int] = {}


def image_data_format() -> str:
    """``"channels_last"``, the only layout minivgg's engine has (images are (H, W, C))."""
    return "channels_last"


def set_image_data_format(data_format: str) -> None:
    """Accepts ``"channels_last"``; ``"channels_first"`` raises NotImplementedError
    (minivgg's engine works in channels_last only), anything else ValueError."""
    if data_format == "channels_last":
        return
    if data_format == "channels_first":
        raise NotImplementedError(
            "set_image_data_format: data_format='channels_first' is not supported by minivgg's "
            "engine; it works in 'channels_last' only (images as (height, width, channels))"
        )
    raise ValueError(
        f"set_image_data_format: unknown data_format={data_format!r}; expected "
        "'channels_last' (or 'channels_first', which minivgg does not support)"
    )


def floatx() -> str:
    """``"float32"``, the engine's float type."""
    return "float32"


def set_floatx(value: str) -> None:
    """Accepts ``"float32"`` only (NotImplementedError for ``"float16"``/``"float64"``)."""
    if value == "float32":
        return
    if value in ("float16", "bfloat16", "float64"):
        raise NotImplementedError(
            f"set_floatx: {value!r} is not supported by minivgg's engine; it computes in 'float32'"
        )
    raise ValueError(f"set_floatx: unknown float type {value!r}; expected 'float32'")


def epsilon() -> float:
    """Keras' fuzz factor, 1e-7."""
    return 1e-7


def get_uid(prefix: str = "") -> int:
    """Keras' per-prefix counter: 1 on the first call with ``prefix``, then 2, 3, …
    (reset by ``clear_session``)."""
    _uids[prefix] = _uids.get(prefix, 0) + 1
    return _uids[prefix]


def _unique_name(prefix: str, zero_based: bool = True) -> str:
    """Keras' automatic names: ``prefix``, ``prefix_1``, … (``zero_based``) or ``prefix_1``,
    ``prefix_2``, … (as ``input_1``)."""
    uid = get_uid(prefix)
    if zero_based:
        return prefix if uid == 1 else f"{prefix}_{uid - 1}"
    return f"{prefix}_{uid}"


def clear_session() -> None:
    """Resets the automatic layer and model names (the next Conv2D is ``conv2d`` again, the
    next model ``sequential``). Models already made are unaffected; the random seed state
    set by ``utils.set_random_seed`` is kept, as in Keras."""
    _uids.clear()


def get_value(x: Any) -> Any:
    """The value of ``x``: ``model.optimizer.lr`` as a float, a NumPy array as itself.
    (tf.keras: a variable's value.)"""
    from ._variables import _Variable

    if isinstance(x, _Variable):
        return x._read()
    return x


def set_value(x: Any, value: Any) -> None:
    """Sets ``model.optimizer.lr`` / ``learning_rate`` (as ``K.set_value(model.optimizer.lr,
    0.001)``); other targets raise NotImplementedError (minivgg has no TensorFlow variables)."""
    from ._variables import _Variable

    if isinstance(x, _Variable):
        x.assign(value)
        return
    raise NotImplementedError(
        f"set_value: cannot set a {type(x).__name__}; minivgg can set model.optimizer.lr "
        "(or learning_rate) only"
    )
