"""The PyImageSearch tutorial's MiniVGGNet as the tutorial prints it, with ``tensorflow.keras``
replaced by ``minivgg.keras`` (examples/python/pyimagesearch/nn/conv/minivggnet.py): one epoch
on the first 512 CIFAR-10 training images (read from ``$MINIVGG_DATA``), validated on the first
512 test images, with the tutorial's recipe."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tutorial_minivggnet

from minivgg.keras.datasets import cifar10
from minivgg.keras.optimizers import SGD

# the class the tutorial prints, as examples/python ships it
MiniVGGNet = tutorial_minivggnet()


def test_minivggnet_tutorial_recipe_on_512_images():
	# load the training and testing data, then scale it into the range [0, 1]
	((trainX, trainY), (testX, testY)) = cifar10.load_data()
	trainX = trainX[:512].astype("float") / 255.0
	testX = testX[:512].astype("float") / 255.0
	trainY, testY = trainY[:512], testY[:512]

	# convert the labels from integers to vectors, as the tutorial's LabelBinarizer does
	# (int64 one-hot rows)
	trainY = np.eye(10, dtype=np.int64)[trainY.flatten()]
	testY = np.eye(10, dtype=np.int64)[testY.flatten()]

	# initialize the optimizer and model
	opt = SGD(lr=0.01, decay=0.01 / 40, momentum=0.9, nesterov=True)
	model = MiniVGGNet.build(width=32, height=32, depth=3, classes=10)
	model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])

	assert model.count_params() == 2171178
	lines = []
	model.summary(print_fn=lines.append)
	assert "Total params: 2,171,178" in "\n".join(lines)

	# train the network
	H = model.fit(trainX, trainY, validation_data=(testX, testY), batch_size=64, epochs=1, verbose=0)
	assert sorted(H.history) == sorted(["loss", "accuracy", "val_loss", "val_accuracy"])
	assert all(len(values) == 1 for values in H.history.values())
	assert model.optimizer.iterations == 8
	assert model.optimizer.current_lr == pytest.approx(0.01 / (1 + 0.01 / 40 * 8), rel=1e-6)

	predictions = model.predict(testX, batch_size=64, verbose=0)
	assert predictions.shape == (512, 10)
	accuracy = float((predictions.argmax(axis=1) == testY.argmax(axis=1)).mean())
	assert abs(accuracy - H.history["val_accuracy"][0]) < 1e-6
