"""One contestant of scripts/bench_python_vs_keras.sh: the tutorial's MiniVGGNet, its SGD and
its fit call, through minivgg.keras, TensorFlow 2.21's own tf.keras (Keras 3, with the edits it
needs) or tf.keras with Keras 2 semantics (tf_keras), for a few epochs on CIFAR-10; prints one
line per epoch, `epoch N: S s`, timed by a callback from the start to the end of the epoch (its
validation included, as Keras' epoch time does).

    python bench_python_epoch.py --keras minivgg|keras3|tf_keras [--epochs N] [--limit N]

The data comes from minivgg's loader on both sides (tf.keras' would download it), as the
arrays Keras' cifar10.load_data() returns.
"""

import argparse
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--keras", choices=["minivgg", "keras3", "tf_keras"], required=True)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--limit", type=int, default=None)
args = ap.parse_args()

from minivgg.keras.datasets import cifar10  # noqa: E402

if args.keras in ("keras3", "tf_keras"):
    if args.keras == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras

    if args.keras == "tf_keras":
        # Keras 2's optimizer takes the tutorial's SGD(lr=…, decay=…) as printed.
        from tensorflow.keras.optimizers.legacy import SGD

        import tf_keras

        version = f"TensorFlow {tf.__version__}, tf_keras {tf_keras.__version__}"
    else:
        # The edits Keras 3 needs: `lr` is refused and `decay` ignored, so the tutorial's
        # lr / (1 + decay · t) per update becomes an InverseTimeDecay schedule.
        def SGD(lr, decay, momentum, nesterov):
            schedule = keras.optimizers.schedules.InverseTimeDecay(lr, 1, decay)
            return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=nesterov)

        version = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
else:
    import minivgg
    from minivgg import keras
    from minivgg.keras.optimizers import SGD

    version = f"minivgg {minivgg.__version__}"

layers, models = keras.layers, keras.models


def minivggnet(width, height, depth, classes):
    # The tutorial's MiniVGGNet.build, channels last.
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), padding="same", input_shape=(height, width, depth)))
    model.add(layers.Activation("relu"))
    model.add(layers.BatchNormalization(axis=-1))
    model.add(layers.Conv2D(32, (3, 3), padding="same"))
    model.add(layers.Activation("relu"))
    model.add(layers.BatchNormalization(axis=-1))
    model.add(layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(layers.Dropout(0.25))
    model.add(layers.Conv2D(64, (3, 3), padding="same"))
    model.add(layers.Activation("relu"))
    model.add(layers.BatchNormalization(axis=-1))
    model.add(layers.Conv2D(64, (3, 3), padding="same"))
    model.add(layers.Activation("relu"))
    model.add(layers.BatchNormalization(axis=-1))
    model.add(layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(layers.Dropout(0.25))
    model.add(layers.Flatten())
    model.add(layers.Dense(512))
    model.add(layers.Activation("relu"))
    model.add(layers.BatchNormalization())
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(classes))
    model.add(layers.Activation("softmax"))
    return model


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        print(f"epoch {epoch + 1}: {seconds:.2f} s (val_accuracy {logs['val_accuracy']:.4f})", flush=True)


((trainX, trainY), (testX, testY)) = cifar10.load_data()
if args.limit:
    trainX, trainY, testX, testY = trainX[: args.limit], trainY[: args.limit], testX[: args.limit], testY[: args.limit]
trainX = trainX.astype("float") / 255.0
testX = testX.astype("float") / 255.0
eye = keras.utils.to_categorical
trainY, testY = eye(trainY, 10), eye(testY, 10)

print(f"{version}: {len(trainX)} training and {len(testX)} validation images, {args.epochs} epochs", flush=True)
opt = SGD(lr=0.01, decay=0.01 / 40, momentum=0.9, nesterov=True)
model = minivggnet(width=32, height=32, depth=3, classes=10)
model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
model.fit(trainX, trainY, validation_data=(testX, testY), batch_size=64, epochs=args.epochs,
          verbose=0, callbacks=[EpochTimer()])
sys.stdout.flush()
