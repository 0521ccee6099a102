"""Calibrate a trained router: build its kNN index, fit its calibration and fallback
threshold, and measure the result (the last stage of ``training.train_router``).

The temperature and kNN weight (fitted by likelihood), the reference distances for the
out-of-distribution test and the fallback threshold are fitted on photos the network never
trained on: the held-out part of train by default (so validation stays untouched for
reporting), or the validation split when asked. The metrics are then measured on validation.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.calibration import (
    Calibration,
    choose_threshold,
    combine,
    expected_calibration_error,
    fit_calibration,
    reliability,
    softmax,
)
from router.index import NeighbourIndex
from router.metrics import (
    accuracy_by_threshold,
    confusion_matrix,
    per_domain_scores,
    plot_confusion,
    plot_reliability,
)
from router.router import score_outputs


@dataclass
class Outputs:
    """Network outputs for one split (rows of unreadable photos already dropped)."""

    logits: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray
    paths: list[str]


@dataclass
class Fitted:
    """What stage 3 fits: the index, the calibration, the threshold, and how they were fitted."""

    index: NeighbourIndex
    calibration: Calibration
    threshold: float
    temperature_only: float  # the temperature fitted without the kNN vote, for comparison
    fit_photos: int


def calibrate(
    train: Outputs,
    fit: Outputs,
    domains: list[str],
    data_root: str,
    *,
    index_dim: int,
    k: int,
    ood_alpha: float,
    target: float,
) -> Fitted:
    """Build the index on the training photos and fit everything else on ``fit``."""
    index = NeighbourIndex.build(
        train.embeddings, train.paths, train.labels, domains, data_root, dim=index_dim
    )
    sims, ids = index.search(fit.embeddings, k)
    votes = index.votes(ids)
    t_only, _ = fit_calibration(fit.logits, votes, fit.labels, k, use_knn=False)
    temperature, knn_weight = fit_calibration(fit.logits, votes, fit.labels, k, use_knn=True)
    ood = 1.0 - sims.mean(axis=1).astype(np.float64)
    calibration = Calibration(temperature, knn_weight, k, ood_alpha, sorted(ood.tolist()))
    scores = score_outputs(fit.logits, fit.embeddings, index, calibration)
    threshold = choose_threshold(scores.confidence, scores.predictions == fit.labels, target)
    return Fitted(index, calibration, threshold, t_only, int(len(fit.labels)))


def measure(
    val: Outputs, train: Outputs, fitted: Fitted, domains: list[str], target: float
) -> dict:
    """Accuracy, calibration and fallback figures of the fitted router on ``val``."""
    index, calibration, threshold = fitted.index, fitted.calibration, fitted.threshold
    sims, ids = index.search(val.embeddings, calibration.k)
    votes = index.votes(ids)
    y = val.labels
    raw = softmax(val.logits)
    temp_probs = combine(val.logits, votes, fitted.temperature_only, 0.0, calibration.k)
    scores = score_outputs(val.logits, val.embeddings, index, calibration)
    correct = scores.predictions == y
    cm = confusion_matrix(y, scores.predictions, len(domains))
    routed = scores.confidence >= threshold
    ood = 1.0 - sims.mean(axis=1).astype(np.float64)
    metrics = {
        "val_photos": int(len(y)),
        "train_photos": int(len(train.labels)),
        "calibration_photos": fitted.fit_photos,
        "accuracy": float(correct.mean()),
        "accuracy_classifier_only": float((raw.argmax(1) == y).mean()),
        "accuracy_knn_only": float((votes.argmax(1) == y).mean()),
        "train_accuracy_classifier": float((train.logits.argmax(1) == train.labels).mean()),
        "per_domain": per_domain_scores(cm, domains),
        "confusion": cm.tolist(),
        "ece_before": expected_calibration_error(raw.max(1), raw.argmax(1) == y),
        "ece_temperature_only": expected_calibration_error(
            temp_probs.max(1), temp_probs.argmax(1) == y
        ),
        "ece_after": expected_calibration_error(scores.probs.max(1), correct),
        "ece_confidence": expected_calibration_error(scores.confidence, correct),
        "temperature_only": fitted.temperature_only,
        "threshold": threshold,
        "threshold_target_accuracy": target,
        "fallback_fraction": float((~routed).mean()),
        "routed_accuracy": float(correct[routed].mean()) if routed.any() else float("nan"),
        "accuracy_by_threshold": accuracy_by_threshold(
            scores.confidence, correct, [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, threshold]
        ),
        "ood_distance_val": {
            q: float(np.quantile(ood, float(q))) for q in ("0.5", "0.9", "0.99", "1.0")
        },
        "index_variance_kept": index.variance_kept,
        "index_dim": index.stored_dim,
    }
    metrics["reliability"] = {
        "before": reliability(raw.max(1), raw.argmax(1) == y),
        "after": reliability(scores.probs.max(1), correct),
    }
    return metrics


def write_reports(metrics: dict, domains: list[str], folder: Path) -> None:
    """Reliability diagram and confusion matrix PNGs for people."""
    curves = metrics["reliability"]
    plot_reliability(
        {
            f"before (ECE {metrics['ece_before']:.3f})": curves["before"],
            f"after (ECE {metrics['ece_after']:.3f})": curves["after"],
        },
        folder / "reliability_val.png",
    )
    plot_confusion(
        np.asarray(metrics["confusion"]), domains, folder / "confusion_val.png", "validation"
    )
