"""Keras' ``losses``: the two cross-entropies minivgg's engine trains with.

``compile(loss=...)`` takes ``"categorical_crossentropy"`` (one-hot labels, as the series'
``LabelBinarizer`` gives) or ``"sparse_categorical_crossentropy"`` (integer labels), as a
string, as these functions or as these classes. The functions and ``__call__`` compute the loss
in NumPy, as Keras does on probabilities (clipped to [1e-7, 1 - 1e-7]).

Differences from tf.keras: ``from_logits=True`` and ``label_smoothing`` raise
NotImplementedError (the engine's models end with a softmax and train on hard labels); other
losses (``"mse"``, ``"binary_crossentropy"``, …) raise NotImplementedError at compile.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = [
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "get",
]

_EPSILON = 1e-7


def _probabilities(y_pred: Any) -> np.ndarray:
    return np.clip(np.asarray(y_pred, dtype=np.float64), _EPSILON, 1 - _EPSILON)


def categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1
) -> np.ndarray:
    """Per-sample cross-entropy of one-hot ``y_true`` and probabilities ``y_pred`` (float32)."""
    _check_options("categorical_crossentropy", from_logits, label_smoothing, axis)
    p = _probabilities(y_pred)
    p = p / p.sum(axis=-1, keepdims=True)
    losses: np.ndarray = -(np.asarray(y_true, dtype=np.float64) * np.log(p)).sum(axis=-1)
    return losses.astype(np.float32)


def sparse_categorical_crossentropy(
    y_true: Any, y_pred: Any, from_logits: bool = False, axis: int = -1, ignore_class: Optional[int] = None
) -> np.ndarray:
    """Per-sample cross-entropy of integer labels ``y_true`` and probabilities ``y_pred``."""
    _check_options("sparse_categorical_crossentropy", from_logits, 0.0, axis)
    if ignore_class is not None:
        raise NotImplementedError("sparse_categorical_crossentropy: ignore_class is not supported by minivgg")
    p = _probabilities(y_pred)
    p = p / p.sum(axis=-1, keepdims=True)
    labels = np.asarray(y_true).reshape(p.shape[:-1]).astype(np.int64)
    picked = np.take_along_axis(p, labels[..., None], axis=-1)[..., 0]
    losses: np.ndarray = -np.log(picked)
    return losses.astype(np.float32)


def _check_options(owner: str, from_logits: bool, label_smoothing: float, axis: int) -> None:
    if from_logits:
        raise NotImplementedError(
            f"{owner}: from_logits=True is not supported by minivgg's engine; end the model with "
            "a softmax and keep from_logits=False"
        )
    if label_smoothing:
        raise NotImplementedError(
            f"{owner}: label_smoothing={label_smoothing!r} is not supported by minivgg's engine; "
            "it trains on hard labels"
        )
    if axis != -1:
        raise NotImplementedError(f"{owner}: axis={axis!r} is not supported; use axis=-1")


class _Loss:
    _fn: Any = None
    _key = ""

    def __init__(self, reduction: str = "auto", name: Optional[str] = None) -> None:
        if reduction not in ("auto", "sum_over_batch_size"):
            raise NotImplementedError(
                f"{type(self).__name__}: reduction={reduction!r} is not supported by minivgg's "
                "engine; it averages over the batch ('auto')"
            )
        self.reduction = reduction
        self.name = name if name is not None else self._key

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> np.float32:
        """The mean loss over the samples (Keras' 'auto' reduction)."""
        if sample_weight is not None:
            raise NotImplementedError(f"{type(self).__name__}: sample_weight is not supported by minivgg")
        return np.float32(np.mean(type(self)._fn(y_true, y_pred)))

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "name": self.name}


class CategoricalCrossentropy(_Loss):
    """Keras' ``CategoricalCrossentropy()`` (one-hot labels); ``from_logits`` False,
    ``label_smoothing`` 0 and ``axis`` -1 only."""

    _fn = staticmethod(categorical_crossentropy)
    _key = "categorical_crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str = "auto",
        name: str = "categorical_crossentropy",
    ) -> None:
        _check_options("CategoricalCrossentropy", from_logits, label_smoothing, axis)
        super().__init__(reduction, name)


class SparseCategoricalCrossentropy(_Loss):
    """Keras' ``SparseCategoricalCrossentropy()`` (integer labels); ``from_logits`` False only."""

    _fn = staticmethod(sparse_categorical_crossentropy)
    _key = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: Optional[int] = None,
        reduction: str = "auto",
        name: str = "sparse_categorical_crossentropy",
    ) -> None:
        _check_options("SparseCategoricalCrossentropy", from_logits, 0.0, -1)
        if ignore_class is not None:
            raise NotImplementedError(
                "SparseCategoricalCrossentropy: ignore_class is not supported by minivgg"
            )
        super().__init__(reduction, name)


_KNOWN_UNSUPPORTED = frozenset(
    {
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "mse",
        "mae",
        "mape",
        "msle",
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "kld",
        "kl_divergence",
        "kullback_leibler_divergence",
        "poisson",
        "log_cosh",
        "logcosh",
        "huber",
        "huber_loss",
        "cosine_similarity",
        "categorical_focal_crossentropy",
    }
)


def get(identifier: Any) -> str:
    """The loss ``compile`` trains with: ``"categorical_crossentropy"`` or
    ``"sparse_categorical_crossentropy"``, from a name, one of the functions above or one of
    the classes above (an instance). Other losses: NotImplementedError; unknown names:
    ValueError."""
    if isinstance(identifier, str):
        key = identifier
        snake = {
            "CategoricalCrossentropy": "categorical_crossentropy",
            "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
        }.get(key, key)
        if snake in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            return snake
        lower = "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")
        if key.lower() in _KNOWN_UNSUPPORTED or lower in _KNOWN_UNSUPPORTED:
            raise NotImplementedError(
                f"loss={identifier!r} is not supported by minivgg's engine; use "
                "'categorical_crossentropy' (one-hot labels) or "
                "'sparse_categorical_crossentropy' (integer labels)"
            )
        raise ValueError(
            f"Unknown loss function: {identifier!r}; minivgg supports "
            "'categorical_crossentropy' and 'sparse_categorical_crossentropy'"
        )
    if identifier is categorical_crossentropy or isinstance(identifier, CategoricalCrossentropy):
        return "categorical_crossentropy"
    if identifier is sparse_categorical_crossentropy or isinstance(identifier, SparseCategoricalCrossentropy):
        return "sparse_categorical_crossentropy"
    if identifier is None:
        raise ValueError(
            "compile: no loss given; minivgg trains with loss='categorical_crossentropy' or "
            "'sparse_categorical_crossentropy'"
        )
    raise NotImplementedError(
        f"loss={identifier!r} is not supported by minivgg's engine; use "
        "'categorical_crossentropy' (one-hot labels) or 'sparse_categorical_crossentropy' "
        "(integer labels), as a string or from minivgg.keras.losses"
    )
