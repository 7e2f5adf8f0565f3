"""Keras 2's (legacy) SGD, run by minivgg's engine."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from .._variables import _Variable

# Keras 2's optimizer keyword arguments that minivgg's engine lacks, with their "off" value.
_UNSUPPORTED_KWARGS: dict[str, Any] = {
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "weight_decay": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "jit_compile": None,
    "is_legacy_optimizer": None,
}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if callable(value) or hasattr(value, "get_config"):
            raise NotImplementedError(
                f"SGD: {name}={value!r}: learning rate schedules are not supported by minivgg's "
                "engine; give a number and use decay= (Keras 2's time-based decay) or the "
                "LearningRateScheduler callback"
            )
        raise ValueError(f"SGD: {name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"SGD: {name} must be finite, got {value!r}")
    return number


class SGD:
    """Keras 2's SGD (``tf.keras.optimizers.legacy.SGD``, the series' ``SGD(lr=0.01,
    decay=0.01 / 40, momentum=0.9, nesterov=True)``): momentum, Nesterov momentum and Keras 2's
    time-based decay, the rate of update ``t`` being ``lr / (1 + decay * t)``.

    ``lr=`` is Keras 2's alias of ``learning_rate`` (it wins when both are given). ``decay``
    must be >= 0 and ``momentum`` in [0, 1], as in Keras.

    Differences from tf.keras: gradient clipping (``clipnorm``, ``clipvalue``,
    ``global_clipnorm``), ``weight_decay``, EMA and learning-rate schedule objects raise
    NotImplementedError. ``lr``/``learning_rate`` read as a float (settable:
    ``opt.lr = 0.001``, ``opt.lr.assign(0.001)``, ``K.set_value(opt.lr, 0.001)``);
    ``iterations`` is an int. ``momentum``, ``nesterov`` and ``decay`` can be changed only
    before ``compile()``. ``compile()`` starts the optimizer afresh (iterations 0, no momentum),
    even when given the optimizer the model had.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "SGD",
        lr: Optional[float] = None,
        decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        for key, value in kwargs.items():
            if key not in _UNSUPPORTED_KWARGS:
                raise TypeError(f"Unexpected keyword argument passed to optimizer: {key}")
            if value != _UNSUPPORTED_KWARGS[key]:
                raise NotImplementedError(
                    f"SGD: {key}={value!r} is not supported by minivgg's engine; "
                    f"leave it at {_UNSUPPORTED_KWARGS[key]!r}"
                )
        self._network: Any = None
        self._learning_rate = _number(lr if lr is not None else learning_rate, "lr" if lr is not None else "learning_rate")
        if self._learning_rate < 0:
            raise ValueError(f"SGD: the learning rate must be >= 0, got {self._learning_rate}")
        momentum_value = _number(momentum, "momentum")
        if not 0 <= momentum_value <= 1:
            raise ValueError(f"`momentum` must be between [0, 1]. Received: momentum={momentum}")
        decay_value = _number(decay, "decay")
        if decay_value < 0:
            raise ValueError(f"decay cannot be less than 0. Received: decay={decay}.")
        if not isinstance(nesterov, bool):
            raise ValueError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if not isinstance(name, str):
            raise ValueError(f"SGD: name must be a string, got {name!r}")
        self._momentum = momentum_value
        self._nesterov = nesterov
        self._decay = decay_value
        self.name = name

    # -- the engine ---------------------------------------------------------------------------

    def _attach(self, network: Any) -> None:
        """Gives ``network`` this optimizer (Network.compile), as model.compile does."""
        network.compile(self._learning_rate, self._momentum, self._nesterov, self._decay)
        self._network = network

    def _frozen(self, what: str) -> None:
        if self._network is not None:
            raise NotImplementedError(
                f"SGD: {what} cannot change after compile() in minivgg; make a new SGD and "
                "compile again (which restarts the optimizer)"
            )

    # -- Keras' attributes --------------------------------------------------------------------

    def _base_lr(self) -> float:
        """The engine's base rate; the value given in Python when the engine holds it rounded
        (to float32), so that 0.01 reads back as 0.01."""
        if self._network is None:
            return self._learning_rate
        engine = float(self._network.lr)
        if np.float32(engine) == np.float32(self._learning_rate):
            return self._learning_rate
        return engine

    @property
    def learning_rate(self) -> _Variable:
        """The base learning rate (before decay); settable, also after compile()."""
        return _Variable(self._base_lr(), self, "learning_rate")

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        rate = _number(value, "learning_rate")
        if rate < 0:
            raise ValueError(f"SGD: the learning rate must be >= 0, got {rate}")
        self._learning_rate = rate
        if self._network is not None:
            self._network.lr = rate

    @property
    def lr(self) -> _Variable:
        """Keras 2's alias of ``learning_rate``."""
        return _Variable(self._base_lr(), self, "lr")

    @lr.setter
    def lr(self, value: Any) -> None:
        self.learning_rate = value

    @property
    def current_lr(self) -> float:
        """The rate the next update uses, ``lr / (1 + decay * iterations)`` (minivgg's addition)."""
        if self._network is not None:
            return float(self._network.current_lr)
        return self._learning_rate

    @property
    def momentum(self) -> float:
        return self._momentum

    @momentum.setter
    def momentum(self, value: Any) -> None:
        self._frozen("momentum")
        number = _number(value, "momentum")
        if not 0 <= number <= 1:
            raise ValueError(f"`momentum` must be between [0, 1]. Received: momentum={value}")
        self._momentum = number

    @property
    def nesterov(self) -> bool:
        return self._nesterov

    @nesterov.setter
    def nesterov(self, value: bool) -> None:
        self._frozen("nesterov")
        if not isinstance(value, bool):
            raise ValueError(f"SGD: nesterov must be True or False, got {value!r}")
        self._nesterov = value

    @property
    def decay(self) -> float:
        return self._decay

    @decay.setter
    def decay(self, value: Any) -> None:
        self._frozen("decay")
        number = _number(value, "decay")
        if number < 0:
            raise ValueError(f"decay cannot be less than 0. Received: decay={value}.")
        self._decay = number

    @property
    def iterations(self) -> int:
        """Updates done so far (0 before the model trains)."""
        return int(self._network.iterations) if self._network is not None else 0

    def get_config(self) -> dict[str, Any]:
        """Keras 2's config of SGD."""
        return {
            "name": self.name,
            "learning_rate": float(self.learning_rate),
            "decay": self._decay,
            "momentum": self._momentum,
            "nesterov": self._nesterov,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SGD":
        """An SGD from ``get_config()``'s dict."""
        return cls(**config)

    def __repr__(self) -> str:
        return (
            f"SGD(learning_rate={float(self.learning_rate)!r}, momentum={self._momentum!r}, "
            f"nesterov={self._nesterov!r}, decay={self._decay!r})"
        )


def _unsupported(class_name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{class_name} is not supported by minivgg's engine; use SGD "
            "(momentum, nesterov and decay as Keras 2)"
        )

    return type(
        class_name,
        (),
        {
            "__init__": __init__,
            "__doc__": f"Keras' {class_name}: not supported by minivgg's engine (raises "
            "NotImplementedError); use SGD.",
            "__module__": "minivgg.keras.optimizers",
        },
    )


Adam = _unsupported("Adam")
RMSprop = _unsupported("RMSprop")
Adagrad = _unsupported("Adagrad")
Adadelta = _unsupported("Adadelta")
Adamax = _unsupported("Adamax")
Nadam = _unsupported("Nadam")
Ftrl = _unsupported("Ftrl")

_KNOWN_UNSUPPORTED = ("adam", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "adamw")


def get(identifier: Any) -> SGD:
    """Keras' ``optimizers.get``: an SGD instance as itself, ``"sgd"`` as ``SGD()`` (Keras'
    defaults: learning rate 0.01, no momentum). Other optimizers raise NotImplementedError."""
    if isinstance(identifier, SGD):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() == "sgd":
            return SGD()
        if identifier.lower() in _KNOWN_UNSUPPORTED:
            raise NotImplementedError(
                f"optimizer={identifier!r} is not supported by minivgg's engine; use 'sgd' or "
                "an optimizers.SGD instance"
            )
        raise ValueError(
            f"Unknown optimizer: {identifier!r}; minivgg supports 'sgd' or an optimizers.SGD "
            "instance"
        )
    raise NotImplementedError(
        f"optimizer={identifier!r} is not supported by minivgg's engine; use 'sgd' or an "
        "optimizers.SGD instance"
    )
