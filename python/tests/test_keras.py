"""Tests of minivgg.keras against the installed package (``pip install .``), on small
synthetic images (whose class is decidable from their mean) so that the suite runs in seconds.

CIFAR-10 (``test_cifar10_load_data``) is read from ``$MINIVGG_DATA`` as the Rust tests read it;
TensorBoard's event files are read with the ``tensorboard`` package (CI installs it): a
missing package fails the test rather than skipping it.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minivgg
from minivgg.keras import backend
from minivgg.keras.callbacks import (
    BaseLogger,
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    TensorBoard,
)
from minivgg.keras.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    MaxPooling2D,
)
from minivgg.keras.models import Sequential, load_model
from minivgg.keras.optimizers import SGD
from minivgg.keras.utils import set_random_seed, to_categorical

CLASSES = 3
SIZE = 8


def make_data(n: int = 192, seed: int = 0, as_float: bool = True):
    """``n`` 8×8×3 images of 3 classes, the class readable from the mean brightness; y (N,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    rng.shuffle(y)
    x = rng.integers(0, 64, size=(n, SIZE, SIZE, 3)) + (y * 80)[:, None, None, None]
    x = x.astype(np.uint8)
    if as_float:
        return x.astype("float") / 255.0, y
    return x, y


def small_model(batch_norm: bool = True, name=None) -> Sequential:
    model = Sequential(name=name)
    model.add(Conv2D(4, (3, 3), padding="same", input_shape=(SIZE, SIZE, 3)))
    model.add(Activation("relu"))
    if batch_norm:
        model.add(BatchNormalization(axis=-1))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(CLASSES))
    model.add(Activation("softmax"))
    return model


def compiled_model(metrics=("accuracy",), loss="categorical_crossentropy", lr=0.05, **sgd) -> Sequential:
    model = small_model()
    model.compile(
        loss=loss,
        optimizer=SGD(learning_rate=lr, momentum=0.9, **sgd),
        metrics=None if metrics is None else list(metrics),
    )
    return model


def one_hot(y) -> np.ndarray:
    """As scikit-learn's LabelBinarizer gives them: int64 rows."""
    return np.eye(CLASSES, dtype=np.int64)[y]


# -- layers, names, the package ----------------------------------------------------------------


def test_package_metadata_and_lazy_keras():
    assert minivgg.__version__ == "0.1.0"
    assert minivgg.keras.layers.Conv2D is Conv2D


def test_automatic_names_and_clear_session():
    backend.clear_session()
    first, second = Conv2D(8, 3, padding="same"), Conv2D(8, 3, padding="same")
    assert (first.name, second.name) == ("conv2d", "conv2d_1")
    assert BatchNormalization().name == "batch_normalization"
    assert MaxPooling2D().name == "max_pooling2d"
    assert Sequential().name == "sequential"
    assert Sequential().name == "sequential_1"
    assert Input(shape=(8, 8, 3)).name == "input_1"
    backend.clear_session()
    assert Conv2D(8, 3, padding="same").name == "conv2d"
    assert Sequential().name == "sequential"
    assert Dense(4, name="head").name == "head"


def test_layer_configs_and_shapes():
    backend.clear_session()
    model = small_model()
    conv = model.layers[0]
    config = conv.get_config()
    assert config["filters"] == 4 and config["kernel_size"] == (3, 3)
    assert config["padding"] == "same" and config["strides"] == (1, 1)
    assert config["batch_input_shape"] == (None, SIZE, SIZE, 3)
    assert len(model.layers) == 7
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, CLASSES)
    assert model.layers[3].output_shape == (None, 4, 4, 4)
    assert model.layers[4].output_shape == (None, 64)
    # 3·3·3·4 + 4, 4·4 (gamma, beta, moving mean, moving variance), 64·3 + 3
    assert model.count_params() == 112 + 16 + 195
    assert conv.count_params() == 112
    assert model.layers[2].count_params() == 16
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 3, 3, 4) and bias.shape == (4,)
    assert [w.shape for w in model.get_weights()] == [
        (3, 3, 3, 4), (4,), (4,), (4,), (4,), (4,), (64, 3), (3,)
    ]


def test_input_layer_and_dense_activation_build_the_same_network():
    set_random_seed(11)
    a = Sequential([Input(shape=(SIZE, SIZE, 3)), Conv2D(4, 3, padding="same", activation="relu"),
                    MaxPooling2D(), Flatten(), Dense(CLASSES, activation="softmax")], name="same")
    set_random_seed(11)
    b = Sequential(name="same")
    b.add(Conv2D(4, 3, padding="same", input_shape=(SIZE, SIZE, 3)))
    b.add(Activation("relu"))
    b.add(MaxPooling2D())
    b.add(Flatten())
    b.add(Dense(CLASSES))
    b.add(Activation("softmax"))
    assert len(a.layers) == 4 and len(b.layers) == 6
    assert a.count_params() == b.count_params() == 112 + 195
    assert a.to_network_json() == b.to_network_json()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_network_json_is_the_network_file_format():
    model = small_model(name="tiny")
    assert json.loads(model.to_network_json()) == {
        "name": "tiny",
        "input": [SIZE, SIZE, 3],
        "classes": CLASSES,
        "layers": [
            {"type": "conv2d", "filters": 4, "kernel": 3},
            {"type": "relu"},
            {"type": "batch_norm"},
            {"type": "max_pool"},
            {"type": "flatten"},
            {"type": "dense", "units": CLASSES},
            {"type": "softmax"},
        ],
    }
    with_dropout = Sequential([Input(shape=(SIZE, SIZE, 3)), Conv2D(4, 5, padding="same", activation="relu"),
                               Dropout(0.25), Flatten(), Dense(CLASSES, activation="softmax")])
    assert [layer["type"] for layer in json.loads(with_dropout.to_network_json())["layers"]] == [
        "conv2d", "relu", "dropout", "flatten", "dense", "softmax"
    ]
    assert json.loads(with_dropout.to_network_json())["layers"][2] == {"type": "dropout", "rate": 0.25}


def test_summary_prints_the_engine_table():
    model = small_model()
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 323" in text
    assert len(lines) > 5 and all("\n" not in line for line in lines)


# -- refusals ----------------------------------------------------------------------------------


def test_conv_padding_valid_is_refused_at_construction():
    with pytest.raises(NotImplementedError) as error:
        Conv2D(32, (3, 3))
    assert str(error.value) == (
        "Conv2D: padding='valid' is not supported by minivgg's engine; use padding='same'"
    )


def test_layer_argument_refusals():
    cases = [
        (lambda: Conv2D(8, 3, strides=3, padding="same"), NotImplementedError, "strides=3"),
        (lambda: Conv2D(8, (3, 5), padding="same"), NotImplementedError, "kernel_size=(3, 5)"),
        (lambda: Conv2D(8, 4, padding="same"), NotImplementedError, "odd square kernel"),
        (lambda: Conv2D(8, 3, padding="same", data_format="channels_first"), NotImplementedError, "channels_first"),
        (lambda: Conv2D(8, 3, padding="same", kernel_initializer="he_normal"), NotImplementedError, "kernel_initializer='he_normal'"),
        (lambda: Conv2D(8, 3, padding="same", use_bias=False), NotImplementedError, "use_bias=False"),
        (lambda: Conv2D(8, 3, padding="same", activation="tanh"), NotImplementedError, "activation='tanh'"),
        (lambda: Conv2D(8, 3, padding="sideways"), ValueError, "padding"),
        (lambda: Conv2D(0, 3, padding="same"), ValueError, "filters"),
        (lambda: Conv2D(8, 3, padding="same", bogus=1), TypeError, "bogus"),
        (lambda: BatchNormalization(momentum=0.9), NotImplementedError, "momentum=0.9"),
        (lambda: BatchNormalization(epsilon=1e-5), NotImplementedError, "epsilon=1e-05"),
        (lambda: MaxPooling2D(pool_size=(3, 3)), NotImplementedError, "pool_size=(3, 3)"),
        (lambda: MaxPooling2D(strides=1), NotImplementedError, "strides=1"),
        (lambda: MaxPooling2D(padding="same"), NotImplementedError, "padding='same'"),
        (lambda: Dropout(1.5), ValueError, "rate"),
        (lambda: Dropout(1.0), NotImplementedError, "rate=1"),
        (lambda: Dropout(0.5, seed=3), NotImplementedError, "seed=3"),
        (lambda: Dense(10, input_shape=(784,)), NotImplementedError, "input_shape=(784,)"),
        (lambda: Activation("sigmoid"), NotImplementedError, "activation='sigmoid'"),
        (lambda: Activation("nonsense"), ValueError, "nonsense"),
        (lambda: SGD(clipnorm=1.0), NotImplementedError, "clipnorm=1.0"),
        (lambda: SGD(momentum=1.5), ValueError, "momentum"),
        (lambda: SGD(decay=-1.0), ValueError, "decay"),
        (lambda: backend.set_image_data_format("channels_first"), NotImplementedError, "channels_first"),
    ]
    for make, kind, text in cases:
        with pytest.raises(kind) as error:
            make()
        assert text in str(error.value), (text, str(error.value))


def test_channels_first_batch_norm_is_refused_when_added():
    model = Sequential()
    model.add(Conv2D(4, 3, padding="same", input_shape=(SIZE, SIZE, 3)))
    with pytest.raises(NotImplementedError) as error:
        model.add(BatchNormalization(axis=1))
    assert "axis=1 (channels_first)" in str(error.value)
    assert len(model.layers) == 1  # the refused layer was not added
    model.add(BatchNormalization(axis=3))  # the tutorial's chanDim on channels_last
    model.add(Flatten())
    model.add(BatchNormalization(axis=1))  # after flattening, axis 1 is the last: fine


def test_model_structure_refusals():
    dense_on_image = Sequential()
    dense_on_image.add(Conv2D(4, 3, padding="same", input_shape=(SIZE, SIZE, 3)))
    with pytest.raises(NotImplementedError) as error:
        dense_on_image.add(Dense(3))
    assert "Flatten()" in str(error.value)

    no_shape = Sequential([Conv2D(4, 3, padding="same"), Flatten(), Dense(3), Activation("softmax")])
    with pytest.raises(ValueError) as error:
        no_shape.compile(loss="categorical_crossentropy", optimizer="sgd")
    assert str(error.value) == (
        "build needs an input shape: give the first layer input_shape=(32, 32, 3)"
    )

    no_softmax = Sequential([Conv2D(4, 3, padding="same", input_shape=(SIZE, SIZE, 3)), Flatten(), Dense(3)])
    with pytest.raises(NotImplementedError) as error:
        no_softmax.compile(loss="categorical_crossentropy", optimizer="sgd")
    assert "end with a softmax" in str(error.value)

    built = small_model()
    built.count_params()
    with pytest.raises(ValueError) as error:
        built.add(Dropout(0.5))
    assert "already built" in str(error.value)


def test_compile_refusals():
    for kwargs, kind, text in [
        (dict(metrics=["mse"]), NotImplementedError, "'mse'"),
        (dict(metrics=["accuracy", "mse"]), NotImplementedError, "'mse'"),
        (dict(loss="mse"), NotImplementedError, "loss='mse'"),
        (dict(loss="binary_crossentropy"), NotImplementedError, "'categorical_crossentropy'"),
        (dict(optimizer="adam"), NotImplementedError, "optimizer='adam'"),
        (dict(optimizer="rmsprop"), NotImplementedError, "optimizer='rmsprop'"),
    ]:
        args = dict(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        args.update(kwargs)
        with pytest.raises(kind) as error:
            small_model().compile(**args)
        assert text in str(error.value), (kwargs, str(error.value))
        assert "accuracy" in str(error.value) or "metrics" not in kwargs


def test_data_refusals():
    x, y = make_data(64)
    model = compiled_model()
    with pytest.raises(ValueError) as error:
        model.fit(x, one_hot(y)[:, :2], epochs=1, verbose=0)
    assert "labels of shape (64, 2) do not match the model's 3 outputs" in str(error.value)

    with pytest.raises(ValueError) as error:
        model.fit(x, one_hot(y)[:63], epochs=1, verbose=0)
    assert "x sizes: 64" in str(error.value) and "y sizes: 63" in str(error.value)

    soft = one_hot(y).astype("float32") * 0.9 + 0.1 / CLASSES
    with pytest.raises(NotImplementedError) as error:
        model.fit(x, soft, epochs=1, verbose=0)
    assert "not one-hot" in str(error.value) and "soft labels" in str(error.value)

    bad = x.copy()
    bad[5, 1, 2, 0] = np.nan
    with pytest.raises(ValueError) as error:
        model.fit(bad, one_hot(y), epochs=1, verbose=0)
    message = str(error.value)
    assert "nan" in message.lower() or "not finite" in message, message

    with pytest.raises(ValueError) as error:
        model.fit(x[:, :4], one_hot(y), epochs=1, verbose=0)
    assert "expected shape=(None, 8, 8, 3), found shape=(64, 4, 8, 3)" in str(error.value)

    for name, value in (("sample_weight", np.ones(64)), ("class_weight", {0: 1.0, 1: 2.0, 2: 1.0})):
        with pytest.raises(NotImplementedError) as error:
            model.fit(x, one_hot(y), epochs=1, verbose=0, **{name: value})
        assert name in str(error.value)

    sparse = compiled_model(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError) as error:
        sparse.fit(x, np.where(y == 2, 3, y), epochs=1, verbose=0)
    assert "Received a label value of 3 which is outside the valid range of [0, 3)." in str(error.value)
    with pytest.raises(ValueError) as error:
        sparse.fit(x, one_hot(y), epochs=1, verbose=0)
    assert "labels of shape (64, 3) do not match" in str(error.value)
    assert model.optimizer.iterations == 0 and sparse.optimizer.iterations == 0


def test_fit_before_compile():
    x, y = make_data(32)
    with pytest.raises(ValueError) as error:
        small_model().fit(x, one_hot(y), verbose=0)
    assert "compile" in str(error.value)
    with pytest.raises(ValueError) as error:
        small_model().evaluate(x, one_hot(y), verbose=0)
    assert "compile" in str(error.value)


# -- fit: callbacks, logs, History ------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, tuple(logs)))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, tuple(logs)))


class OldStyle(Callback):
    """Overrides only Keras 2's old on_batch_end, which on_train_batch_end forwards to."""

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def on_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def test_callback_order_as_keras_2():
    x, y = make_data(64)
    xv, yv = make_data(32, seed=1)
    model = compiled_model()
    recorder, old = Recorder(), OldStyle()
    model.fit(x, one_hot(y), batch_size=16, epochs=2, verbose=0, callbacks=[recorder, old],
              validation_data=(xv, one_hot(yv)))
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    expected: list[tuple] = [("train_begin",)]
    for epoch in range(2):
        expected.append(("epoch_begin", epoch))
        for batch in range(4):
            expected += [("batch_begin", batch), ("batch_end", batch, ("loss", "accuracy"))]
        expected.append(("epoch_end", epoch, keys))
    expected.append(("train_end",))
    assert recorder.calls == expected
    assert old.batches == [0, 1, 2, 3] * 2
    assert recorder.model is model and recorder.params == {"verbose": 0, "epochs": 2, "steps": 4}


@pytest.mark.parametrize("metric", ["accuracy", "acc"])
def test_logs_keys_follow_the_metric(metric):
    x, y = make_data(64)
    model = compiled_model(metrics=[metric])
    history = model.fit(x, one_hot(y), batch_size=32, epochs=2, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", metric, "val_loss", "val_" + metric]
    assert model.metrics_names == ["loss", metric]
    without = compiled_model(metrics=None)
    history = without.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", "val_loss"]
    assert isinstance(without.evaluate(x, one_hot(y), verbose=0), float)


def test_history_matches_evaluate_and_training_learns():
    set_random_seed(3)
    x, y = make_data(192)
    xv, yv = make_data(96, seed=1)
    model = compiled_model()
    history = model.fit(x, one_hot(y), validation_data=(xv, one_hot(yv)), batch_size=32,
                        epochs=6, verbose=0)
    assert history is model.history and history.model is model
    assert history.epoch == list(range(6))
    assert history.params == {"verbose": 0, "epochs": 6, "steps": 6}
    assert all(len(v) == 6 and all(isinstance(f, float) for f in v) for v in history.history.values())
    loss, accuracy = model.evaluate(xv, one_hot(yv), batch_size=32, verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-6, abs=1e-7)
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1], rel=1e-6, abs=1e-7)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # three brightness bands: easy (training accuracy: the batch statistics of 36 updates;
    # the moving averages of BN's momentum 0.99 are still young)
    assert history.history["accuracy"][-1] > 0.6
    assert model.evaluate(xv, one_hot(yv), verbose=0, return_dict=True) == pytest.approx(
        {"loss": loss, "accuracy": accuracy}, rel=1e-6
    )
    assert model.optimizer.iterations == 6 * 6


def test_validation_split_takes_the_last_images_before_shuffling():
    x, y = make_data(100)
    model = compiled_model()
    history = model.fit(x, one_hot(y), validation_split=0.25, batch_size=25, epochs=2, verbose=0)
    assert history.params["steps"] == 3  # 75 training images
    loss, accuracy = model.evaluate(x[75:], one_hot(y[75:]), batch_size=25, verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-6, abs=1e-7)
    assert accuracy == pytest.approx(history.history["val_accuracy"][-1], rel=1e-6, abs=1e-7)


def test_sparse_labels_and_uint8_images():
    x, y = make_data(96, as_float=False)
    model = compiled_model(loss="sparse_categorical_crossentropy")
    h1 = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    h2 = model.fit(x, y.reshape(-1, 1).astype(np.uint8), batch_size=32, epochs=1, verbose=0)
    assert list(h1.history) == list(h2.history) == ["loss", "accuracy"]
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (96, CLASSES) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_stop_training_in_a_batch_hook_stops_the_epoch():
    class StopAtBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    x, y = make_data(128)
    model = compiled_model()
    history = model.fit(x, one_hot(y), batch_size=16, epochs=5, verbose=0, callbacks=[StopAtBatch()])
    assert model.optimizer.iterations == 3
    assert len(history.history["loss"]) == 1


def test_base_logger_subclass_as_the_series_training_monitor():
    class TrainingMonitor(BaseLogger):
        def __init__(self):
            super(TrainingMonitor, self).__init__()

        def on_train_begin(self, logs={}):
            self.H = {}

        def on_epoch_end(self, epoch, logs={}):
            for (k, v) in logs.items():
                values = self.H.get(k, [])
                values.append(float(v))
                self.H[k] = values

    x, y = make_data(64)
    monitor = TrainingMonitor()
    history = compiled_model().fit(x, one_hot(y), batch_size=32, epochs=3, verbose=0,
                                   validation_split=0.25, callbacks=[monitor])
    assert monitor.H == history.history


# -- progress output ---------------------------------------------------------------------------

NUMBER = r"-?\d+\.\d{4}(e[-+]\d+)?"


def test_progress_bar_verbose_1_prints_keras_lines(capsys):
    x, y = make_data(96)
    xv, yv = make_data(32, seed=1)
    model = compiled_model()
    model.fit(x, one_hot(y), batch_size=32, epochs=2, verbose=1, validation_data=(xv, one_hot(yv)))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    pattern = (
        r"3/3 \[==============================\] - \d+s \d+(s|ms|us)/step - loss: {n} - "
        r"accuracy: {n} - val_loss: {n} - val_accuracy: {n}$"
    ).format(n=NUMBER)
    assert re.match(pattern, lines[1]), lines[1]
    assert re.match(pattern, lines[3]), lines[3]

    model.evaluate(xv, one_hot(yv), batch_size=16)
    line = capsys.readouterr().out.strip()
    assert re.match(r"2/2 \[=+\] - \d+s \d+(s|ms|us)/step - loss: {n} - accuracy: {n}$".format(n=NUMBER), line), line
    model.predict(xv, batch_size=8)
    line = capsys.readouterr().out.strip()
    assert re.match(r"4/4 \[==============================\] - \d+s \d+(s|ms|us)/step$", line), line


def test_progress_verbose_2_and_0(capsys):
    x, y = make_data(96)
    model = compiled_model()
    model.fit(x, one_hot(y), batch_size=32, epochs=2, verbose=2, validation_split=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and len(lines) == 4
    pattern = (
        r"3/3 - \d+s - loss: {n} - accuracy: {n} - val_loss: {n} - val_accuracy: {n} - "
        r"\d+(s|ms|us)/epoch - \d+(s|ms|us)/step$"
    ).format(n=NUMBER)
    assert re.match(pattern, lines[1]), lines[1]
    model.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=0)
    model.evaluate(x, one_hot(y), verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("3/3 [")  # no "Epoch 1/1", as Keras


# -- ModelCheckpoint, LearningRateScheduler, EarlyStopping, TensorBoard -----------------------


def test_model_checkpoint_formats_the_path_each_epoch(tmp_path):
    x, y = make_data(96)
    xv, yv = make_data(48, seed=1)
    pattern = str(tmp_path / "weights-{epoch:03d}-{val_loss:.4f}.hdf5")
    model = compiled_model()
    history = model.fit(x, one_hot(y), validation_data=(xv, one_hot(yv)), batch_size=32, epochs=3,
                        verbose=0, callbacks=[ModelCheckpoint(pattern, monitor="val_loss")])
    expected = sorted(
        f"weights-{epoch + 1:03d}-{loss:.4f}.hdf5" for epoch, loss in enumerate(history.history["val_loss"])
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == expected


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path, capsys):
    set_random_seed(5)
    x, y = make_data(96)
    xv, yv = make_data(48, seed=1)
    path = tmp_path / "best.model"
    model = compiled_model(lr=0.1)  # a high rate, so that val_loss may go up and down

    class Weights(Callback):
        def __init__(self):
            super().__init__()
            self.saved: list[list[np.ndarray]] = []

        def on_epoch_end(self, epoch, logs=None):
            self.saved.append(self.model.get_weights())

    weights = Weights()
    checkpoint = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, verbose=1)
    history = model.fit(x, one_hot(y), validation_data=(xv, one_hot(yv)), batch_size=16, epochs=6,
                        verbose=0, callbacks=[weights, checkpoint])
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    assert checkpoint.best == losses[best]
    best_model = load_model(str(path))
    for saved, loaded in zip(weights.saved[best], best_model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    best_model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    loss, _ = best_model.evaluate(xv, one_hot(yv), batch_size=16, verbose=0)
    assert loss == pytest.approx(losses[best], rel=1e-6, abs=1e-7)

    out = capsys.readouterr().out
    assert f"\nEpoch 1: val_loss improved from inf to {losses[0]:.5f}, saving model to {path}\n" in out
    running = losses[0]
    for epoch in range(1, 6):
        if losses[epoch] < running:
            assert f"Epoch {epoch + 1}: val_loss improved from {running:.5f} to {losses[epoch]:.5f}" in out
            running = losses[epoch]
        else:
            assert f"Epoch {epoch + 1}: val_loss did not improve from {running:.5f}" in out


def test_learning_rate_scheduler_sets_lr_each_epoch(capsys):
    def step_decay(epoch):
        return float(0.05 * (0.5 ** (epoch // 2)))

    x, y = make_data(64)
    model = compiled_model(lr=0.05)
    history = model.fit(x, one_hot(y), batch_size=32, epochs=5, verbose=0,
                        callbacks=[LearningRateScheduler(step_decay, verbose=1)])
    expected = [step_decay(e) for e in range(5)]
    assert history.history["lr"] == pytest.approx(expected, rel=1e-6)
    assert float(model.optimizer.lr) == pytest.approx(expected[-1], rel=1e-6)
    assert model.optimizer.current_lr == pytest.approx(expected[-1], rel=1e-6)  # no decay
    out = capsys.readouterr().out
    assert "\nEpoch 1: LearningRateScheduler setting learning rate to 0.05.\n" in out
    assert "\nEpoch 3: LearningRateScheduler setting learning rate to 0.025.\n" in out

    halve = compiled_model(lr=0.08, decay=0.01)
    history = halve.fit(x, one_hot(y), batch_size=32, epochs=3, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert history.history["lr"] == pytest.approx([0.04, 0.02, 0.01], rel=1e-6)
    iterations = halve.optimizer.iterations
    assert iterations == 6
    assert halve.optimizer.current_lr == pytest.approx(0.01 / (1 + 0.01 * iterations), rel=1e-6)


def test_set_value_and_lr_alias():
    model = compiled_model(lr=0.05)
    assert float(model.optimizer.lr) == pytest.approx(0.05)
    backend.set_value(model.optimizer.lr, 0.02)
    assert backend.get_value(model.optimizer.learning_rate) == pytest.approx(0.02)
    model.optimizer.learning_rate = 0.03
    assert float(model.optimizer.lr) == pytest.approx(0.03)
    opt = SGD(lr=0.01, decay=0.01 / 40, momentum=0.9, nesterov=True)
    assert opt.get_config() == pytest.approx(
        {"name": "SGD", "learning_rate": 0.01, "decay": 0.00025, "momentum": 0.9, "nesterov": True}
    )
    from minivgg.keras.optimizers.legacy import SGD as LegacySGD

    assert LegacySGD is SGD


class Scripted(Callback):
    """Replaces val_loss by a scripted sequence and keeps each epoch's weights."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def test_early_stopping_stops_after_patience_and_restores_the_best():
    x, y = make_data(64)
    model = compiled_model()
    scripted = Scripted([1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.4, 0.3])
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, one_hot(y), batch_size=32, epochs=8, verbose=0, validation_split=0.25,
                        callbacks=[scripted, stopper])
    # best at epoch 1 (0.9); epochs 2 and 3 do not improve: stop after epoch 3
    assert history.epoch == [0, 1, 2, 3]
    assert history.history["val_loss"] == [1.0, 0.9, 0.95, 0.96]
    assert stopper.stopped_epoch == 3 and stopper.best == 0.9 and stopper.best_epoch == 1
    for kept, now in zip(scripted.weights[1], model.get_weights()):
        np.testing.assert_array_equal(kept, now)

    accuracy = compiled_model()
    stopper = EarlyStopping(monitor="val_accuracy", patience=1, min_delta=2.0)  # cannot improve by 2
    history = accuracy.fit(x, one_hot(y), batch_size=32, epochs=6, verbose=0, validation_split=0.25,
                           callbacks=[stopper])
    assert history.epoch == [0, 1] and stopper.stopped_epoch == 1


def test_tensorboard_scalars_equal_history(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    def scalars(run: str, tag: str) -> list[tuple[int, float]]:
        accumulator = EventAccumulator(str(tmp_path / "logs" / run))
        accumulator.Reload()
        tags = accumulator.Tags()
        if tag in tags.get("scalars", []):
            return [(e.step, e.value) for e in accumulator.Scalars(tag)]
        if tag in tags.get("tensors", []):
            return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
        raise AssertionError(f"{tag!r} not in {run}: {tags}")

    x, y = make_data(96)
    xv, yv = make_data(48, seed=1)
    model = compiled_model(lr=0.05)
    history = model.fit(x, one_hot(y), validation_data=(xv, one_hot(yv)), batch_size=32, epochs=3,
                        verbose=0, callbacks=[TensorBoard(log_dir=str(tmp_path / "logs"))])
    h = history.history
    for run, tag, key in [
        ("train", "epoch_loss", "loss"),
        ("train", "epoch_accuracy", "accuracy"),
        ("validation", "epoch_loss", "val_loss"),
        ("validation", "epoch_accuracy", "val_accuracy"),
    ]:
        events = scalars(run, tag)
        assert [step for step, _ in events] == [0, 1, 2]
        assert [value for _, value in events] == pytest.approx(
            [float(np.float32(v)) for v in h[key]], rel=1e-6
        ), (run, tag)
    assert [v for _, v in scalars("train", "epoch_learning_rate")] == pytest.approx([0.05] * 3, rel=1e-6)
    with pytest.raises(NotImplementedError) as error:
        TensorBoard(log_dir=str(tmp_path), histogram_freq=1)
    assert "histogram_freq=1" in str(error.value)


# -- utils, seeds, files, data sets -----------------------------------------------------------


def test_to_categorical_as_keras():
    np.testing.assert_array_equal(
        to_categorical([0, 2, 1]), np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype="float32")
    )
    assert to_categorical([0, 2, 1]).dtype == np.float32
    column = to_categorical(np.array([[1], [3]]), num_classes=5)
    np.testing.assert_array_equal(column, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]])
    assert column.shape == (2, 5)
    grid = to_categorical(np.array([[0, 1], [1, 0]]), dtype="int64")
    assert grid.shape == (2, 2, 2) and grid.dtype == np.int64
    np.testing.assert_array_equal(grid[0, 1], [0, 1])
    from minivgg.keras.utils import np_utils

    np.testing.assert_array_equal(np_utils.to_categorical([1], 2), [[0.0, 1.0]])


def test_set_random_seed_reproduces_weights_and_training():
    set_random_seed(1234)
    numpy_draw, python_draw = np.random.rand(), random.random()
    first = small_model()
    first_seed = first.seed
    second = small_model()
    assert first_seed == 1234 and second.seed != 1234
    set_random_seed(1234)
    assert (np.random.rand(), random.random()) == (numpy_draw, python_draw)  # as Keras seeds them
    again = small_model()
    assert again.seed == 1234 and small_model().seed == second.seed
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)

    x, y = make_data(96)
    results = []
    for _ in range(2):
        set_random_seed(99)
        model = compiled_model()
        history = model.fit(x, one_hot(y), batch_size=16, epochs=2, verbose=0, validation_split=0.25)
        results.append((model.get_weights(), history.history))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a, b)
    assert results[0][1] == results[1][1]

    explicit = small_model()
    explicit.seed = 7
    assert explicit.seed == 7
    set_random_seed(7)
    for a, b in zip(explicit.get_weights(), small_model().get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError) as error:
        explicit.seed = 8  # built now
    assert "already built" in str(error.value)


def test_save_and_load_model_predict_the_same(tmp_path):
    x, y = make_data(96)
    model = compiled_model()
    model.class_names = ["dark", "mid", "bright"]
    model.fit(x, one_hot(y), batch_size=32, epochs=2, verbose=0)
    path = tmp_path / "model.hdf5"
    model.save(str(path))
    loaded = load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.class_names == ["dark", "mid", "bright"]
    assert loaded.name == model.name
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D", "Activation", "BatchNormalization", "MaxPooling2D", "Flatten", "Dense", "Activation"
    ]
    assert loaded.count_params() == model.count_params()
    # as Keras' load_model(compile=True): evaluate at once (one-hot labels or class indices)
    expected = model.evaluate(x, one_hot(y), verbose=0)
    assert loaded.evaluate(x, one_hot(y), verbose=0) == pytest.approx(expected, rel=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError) as error:
        loaded.fit(x, one_hot(y), verbose=0)
    assert str(error.value) == "call compile() first: minivgg's model file keeps no optimizer state"
    with pytest.raises(ValueError) as error:
        load_model(str(path), compile=False).evaluate(x, one_hot(y), verbose=0)
    assert str(error.value) == "call compile() first: minivgg's model file keeps no optimizer state"
    loaded.compile(loss="categorical_crossentropy", optimizer=SGD(0.01), metrics=["accuracy"])
    assert loaded.evaluate(x, one_hot(y), verbose=0) == pytest.approx(expected, rel=1e-6)
    assert len(loaded.fit(x, one_hot(y), verbose=0).history["loss"]) == 1
    fresh = small_model()
    fresh.load_weights(str(path))
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_cifar10_load_data():
    assert os.environ.get("MINIVGG_DATA"), "set MINIVGG_DATA to CIFAR-10's binary archive"
    from minivgg.keras.datasets import cifar10

    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (50000, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (50000, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 32, 32, 3) and y_test.shape == (10000, 1)
    assert y_train[:5].flatten().tolist() == [6, 9, 9, 4, 1]


# -- Ctrl-C -------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the parent ignores it
    import numpy as np
    from minivgg.keras.callbacks import Callback
    from minivgg.keras.layers import Activation, Conv2D, Dense, Flatten, MaxPooling2D
    from minivgg.keras.models import Sequential
    from minivgg.keras.optimizers import SGD
    from minivgg.keras.utils import set_random_seed

    rng = np.random.default_rng(0)
    y = np.arange(64) % 3
    x = (rng.integers(0, 64, size=(64, 8, 8, 3)) + (y * 80)[:, None, None, None]).astype(np.uint8)

    def model():
        m = Sequential()
        m.add(Conv2D(4, 3, padding="same", input_shape=(8, 8, 3)))
        m.add(Activation("relu"))
        m.add(MaxPooling2D())
        m.add(Flatten())
        m.add(Dense(3))
        m.add(Activation("softmax"))
        m.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.01, momentum=0.9, decay=1e-4))
        return m

    class Started(Callback):
        ends = 0
        def on_train_batch_end(self, batch, logs=None):
            Started.ends += 1
            if Started.ends == 4:
                print("started", flush=True)

    set_random_seed(7)
    net = model()
    try:
        net.fit(x, y, batch_size=2, epochs=10**6, shuffle=False, verbose=0, callbacks=[Started()])
    except KeyboardInterrupt:
        done = net.optimizer.iterations
        assert Started.ends in (done - 1, done), (Started.ends, done)
        probabilities = net.predict(x, verbose=0)
        assert probabilities.shape == (64, 3) and np.isfinite(probabilities).all()
        # the same batches without interruption give the very same weights
        set_random_seed(7)
        replay = model()
        epochs, rest = divmod(done, 32)
        if epochs:
            replay.fit(x, y, batch_size=2, epochs=epochs, shuffle=False, verbose=0)
        if rest:
            replay.fit(x[: 2 * rest], y[: 2 * rest], batch_size=2, shuffle=False, verbose=0)
        assert replay.optimizer.iterations == done
        for a, b in zip(net.get_weights(), replay.get_weights()):
            assert np.array_equal(a, b)
        np.testing.assert_array_equal(probabilities, replay.predict(x, verbose=0))
        print(f"stopped after {done} batches", flush=True)
        sys.exit(0)
    print("never interrupted", flush=True)
    sys.exit(1)
    """
)


def test_ctrl_c_stops_fit_and_leaves_the_model_usable():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready, "the child did not start training within 60 s"
        assert child.stdout.readline().strip() == "started"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        assert time.monotonic() - sent < 10
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, (out, err)
    match = re.fullmatch(r"stopped after (\d+) batches", out.strip())
    assert match and int(match.group(1)) >= 4, out


# -- what a script reaches for that minivgg lacks, loaded models, validation_split ---------------


@pytest.mark.parametrize(
    "statement, message",
    [
        ("from minivgg.keras.layers import AveragePooling2D", "minivgg.keras.layers has no AveragePooling2D"),
        ("from minivgg.keras.callbacks import CSVLogger", "minivgg.keras.callbacks has no CSVLogger"),
        (
            "from minivgg.keras.preprocessing.image import ImageDataGenerator",
            "minivgg.keras.preprocessing.image.ImageDataGenerator is not in minivgg",
        ),
        ("from minivgg.keras.regularizers import l2", "minivgg.keras.regularizers.l2 is not in minivgg"),
    ],
)
def test_a_keras_name_minivgg_lacks_says_so(statement, message):
    with pytest.raises(NotImplementedError) as error:
        exec(statement, {})
    assert str(error.value).startswith(message)


def test_a_loaded_model_draws_its_seed_from_set_random_seed_and_has_no_optimizer(tmp_path):
    x, y = make_data(96)
    model = compiled_model()
    model.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "m.model")

    def trained_again(seed):
        set_random_seed(seed)
        loaded = load_model(tmp_path / "m.model")
        with pytest.raises(ValueError) as error:
            loaded.optimizer.lr
        assert "keeps no optimizer state" in str(error.value)
        loaded.compile(loss="categorical_crossentropy", optimizer=SGD(learning_rate=0.05), metrics=["accuracy"])
        loaded.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=0)
        return loaded.get_weights()

    first, again = trained_again(11), trained_again(11)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = trained_again(12)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_set_weights_takes_float64_as_keras_casts_it():
    model = compiled_model()
    weights = [w.astype(np.float64) + 1.0 for w in model.get_weights()]
    model.set_weights(weights)
    assert all(np.array_equal(a, b.astype(np.float32)) for a, b in zip(model.get_weights(), weights))


def test_pixels_on_the_byte_grid_are_stored_as_bytes_and_others_as_float32():
    from minivgg import _minivgg

    x, y = make_data(64, as_float=False)
    n, values = len(x), x.size
    assert _minivgg.Images(x / 255.0).nbytes == values + n  # a byte a value, as the CLI's
    assert _minivgg.Images((x / 255.0).astype(np.float32)).nbytes == values + n
    assert _minivgg.Images(x / 255.0 - 0.5).nbytes == 4 * values + n  # mean-subtracted: f32
    assert _minivgg.Images(x).nbytes == values + n  # uint8: its own values 0..255
    model = compiled_model()
    # The same values however they are stored give the same probabilities, bit for bit.
    assert np.array_equal(model.predict(x / 255.0, verbose=0), model.predict((x / 255.0).astype(np.float32), verbose=0))
    assert np.array_equal(model.predict(x, verbose=0), model.predict(x.astype(np.float32), verbose=0))
    assert not np.array_equal(model.predict(x, verbose=0), model.predict(x / 255.0, verbose=0))


def test_load_image_folder_gives_the_pictures_as_arrays_with_class_names(tmp_path):
    from PIL import Image

    from minivgg.keras.utils import load_image_folder

    rng = np.random.default_rng(5)
    pictures = {}
    for name in ["cats", "dogs"]:
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
            pictures[(name, i)] = pixels
    (x, y), (xt, yt), names = load_image_folder(tmp_path / "pets", image_size=(6, 5), validation_split=0.25)
    assert names == ["cats", "dogs"]
    assert x.shape == (12, 6, 5, 3) and xt.shape == (4, 6, 5, 3)
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    assert sorted(np.bincount(y).tolist()) == [6, 6] and sorted(np.bincount(yt).tolist()) == [2, 2]
    # Every array is one of the pictures of its class, unchanged at its own size.
    for image, label in zip(np.concatenate([x, xt]), np.concatenate([y, yt])):
        assert any(np.array_equal(image, pictures[(names[label], i)]) for i in range(8))


def test_a_folder_that_is_not_what_it_seems_raises_value_error_naming_it(tmp_path):
    from PIL import Image

    from minivgg.keras.utils import load_image_folder

    for name in ["cats", "dogs"]:
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (5, 6)).save(tmp_path / "pets" / name / f"{i}.png")
    pets = tmp_path / "pets"
    # A FIFO is refused without waiting for a writer.
    os.mkfifo(pets / "cats" / "pipe.png")
    with pytest.raises(ValueError) as error:
        load_image_folder(pets, image_size=(6, 5), validation_split=0.5)
    assert str(error.value) == (
        f"{pets}/cats/pipe.png is a FIFO (named pipe), not a regular file: "
        "pictures are read from regular files only"
    )
    os.remove(pets / "cats" / "pipe.png")
    # A class that is a link to another would give its pictures two labels.
    os.symlink("cats", pets / "kittens")
    with pytest.raises(ValueError) as error:
        load_image_folder(pets, image_size=(6, 5), validation_split=0.5)
    assert str(error.value) == (
        f"{pets}: kittens is the folder cats again (a link), under class kittens as well as cats: "
        "a picture cannot have two labels"
    )


def test_the_memory_plan_refuses_a_fit_that_does_not_fit_before_it_starts(monkeypatch):
    x, y = make_data(64)
    model = compiled_model()
    before = model.get_weights()
    monkeypatch.setenv("MINIVGG_MEMORY_LIMIT", "200000")  # bytes: less than the model needs
    with pytest.raises(ValueError) as error:
        model.fit(x, one_hot(y), batch_size=32, epochs=1, verbose=0)
    assert "MINIVGG_MEMORY_LIMIT" in str(error.value)
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
