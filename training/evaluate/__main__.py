"""``python -m training.evaluate``: see the package docstring and ``--help``."""

import sys

import serve  # noqa: F401  (first: OpenMP's wait policy must be set before torch loads)
from training.evaluate.cli import main

sys.exit(main())
