"""Per-photo colour restraint: colour as strongly as photos like this one bear.

An L1-trained colorizer guesses some photos' colours well (faces, foliage, sky) and others
badly (a car's paint, a room's walls, a street from a dashboard camera): there, any colour
it adds puts the photo further from the truth than the gray photo was. One gain per
specialist cannot tell them apart; the router's embedding can. ``training.ship.fit_restraint``
colours the held-out photos with the served system, measures each photo's PSNR gain over
gray at a ladder of strengths, and stores those gain curves with the photos' router
embeddings. Serving looks up a photo's ``k`` nearest held-out photos, averages their
curves and uses the strength with the highest expected gain: near 1 where colour was
right, near 0 (the gray photo) where the model's colours were wrong for photos like it.

The user's colour strength multiplies it (``--strength``, the page's slider), so 0 is
still the gray photo and 1 the model's restrained colours.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import atomic_write_bytes

from .weights import WeightsFolder

RESTRAINT_FILE = "restraint.safetensors"
FORMAT = "restraint-knn-v1"
DEFAULT_K = 20
TABLES = ("embeddings", "gains", "strengths")


@dataclass
class Restraint:
    """Held-out photos' router embeddings and PSNR gain curves over ``strengths``."""

    embeddings: np.ndarray  # (N, E) float32, unit length
    gains: np.ndarray  # (N, S) dB over the gray photo at each strength
    strengths: np.ndarray  # (S,) increasing, starting at 0
    k: int = DEFAULT_K
    info: dict | None = None  # what it was fitted on (checkpoint hashes, data, figures)

    def __post_init__(self) -> None:
        self.embeddings = unit_rows(np.asarray(self.embeddings, np.float32))
        self.gains = np.asarray(self.gains, np.float32)
        self.strengths = np.asarray(self.strengths, np.float32)
        if self.embeddings.ndim != 2 or self.gains.shape != (
            len(self.embeddings),
            len(self.strengths),
        ):
            raise ValueError(
                f"restraint tables disagree: embeddings {self.embeddings.shape}, "
                f"gains {self.gains.shape}, strengths {self.strengths.shape}"
            )
        if not np.isfinite(self.embeddings).all() or not np.isfinite(self.gains).all():
            raise ValueError("restraint tables hold NaN or infinite values")
        if len(self.embeddings) == 0 or self.k < 1:
            raise ValueError("restraint needs at least one photo and k >= 1")

    def expected_gains(self, embeddings: np.ndarray) -> np.ndarray:
        """(B, S) mean gain curve of each photo's ``k`` most similar held-out photos."""
        query = unit_rows(np.asarray(embeddings, np.float32))
        sims = query @ self.embeddings.T
        k = min(self.k, len(self.embeddings))
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return self.gains[nearest].mean(axis=1)

    def strengths_for(self, embeddings: np.ndarray) -> np.ndarray:
        """(B,) the strength with the highest expected gain for each photo."""
        if len(embeddings) == 0:
            return np.zeros(0, np.float32)
        return self.strengths[self.expected_gains(embeddings).argmax(axis=1)]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity becomes a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def save_restraint(path: str | Path, restraint: Restraint) -> None:
    """Write the tables as safetensors (float16 embeddings keep the file small), atomically."""
    from safetensors.numpy import save

    tensors = {
        "embeddings": restraint.embeddings.astype(np.float16),
        "gains": restraint.gains.astype(np.float32),
        "strengths": restraint.strengths.astype(np.float32),
    }
    meta = {"format": FORMAT, "k": str(restraint.k), "info": json.dumps(restraint.info or {})}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def load_restraint(path: str | Path) -> Restraint:
    """Read :func:`save_restraint`'s file; ValueError naming the file when it is not one."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
            tables = {name: handle.get_tensor(name) for name in TABLES}
        return Restraint(
            tables["embeddings"].astype(np.float32),
            tables["gains"],
            tables["strengths"],
            int(meta.get("k", DEFAULT_K)),
            json.loads(meta.get("info", "{}")),
        )
    except Exception as exc:  # OSError, ValueError, KeyError, safetensors' own error for a cut file
        raise ValueError(f"{path}: not a colour-restraint table ({exc})") from None


def restraint_table(
    weights: WeightsFolder, hashes: Mapping[str, str | None], notes: list[str]
) -> Restraint | None:
    """The folder's restraint table, or None (with a note) when it is absent, unreadable or
    fitted on other weights (``hashes``: :func:`weights_fingerprints`): a stale table would
    restrain the wrong photos."""
    path = weights.root / RESTRAINT_FILE
    if not path.is_file():
        return None
    try:
        table = load_restraint(path)
    except ValueError as exc:
        notes.append(f"{exc}; colouring without per-photo restraint")
        return None
    fitted = (table.info or {}).get("checkpoints", {})
    stale = [k for k, v in hashes.items() if fitted.get(k) != v]
    if stale:
        notes.append(
            f"{path}: fitted on other weights for {stale}, so it is not used; "
            "re-run python -m training.ship.fit_restraint"
        )
        return None
    return table
