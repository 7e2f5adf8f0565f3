"""Keras 2's ``callbacks``: Callback, BaseLogger, History, ModelCheckpoint,
LearningRateScheduler, EarlyStopping, TensorBoard, ProgbarLogger and CallbackList.

``fit`` calls, in Keras 2's order: ``on_train_begin``; per epoch ``on_epoch_begin(epoch)``,
``on_train_batch_begin(batch)`` / ``on_train_batch_end(batch, logs)`` per batch (the base
class forwards them to ``on_batch_begin`` / ``on_batch_end``, as Keras 2 does),
``on_epoch_end(epoch, logs)`` with ``loss``, the accuracy (``accuracy`` or ``acc``, as
compiled), ``val_loss`` and ``val_accuracy`` as Python floats; then ``on_train_end``. The same
``logs`` dict goes to every callback in turn (LearningRateScheduler adds ``lr`` to it), and
History and the progress bar come after the script's callbacks, as in Keras.

Batch logs hold the epoch's running means so far (as Keras 2's do). Batch hooks cost a
little: fit asks the engine for them only when a callback defines one (or the progress bar is
drawn in a terminal). A callback that sets ``model.stop_training`` in a batch hook stops the
epoch after that batch, as in Keras.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import warnings
from typing import Any, Callable, Iterable, Optional

import numpy as np

from ._progbar import Progbar, _stdout_is_dynamic

__all__ = [
    "Callback",
    "CallbackList",
    "BaseLogger",
    "History",
    "ProgbarLogger",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "EarlyStopping",
    "TensorBoard",
]

Logs = Optional[dict[str, Any]]


class Callback:
    """Keras' base callback: ``self.model`` and ``self.params`` (``epochs``, ``steps``,
    ``verbose``) are set before training; every hook does nothing (the ``on_train_batch_*``
    hooks call ``on_batch_*``, as Keras 2). The test and predict hooks exist but minivgg's
    ``evaluate``/``predict`` take no callbacks."""

    model: Any = None

    def __init__(self) -> None:
        self.validation_data = None
        self.model = None
        self.params: dict[str, Any] = {}

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """A training batch begins (Keras 2's old name; see on_train_batch_begin)."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """A training batch ended (Keras 2's old name; see on_train_batch_end)."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """An epoch begins (``epoch`` counts from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """An epoch ended: ``logs`` holds loss, accuracy and the validation metrics."""

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """A training batch begins; calls ``on_batch_begin``."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """A training batch ended: ``logs`` holds the epoch's running loss and accuracy;
        calls ``on_batch_end``."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Not called by minivgg (evaluate runs in the engine)."""

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Not called by minivgg (evaluate runs in the engine)."""

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Not called by minivgg (predict runs in the engine)."""

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Not called by minivgg (predict runs in the engine)."""

    def on_train_begin(self, logs: Logs = None) -> None:
        """Training begins."""

    def on_train_end(self, logs: Logs = None) -> None:
        """Training ended (not called when an exception or Ctrl-C ends fit, as in Keras)."""

    def on_test_begin(self, logs: Logs = None) -> None:
        """Not called by minivgg."""

    def on_test_end(self, logs: Logs = None) -> None:
        """Not called by minivgg."""

    def on_predict_begin(self, logs: Logs = None) -> None:
        """Not called by minivgg."""

    def on_predict_end(self, logs: Logs = None) -> None:
        """Not called by minivgg."""

    def _implements_train_batch_hooks(self) -> bool:
        cls = type(self)
        return any(
            getattr(cls, hook) is not getattr(Callback, hook)
            for hook in ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")
        )


class BaseLogger(Callback):
    """Keras' BaseLogger, kept for the series' ``TrainingMonitor(BaseLogger)``. In Keras 2 it
    averaged the batch metrics into the epoch's logs; minivgg's epoch logs already hold the
    epoch's means, so it changes nothing (subclass it and override the hooks as the series does)."""

    def __init__(self, stateful_metrics: Optional[Iterable[str]] = None) -> None:
        super().__init__()
        self.stateful_metrics = set(stateful_metrics or [])
        self.seen = 0
        self.totals: dict[str, float] = {}

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self.seen = 0
        self.totals = {}


class History(Callback):
    """Keras' History, which ``fit`` returns: ``history`` (a dict of lists, one entry per
    epoch, keys as the epoch logs: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and
    ``lr`` with a LearningRateScheduler), ``epoch`` (the epoch numbers, from 0), ``params``
    and ``model``. Also ``model.history``."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Keras' ProgbarLogger: fit's ``"Epoch 1/40"`` line (when ``epochs`` > 1) and progress
    bar (see ``minivgg.keras.utils.Progbar``). fit adds one when ``verbose`` is 1 or 2."""

    def __init__(self, count_mode: str = "steps", stateful_metrics: Optional[Iterable[str]] = None) -> None:
        super().__init__()
        if count_mode != "steps":
            raise NotImplementedError(
                f"ProgbarLogger: count_mode={count_mode!r} is not supported; minivgg counts 'steps'"
            )
        self.stateful_metrics = set(stateful_metrics or [])
        self.verbose = 1
        self.epochs = 1
        self.target: Optional[int] = None
        self.progbar: Optional[Progbar] = None

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _draws_batches(self) -> bool:
        return self.verbose == 1 and _stdout_is_dynamic()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        self.progbar = Progbar(
            target=self.target, verbose=self.verbose, stateful_metrics=None, unit_name="step"
        )

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self.progbar is None:
            return
        logs = logs or {}
        self.progbar.stateful_metrics.update(logs)
        self.progbar.update(batch + 1, list(logs.items()), finalize=False)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.progbar is None:
            return
        logs = logs or {}
        self.progbar.stateful_metrics.update(logs)
        self.progbar.update(self.target or 0, list(logs.items()), finalize=True)
        self.progbar = None


class CallbackList:
    """Keras' CallbackList: calls each hook on every callback in order; ``fit`` makes one
    with the script's callbacks, then a History and (verbose 1 or 2) a ProgbarLogger."""

    def __init__(
        self,
        callbacks: Optional[Iterable[Callback]] = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        **params: Any,
    ) -> None:
        self.callbacks: list[Callback] = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must be minivgg.keras.callbacks.Callback instances, got "
                    f"{callback!r} of type {type(callback).__name__}"
                )
        self._history: Optional[History] = None
        self._progbar: Optional[ProgbarLogger] = None
        for callback in self.callbacks:
            if isinstance(callback, History):
                self._history = callback
            elif isinstance(callback, ProgbarLogger):
                self._progbar = callback
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger(count_mode="steps")
            self.callbacks.append(self._progbar)
        self.model = None
        self.params: dict[str, Any] = {}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        for callback in self.callbacks:
            callback.set_params(params)

    def set_model(self, model: Any) -> None:
        self.model = model
        for callback in self.callbacks:
            callback.set_model(model)

    def needs_batch_hooks(self) -> bool:
        """Whether any callback does something per training batch (fit then asks the engine
        for a call after each batch)."""
        for callback in self.callbacks:
            if isinstance(callback, ProgbarLogger):
                if callback._draws_batches():
                    return True
            elif callback._implements_train_batch_hooks():
                return True
        return False

    def on_train_begin(self, logs: Logs = None) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_train_end(self, logs: Logs = None) -> None:
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        logs = {} if logs is None else logs
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = {} if logs is None else logs
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        logs = {} if logs is None else logs
        for callback in self.callbacks:
            callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        logs = {} if logs is None else logs
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.on_train_batch_end(batch, logs)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.callbacks)


def _monitor_op(owner: str, mode: str, maximize_in_auto: bool) -> Callable[[Any, Any], Any]:
    """np.less or np.greater for ``mode`` ("auto" decides by ``maximize_in_auto``)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode={mode!r} is unknown; expected 'auto', 'min' or 'max'")
    if mode == "min":
        return np.less
    if mode == "max" or maximize_in_auto:
        return np.greater
    return np.less


class ModelCheckpoint(Callback):
    """Keras 2's ModelCheckpoint: saves the model at the end of every epoch (every ``period``
    epochs), or with ``save_best_only`` only when ``monitor`` improved, to ``filepath``
    formatted with ``epoch`` (from 1) and the epoch's logs, as
    ``"weights-{epoch:03d}-{val_loss:.4f}.hdf5"``. ``mode="auto"`` maximizes a monitor
    holding ``"acc"`` and minimizes others. ``verbose=1`` prints Keras 2's
    ``"Epoch 00001: val_loss improved from inf to 1.32340, saving model to PATH"``. A monitor
    missing from the logs warns and saves nothing, as Keras.

    Differences from tf.keras: the file is always minivgg's model file (weights and
    architecture, loadable by ``load_model`` and ``minivgg predict``), whatever its extension;
    ``save_weights_only=True`` writes that same file (``model.load_weights`` reads it back).
    ``save_freq`` must be ``"epoch"``; ``options`` must be None.
    """

    def __init__(
        self,
        filepath: Any,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: Any = "epoch",
        options: Any = None,
        initial_value_threshold: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        period = kwargs.pop("period", 1)
        for key in kwargs:
            raise TypeError(f"Unrecognized keyword argument passed to ModelCheckpoint: {key!r}")
        if save_freq != "epoch":
            raise NotImplementedError(
                f"ModelCheckpoint: save_freq={save_freq!r} is not supported by minivgg; it saves "
                "at the end of epochs (save_freq='epoch', or period=N for every N epochs)"
            )
        if options is not None:
            raise NotImplementedError("ModelCheckpoint: options is not supported by minivgg; leave it None")
        if isinstance(period, bool) or not isinstance(period, numbers.Integral) or period < 1:
            raise ValueError(f"ModelCheckpoint: period must be an integer >= 1, got {period!r}")
        self.filepath: str = str(os.fspath(filepath))
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.save_freq = save_freq
        self.period = int(period)
        self.epochs_since_last_save = 0
        self.monitor_op = _monitor_op(
            "ModelCheckpoint", mode, "acc" in monitor or monitor.startswith("fmeasure")
        )
        if self.monitor_op is np.less:
            self.best = math.inf if initial_value_threshold is None else float(initial_value_threshold)
        else:
            self.best = -math.inf if initial_value_threshold is None else float(initial_value_threshold)

    def _get_file_path(self, epoch: int, logs: dict[str, Any]) -> str:
        try:
            path: str = self.filepath.format(epoch=epoch + 1, **logs)
            return path
        except KeyError as error:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}'
            ) from error

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        self.epochs_since_last_save += 1
        if self.epochs_since_last_save < self.period:
            return
        self.epochs_since_last_save = 0
        filepath = self._get_file_path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"Can save best model only with {self.monitor} available, skipping.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            if self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(
                        "\nEpoch %d: %s improved from %0.5f to %0.5f, saving model to %s"
                        % (epoch + 1, self.monitor, self.best, current, filepath),
                        flush=True,
                    )
                self.best = current
                self._save(filepath)
            elif self.verbose > 0:
                print(
                    "\nEpoch %d: %s did not improve from %0.5f" % (epoch + 1, self.monitor, self.best),
                    flush=True,
                )
        else:
            if self.verbose > 0:
                print("\nEpoch %d: saving model to %s" % (epoch + 1, filepath), flush=True)
            self._save(filepath)

    def _save(self, filepath: str) -> None:
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)


def _takes_two_arguments(schedule: Callable[..., Any]) -> Optional[bool]:
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class LearningRateScheduler(Callback):
    """Keras 2's LearningRateScheduler: at each epoch's start sets the optimizer's base
    learning rate to ``schedule(epoch)``, or ``schedule(epoch, lr)`` when the schedule takes
    two arguments (the series' ``step_decay(epoch)`` takes one); the result must be a float
    (ValueError otherwise, as Keras). ``verbose=1`` prints
    ``"Epoch 00001: LearningRateScheduler setting learning rate to 0.01."``. At each epoch's
    end it adds ``lr`` (the base rate) to the logs, so History has an ``lr`` list, as Keras 2.

    Note: with SGD's ``decay`` the rate of an update is still ``lr / (1 + decay * iterations)``.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "lr"):
            raise ValueError('Optimizer must have a "lr" attribute.')
        two = _takes_two_arguments(self.schedule)
        if two is None:
            try:
                lr = self.schedule(epoch, float(optimizer.lr))
            except TypeError:
                lr = self.schedule(epoch)
        elif two:
            lr = self.schedule(epoch, float(optimizer.lr))
        else:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.floating)):
            raise ValueError('The output of the "schedule" function should be float.')
        if not math.isfinite(float(lr)):
            raise ValueError(f'The output of the "schedule" function should be finite, got {lr!r}.')
        optimizer.lr = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.", flush=True)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.lr)


class EarlyStopping(Callback):
    """Keras 2's EarlyStopping: stops training (``model.stop_training``) when ``monitor`` has
    not improved by more than ``min_delta`` for ``patience`` epochs, not before epoch
    ``start_from_epoch``; with ``baseline``, improvements must also beat it;
    ``restore_best_weights`` puts back the best epoch's weights when it stops. ``mode="auto"``
    maximizes a monitor ending in ``acc``/``accuracy``/``auc`` and minimizes others. After
    training: ``stopped_epoch`` (0 if it did not stop), ``best``, ``best_epoch``, ``wait``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights: Optional[list[np.ndarray]] = None
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op(
            "EarlyStopping", mode, monitor.endswith(("acc", "accuracy", "auc"))
        )
        if self.monitor_op is np.less:
            self.min_delta *= -1
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.best_epoch = 0

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.monitor_op is np.less else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose > 0:
                    print(
                        "Restoring model weights from the end of the best epoch: "
                        f"{self.best_epoch + 1}.",
                        flush=True,
                    )
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)

    def get_monitor_value(self, logs: Logs) -> Any:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}",
                RuntimeWarning,
                stacklevel=2,
            )
        return value

    def _is_improvement(self, value: Any, reference: Any) -> bool:
        return bool(self.monitor_op(value - self.min_delta, reference))


class TensorBoard(Callback):
    """Keras 2's TensorBoard, epoch scalars only: at each epoch's end it writes, as Keras 2
    does, ``epoch_loss``, ``epoch_accuracy`` (``epoch_acc`` if compiled with ``"acc"``, any
    other logs entry likewise) and ``epoch_learning_rate`` (the base learning rate) under
    ``log_dir/train``, and ``epoch_loss``, ``epoch_accuracy`` of the validation under
    ``log_dir/validation``, at step ``epoch`` (from 0), in TensorBoard event files.

    Differences from tf.keras: no graph (``write_graph`` is accepted, nothing is written for
    it), and ``histogram_freq``, ``write_images``, ``write_steps_per_second``,
    ``update_freq`` other than ``"epoch"``, ``profile_batch`` and embeddings raise
    NotImplementedError.
    """

    def __init__(
        self,
        log_dir: Any = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: Any = "epoch",
        profile_batch: Any = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        for key in kwargs:
            raise TypeError(f"Unrecognized arguments in `TensorBoard.__init__`: {key!r}")
        for name, value, default in (
            ("histogram_freq", histogram_freq, 0),
            ("write_images", write_images, False),
            ("write_steps_per_second", write_steps_per_second, False),
            ("update_freq", update_freq, "epoch"),
            ("profile_batch", profile_batch, 0),
            ("embeddings_freq", embeddings_freq, 0),
            ("embeddings_metadata", embeddings_metadata, None),
        ):
            if not (value is default or (type(value) is type(default) and value == default)):
                raise NotImplementedError(
                    f"TensorBoard: {name}={value!r} is not supported by minivgg; it writes epoch "
                    f"scalars only (leave {name}={default!r})"
                )
        if not isinstance(write_graph, bool):
            raise ValueError(f"TensorBoard: write_graph must be True or False, got {write_graph!r}")
        self.log_dir: str = str(os.fspath(log_dir))
        self.write_graph = write_graph
        self.update_freq = update_freq
        self._train_writer: Any = None
        self._val_writer: Any = None

    def on_train_begin(self, logs: Logs = None) -> None:
        from .. import _minivgg

        if self._train_writer is None:
            self._train_writer = _minivgg.EventWriter(os.path.join(self.log_dir, "train"))

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        from .. import _minivgg

        logs = logs or {}
        train = {f"epoch_{k}": float(v) for k, v in logs.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            # The rate the epoch ended at (decay applied), as `minivgg train --tensorboard`.
            train["epoch_learning_rate"] = float(getattr(optimizer, "current_lr", optimizer.lr))
        validation = {f"epoch_{k[4:]}": float(v) for k, v in logs.items() if k.startswith("val_")}
        if self._train_writer is None:
            self._train_writer = _minivgg.EventWriter(os.path.join(self.log_dir, "train"))
        self._train_writer.write(epoch, train)
        if validation:
            if self._val_writer is None:
                self._val_writer = _minivgg.EventWriter(os.path.join(self.log_dir, "validation"))
            self._val_writer.write(epoch, validation)


def __getattr__(name: str) -> Any:
    # A tf.keras name this module lacks says so, rather than an ImportError about minivgg.
    if name[:1].isupper():
        raise NotImplementedError(
            f"minivgg.keras.callbacks has no {name}: minivgg has Callback, BaseLogger, History, "
            "ProgbarLogger, ModelCheckpoint, LearningRateScheduler, EarlyStopping and TensorBoard"
        )
    raise AttributeError(f"module 'minivgg.keras.callbacks' has no attribute {name!r}")
