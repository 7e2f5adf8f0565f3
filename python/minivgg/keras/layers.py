"""Keras' ``layers``, the ones the PyImageSearch series' networks are made of.

Each layer takes tf.keras 2's arguments with tf.keras 2's defaults; a value minivgg's engine
cannot run raises NotImplementedError at construction (or when the model learns the layer's
input shape, where the value alone does not decide it), a value Keras itself refuses raises
ValueError (TypeError for an unknown keyword argument, as Keras). What the engine runs:

- ``Conv2D``: an odd square kernel, stride 1, ``padding="same"``, with bias (note that Keras'
  default is ``padding="valid"``, which raises: write ``padding="same"`` as the tutorial does);
- ``Activation``/``ReLU``/``Softmax``: relu and softmax (softmax only as the last layer);
- ``BatchNormalization``: over the channels (``axis=-1``), Keras' ``momentum=0.99`` and
  ``epsilon=1e-3``;
- ``MaxPooling2D``: 2×2, stride 2, ``padding="valid"``;
- ``Dropout``: a rate in [0, 1); ``Flatten``; ``Dense``.

Differences from tf.keras for all layers: inputs are images, so the model's input shape is
``(height, width, channels)``; a ``Dense`` needs a flattened input (Keras would apply it to the
last axis); ``activation=`` on ``Conv2D``/``Dense`` is run by the engine as a separate
activation layer (``model.summary()`` lists it as one); only Keras' default initializers,
no regularizers or constraints; ``dtype`` float32 only; a layer belongs to one model (no
shared layers); ``trainable`` cannot be set to False.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import backend

__all__ = [
    "Layer",
    "Input",
    "InputLayer",
    "Conv2D",
    "Convolution2D",
    "Activation",
    "ReLU",
    "Softmax",
    "BatchNormalization",
    "MaxPooling2D",
    "MaxPool2D",
    "Dropout",
    "Flatten",
    "Dense",
]

Shape = tuple[int, ...]
"""A layer's input or output shape without the batch axis: (height, width, channels) or (features,)."""

_KERAS_ACTIVATIONS = frozenset(
    {
        "sigmoid",
        "tanh",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "exponential",
        "hard_sigmoid",
        "swish",
        "silu",
        "gelu",
        "relu6",
        "leaky_relu",
        "mish",
        "log_softmax",
    }
)


def _batch_shape(shape: Optional[Shape]) -> Optional[tuple[Optional[int], ...]]:
    return None if shape is None else (None, *shape)


def _fmt_shape(shape: Shape) -> str:
    return str((None, *shape))


def _int_arg(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """An integer argument as Keras takes it (Python or NumPy ints, or integral floats)."""
    if isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        number = int(float(value))
    else:
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if number < minimum:
        raise ValueError(
            f"{owner}: invalid value for argument `{name}`: expected an integer >= {minimum}, "
            f"received {name}={value!r}"
        )
    return number


def _pair(owner: str, name: str, value: Any) -> tuple[int, int]:
    """Keras' ``normalize_tuple``: an int n as (n, n), or a pair of ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"{owner}: the `{name}` argument must be a tuple of 2 integers, received {value!r}"
            )
        return (_int_arg(owner, name, value[0]), _int_arg(owner, name, value[1]))
    number = _int_arg(owner, name, value)
    return (number, number)


def _default_only(owner: str, name: str, value: Any, default: Any, hint: str = "") -> None:
    """Refuses anything but Keras' default for an argument the engine does not have."""
    if value is default:
        return
    try:
        same = bool(value == default) and type(value) is type(default)
    except Exception:  # noqa: BLE001 - e.g. an array compared to None
        same = False
    if same:
        return
    raise NotImplementedError(
        f"{owner}: {name}={value!r} is not supported by minivgg's engine; "
        + (hint or f"leave it at Keras' default {name}={default!r}")
    )


def _initializer(owner: str, name: str, value: Any, default: str) -> None:
    """Accepts only Keras' default initializer, by name (``"glorot_uniform"`` or ``"GlorotUniform"``)."""
    if isinstance(value, str) and value.replace("_", "").lower() == default.replace("_", "").lower():
        return
    raise NotImplementedError(
        f"{owner}: {name}={value!r} is not supported by minivgg's engine; it initializes as "
        f"Keras' default {name}={default!r}"
    )


def _activation(owner: str, value: Any) -> Optional[str]:
    """``"relu"`` / ``"softmax"`` / None (for None and ``"linear"``)."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.lower()
        if key == "linear":
            return None
        if key in ("relu", "softmax"):
            return key
        if key in _KERAS_ACTIVATIONS:
            raise NotImplementedError(
                f"{owner}: activation={value!r} is not supported by minivgg's engine; "
                "supported: 'relu', 'softmax' (last layer only), 'linear' or None"
            )
        raise ValueError(
            f"{owner}: Unknown activation function: {value!r}; minivgg supports 'relu', "
            "'softmax', 'linear' or None"
        )
    raise NotImplementedError(
        f"{owner}: activation={value!r} is not supported by minivgg; give the activation's "
        "name as a string: 'relu', 'softmax', 'linear' or None"
    )


def _image_shape(owner: str, name: str, value: Any) -> Shape:
    """An input shape the engine takes: (height, width, channels) of positive ints."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{owner}: {name} must be a tuple such as (32, 32, 3), got {value!r}")
    if any(v is None for v in value):
        raise NotImplementedError(
            f"{owner}: {name}={tuple(value)!r}: minivgg's engine needs a fixed input shape "
            "(height, width, channels), such as (32, 32, 3)"
        )
    if len(value) != 3:
        raise NotImplementedError(
            f"{owner}: {name}={tuple(value)!r} is not supported by minivgg's engine; it takes "
            "images: give (height, width, channels), such as (32, 32, 3) or (28, 28, 1)"
        )
    return tuple(_int_arg(owner, name, v) for v in value)


def _is_float32(dtype: Any) -> bool:
    if dtype is None:
        return True
    try:
        return bool(np.dtype(dtype) == np.float32)
    except TypeError:
        return False


class Layer:
    """The base of minivgg's Keras layers (not meant to be subclassed by scripts: the engine
    runs only the layers of this module).

    Common keyword arguments, as Keras: ``name`` (default: Keras' automatic names, ``conv2d``,
    ``conv2d_1``, … per class, reset by ``backend.clear_session()``), ``input_shape`` (on the
    first layer of a model; ``(height, width, channels)``), ``batch_input_shape`` (its batch
    size must be None), ``dtype`` (None or ``"float32"``) and ``trainable`` (True only).
    Unknown keyword arguments raise TypeError, as in Keras.
    """

    _prefix = "layer"
    _weight_count = 0

    def __init__(
        self,
        name: Optional[str] = None,
        input_shape: Optional[Sequence[int]] = None,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        batch_size: Optional[int] = None,
        dtype: Optional[str] = None,
        trainable: bool = True,
        weights: Any = None,
        dynamic: bool = False,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        for key in kwargs:
            raise TypeError(f"Keyword argument not understood: {key!r} (in {owner})")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{owner}: name must be a string, got {name!r}")
        self.name: str = name if name is not None else backend._unique_name(self._prefix)
        shape: Optional[Shape] = None
        if input_shape is not None:
            shape = _image_shape(owner, "input_shape", input_shape)
        if batch_input_shape is not None:
            if not isinstance(batch_input_shape, (list, tuple)) or len(batch_input_shape) < 1:
                raise ValueError(f"{owner}: batch_input_shape must be a tuple, got {batch_input_shape!r}")
            if batch_input_shape[0] is not None:
                raise NotImplementedError(
                    f"{owner}: batch_input_shape={tuple(batch_input_shape)!r}: a fixed batch size "
                    "is not supported by minivgg; use input_shape=(height, width, channels) "
                    "and fit's batch_size"
                )
            shape = _image_shape(owner, "batch_input_shape[1:]", batch_input_shape[1:])
        if batch_size is not None:
            raise NotImplementedError(
                f"{owner}: batch_size={batch_size!r}: a fixed batch size is not supported by "
                "minivgg; give fit's batch_size instead"
            )
        if not _is_float32(dtype):
            raise NotImplementedError(
                f"{owner}: dtype={dtype!r} is not supported by minivgg's engine; it computes in "
                "'float32' (the default)"
            )
        if trainable is not True:
            raise NotImplementedError(
                f"{owner}: trainable={trainable!r} is not supported by minivgg's engine; every "
                "layer trains"
            )
        _default_only(owner, "weights", weights, None, "set weights after build with set_weights()")
        _default_only(owner, "dynamic", dynamic, False)
        self._input_shape_arg: Optional[Shape] = shape
        self._model: Any = None
        self._weight_index = 0
        self._in_shape: Optional[Shape] = None
        self._out_shape: Optional[Shape] = None

    # -- what the model asks of a layer -------------------------------------------------------

    def _output_shape(self, shape: Shape) -> Shape:
        """This layer's output shape for an input of ``shape``; raises if it cannot take it."""
        return shape

    def _engine_layers(self) -> list[dict[str, Any]]:
        """This layer in network-file JSON (docs/network-files.md): zero, one or two layers."""
        return []

    def _needs_image(self, shape: Shape) -> None:
        if len(shape) != 3:
            raise ValueError(
                f"Input 0 of layer {self.name!r} is incompatible with the layer: expected "
                f"min_ndim=4, found ndim={len(shape) + 1}. Full shape received: {_fmt_shape(shape)}"
            )

    # -- Keras' layer API ---------------------------------------------------------------------

    @property
    def trainable(self) -> bool:
        """Always True (minivgg trains every layer; setting False raises NotImplementedError)."""
        return True

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value is not True:
            raise NotImplementedError(
                f"{type(self).__name__}: trainable={value!r} is not supported by minivgg's "
                "engine; every layer trains"
            )

    @property
    def built(self) -> bool:
        """Whether the layer's model has built its network (its weights exist)."""
        return self._model is not None and self._model._network is not None

    @property
    def input_shape(self) -> tuple[Optional[int], ...]:
        """``(None, …)`` as Keras; AttributeError before the model knows its input shape."""
        if self._in_shape is None:
            raise AttributeError(
                f"The layer {self.name!r} has never been called and thus has no defined input shape."
            )
        return (None, *self._in_shape)

    @property
    def output_shape(self) -> tuple[Optional[int], ...]:
        """``(None, …)`` as Keras; AttributeError before the model knows its input shape."""
        if self._out_shape is None:
            raise AttributeError(
                f"The layer {self.name!r} has never been called and thus has no defined output shape."
            )
        return (None, *self._out_shape)

    def get_weights(self) -> list[np.ndarray]:
        """This layer's weights as Keras orders them (Conv2D/Dense: kernel, bias;
        BatchNormalization: gamma, beta, moving_mean, moving_variance), copies."""
        if self._weight_count == 0:
            return []
        model = self._built_model("get_weights")
        weights: list[np.ndarray] = model.get_weights()
        return weights[self._weight_index : self._weight_index + self._weight_count]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets this layer's weights (the same count and shapes as ``get_weights()``)."""
        weights = list(weights)
        if len(weights) != self._weight_count:
            raise ValueError(
                f"You called `set_weights(weights)` on layer {self.name!r} with a weight list of "
                f"length {len(weights)}, but the layer was expecting {self._weight_count} weights."
            )
        if self._weight_count == 0:
            return
        model = self._built_model("set_weights")
        everything = model.get_weights()
        everything[self._weight_index : self._weight_index + self._weight_count] = weights
        model.set_weights(everything)

    def count_params(self) -> int:
        """The number of this layer's weights (trainable and not), as Keras."""
        if self._weight_count == 0:
            return 0
        return int(sum(w.size for w in self.get_weights()))

    def _built_model(self, what: str) -> Any:
        if self._model is None:
            raise ValueError(
                f"You called `{what}` on layer {self.name!r}, which is not part of a built "
                "model yet; add it to a Sequential model with an input shape first"
            )
        self._model._ensure_built()
        return self._model

    def get_config(self) -> dict[str, Any]:
        """Keras' config dict of the layer (its constructor's arguments)."""
        config: dict[str, Any] = {"name": self.name, "trainable": True, "dtype": "float32"}
        if self._input_shape_arg is not None:
            config["batch_input_shape"] = _batch_shape(self._input_shape_arg)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        """The layer ``get_config()`` describes."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} name={self.name!r}>"


class InputLayer(Layer):
    """Keras' ``InputLayer``: the model's input, ``(height, width, channels)``; usable as the
    first ``model.add``. Not listed in ``model.layers`` (as Keras). Differences: the shape
    must be a fixed image shape; ``input_tensor``, ``sparse``, ``ragged`` and ``type_spec``
    are not supported."""

    _prefix = "input"

    def __init__(
        self,
        input_shape: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
        dtype: Optional[str] = None,
        input_tensor: Any = None,
        sparse: Optional[bool] = None,
        name: Optional[str] = None,
        ragged: Optional[bool] = None,
        type_spec: Any = None,
        **kwargs: Any,
    ) -> None:
        if name is None:
            name = backend._unique_name("input", zero_based=False)
        for arg, value in (("input_tensor", input_tensor), ("type_spec", type_spec)):
            _default_only("InputLayer", arg, value, None)
        for arg, value in (("sparse", sparse), ("ragged", ragged)):
            if value not in (None, False):
                raise NotImplementedError(
                    f"InputLayer: {arg}={value!r} is not supported by minivgg's engine"
                )
        if input_shape is None and kwargs.get("batch_input_shape") is None:
            raise ValueError(
                "InputLayer needs a shape: give shape=(height, width, channels), such as (32, 32, 3)"
            )
        super().__init__(
            name=name, input_shape=input_shape, batch_size=batch_size, dtype=dtype, **kwargs
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "batch_input_shape": _batch_shape(self._input_shape_arg),
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": self.name,
        }


def Input(
    shape: Optional[Sequence[int]] = None,
    batch_size: Optional[int] = None,
    name: Optional[str] = None,
    dtype: Optional[str] = None,
    sparse: Optional[bool] = None,
    tensor: Any = None,
    ragged: Optional[bool] = None,
    type_spec: Any = None,
    **kwargs: Any,
) -> InputLayer:
    """Keras' ``Input(shape=(32, 32, 3))``, for ``model.add(Input(shape=…))`` or
    ``Sequential([Input(shape=…), …])``.

    Difference from tf.keras: it returns an ``InputLayer`` (there are no symbolic tensors and
    no functional API); ``shape`` must be ``(height, width, channels)``."""
    return InputLayer(
        input_shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        input_tensor=tensor,
        sparse=sparse,
        name=name,
        ragged=ragged,
        type_spec=type_spec,
        **kwargs,
    )


class Conv2D(Layer):
    """Keras' ``Conv2D`` (2-D convolution with bias), as the tutorial writes it:
    ``Conv2D(32, (3, 3), padding="same", input_shape=(32, 32, 3))``.

    minivgg's engine runs odd square kernels (``kernel_size=3`` or ``(3, 3)``, 5, …) with
    ``strides=1`` and ``padding="same"``. Keras' default ``padding="valid"`` is kept as the
    default and raises NotImplementedError, as do other strides, dilation, groups,
    ``data_format="channels_first"``, ``use_bias=False``, non-default initializers,
    regularizers and constraints. ``activation`` may be None, ``"linear"``, ``"relu"`` or
    ``"softmax"`` (the engine runs it as a layer of its own).
    """

    _prefix = "conv2d"
    _weight_count = 2

    def __init__(
        self,
        filters: int,
        kernel_size: Union[int, Sequence[int]],
        strides: Union[int, Sequence[int]] = (1, 1),
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: Union[int, Sequence[int]] = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = "Conv2D"
        self.filters = _int_arg(owner, "filters", filters)
        kernel = _pair(owner, "kernel_size", kernel_size)
        if kernel[0] != kernel[1] or kernel[0] % 2 == 0:
            raise NotImplementedError(
                f"Conv2D: kernel_size={kernel_size!r} is not supported by minivgg's engine; "
                "use an odd square kernel such as 3 or (3, 3)"
            )
        self.kernel_size = kernel
        stride = _pair(owner, "strides", strides)
        if stride != (1, 1):
            raise NotImplementedError(
                f"Conv2D: strides={strides!r} is not supported by minivgg's engine; use "
                "strides=1 (or (1, 1), the default)"
            )
        self.strides = stride
        if not isinstance(padding, str):
            raise ValueError(f"Conv2D: padding must be 'valid' or 'same', got {padding!r}")
        pad = padding.lower()
        if pad == "valid":
            raise NotImplementedError(
                "Conv2D: padding='valid' is not supported by minivgg's engine; use padding='same'"
            )
        if pad != "same":
            raise ValueError(
                f"Conv2D: the `padding` argument must be one of 'valid', 'same'. Received: {padding!r}"
            )
        self.padding = pad
        _data_format("Conv2D", data_format)
        self.data_format = "channels_last"
        dilation = _pair(owner, "dilation_rate", dilation_rate)
        if dilation != (1, 1):
            raise NotImplementedError(
                f"Conv2D: dilation_rate={dilation_rate!r} is not supported by minivgg's engine; "
                "use dilation_rate=1 (the default)"
            )
        self.dilation_rate = dilation
        if _int_arg(owner, "groups", groups) != 1:
            raise NotImplementedError(
                f"Conv2D: groups={groups!r} is not supported by minivgg's engine; use groups=1"
            )
        self.groups = 1
        self.activation = _activation(owner, activation)
        _default_only(owner, "use_bias", use_bias, True)
        self.use_bias = True
        _initializer(owner, "kernel_initializer", kernel_initializer, "glorot_uniform")
        _initializer(owner, "bias_initializer", bias_initializer, "zeros")
        for arg, value in (
            ("kernel_regularizer", kernel_regularizer),
            ("bias_regularizer", bias_regularizer),
            ("activity_regularizer", activity_regularizer),
            ("kernel_constraint", kernel_constraint),
            ("bias_constraint", bias_constraint),
        ):
            _default_only(owner, arg, value, None)
        super().__init__(**kwargs)

    def _output_shape(self, shape: Shape) -> Shape:
        self._needs_image(shape)
        return (shape[0], shape[1], self.filters)

    def _engine_layers(self) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = [
            {"type": "conv2d", "filters": self.filters, "kernel": self.kernel_size[0]}
        ]
        if self.activation is not None:
            layers.append({"type": self.activation})
        return layers

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            activation=self.activation or "linear",
            use_bias=True,
            kernel_initializer="glorot_uniform",
            bias_initializer="zeros",
            kernel_regularizer=None,
            bias_regularizer=None,
            activity_regularizer=None,
            kernel_constraint=None,
            bias_constraint=None,
        )
        return config


Convolution2D = Conv2D


def _data_format(owner: str, data_format: Optional[str]) -> None:
    if data_format is None or data_format == "channels_last":
        return
    if data_format == "channels_first":
        raise NotImplementedError(
            f"{owner}: data_format='channels_first' is not supported by minivgg's engine; it "
            "works in 'channels_last' only (images as (height, width, channels))"
        )
    raise ValueError(
        f"{owner}: The `data_format` argument must be one of 'channels_first', "
        f"'channels_last'. Received: {data_format!r}"
    )


class Activation(Layer):
    """Keras' ``Activation``: ``Activation("relu")`` or ``Activation("softmax")`` (softmax
    only as the model's last layer; the engine needs the model to end with one).
    ``"linear"``/None is accepted and does nothing. Other activations raise
    NotImplementedError; activation functions (callables) too: give the name."""

    _prefix = "activation"

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        self.activation = _activation("Activation", activation)
        super().__init__(**kwargs)

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [] if self.activation is None else [{"type": self.activation}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["activation"] = self.activation or "linear"
        return config


class ReLU(Layer):
    """Keras' ``ReLU`` layer with its defaults only (``max_value=None``,
    ``negative_slope=0``, ``threshold=0``): the same as ``Activation("relu")``."""

    _prefix = "re_lu"

    def __init__(
        self,
        max_value: Optional[float] = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ) -> None:
        _default_only("ReLU", "max_value", max_value, None)
        for arg, value in (("negative_slope", negative_slope), ("threshold", threshold)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != 0:
                raise NotImplementedError(
                    f"ReLU: {arg}={value!r} is not supported by minivgg's engine; leave it at 0"
                )
        super().__init__(**kwargs)

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "relu"}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(max_value=None, negative_slope=0.0, threshold=0.0)
        return config


class Softmax(Layer):
    """Keras' ``Softmax`` layer (``axis=-1`` only): the same as ``Activation("softmax")``."""

    _prefix = "softmax"

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        if axis != -1:
            raise NotImplementedError(
                f"Softmax: axis={axis!r} is not supported by minivgg's engine; use axis=-1"
            )
        super().__init__(**kwargs)

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "softmax"}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["axis"] = -1
        return config


class BatchNormalization(Layer):
    """Keras' ``BatchNormalization``: per channel after a convolution (``axis=-1``, or 3, the
    tutorial's ``chanDim``), per feature after a dense layer, with Keras' ``momentum=0.99``
    and ``epsilon=1e-3`` (other values raise NotImplementedError, as do
    ``axis=1`` on images (channels_first), ``center=False``, ``scale=False``, non-default
    initializers, regularizers, constraints, renorm and virtual batches)."""

    _prefix = "batch_normalization"
    _weight_count = 4

    def __init__(
        self,
        axis: Union[int, Sequence[int]] = -1,
        momentum: float = 0.99,
        epsilon: float = 0.001,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = "BatchNormalization"
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise NotImplementedError(
                    f"{owner}: axis={axis!r} is not supported by minivgg's engine; it normalizes "
                    "one axis, the last (axis=-1)"
                )
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"{owner}: axis must be an integer, got {axis!r}")
        self.axis = int(axis)
        for arg, value, default in (("momentum", momentum, 0.99), ("epsilon", epsilon, 0.001)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) != default:
                raise NotImplementedError(
                    f"{owner}: {arg}={value!r} is not supported by minivgg's engine; it uses "
                    f"Keras' default {arg}={default}"
                )
        self.momentum = 0.99
        self.epsilon = 0.001
        _default_only(owner, "center", center, True)
        _default_only(owner, "scale", scale, True)
        _initializer(owner, "beta_initializer", beta_initializer, "zeros")
        _initializer(owner, "gamma_initializer", gamma_initializer, "ones")
        _initializer(owner, "moving_mean_initializer", moving_mean_initializer, "zeros")
        _initializer(owner, "moving_variance_initializer", moving_variance_initializer, "ones")
        for arg, value in (
            ("beta_regularizer", beta_regularizer),
            ("gamma_regularizer", gamma_regularizer),
            ("beta_constraint", beta_constraint),
            ("gamma_constraint", gamma_constraint),
        ):
            _default_only(owner, arg, value, None)
        # tf.keras 2's further BatchNormalization arguments (keyword only there too).
        extra: tuple[tuple[str, Any], ...] = (
            ("renorm", False),
            ("renorm_clipping", None),
            ("renorm_momentum", 0.99),
            ("virtual_batch_size", None),
            ("adjustment", None),
            ("synchronized", False),
        )
        for arg, default in extra:
            if arg in kwargs:
                _default_only(owner, arg, kwargs.pop(arg), default)
        fused = kwargs.pop("fused", None)
        if fused not in (None, True, False):
            raise ValueError(f"{owner}: fused must be None, True or False, got {fused!r}")
        super().__init__(**kwargs)

    def _output_shape(self, shape: Shape) -> Shape:
        rank = len(shape) + 1
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(
                f"BatchNormalization: Invalid axis: {self.axis} for an input of shape "
                f"{_fmt_shape(shape)}"
            )
        if axis != rank - 1:
            if rank == 4 and axis == 1:
                raise NotImplementedError(
                    "BatchNormalization: axis=1 (channels_first) is not supported by minivgg's "
                    "engine; it normalizes the channels of channels_last images: use axis=-1"
                )
            raise NotImplementedError(
                f"BatchNormalization: axis={self.axis} on an input of shape {_fmt_shape(shape)} "
                "is not supported by minivgg's engine; it normalizes the last axis: use axis=-1"
            )
        return shape

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "batch_norm"}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            axis=self.axis,
            momentum=0.99,
            epsilon=0.001,
            center=True,
            scale=True,
            beta_initializer="zeros",
            gamma_initializer="ones",
            moving_mean_initializer="zeros",
            moving_variance_initializer="ones",
            beta_regularizer=None,
            gamma_regularizer=None,
            beta_constraint=None,
            gamma_constraint=None,
        )
        return config


class MaxPooling2D(Layer):
    """Keras' ``MaxPooling2D``: minivgg's engine runs 2×2 pools of stride 2 with
    ``padding="valid"`` (``pool_size=2`` or ``(2, 2)``, ``strides=None``, 2 or ``(2, 2)``);
    other sizes, strides, ``padding="same"`` and channels_first raise NotImplementedError."""

    _prefix = "max_pooling2d"

    def __init__(
        self,
        pool_size: Union[int, Sequence[int]] = (2, 2),
        strides: Union[None, int, Sequence[int]] = None,
        padding: str = "valid",
        data_format: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        owner = "MaxPooling2D"
        pool = _pair(owner, "pool_size", pool_size)
        if pool != (2, 2):
            raise NotImplementedError(
                f"MaxPooling2D: pool_size={pool_size!r} is not supported by minivgg's engine; "
                "use pool_size=(2, 2)"
            )
        self.pool_size = pool
        if strides is not None and _pair(owner, "strides", strides) != (2, 2):
            raise NotImplementedError(
                f"MaxPooling2D: strides={strides!r} is not supported by minivgg's engine; use "
                "strides=None (the pool size) or (2, 2)"
            )
        self.strides = (2, 2)
        if not isinstance(padding, str):
            raise ValueError(f"MaxPooling2D: padding must be 'valid' or 'same', got {padding!r}")
        pad = padding.lower()
        if pad == "same":
            raise NotImplementedError(
                "MaxPooling2D: padding='same' is not supported by minivgg's engine; use "
                "padding='valid' (the default)"
            )
        if pad != "valid":
            raise ValueError(
                f"MaxPooling2D: the `padding` argument must be one of 'valid', 'same'. "
                f"Received: {padding!r}"
            )
        self.padding = "valid"
        _data_format(owner, data_format)
        self.data_format = "channels_last"
        super().__init__(**kwargs)

    def _output_shape(self, shape: Shape) -> Shape:
        self._needs_image(shape)
        if shape[0] < 2 or shape[1] < 2:
            raise ValueError(
                f"MaxPooling2D {self.name!r}: its input {_fmt_shape(shape)} is smaller than the "
                "2×2 pool"
            )
        return (shape[0] // 2, shape[1] // 2, shape[2])

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "max_pool"}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            pool_size=self.pool_size,
            padding="valid",
            strides=self.strides,
            data_format="channels_last",
        )
        return config


MaxPool2D = MaxPooling2D


class Dropout(Layer):
    """Keras' ``Dropout(rate)``: a rate in [0, 1) (1 raises NotImplementedError: the engine
    keeps at least some units; outside [0, 1] ValueError, as Keras). ``noise_shape`` and
    ``seed`` raise NotImplementedError: the masks are drawn from the model's seed (the same
    as ``minivgg train --seed`` draws them)."""

    _prefix = "dropout"

    def __init__(self, rate: float, noise_shape: Any = None, seed: Optional[int] = None, **kwargs: Any) -> None:
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= float(rate) <= 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a float value between 0 "
                f"and 1. Received: rate={rate!r}"
            )
        if float(rate) == 1:
            raise NotImplementedError(
                "Dropout: rate=1 is not supported by minivgg's engine; give a rate in [0, 1)"
            )
        self.rate: float = float(rate)
        _default_only("Dropout", "noise_shape", noise_shape, None)
        _default_only(
            "Dropout",
            "seed",
            seed,
            None,
            "dropout masks are drawn from the model's seed (utils.set_random_seed)",
        )
        super().__init__(**kwargs)

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "dropout", "rate": self.rate}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=None, seed=None)
        return config


class Flatten(Layer):
    """Keras' ``Flatten`` (channels_last order, as Keras flattens NHWC)."""

    _prefix = "flatten"

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        _data_format("Flatten", data_format)
        self.data_format = "channels_last"
        super().__init__(**kwargs)

    def _output_shape(self, shape: Shape) -> Shape:
        return (int(np.prod(shape)),)

    def _engine_layers(self) -> list[dict[str, Any]]:
        return [{"type": "flatten"}]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["data_format"] = "channels_last"
        return config


class Dense(Layer):
    """Keras' ``Dense(units)`` (with bias). Differences: its input must be flattened (put a
    ``Flatten()`` before it; Keras would apply it to the last axis of an image); it cannot be
    the first layer (``input_shape=(784,)`` / ``input_dim``: the engine takes images);
    ``activation`` may be None, ``"linear"``, ``"relu"`` or ``"softmax"`` (run as a separate
    layer); ``use_bias=False``, non-default initializers, regularizers and constraints raise
    NotImplementedError."""

    _prefix = "dense"
    _weight_count = 2

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        owner = "Dense"
        self.units = _int_arg(owner, "units", units)
        self.activation = _activation(owner, activation)
        _default_only(owner, "use_bias", use_bias, True)
        _initializer(owner, "kernel_initializer", kernel_initializer, "glorot_uniform")
        _initializer(owner, "bias_initializer", bias_initializer, "zeros")
        for arg, value in (
            ("kernel_regularizer", kernel_regularizer),
            ("bias_regularizer", bias_regularizer),
            ("activity_regularizer", activity_regularizer),
            ("kernel_constraint", kernel_constraint),
            ("bias_constraint", bias_constraint),
        ):
            _default_only(owner, arg, value, None)
        input_dim = kwargs.pop("input_dim", None)
        if input_dim is not None:
            kwargs.setdefault("input_shape", (input_dim,))
        input_shape = kwargs.get("input_shape")
        if input_shape is not None and isinstance(input_shape, (list, tuple)) and len(input_shape) != 3:
            raise NotImplementedError(
                f"Dense: input_shape={tuple(input_shape)!r} is not supported by minivgg's engine; "
                "it takes images: start the model with an image input (such as "
                "input_shape=(28, 28, 1) on a Conv2D, or Input(shape=(28, 28, 1)) then Flatten())"
            )
        super().__init__(**kwargs)

    def _output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise NotImplementedError(
                f"Dense {self.name!r}: an input of shape {_fmt_shape(shape)} is not supported by "
                "minivgg's engine (Keras would apply Dense to its last axis); put a Flatten() "
                "before it"
            )
        return (self.units,)

    def _engine_layers(self) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = [{"type": "dense", "units": self.units}]
        if self.activation is not None:
            layers.append({"type": self.activation})
        return layers

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation or "linear",
            use_bias=True,
            kernel_initializer="glorot_uniform",
            bias_initializer="zeros",
            kernel_regularizer=None,
            bias_regularizer=None,
            activity_regularizer=None,
            kernel_constraint=None,
            bias_constraint=None,
        )
        return config


def _from_engine(spec: dict[str, Any], name: str) -> Layer:
    """The Keras layer for one layer of network-file JSON (load_model)."""
    kind = spec.get("type")
    if kind == "conv2d":
        return Conv2D(int(spec["filters"]), int(spec["kernel"]), padding="same", name=name)
    if kind == "relu":
        return Activation("relu", name=name)
    if kind == "softmax":
        return Activation("softmax", name=name)
    if kind == "batch_norm":
        return BatchNormalization(name=name)
    if kind == "max_pool":
        return MaxPooling2D(name=name)
    if kind == "dropout":
        return Dropout(float(spec["rate"]), name=name)
    if kind == "flatten":
        return Flatten(name=name)
    if kind == "dense":
        return Dense(int(spec["units"]), name=name)
    raise ValueError(f"the model file holds a layer minivgg.keras does not know: {spec!r}")


_ENGINE_PREFIX = {
    "conv2d": "conv2d",
    "relu": "activation",
    "softmax": "activation",
    "batch_norm": "batch_normalization",
    "max_pool": "max_pooling2d",
    "dropout": "dropout",
    "flatten": "flatten",
    "dense": "dense",
}


def __getattr__(name: str) -> Any:
    # A tf.keras name this module lacks says so, rather than an ImportError about minivgg.
    if name[:1].isupper():
        raise NotImplementedError(
            f"minivgg.keras.layers has no {name}: minivgg's engine supports Conv2D (odd "
            "square kernels, stride 1, padding='same'), Activation('relu' or 'softmax'), ReLU, "
            "Softmax, BatchNormalization, MaxPooling2D (2×2), Dropout, Flatten, Dense and Input"
        )
    raise AttributeError(f"module 'minivgg.keras.layers' has no attribute {name!r}")
