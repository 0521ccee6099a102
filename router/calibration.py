"""Turning raw scores into probabilities and a confidence that mean what they say.

- Domain probabilities: the classifier's logits divided by a temperature, plus a weighted log
  of the (smoothed) kNN votes, through a softmax. Both numbers are fitted on the validation
  split by minimising the negative log-likelihood (temperature scaling, with the kNN second
  opinion as one extra learned weight).
- Typicality: how usual a photo's distance to its nearest training photos is among the
  validation photos' distances (an empirical p-value); photos farther away than almost all
  of them are out of distribution and lose confidence.
- The fallback threshold: the lowest confidence at which the validation photos the router
  would route alone are right at least ``target`` of the time.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

VOTE_PRIOR = 0.5  # pseudo-count per domain when turning kNN votes into log-probabilities
LOG_T_BOUND = 3.0  # temperature stays within [e^-3, e^3] = [0.05, 20]
MAX_KNN_WEIGHT = 5.0


@dataclass
class Calibration:
    """Everything fitted on validation data that turns network outputs into a decision."""

    temperature: float = 1.0
    knn_weight: float = 0.0
    k: int = 10
    ood_alpha: float = 0.01
    ood_reference: list[float] = field(default_factory=list)  # sorted validation distances

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_votes(votes: np.ndarray, k: int) -> np.ndarray:
    """Smoothed log-probabilities from kNN vote shares (never log 0)."""
    n = votes.shape[1]
    return np.log((votes * k + VOTE_PRIOR) / (k + VOTE_PRIOR * n))


def combine(
    logits: np.ndarray, votes: np.ndarray, temperature: float, knn_weight: float, k: int
) -> np.ndarray:
    """Calibrated domain probabilities from classifier logits and kNN votes."""
    z = logits / temperature
    if knn_weight:
        z = z + knn_weight * log_votes(votes, k)
    return softmax(z)


def fit_calibration(
    logits: np.ndarray, votes: np.ndarray, labels: np.ndarray, k: int, use_knn: bool = True
) -> tuple[float, float]:
    """(temperature, kNN weight) minimising the validation negative log-likelihood."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    lv = torch.as_tensor(log_votes(votes, k), dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    raw_w = torch.full((), -2.0, dtype=torch.float64, requires_grad=use_knn)
    params = [log_t, raw_w] if use_knn else [log_t]
    optimizer = torch.optim.LBFGS(params, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def weight() -> torch.Tensor:
        if not use_knn:
            return torch.zeros((), dtype=torch.float64)
        return torch.nn.functional.softplus(raw_w).clamp(max=MAX_KNN_WEIGHT)

    def temperature() -> torch.Tensor:
        # Bounded: on a validation set the model separates perfectly, the likelihood would
        # drive the temperature to 0 (and every probability to exactly 1).
        return log_t.clamp(-LOG_T_BOUND, LOG_T_BOUND).exp()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / temperature() + weight() * lv, y)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(temperature()), float(weight())


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    bins_ = reliability(confidence, correct, bins)
    return float(sum(b["count"] * b["gap"] for b in bins_) / max(len(confidence), 1))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict]:
    """Per-bin count, mean confidence, accuracy and their gap (non-empty bins only)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            conf, acc = float(confidence[mask].mean()), float(correct[mask].mean())
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(mask.sum()),
                    "confidence": conf,
                    "accuracy": acc,
                    "gap": abs(acc - conf),
                }
            )
    return rows


def typicality(
    distance: np.ndarray, reference: list[float] | np.ndarray, alpha: float
) -> np.ndarray:
    """1 for usual nearest-neighbour distances, falling towards 0 for unusually far ones.

    ``p`` = share of the reference (validation) photos at least as far from their
    neighbours; typicality = min(1, p / alpha).
    """
    distance = np.atleast_1d(np.asarray(distance, dtype=np.float64))
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    if len(ref) == 0 or alpha <= 0:
        return np.ones_like(distance)
    farther = len(ref) - np.searchsorted(ref, distance, side="left")
    p = (farther + 1.0) / (len(ref) + 1.0)
    return np.minimum(1.0, p / alpha)


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, floor: float = 0.5
) -> float:
    """Lowest threshold (>= ``floor``) at which the photos routed alone reach ``target`` accuracy.

    When no threshold reaches it, the one with the best routed accuracy is returned.
    """
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    conf = np.asarray(confidence, dtype=np.float64)[order]
    hits = np.cumsum(np.asarray(correct, dtype=np.float64)[order])
    routed_acc = hits / np.arange(1, len(conf) + 1)
    # Thresholds can only sit at distinct confidences: keep the last row of each tie.
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    ok = last_of_tie & (routed_acc >= target) & (conf >= floor)
    if ok.any():
        return float(conf[np.flatnonzero(ok).max()])
    candidates = np.flatnonzero(last_of_tie & (conf >= floor))
    if len(candidates) == 0:
        return float(floor)
    return float(conf[candidates[np.argmax(routed_acc[candidates])]])
