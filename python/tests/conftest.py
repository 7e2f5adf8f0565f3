"""What the Python tests share: CIFAR-10 found as the command line finds it, and the
`minivgg` command of the environment the package is installed in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tutorial_minivggnet():
    """The tutorial's MiniVGGNet class as examples/python/pyimagesearch ships it."""
    examples = str(REPO / "examples" / "python")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    from pyimagesearch.nn.conv import MiniVGGNet

    return MiniVGGNet


@pytest.fixture(scope="session", autouse=True)
def cifar10_archive():
    """$MINIVGG_DATA, else the copy beside the checkout, as `cargo test` finds it: the
    CIFAR-10 tests fail, never skip, without it."""
    if not os.environ.get("MINIVGG_DATA"):
        beside = REPO.parent / "shared" / "data" / "cifar-10-binary.tar.gz"
        if beside.is_file():
            os.environ["MINIVGG_DATA"] = str(beside)
    return os.environ.get("MINIVGG_DATA")


def minivgg_command():
    """The `minivgg` console script installed beside this Python."""
    script = Path(sys.executable).with_name("minivgg")
    found = str(script) if script.exists() else shutil.which("minivgg")
    assert found, "the minivgg command is not installed beside this Python"
    return found


def run_minivgg(*args, **kwargs):
    """Runs the `minivgg` command; returns the completed process (output as text)."""
    return subprocess.run(
        [minivgg_command(), *map(str, args)], capture_output=True, text=True, **kwargs
    )
