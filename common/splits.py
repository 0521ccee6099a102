"""The split folders a data folder may have (``DIR/<split>/<domain>/*``), declared once.

``holdout`` is where settings chosen after training are fitted (``training.data`` says how
it is found when the data has no such folder); ``val`` and ``test`` are only ever reported.
"""

from pathlib import Path

SPLITS = ("train", "holdout", "val", "test")
HOLDOUT = "holdout"


def present_splits(root: str | Path) -> list[str]:
    """The split folders ``root`` has, in :data:`SPLITS` order (empty for a plain folder)."""
    return [split for split in SPLITS if (Path(root) / split).is_dir()]
