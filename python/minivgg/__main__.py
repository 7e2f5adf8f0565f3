"""The ``minivgg`` command (``python -m minivgg …``): the Rust program's command line."""

from __future__ import annotations

import sys


def main() -> None:
    """Runs the ``minivgg`` command with this process's arguments and exits with its code."""
    from . import _minivgg

    sys.exit(_minivgg.run_cli(["minivgg", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
