"""``python -m nnbackend``: the command line, the same as ``nnbackend``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
