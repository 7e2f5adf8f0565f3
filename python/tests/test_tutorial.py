"""The PyImageSearch tutorial's MiniVGGNet, as the tutorial prints it, with ``tensorflow.keras``
replaced by ``minivgg.keras``: one epoch on the first 512 CIFAR-10 training images (read from
``$MINIVGG_DATA``), validated on the first 512 test images, with the tutorial's recipe."""

from __future__ import annotations

import numpy as np
import pytest

# import the necessary packages
from minivgg.keras.models import Sequential
from minivgg.keras.layers import BatchNormalization
from minivgg.keras.layers import Conv2D
from minivgg.keras.layers import MaxPooling2D
from minivgg.keras.layers import Activation
from minivgg.keras.layers import Flatten
from minivgg.keras.layers import Dropout
from minivgg.keras.layers import Dense
from minivgg.keras import backend as K
from minivgg.keras.optimizers import SGD
from minivgg.keras.datasets import cifar10


class MiniVGGNet:
	@staticmethod
	def build(width, height, depth, classes):
		# initialize the model along with the input shape to be
		# "channels last" and the channels dimension itself
		model = Sequential()
		inputShape = (height, width, depth)
		chanDim = -1

		# if we are using "channels first", update the input shape
		# and channels dimension
		if K.image_data_format() == "channels_first":
			inputShape = (depth, height, width)
			chanDim = 1

		# first CONV => RELU => CONV => RELU => POOL layer set
		model.add(Conv2D(32, (3, 3), padding="same",
			input_shape=inputShape))
		model.add(Activation("relu"))
		model.add(BatchNormalization(axis=chanDim))
		model.add(Conv2D(32, (3, 3), padding="same"))
		model.add(Activation("relu"))
		model.add(BatchNormalization(axis=chanDim))
		model.add(MaxPooling2D(pool_size=(2, 2)))
		model.add(Dropout(0.25))

		# second CONV => RELU => CONV => RELU => POOL layer set
		model.add(Conv2D(64, (3, 3), padding="same"))
		model.add(Activation("relu"))
		model.add(BatchNormalization(axis=chanDim))
		model.add(Conv2D(64, (3, 3), padding="same"))
		model.add(Activation("relu"))
		model.add(BatchNormalization(axis=chanDim))
		model.add(MaxPooling2D(pool_size=(2, 2)))
		model.add(Dropout(0.25))

		# first (and only) set of FC => RELU layers
		model.add(Flatten())
		model.add(Dense(512))
		model.add(Activation("relu"))
		model.add(BatchNormalization())
		model.add(Dropout(0.5))

		# softmax classifier
		model.add(Dense(classes))
		model.add(Activation("softmax"))

		# return the constructed network architecture
		return model


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
