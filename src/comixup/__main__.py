"""``python -m comixup``: the command line of :mod:`comixup.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
