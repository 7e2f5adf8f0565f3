"""minivgg's engine, as the Python package sees it (the Rust extension module).

Everything here is called by `minivgg.keras`; scripts use that, not this module. Errors in
what the caller passes raise ValueError with a message naming the argument; an engine or I/O
failure raises RuntimeError or OSError.
"""

from typing import Any, Callable, Optional, Sequence

import numpy as np
import numpy.typing as npt

class Images:
    """Images (and their integer labels) converted once for the engine.

    `x` is an (N, H, W, C) array of uint8, float32 or float64, any strides, never modified.
    Floats that are all k/255 for integers k (as `astype("float") / 255.0` gives) are kept as
    bytes, bit-identical to the command line's pixels; other floats are kept as float32;
    uint8 is taken as its values 0..255, as Keras takes it. NaN or infinite pixels, an x that
    is not 4-D, and labels whose length differs from x's raise ValueError naming the first
    bad image. `labels` is None (predict) or an (N,) integer array of values in 0..255.
    """

    def __init__(self, x: npt.NDArray, labels: Optional[npt.NDArray] = None) -> None: ...
    def __len__(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
    @property
    def nbytes(self) -> int:
        """The bytes the converted images and labels take (the memory plan counts them)."""

class Network:
    """A network, its weights, its optimizer and where its training stands."""

    @staticmethod
    def from_json(spec_json: str, seed: int) -> "Network":
        """A new network from a network file's JSON (docs/network-files.md), initialized from
        `seed` as `minivgg train --seed SEED` initializes it. ValueError names the bad layer."""
    @staticmethod
    def load(path: str, seed: int = 0) -> "Network":
        """A model saved by `save` or `minivgg train --save` (or a checkpoint); ValueError if
        the file is not one, naming it. `seed` decides the shuffles and dropout of further
        training (the file keeps none)."""
    def save(self, path: str) -> None:
        """minivgg's model file (safetensors with the architecture), written whole or not at all."""
    @property
    def spec_json(self) -> str:
        """The architecture as a network file's JSON, which `minivgg train --model FILE.json`
        reads (class names are not part of it)."""
    @property
    def name(self) -> str: ...
    @property
    def classes(self) -> int: ...
    class_names: Optional[list[str]]
    """The class names stored in the model file (None: none stored)."""
    @property
    def seed(self) -> int: ...
    def summary(self) -> str:
        """Keras' model.summary() text."""
    def count_params(self) -> int: ...
    def layer_names(self) -> list[str]:
        """The engine's layer names, Keras' automatic names (conv2d, conv2d_1, activation, …)."""
    def get_weights(self) -> list[npt.NDArray[np.float32]]:
        """Keras' get_weights(): per layer kernel, bias / gamma, beta, moving_mean,
        moving_variance, in Keras' layouts (HWIO kernels). Copies."""
    def set_weights(self, weights: Sequence[npt.NDArray]) -> None:
        """ValueError naming the first tensor of another count or shape."""
    def compile(self, lr: float, momentum: float, nesterov: bool, decay: float) -> None:
        """Keras 2's SGD: lr / (1 + decay * iterations) per update. Resets the optimizer."""
    lr: float
    """The base learning rate (LearningRateScheduler sets it at each epoch's start)."""
    @property
    def current_lr(self) -> float:
        """The rate the next update uses: lr / (1 + decay * iterations)."""
    @property
    def iterations(self) -> int:
        """Updates done so far (Keras' optimizer.iterations)."""
    def check_memory(self, batch_size: int, data_bytes: int) -> None:
        """The memory plan of training in batches of `batch_size` with `data_bytes` of data:
        ValueError saying what it needs and what the machine has, if it does not fit."""
    def fit_epoch(
        self,
        train: Images,
        batch_size: int,
        shuffle: bool,
        on_batch: Optional[Callable[[int, float, float], None]] = None,
    ) -> tuple[float, float]:
        """One epoch, as `minivgg train` trains one (the same order, dropout and updates for
        the same seed): returns (mean loss, accuracy). The GIL is released while batches run;
        `on_batch(batch_index, mean_loss_so_far, accuracy_so_far)` is called with it after
        each batch (only if given). A KeyboardInterrupt (Ctrl-C) or an exception from
        `on_batch` stops the epoch after that batch and is raised, the model as after it.
        ValueError: no compile, labels missing or >= classes, images of another shape.
        RuntimeError: the loss is not finite (training diverged)."""
    def evaluate(self, data: Images, batch_size: int) -> tuple[float, float]:
        """(mean loss, accuracy) in evaluation mode."""
    def predict(self, data: Images, batch_size: int) -> npt.NDArray[np.float32]:
        """(N, classes) probabilities in evaluation mode."""

def load_dataset(
    name: str, label_mode: str = "fine"
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8], list[str]]:
    """(x_train, y_train, x_test, y_test, class_names) of "cifar10", "cifar100", "mnist" or
    "fashion_mnist", found as the command line finds them ($MINIVGG_DATA for CIFAR-10, the
    cache, the verified download). x is (N, H, W, C) uint8; y is (N,) uint8. label_mode
    "fine" or "coarse" (CIFAR-100)."""

def load_image_folder(
    directory: str,
    image_size: tuple[int, int] = (32, 32),
    grayscale: bool = False,
    validation_split: Optional[float] = None,
    skip_bad_images: bool = False,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8], list[str]]:
    """A folder of images, one sub-folder per class (train/ and test/ as splits, or
    validation_split), decoded and cached as `minivgg data --data DIRECTORY` does:
    (x_train, y_train, x_test, y_test, class_names); image_size is (height, width)."""

def run_cli(argv: list[str]) -> int:
    """The `minivgg` command with these arguments (argv[0] is the program name); its exit code."""

def train(flags: list[str], on_epoch: Callable[[dict[str, Any]], None]) -> None:
    """`minivgg train` with `flags` (those after `train`) in this process, as the command runs
    it but without its signal handlers. After each epoch, once its checkpoint is written,
    `on_epoch` gets a dict: epoch, epochs, loss, accuracy, val_loss, val_accuracy, lr,
    seconds and checkpoint (the file `train --resume` goes on from, in its directory). An
    exception from `on_epoch` stops the run and is raised here; a bad flag raises ValueError."""

def check_train_flags(flags: list[str]) -> None:
    """Raises ValueError with `minivgg train`'s message if it would refuse `flags` before
    loading any data (a flag or value, the network, a data path that does not exist)."""

class EventWriter:
    """A TensorBoard event file in `log_dir` (created if missing), named as TensorBoard's own
    (events.out.tfevents.TIME.HOST.PID.minivgg)."""

    def __init__(self, log_dir: str) -> None: ...
    def write(self, step: int, scalars: dict[str, float]) -> None:
        """One scalar event per entry at `step` (the epoch, from 0), written to the file at once."""
