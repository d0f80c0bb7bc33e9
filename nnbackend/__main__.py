"""``python -m nnbackend``: the command line, the same as ``nnbackend``."""

import sys

from .cli import main

sys.exit(main())
