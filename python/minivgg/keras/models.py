"""Keras' ``models``: ``Sequential`` and ``load_model``, trained by minivgg's engine.

A ``Sequential`` model is a list of minivgg.keras layers. Its network is built by the engine
the first time it is needed (``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``,
``save``, ``get_weights``, ``count_params``, ``build``): from then on its weights exist and no
layer can be added. Its engine seed (weights, shuffling, dropout) is drawn when the
``Sequential`` is made, as Keras draws a layer's weights when it is added: after
``utils.set_random_seed(seed)`` the next model made takes exactly ``seed`` (the same weights as
``minivgg train --seed SEED`` gives the same network), each later model the next value of a
stream of that seed; without it a random one (``model.seed`` says which).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from . import _seed, backend
from . import losses as _losses
from . import optimizers as _optimizers
from ._progbar import Progbar
from .callbacks import Callback, CallbackList, History
from .layers import InputLayer, Layer, Shape, _ENGINE_PREFIX, _from_engine

__all__ = ["Model", "Sequential", "load_model"]

_DEFAULT_BATCH_SIZE = 32
_ACCURACY_METRICS = ("accuracy", "acc")


def _native() -> Any:
    from .. import _minivgg

    return _minivgg


class _StopEpoch(Exception):
    """Raised from the engine's batch callback when a callback set ``model.stop_training``."""


def _fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _verbosity(verbose: Any, what: str) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, numbers.Integral)) and int(verbose) in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"{what}: verbose must be 0, 1, 2 or 'auto', got {verbose!r}")


def _batch_size(batch_size: Any, what: str, name: str = "batch_size") -> int:
    if batch_size is None:
        return _DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{what}: {name} must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _default_only(what: str, name: str, value: Any, default: Any, hint: str = "") -> None:
    if value is default:
        return
    try:
        same = type(value) is type(default) and bool(value == default)
    except Exception:  # noqa: BLE001 - arrays and such
        same = False
    if not same:
        raise NotImplementedError(
            f"{what}: {name}={value!r} is not supported by minivgg" + (f"; {hint}" if hint else f"; leave it at {default!r}")
        )


def _ask_to_proceed_with_overwrite(filepath: str) -> bool:
    """Keras' prompt before ``save(..., overwrite=False)`` replaces a file."""
    answer = input(f"[WARNING] {filepath} already exists - overwrite? [y/n]").strip().lower()
    while answer not in ("y", "n"):
        answer = input('Enter "y" (overwrite) or "n" (cancel).').strip().lower()
    if answer == "n":
        return False
    print("[TIP] Next time specify overwrite=True!")
    return True


class Model:
    """Keras' ``Model``. Only ``Sequential`` models exist in minivgg: the functional API
    (``Model(inputs, outputs)``) and subclassed models raise NotImplementedError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Model(inputs, outputs) and subclassed models are not supported by minivgg; build "
            "the network as a Sequential model"
        )


class Sequential(Model):
    """Keras' ``Sequential`` model: ``Sequential()`` then ``add(layer)`` (or
    ``Sequential([layers])``), ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``.

    Keras 2 semantics throughout (the epoch logs, History, the callbacks' order, the progress
    bar, ``validation_split`` taking the last images before shuffling). Differences from
    tf.keras, besides the layers' (see ``minivgg.keras.layers``):

    - the model must end with a softmax and its input be an image shape;
    - layers cannot be added once the network is built (first compile/fit/summary/…);
    - ``compile``: SGD only, cross-entropy losses only, the accuracy metric only;
      ``compile`` restarts the optimizer (iterations, momentum);
    - ``fit``/``evaluate``/``predict`` take NumPy arrays (uint8 or float images, N×H×W×C),
      not generators or tf.data; no sample or class weights; ``evaluate``/``predict`` take no
      callbacks;
    - labels: one-hot rows (``categorical_crossentropy``) or class indices
      (``sparse_categorical_crossentropy``), at most 256 classes; soft labels raise
      NotImplementedError;
    - ``save``/``load_model``: minivgg's model file (safetensors with the architecture)
      whatever the extension; it keeps no optimizer state, so a loaded model must be compiled
      again before ``fit`` (it can ``evaluate`` and ``predict`` at once);
    - additions: ``seed`` (the engine seed), ``class_names`` (stored in the model file;
      ``minivgg predict`` prints them) and ``to_network_json()`` (the architecture for
      ``minivgg train --model``).
    """

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: Optional[str] = None) -> None:
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Sequential: name must be a string, got {name!r}")
        self.name: str = name if name is not None else backend._unique_name("sequential")
        self._init_state(_seed.next_model_seed())
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                layers = [layers]  # type: ignore[list-item]
            for layer in layers:
                self.add(layer)

    def _init_state(self, seed: Optional[int]) -> None:
        self._layers: list[Layer] = []
        self._input_layer: Optional[InputLayer] = None
        self._input_shape: Optional[Shape] = None
        self._network: Any = None
        self._seed: Optional[int] = seed
        self._class_names: Optional[list[str]] = None
        self._loaded = False
        self._compiled = False
        self._evaluable = False
        self._loss_name: Optional[str] = None
        self._acc_key: Optional[str] = None
        self.optimizer: Any = None
        self.loss: Any = None
        self.stop_training = False
        self.history: Optional[History] = None

    # -- layers -------------------------------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        """The model's layers, in order (not the InputLayer, as in Keras)."""
        return list(self._layers)

    def add(self, layer: Layer) -> None:
        """Adds a layer on top (Keras' add). An ``Input``/``InputLayer`` may come first and
        gives the input shape, as does the first layer's ``input_shape``. Shapes are checked as
        soon as the input shape is known; ValueError once the network is built."""
        if self._network is not None:
            raise ValueError(
                f"add: the model {self.name!r} is already built (its weights exist since the first "
                "compile/fit/summary/…); minivgg cannot add layers to it: make a new Sequential"
            )
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(
                    "add: an Input/InputLayer can only be the first layer of a Sequential model"
                )
            if self._input_shape is not None and self._input_shape != layer._input_shape_arg:
                raise ValueError(
                    f"add: the Input's shape {layer._input_shape_arg} differs from the model's "
                    f"input shape {self._input_shape}"
                )
            self._input_layer = layer
            self._input_shape = layer._input_shape_arg
            layer._model = self
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                "The added layer must be an instance of class Layer (from minivgg.keras.layers). "
                f"Received: layer={layer!r} of type {type(layer).__name__}."
            )
        if layer._model is not None:
            raise NotImplementedError(
                f"add: layer {layer.name!r} already belongs to a model; minivgg's layers cannot be "
                "shared between models: make a new layer"
            )
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                "All layers added to a Sequential model should have unique names. Name "
                f"{layer.name!r} is already the name of a layer in this model. Update the `name` "
                "argument to pass a unique name."
            )
        given = layer._input_shape_arg
        first = not self._layers
        if given is not None:
            if first and self._input_shape is None:
                self._input_shape = given
            else:
                current = self._input_shape if first else self._layers[-1]._out_shape
                if current is not None and current != given:
                    raise ValueError(
                        f"add: layer {layer.name!r} has input_shape={given} but its input is "
                        f"{_fmt_shape((None, *current))}"
                    )
        self._layers.append(layer)
        layer._model = self
        try:
            self._walk()
        except Exception:
            self._layers.pop()
            layer._model = None
            if first and given is not None and self._input_layer is None:
                self._input_shape = None
            self._walk_quietly()
            raise

    def pop(self) -> None:
        """Removes the last layer (before the network is built only)."""
        if self._network is not None:
            raise ValueError(f"pop: the model {self.name!r} is already built; minivgg cannot change it")
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._model = None
        if not self._layers and self._input_layer is None:
            self._input_shape = None
        self._walk_quietly()

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or index, as Keras."""
        if index is not None and name is not None:
            raise ValueError("Provide only a layer name or a layer index.")
        if index is not None:
            if len(self._layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has "
                    f"{len(self._layers)} layers."
                )
            return self._layers[index]
        if name is not None:
            for layer in self._layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}.")
        raise ValueError("Provide either a layer name or layer index.")

    def _walk(self) -> Optional[Shape]:
        """Computes every layer's input and output shape (raising where a layer cannot take
        its input); None while the input shape is unknown."""
        shape = self._input_shape
        for layer in self._layers:
            if shape is None:
                layer._in_shape = layer._out_shape = None
                continue
            layer._in_shape = shape
            shape = layer._output_shape(shape)
            layer._out_shape = shape
        return shape

    def _walk_quietly(self) -> None:
        try:
            self._walk()
        except Exception:  # noqa: BLE001 - the state before the failed change was valid
            pass

    # -- the engine's network -----------------------------------------------------------------

    def _spec(self) -> dict[str, Any]:
        """The network-file JSON (docs/network-files.md) of the layers."""
        if self._input_shape is None:
            raise ValueError(
                "build needs an input shape: give the first layer input_shape=(32, 32, 3)"
            )
        if not self._layers:
            raise ValueError(f"the model {self.name!r} has no layers")
        output = self._walk()
        assert output is not None
        engine: list[dict[str, Any]] = []
        weights = 0
        for layer in self._layers:
            layer._weight_index = weights
            weights += layer._weight_count
            engine.extend(layer._engine_layers())
        softmaxes = [i for i, spec in enumerate(engine) if spec["type"] == "softmax"]
        if not softmaxes or softmaxes[-1] != len(engine) - 1:
            raise NotImplementedError(
                "minivgg's engine needs the model to end with a softmax: add "
                "Activation('softmax') (or give the last Dense activation='softmax')"
            )
        if len(softmaxes) > 1:
            raise NotImplementedError(
                "minivgg's engine takes a softmax only as the model's last layer"
            )
        if len(output) != 1:
            raise NotImplementedError(
                f"the model's output {_fmt_shape((None, *output))} is not flat; minivgg's engine "
                "needs Flatten() and a Dense layer before the softmax"
            )
        return {
            "name": self.name,
            "input": list(self._input_shape),
            "classes": int(output[0]),
            "layers": engine,
        }

    def _ensure_built(self) -> Any:
        """The engine's Network, built now if it is not yet."""
        if self._network is None:
            spec = self._spec()
            if self._seed is None:
                self._seed = _seed.next_model_seed()
            network = _native().Network.from_json(json.dumps(spec), self._seed)
            if self._class_names is not None:
                network.class_names = list(self._class_names)
            self._network = network
        return self._network

    def to_network_json(self) -> str:
        """The architecture as a network file (docs/network-files.md) that
        ``minivgg train --model FILE.json`` (and ``summary``, ``bench``, ``export``) reads
        (minivgg's addition). With the same seed, data and recipe the command line trains
        the very weights ``fit`` trains."""
        return json.dumps(self._spec(), indent=2) + "\n"

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Builds the network now (Keras' build): ``input_shape`` ``(None, height, width,
        channels)`` if no layer gave one."""
        if input_shape is not None:
            given = tuple(input_shape)
            if len(given) == 4 and given[0] is None:
                given = given[1:]
            if len(given) != 3 or any(
                isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in given
            ):
                raise NotImplementedError(
                    f"build: input_shape={tuple(input_shape)!r} is not supported by minivgg's "
                    "engine; give (None, height, width, channels)"
                )
            shape: Shape = tuple(int(s) for s in given)  # type: ignore[arg-type]
            if self._input_shape is not None and self._input_shape != shape:
                raise ValueError(
                    f"build: input_shape {_fmt_shape((None, *shape))} differs from the model's "
                    f"{_fmt_shape((None, *self._input_shape))}"
                )
            if self._network is None and self._input_shape is None:
                self._input_shape = shape
                try:
                    self._walk()
                except Exception:
                    self._input_shape = None
                    self._walk_quietly()
                    raise
        self._ensure_built()

    @property
    def built(self) -> bool:
        """Whether the engine's network exists (its weights are drawn)."""
        return self._network is not None

    @property
    def input_shape(self) -> tuple[Optional[int], ...]:
        """``(None, height, width, channels)``."""
        if self._input_shape is None:
            raise AttributeError(f"The model {self.name!r} has no input shape yet.")
        return (None, *self._input_shape)

    @property
    def output_shape(self) -> tuple[Optional[int], ...]:
        """``(None, classes)`` (the last layer's output shape)."""
        if self._input_shape is None or not self._layers:
            raise AttributeError(f"The model {self.name!r} has no output shape yet.")
        shape = self._walk()
        assert shape is not None
        return (None, *shape)

    @property
    def seed(self) -> int:
        """The engine seed of this model's weights, shuffling and dropout (minivgg's
        addition), drawn when the model was made (see ``utils.set_random_seed``). Settable
        until the network is built."""
        if self._network is not None:
            return int(self._network.seed)
        assert self._seed is not None
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        if self._network is not None:
            raise ValueError(
                f"seed: the model {self.name!r} is already built (its weights are drawn); set the "
                "seed before its first compile/fit/summary, or call utils.set_random_seed before "
                "making the model"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {value!r}")
        self._seed = int(value)

    @property
    def class_names(self) -> Optional[list[str]]:
        """The class names stored in the model file (minivgg's addition; None by default):
        set them before ``save`` so that ``minivgg predict`` and a loaded model name the
        classes."""
        if self._network is not None:
            names = self._network.class_names
            return None if names is None else list(names)
        return None if self._class_names is None else list(self._class_names)

    @class_names.setter
    def class_names(self, names: Optional[Sequence[str]]) -> None:
        if names is None:
            value = None
        else:
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"class_names must be a list of strings, got {names!r}")
            value = [str(n) for n in names]
            classes = self._classes_if_known()
            if classes is not None and len(value) != classes:
                raise ValueError(
                    f"class_names holds {len(value)} names but the model has {classes} classes"
                )
        if self._network is not None:
            self._network.class_names = value
        self._class_names = value

    def _classes_if_known(self) -> Optional[int]:
        if self._network is not None:
            return int(self._network.classes)
        try:
            shape = self._walk()
        except Exception:  # noqa: BLE001
            return None
        return shape[0] if shape is not None and len(shape) == 1 else None

    def summary(
        self,
        line_length: Optional[int] = None,
        positions: Optional[Sequence[float]] = None,
        print_fn: Optional[Callable[[str], Any]] = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Any = None,
    ) -> None:
        """Prints Keras' summary table (the engine's): layers, output shapes, parameters and
        the totals. ``print_fn`` is called once per line, as Keras. Differences: the table
        lists the engine's layers (an ``activation=`` of Conv2D/Dense is a row of its own) with
        the engine's names; ``line_length``, ``positions``, ``show_trainable`` and
        ``layer_range`` must stay at their defaults."""
        _default_only("summary", "line_length", line_length, None)
        _default_only("summary", "positions", positions, None)
        _default_only("summary", "show_trainable", show_trainable, False)
        _default_only("summary", "layer_range", layer_range, None)
        if not isinstance(expand_nested, bool):
            raise ValueError(f"summary: expand_nested must be True or False, got {expand_nested!r}")
        text = self._ensure_built().summary()
        if print_fn is None:
            print(text.rstrip("\n"))
            return
        for line in text.rstrip("\n").split("\n"):
            print_fn(line)

    def count_params(self) -> int:
        """All the weights' count, trainable and not (builds the network)."""
        return int(self._ensure_built().count_params())

    def get_weights(self) -> list[np.ndarray]:
        """Keras' get_weights(): per layer kernel, bias / gamma, beta, moving_mean,
        moving_variance, float32 copies in Keras' layouts (HWIO kernels)."""
        return list(self._ensure_built().get_weights())

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets every weight (the count and shapes of ``get_weights()``; ValueError otherwise)."""
        self._ensure_built().set_weights([np.asarray(w, dtype=np.float32) for w in weights])

    # -- compile ------------------------------------------------------------------------------

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        loss_weights: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: Optional[bool] = None,
        steps_per_execution: Any = None,
        jit_compile: Optional[bool] = None,
        **kwargs: Any,
    ) -> None:
        """Keras' compile: ``optimizer`` an ``optimizers.SGD`` or ``"sgd"`` (Keras' default,
        ``"rmsprop"``, raises NotImplementedError, as does any other optimizer); ``loss``
        ``"categorical_crossentropy"`` (one-hot labels) or ``"sparse_categorical_crossentropy"``
        (integer labels), or their ``minivgg.keras.losses`` functions/classes; ``metrics`` None,
        ``["accuracy"]`` or ``["acc"]`` (the logs' key follows: ``accuracy``/``val_accuracy``
        or ``acc``/``val_acc``), or ``["categorical_accuracy"]`` /
        ``["sparse_categorical_accuracy"]`` matching the loss. Builds the network and starts
        the optimizer afresh."""
        for key in kwargs:
            raise TypeError(f"Invalid keyword argument(s) in `compile()`: {key!r}")
        for name, value in (
            ("loss_weights", loss_weights),
            ("weighted_metrics", weighted_metrics),
            ("steps_per_execution", steps_per_execution),
        ):
            if value is not None and not (name == "steps_per_execution" and value == 1):
                raise NotImplementedError(f"compile: {name}={value!r} is not supported by minivgg")
        for name, value in (("run_eagerly", run_eagerly), ("jit_compile", jit_compile)):
            if value not in (None, False):
                raise NotImplementedError(
                    f"compile: {name}={value!r} is not supported by minivgg (the engine runs the "
                    "model; leave it None)"
                )
        opt = _optimizers.get(optimizer)
        loss_name = _losses.get(loss)
        acc_key = self._metric_key(metrics, loss_name)
        network = self._ensure_built()
        opt._attach(network)
        self.optimizer = opt
        self.loss = loss
        self._loss_name = loss_name
        self._acc_key = acc_key
        self._compiled = True
        self._evaluable = True

    @staticmethod
    def _metric_key(metrics: Any, loss_name: str) -> Optional[str]:
        supported = (
            "metrics=['accuracy'] or ['acc'] (or None); minivgg's engine computes the loss and "
            "the accuracy only"
        )
        if metrics is None:
            return None
        if isinstance(metrics, str):
            metrics = [metrics]
        if isinstance(metrics, dict):
            raise NotImplementedError(f"compile: metrics={metrics!r} is not supported; use {supported}")
        try:
            names = list(metrics)
        except TypeError:
            raise NotImplementedError(f"compile: metrics={metrics!r} is not supported; use {supported}") from None
        if not names:
            return None
        matching = (
            "categorical_accuracy" if loss_name == "categorical_crossentropy" else "sparse_categorical_accuracy"
        )
        bad = [m for m in names if not (isinstance(m, str) and m in (*_ACCURACY_METRICS, matching))]
        if bad:
            raise NotImplementedError(
                f"compile: metrics={bad!r} is not supported by minivgg's engine; use {supported}"
            )
        if len(names) > 1:
            raise NotImplementedError(
                f"compile: metrics={names!r}: minivgg's engine computes one accuracy; use {supported}"
            )
        return str(names[0])

    @property
    def metrics_names(self) -> list[str]:
        """``["loss", "accuracy"]`` (or ``"acc"``) after compile, ``["loss"]`` without metrics."""
        if not self._evaluable:
            return []
        return ["loss"] + ([self._acc_key] if self._acc_key else [])

    def _require_compiled(self, evaluating: bool = False) -> Any:
        if not self._compiled and not (evaluating and self._evaluable):
            if self._loaded:
                raise ValueError(
                    "call compile() first: minivgg's model file keeps no optimizer state"
                )
            raise ValueError(
                "You must compile your model before training/testing. Use "
                "`model.compile(optimizer, loss)`."
            )
        return self._network

    # -- data ---------------------------------------------------------------------------------

    def _images_array(self, x: Any, what: str) -> np.ndarray:
        """``x`` as an (N, H, W, C) array of uint8, float32 or float64 matching the input."""
        if x is None:
            raise ValueError(f"{what}: x is required (an array of images of shape (N, H, W, C))")
        if (
            hasattr(x, "__next__")
            or hasattr(x, "on_epoch_end")
            or type(x).__module__.startswith("tensorflow.python.data")
        ):
            raise NotImplementedError(
                f"{what}: x of type {type(x).__name__} is not supported by minivgg; give a NumPy "
                "array of images (N, height, width, channels)"
            )
        array = np.asarray(x)
        if array.dtype.kind not in "uifb":
            raise ValueError(f"{what}: x must hold numbers, got an array of dtype {array.dtype}")
        if array.dtype not in (np.uint8, np.float32, np.float64):
            array = array.astype(np.float32)
        expected = self._input_shape
        assert expected is not None
        if array.ndim != 4 or tuple(array.shape[1:]) != expected:
            hint = ""
            if array.ndim == 3 and tuple(array.shape[1:]) == expected[:2] and expected[2] == 1:
                hint = " (add the channel axis: x[..., np.newaxis] or x.reshape((-1, h, w, 1)))"
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"shape={_fmt_shape((None, *expected))}, found shape={_fmt_shape(array.shape)}{hint}"
            )
        return array

    def _labels(self, y: Any, count: int, what: str) -> np.ndarray:
        """``y`` as (N,) uint8 class indices, checked against the loss and the classes."""
        if y is None:
            raise ValueError(f"{what}: y (the labels) is required")
        if hasattr(y, "__next__"):
            raise NotImplementedError(f"{what}: y must be a NumPy array, not {type(y).__name__}")
        labels = np.asarray(y)
        if labels.ndim == 0:
            raise ValueError(f"{what}: y must be an array of labels, got {y!r}")
        if len(labels) != count:
            raise ValueError(
                "Data cardinality is ambiguous:\n"
                f"  x sizes: {count}\n"
                f"  y sizes: {len(labels)}\n"
                "Make sure all arrays contain the same number of samples."
            )
        if labels.dtype.kind not in "uifb":
            raise ValueError(f"{what}: labels must be numbers, got an array of dtype {labels.dtype}")
        classes = int(self._network.classes)
        if classes > 256:
            raise NotImplementedError(
                f"{what}: the model has {classes} outputs; minivgg's engine trains on at most 256 classes"
            )
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            row = int(np.argwhere(~np.isfinite(labels))[0][0])
            raise ValueError(f"{what}: label {row} is not finite: {labels[row].tolist()!r}")
        loss_name = self._loss_name
        if loss_name is None:  # a loaded model not compiled again: either form of labels
            one_hot = labels.ndim == 2 and labels.shape[1] == classes and classes > 1
            loss_name = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
        if loss_name == "categorical_crossentropy":
            if labels.ndim != 2 or labels.shape[1] != classes:
                raise ValueError(
                    f"{what}: labels of shape {_fmt_shape(labels.shape)} do not match the model's "
                    f"{classes} outputs; categorical_crossentropy wants one-hot labels of shape "
                    f"({count}, {classes}) (to_categorical(y, {classes}) or LabelBinarizer), or "
                    "compile with loss='sparse_categorical_crossentropy' for class indices"
                )
            ones = labels == 1
            one_hot = (ones.sum(axis=1) == 1) & (ones | (labels == 0)).all(axis=1)
            if not one_hot.all():
                row = int(np.argmin(one_hot))
                raise NotImplementedError(
                    f"{what}: label row {row} is {labels[row].tolist()!r}, not one-hot: soft "
                    "labels (label smoothing, mixup, probabilities) and multi-hot labels are not "
                    "supported by minivgg's engine; give exactly one 1 per row, the rest 0"
                )
            return np.ascontiguousarray(labels.argmax(axis=1).astype(np.uint8))
        # sparse_categorical_crossentropy
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(
                f"{what}: labels of shape {_fmt_shape(labels.shape)} do not match the model's "
                f"{classes} outputs; sparse_categorical_crossentropy wants class indices of shape "
                f"({count},) or ({count}, 1), or compile with loss='categorical_crossentropy' "
                "for one-hot labels"
            )
        if labels.dtype.kind == "b":
            raise ValueError(f"{what}: labels must be class indices, got booleans")
        if labels.dtype.kind == "f" and not (labels == np.floor(labels)).all():
            row = int(np.argmin(labels == np.floor(labels)))
            raise ValueError(f"{what}: label {row} is {labels[row]!r}, not a class index")
        if count:
            low, high = labels.min(), labels.max()
            if low < 0 or high >= classes:
                bad = low if low < 0 else high
                raise ValueError(
                    f"{what}: Received a label value of {bad.item()!r} which is outside the valid "
                    f"range of [0, {classes})."
                )
        return np.ascontiguousarray(labels.astype(np.uint8))

    def _images(self, x: Any, y: Any, what: str) -> Any:
        array = self._images_array(x, what)
        labels = None if y is None else self._labels(y, len(array), what)
        return _native().Images(array, labels)

    # -- training -----------------------------------------------------------------------------

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: Optional[int] = None,
        epochs: int = 1,
        verbose: Union[int, str] = "auto",
        callbacks: Optional[Sequence[Callback]] = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: Any = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: Optional[int] = None,
        validation_steps: Optional[int] = None,
        validation_batch_size: Optional[int] = None,
        validation_freq: Union[int, Sequence[int]] = 1,
        max_queue_size: int = 10,
        workers: int = 1,
        use_multiprocessing: bool = False,
    ) -> History:
        """Keras 2's fit on NumPy arrays: trains epochs ``initial_epoch`` … ``epochs - 1`` in
        batches of ``batch_size`` (32; at most the number of images), shuffled each epoch
        (``shuffle=False``: in order), evaluating ``validation_data=(x_val, y_val)`` — or the
        last ``validation_split`` of x and y, taken before shuffling — after each epoch
        (every ``validation_freq``). Returns the History (also ``model.history``).

        ``verbose``: 1/"auto" the progress bar, 2 one line per epoch, 0 nothing. Ctrl-C
        (KeyboardInterrupt) stops after the running batch and propagates, leaving the model as
        after that batch (usable, compilable, savable); ``on_train_end`` is not called then.

        Differences from tf.keras: ``class_weight``, ``sample_weight``, ``steps_per_epoch``
        and ``validation_steps`` raise NotImplementedError (``max_queue_size``, ``workers``,
        ``use_multiprocessing`` do nothing for arrays, as in Keras); ``shuffle="batch"`` too.
        """
        what = "fit"
        network = self._require_compiled()
        for name, value in (
            ("class_weight", class_weight),
            ("sample_weight", sample_weight),
            ("steps_per_epoch", steps_per_epoch),
            ("validation_steps", validation_steps),
        ):
            if value is not None:
                raise NotImplementedError(f"fit: {name} is not supported by minivgg's engine; leave it None")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise NotImplementedError(
                f"fit: shuffle={shuffle!r} is not supported by minivgg; use True or False"
            )
        verbosity = _verbosity(verbose, what)
        batch = _batch_size(batch_size, what)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"fit: {name} must be an integer >= 0, got {value!r}")
        epochs, initial_epoch = int(epochs), int(initial_epoch)
        val_every = self._validation_freq(validation_freq)

        if y is None:
            raise ValueError("fit: y (the labels) is required")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise NotImplementedError(
                    "fit: validation_data must be a tuple (x_val, y_val); generators and "
                    "datasets are not supported by minivgg"
                )
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise NotImplementedError(
                    "fit: validation sample weights are not supported by minivgg's engine"
                )
            train = self._images(x, y, "fit")
            val = self._images(validation_data[0], validation_data[1], "fit: validation_data")
        elif validation_split:
            if (
                isinstance(validation_split, bool)
                or not isinstance(validation_split, numbers.Real)
                or not 0 < validation_split < 1
            ):
                raise ValueError(
                    f"fit: validation_split must be a number in [0, 1), got {validation_split!r}"
                )
            # Keras' split: the last fraction, before any shuffling. The arrays are cut as
            # views and each part converted once.
            images = self._images_array(x, "fit")
            labels = self._labels(y, len(images), "fit")
            at = int(len(images) * (1.0 - float(validation_split)))
            if at == len(images):
                raise ValueError(
                    f"fit: validation_split={validation_split} of {len(images)} images leaves no "
                    "validation images"
                )
            train = _native().Images(images[:at], labels[:at])
            val = _native().Images(images[at:], labels[at:])
        else:
            train = self._images(x, y, "fit")
        count = len(train)
        if count == 0:
            raise ValueError("fit: there are no training images (x is empty)")
        batch = min(batch, count)
        steps = math.ceil(count / batch)
        val_batch = _batch_size(
            validation_batch_size if validation_batch_size is not None else batch,
            what,
            "validation_batch_size",
        )
        if val is not None:
            val_batch = min(val_batch, max(len(val), 1))
        network.check_memory(batch, train.nbytes + (val.nbytes if val is not None else 0))

        callback_list = CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbosity != 0,
            model=self,
            verbose=verbosity,
            epochs=epochs,
            steps=steps,
        )
        self.stop_training = False
        acc_key = self._acc_key
        batch_hooks = callback_list.needs_batch_hooks()
        callback_list.on_train_begin()
        logs: dict[str, Any] = {}
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            if batch_hooks:
                loss, accuracy = self._fit_epoch_with_hooks(network, train, batch, bool(shuffle), steps, callback_list)
            else:
                loss, accuracy = network.fit_epoch(train, batch, bool(shuffle))
            epoch_logs: dict[str, Any] = {"loss": float(loss)}
            if acc_key:
                epoch_logs[acc_key] = float(accuracy)
            if val is not None and val_every(epoch):
                val_loss, val_accuracy = network.evaluate(val, val_batch)
                epoch_logs["val_loss"] = float(val_loss)
                if acc_key:
                    epoch_logs["val_" + acc_key] = float(val_accuracy)
            callback_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        history = callback_list._history
        assert history is not None
        self.history = history
        return history

    def _fit_epoch_with_hooks(
        self, network: Any, train: Any, batch: int, shuffle: bool, steps: int, callback_list: CallbackList
    ) -> tuple[float, float]:
        acc_key = self._acc_key
        last: dict[str, float] = {}

        def on_batch(index: int, loss: float, accuracy: float) -> None:
            last["loss"], last["accuracy"] = float(loss), float(accuracy)
            batch_logs: dict[str, Any] = {"loss": float(loss)}
            if acc_key:
                batch_logs[acc_key] = float(accuracy)
            callback_list.on_train_batch_end(index, batch_logs)
            if self.stop_training:
                raise _StopEpoch()
            if index + 1 < steps:
                callback_list.on_train_batch_begin(index + 1)

        callback_list.on_train_batch_begin(0)
        try:
            loss, accuracy = network.fit_epoch(train, batch, shuffle, on_batch)
        except _StopEpoch:
            return (last.get("loss", math.nan), last.get("accuracy", math.nan))
        return (float(loss), float(accuracy))

    @staticmethod
    def _validation_freq(freq: Any) -> Callable[[int], bool]:
        if isinstance(freq, numbers.Integral) and not isinstance(freq, bool):
            if freq < 1:
                raise ValueError(f"fit: validation_freq must be >= 1, got {freq!r}")
            every = int(freq)
            return lambda epoch: (epoch + 1) % every == 0
        if isinstance(freq, (list, tuple, set, range)):
            epochs = {int(e) for e in freq}
            return lambda epoch: epoch + 1 in epochs
        raise ValueError(
            f"fit: validation_freq must be an integer or a list of epochs, got {freq!r}"
        )

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: Optional[int] = None,
        verbose: Union[int, str] = "auto",
        sample_weight: Any = None,
        steps: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        max_queue_size: int = 10,
        workers: int = 1,
        use_multiprocessing: bool = False,
        return_dict: bool = False,
    ) -> Union[float, list[float], dict[str, float]]:
        """Keras' evaluate: ``[loss, accuracy]`` when compiled with an accuracy metric, else the
        loss (``return_dict=True``: ``{"loss": …, "accuracy": …}``), in evaluation mode, batches
        of ``batch_size`` (32). ``verbose`` 1/"auto" prints the final bar line
        (``"157/157 [====…] - 1s 6ms/step - loss: … - accuracy: …"``). Differences:
        ``sample_weight``, ``steps`` and ``callbacks`` raise NotImplementedError."""
        network = self._require_compiled(evaluating=True)
        for name, value in (("sample_weight", sample_weight), ("steps", steps)):
            if value is not None:
                raise NotImplementedError(f"evaluate: {name} is not supported by minivgg's engine; leave it None")
        if callbacks:
            raise NotImplementedError(
                "evaluate: callbacks are not supported by minivgg (the engine evaluates in one call)"
            )
        verbosity = _verbosity(verbose, "evaluate")
        batch = _batch_size(batch_size, "evaluate")
        images = self._images(x, y, "evaluate")
        count = len(images)
        if count == 0:
            raise ValueError("evaluate: x is empty")
        batch = min(batch, count)
        steps_count = math.ceil(count / batch)
        bar = Progbar(steps_count, verbose=verbosity) if verbosity else None
        loss, accuracy = network.evaluate(images, batch)
        results: dict[str, float] = {"loss": float(loss)}
        if self._acc_key:
            results[self._acc_key] = float(accuracy)
        if bar is not None:
            bar.stateful_metrics.update(results)
            bar.update(steps_count, list(results.items()), finalize=True)
        if return_dict:
            return results
        if self._acc_key:
            return [results["loss"], results[self._acc_key]]
        return results["loss"]

    def predict(
        self,
        x: Any,
        batch_size: Optional[int] = None,
        verbose: Union[int, str] = "auto",
        steps: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        max_queue_size: int = 10,
        workers: int = 1,
        use_multiprocessing: bool = False,
    ) -> np.ndarray:
        """Keras' predict: the (N, classes) float32 softmax probabilities, in evaluation mode,
        batches of ``batch_size`` (32). Needs no compile. ``verbose`` 1/"auto" prints the final
        bar line (``"157/157 [====…] - 1s 6ms/step"``). Differences: ``steps`` and
        ``callbacks`` raise NotImplementedError."""
        if steps is not None:
            raise NotImplementedError("predict: steps is not supported by minivgg; leave it None")
        if callbacks:
            raise NotImplementedError(
                "predict: callbacks are not supported by minivgg (the engine predicts in one call)"
            )
        network = self._ensure_built()
        verbosity = _verbosity(verbose, "predict")
        batch = _batch_size(batch_size, "predict")
        array = self._images_array(x, "predict")
        count = len(array)
        if count == 0:
            return np.zeros((0, int(network.classes)), dtype=np.float32)
        images = _native().Images(array)
        batch = min(batch, count)
        steps_count = math.ceil(count / batch)
        bar = Progbar(steps_count, verbose=verbosity) if verbosity else None
        probabilities = np.asarray(network.predict(images, batch), dtype=np.float32)
        if bar is not None:
            bar.update(steps_count, finalize=True)
        return probabilities

    # -- files --------------------------------------------------------------------------------

    def save(
        self,
        filepath: Any,
        overwrite: bool = True,
        include_optimizer: bool = True,
        save_format: Optional[str] = None,
        signatures: Any = None,
        options: Any = None,
        save_traces: bool = True,
    ) -> None:
        """Writes minivgg's model file (the weights and the architecture, with class_names)
        to exactly ``filepath``, whatever its extension (``.hdf5``, ``.model``, ``.h5``,
        ``.keras``), whole or not at all. ``overwrite=False`` asks before replacing a file, as
        Keras. Differences: the file is not HDF5 or a SavedModel and holds no optimizer state
        (``include_optimizer`` and ``save_format`` change nothing); ``signatures`` and
        ``options`` must be None."""
        _default_only("save", "signatures", signatures, None)
        _default_only("save", "options", options, None)
        if save_format not in (None, "h5", "tf", "keras"):
            raise ValueError(f"save: unknown save_format={save_format!r}; expected 'h5', 'tf' or None")
        path = os.fspath(filepath)
        network = self._ensure_built()
        if not overwrite and os.path.exists(path) and not _ask_to_proceed_with_overwrite(path):
            return
        network.save(path)

    def save_weights(
        self, filepath: Any, overwrite: bool = True, save_format: Optional[str] = None, options: Any = None
    ) -> None:
        """Keras' save_weights; in minivgg it writes the same model file as ``save`` (the
        architecture comes with the weights), which ``load_weights`` and ``load_model`` read."""
        self.save(filepath, overwrite=overwrite, save_format=save_format, options=options)

    def load_weights(
        self, filepath: Any, by_name: bool = False, skip_mismatch: bool = False, options: Any = None
    ) -> None:
        """Sets the weights from a minivgg model file (``save``, ``save_weights``,
        ``ModelCheckpoint``, ``minivgg train --save``) of the same architecture (ValueError
        naming the first weight of another shape). ``by_name``/``skip_mismatch``: not supported."""
        _default_only("load_weights", "by_name", by_name, False)
        _default_only("load_weights", "skip_mismatch", skip_mismatch, False)
        _default_only("load_weights", "options", options, None)
        other = _native().Network.load(os.fspath(filepath))
        self._ensure_built().set_weights(other.get_weights())

    @classmethod
    def _from_network(cls, network: Any) -> "Sequential":
        """A Sequential around a loaded Network, its layers rebuilt from the architecture."""
        spec = json.loads(network.spec_json)
        model = cls.__new__(cls)
        model.name = str(network.name)
        model._init_state(None)
        engine_layers = spec["layers"]
        names = list(network.layer_names())
        if len(names) != len(engine_layers):
            counts: dict[str, int] = {}
            names = []
            for layer in engine_layers:
                prefix = _ENGINE_PREFIX.get(layer.get("type"), "layer")
                n = counts.get(prefix, 0)
                counts[prefix] = n + 1
                names.append(prefix if n == 0 else f"{prefix}_{n}")
        model._input_shape = tuple(int(v) for v in spec["input"])
        for layer_spec, name in zip(engine_layers, names):
            model.add(_from_engine(layer_spec, name))
        model._spec()
        model._network = network
        model._loaded = True
        return model

    def __repr__(self) -> str:
        return f"<minivgg.keras.models.Sequential name={self.name!r}, {len(self._layers)} layers>"


class _NoOptimizer:
    """``model.optimizer`` of a loaded model until ``compile``: minivgg's model file keeps no
    optimizer state, so reading it says so instead of failing on ``None``."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ValueError(
            f"optimizer.{name}: minivgg's model file keeps no optimizer state; call "
            "model.compile(optimizer=SGD(...), ...) first"
        )

    def __repr__(self) -> str:
        return "<no optimizer: call compile()>"


def load_model(
    filepath: Any, custom_objects: Optional[dict[str, Any]] = None, compile: bool = True, options: Any = None, **kwargs: Any
) -> Sequential:
    """Keras' load_model for minivgg's model files (``model.save``, ``ModelCheckpoint``,
    ``minivgg train --save``): a Sequential with the file's layers (``model.layers``,
    ``summary()``), weights, name, seed and ``class_names``, ready to ``predict``.

    Difference from tf.keras: the file keeps no optimizer, loss or metrics. With
    ``compile=True`` (the default) the model can ``evaluate`` at once, returning
    ``[loss, accuracy]`` (the cross-entropy; labels one-hot or class indices, either), but
    ``fit`` needs ``compile()`` again (a ValueError says so: there is no optimizer state to
    resume). With ``compile=False`` ``evaluate`` needs ``compile()`` too, as in Keras.
    ``custom_objects`` is accepted and unused (minivgg's files hold only its own layers);
    ``options`` must be None."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise ValueError(f"load_model: custom_objects must be a dict, got {custom_objects!r}")
    if not isinstance(compile, bool):
        raise ValueError(f"load_model: compile must be True or False, got {compile!r}")
    _default_only("load_model", "options", options, None)
    safe_mode = kwargs.pop("safe_mode", True)
    for key in kwargs:
        raise TypeError(f"load_model() got an unexpected keyword argument {key!r}")
    if not isinstance(safe_mode, bool):
        raise ValueError(f"load_model: safe_mode must be True or False, got {safe_mode!r}")
    network = _native().Network.load(os.fspath(filepath), _seed.next_model_seed())
    model = Sequential._from_network(network)
    model.optimizer = _NoOptimizer()
    if compile:
        model._evaluable = True
        model._acc_key = "accuracy"
    return model
