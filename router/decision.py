"""What the router tells serving about one photo."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Neighbour:
    """A training photo near the routed one: shows a user why it went where it went."""

    path: str  # relative to the training data root
    domain: str
    distance: float  # cosine distance in the index's embedding space (0 = identical)


@dataclass
class RouteDecision:
    """The routing decision for one photo.

    ``probs`` are calibrated domain probabilities (classifier and kNN votes combined);
    ``confidence`` additionally drops for photos unlike anything seen in training, and is
    what serving compares with the threshold before trusting a single specialist.
    """

    domain: str
    probs: dict[str, float]
    confidence: float
    knn_votes: dict[str, float]
    ood_distance: float
    neighbours: list[Neighbour] = field(default_factory=list)
    threshold: float = 0.5
    # pooled router features (unit length not promised): what serve.restraint looks up
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def confident(self, threshold: float | None = None) -> bool:
        """True when one specialist can be trusted (else serving runs them all)."""
        return self.confidence >= (self.threshold if threshold is None else threshold)
