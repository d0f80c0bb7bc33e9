"""``python -m nnbackend.bench.report RESULTS.json OUTDIR``."""

import sys

from .write import main

sys.exit(main())
