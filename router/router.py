"""The Router: grayscale photo -> domain, calibrated probabilities and a confidence.

A router folder (``WEIGHTS/router``) holds ``router.safetensors`` (network weights with the
config embedded), ``router.json`` (the same config, for people), ``router.faiss`` and
``router_index.json`` (the kNN index over the training photos).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specialists.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    load_checkpoint,
    save_model,
)
from specialists.serving import for_inference

from .calibration import Calibration, combine, typicality
from .decision import Neighbour, RouteDecision
from .errors import RouterError, RouterNotFoundError
from .index import NeighbourIndex
from .net import create_router_net
from .preprocess import check_l_norm, fit_square, router_view

WEIGHTS_FILE = "router.safetensors"
ROLE = "router"


@dataclass
class Scores:
    """Batch outputs of the router as arrays (what evaluation and training measure)."""

    logits: np.ndarray  # (B, D) raw classifier logits
    embeddings: np.ndarray  # (B, E) pooled backbone features
    probs: np.ndarray  # (B, D) calibrated probabilities
    votes: np.ndarray  # (B, D) kNN vote shares
    similarities: np.ndarray  # (B, k) cosine similarity of the nearest training photos
    neighbour_ids: np.ndarray  # (B, k) their rows in the index
    ood_distance: np.ndarray  # (B,) 1 - mean similarity of the k nearest
    confidence: np.ndarray  # (B,) max prob x typicality

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


def score_outputs(
    logits: np.ndarray, embeddings: np.ndarray, index: NeighbourIndex, calibration: Calibration
) -> Scores:
    """Combine network outputs with the kNN index into calibrated scores."""
    sims, ids = index.search(embeddings, calibration.k)
    votes = index.votes(ids)
    probs = combine(logits, votes, calibration.temperature, calibration.knn_weight, calibration.k)
    ood = 1.0 - sims.mean(axis=1).astype(np.float64)
    typical = typicality(ood, calibration.ood_reference, calibration.ood_alpha)
    return Scores(logits, embeddings, probs, votes, sims, ids, ood, probs.max(axis=1) * typical)


class Router:
    """Routes normalised lightness tensors to domains (see :meth:`route`)."""

    def __init__(
        self,
        net: torch.nn.Module,
        index: NeighbourIndex,
        calibration: Calibration,
        domains: list[str],
        threshold: float,
        config: dict | None = None,
        device: str = "cpu",
    ) -> None:
        if list(index.domains) != list(domains):
            raise RouterError(f"index domains {index.domains} differ from the network's {domains}")
        self.net = net.to(device).eval()
        # what routes: a copy prepared for inference (specialists.serving: batch norms folded,
        # no padded copies), same outputs to float32 rounding and a fifth faster; ``net``
        # stays as trained, for saving
        self.folded = for_inference(self.net).to(memory_format=torch.channels_last)
        self.index = index
        self.calibration = calibration
        self.domains = list(domains)
        self.threshold = float(threshold)
        self.config = dict(config or {})
        self.device = device
        self.input_size = int(net.input_size)

    def view(self, pixels: np.ndarray) -> torch.Tensor:
        """A decoded photo's pixels -> this router's input (1, 1, S, S), for :meth:`route`:
        what serving and ``router.evaluate`` both route on."""
        return router_view(pixels, self.input_size)

    def prepare(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Any-size lightness (B, 1, H, W) -> the router's square input."""
        return fit_square(l_norm, self.input_size)

    @torch.inference_mode()
    def scores(self, l_norm: torch.Tensor) -> Scores:
        """Calibrated scores for a batch of normalised lightness tensors (any H, W)."""
        x = self.prepare(l_norm).to(self.device)
        logits, embeddings = self.folded(x)
        logits, embeddings = logits.float().cpu().numpy(), embeddings.float().cpu().numpy()
        return score_outputs(logits, embeddings, self.index, self.calibration)

    def route(self, l_norm: torch.Tensor) -> list[RouteDecision]:
        """One :class:`RouteDecision` per photo of the batch (B, 1, H, W), L/50 - 1 in [-1, 1]."""
        check_l_norm(l_norm)
        if l_norm.shape[0] == 0:
            return []
        return self.decisions(self.scores(l_norm))

    def decisions(self, scores: Scores) -> list[RouteDecision]:
        out = []
        for b in range(len(scores.probs)):
            neighbours = [
                Neighbour(
                    path=self.index.paths[i],
                    domain=self.domains[self.index.labels[i]],
                    distance=float(1.0 - s),
                )
                for s, i in zip(scores.similarities[b], scores.neighbour_ids[b])
                if i >= 0
            ]
            out.append(
                RouteDecision(
                    domain=self.domains[int(scores.probs[b].argmax())],
                    probs={d: float(p) for d, p in zip(self.domains, scores.probs[b])},
                    confidence=float(scores.confidence[b]),
                    knn_votes={d: float(v) for d, v in zip(self.domains, scores.votes[b])},
                    ood_distance=float(scores.ood_distance[b]),
                    neighbours=neighbours,
                    threshold=self.threshold,
                    embedding=scores.embeddings[b],
                )
            )
        return out

    def save(self, folder: str | Path) -> None:
        """Write the router folder (weights + config, index) so :func:`load_router` reads it."""
        folder = Path(folder)
        config = dict(self.config)
        config.update(
            kind="router",
            format_version=1,
            domains=self.domains,
            threshold=self.threshold,
            calibration=self.calibration.to_dict(),
            index={"file": "router.faiss", "meta": "router_index.json", "count": len(self.index)},
        )
        self.index.save(folder)
        # Weights last: their presence marks a complete folder.
        save_model(folder / WEIGHTS_FILE, self.net.cpu(), ROLE, config)
        self.net.to(self.device)
        self.config = config


def _resolve(folder: Path) -> Path:
    """Accept the router folder itself or a training run folder that contains ``router/``."""
    if (folder / WEIGHTS_FILE).is_file() or not (folder / "router" / WEIGHTS_FILE).is_file():
        return folder
    return folder / "router"


def load_router(folder: str | Path, device: str = "cpu") -> Router:
    """Load a router folder; raises :class:`RouterError` naming the file and the reason."""
    folder = _resolve(Path(folder))
    if not folder.is_dir():
        raise RouterNotFoundError(f"{folder}: no such router folder")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise RouterNotFoundError(f"{weights}: missing (router weights)")
    try:
        tensors, config = load_checkpoint(weights)
        if config.get("kind") != "router":
            raise RouterError(f"{weights}: not a router checkpoint (kind={config.get('kind')!r})")
        net = build_from_checkpoint(tensors, config, ROLE, create_router_net)
        calibration = Calibration.from_dict(config["calibration"])
        domains, threshold = list(config["domains"]), float(config["threshold"])
    except CheckpointError as exc:
        text = str(exc)
        raise RouterError(text if text.startswith(str(weights)) else f"{weights}: {text}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, RouterError):
            raise
        raise RouterError(f"{weights}: config or weights do not describe a router ({exc})") from exc
    index = NeighbourIndex.load(folder)
    return Router(net, index, calibration, domains, threshold, config, device)
