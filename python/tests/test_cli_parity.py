"""The Python package and the command line train the same weights and read each other's
models: `fit` through minivgg.keras with a seed writes the very bytes `minivgg train` writes
for the same network, seed, data and recipe, and each side's saved model evaluates in the
other to the same line."""

import re

import numpy as np
import pytest
from conftest import run_minivgg, tutorial_minivggnet

from minivgg.keras import models, optimizers, utils
from minivgg.keras.datasets import cifar10

LIMIT, EPOCHS, SEED = 512, 2, 7


def evaluate_line(name, n, loss, accuracy):
    """`minivgg evaluate`'s line."""
    return f"[INFO] {name} on {n} test images: loss {loss:.4f}, accuracy {accuracy:.4f}"


def limited(labels, limit):
    """The indices of the images `--limit` keeps: every class in turn, each class's images in
    file order, the ones kept in file order."""
    by_class = [list(np.flatnonzero(labels.ravel() == c)) for c in range(10)]
    kept = []
    for round_ in range(limit):
        for images in by_class:
            if round_ < len(images) and len(kept) < limit:
                kept.append(images[round_])
    return np.sort(kept)


def test_fit_writes_the_bytes_train_writes_and_each_side_evaluates_the_others_model(tmp_path):
    (x, y), (xt, yt) = cifar10.load_data()
    keep, keep_test = limited(y, LIMIT), limited(yt, LIMIT)
    utils.set_random_seed(SEED)
    model = tutorial_minivggnet().build(width=32, height=32, depth=3, classes=10)
    # The command line's default decay is lr / epochs, as the tutorial's 0.01 / 40.
    opt = optimizers.SGD(lr=0.01, decay=0.01 / EPOCHS, momentum=0.9, nesterov=True)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    model.fit(
        x[keep].astype("float") / 255.0,
        utils.to_categorical(y[keep], 10),
        validation_data=(xt[keep_test].astype("float") / 255.0, utils.to_categorical(yt[keep_test], 10)),
        batch_size=64,
        epochs=EPOCHS,
        verbose=0,
    )
    # The command line records the data's class names in the model; here they are said.
    model.class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    model.save(tmp_path / "python.model")

    network = tmp_path / "network.json"
    network.write_text(model.to_network_json())
    cli = run_minivgg(
        "train", "--model", network, "--seed", SEED, "--epochs", EPOCHS, "--limit", LIMIT,
        "--output", tmp_path / "cli.png", "--save", tmp_path / "cli.safetensors",
    )
    assert cli.returncode == 0, cli.stderr
    python_bytes = (tmp_path / "python.model").read_bytes()
    assert python_bytes == (tmp_path / "cli.safetensors").read_bytes()

    # The Python model in the command line, the command line's in Python: the same line.
    evaluated = run_minivgg("evaluate", "--weights", tmp_path / "python.model",
                            "--confusion", tmp_path / "confusion.png")
    assert evaluated.returncode == 0, evaluated.stderr
    cli_line = re.search(r"^\[INFO\] .* test images: .*$", evaluated.stdout, re.M).group(0)
    loaded = models.load_model(tmp_path / "cli.safetensors")
    loss, accuracy = loaded.evaluate(xt.astype("float") / 255.0, utils.to_categorical(yt, 10), verbose=0)
    assert evaluate_line(loaded.name, len(xt), loss, accuracy) == cli_line
    assert np.array_equal(loaded.predict(xt[:64] / 255.0, verbose=0), model.predict(xt[:64] / 255.0, verbose=0))


def test_train_tensorboard_holds_the_history_csv(tmp_path):
    """`minivgg train --tensorboard DIR`: TensorBoard's own reader finds, in Keras' layout,
    the values of the run's history CSV, and the learning rate each epoch ended at."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_minivgg(
        "train", "--model", "shallownet", "--seed", 3, "--epochs", 3, "--limit", 256,
        "--output", tmp_path / "run.png", "--tensorboard", tmp_path / "logs",
    )
    assert run.returncode == 0, run.stderr
    rows = (tmp_path / "run.csv").read_text().splitlines()
    assert rows[0] == "epoch,seconds,loss,acc,val_loss,val_acc"
    csv = [dict(zip(rows[0].split(","), map(float, row.split(",")))) for row in rows[1:]]

    def scalars(split, tag):
        accumulator = EventAccumulator(str(tmp_path / "logs" / split))
        accumulator.Reload()
        return [(e.step, e.value) for e in accumulator.Scalars(tag)]

    for split, tag, column in [
        ("train", "epoch_loss", "loss"),
        ("train", "epoch_accuracy", "acc"),
        ("validation", "epoch_loss", "val_loss"),
        ("validation", "epoch_accuracy", "val_acc"),
    ]:
        expected = [(i, float(np.float32(row[column]))) for i, row in enumerate(csv)]
        assert scalars(split, tag) == expected, (split, tag)
    # 256 images in batches of 64: 4 updates an epoch; the tutorial's decay is lr / epochs.
    rates = [float(np.float32(0.01 / (1 + 0.01 / 3 * 4 * (i + 1)))) for i in range(3)]
    assert [v for _, v in scalars("train", "epoch_learning_rate")] == pytest.approx(rates, rel=1e-6)
