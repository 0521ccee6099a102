"""The last stage of router training: index, calibration, threshold, the router folder.

Everything here is measured on the validation split, which the network never trained on:
the temperature and kNN weight (fitted by likelihood), the reference distances for the
out-of-distribution test, and the fallback threshold.
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


def _crossfit_ece(logits: np.ndarray, votes: np.ndarray, labels: np.ndarray, k: int) -> float:
    """ECE of the combined calibration when fitted on one half of val and measured on the other."""
    rng = np.random.default_rng(0)
    half = rng.permutation(len(labels)) % 2 == 0
    probs = np.zeros_like(logits, dtype=np.float64)
    for fit_mask in (half, ~half):
        t, w = fit_calibration(logits[fit_mask], votes[fit_mask], labels[fit_mask], k)
        probs[~fit_mask] = combine(logits[~fit_mask], votes[~fit_mask], t, w, k)
    return expected_calibration_error(probs.max(1), probs.argmax(1) == labels)


def calibrate(
    train: Outputs,
    val: Outputs,
    domains: list[str],
    data_root: str,
    *,
    index_dim: int,
    k: int,
    ood_alpha: float,
    target: float,
) -> tuple[NeighbourIndex, Calibration, float, dict]:
    """Build the index on the training photos and fit everything else on validation."""
    index = NeighbourIndex.build(
        train.embeddings, train.paths, train.labels, domains, data_root, dim=index_dim
    )
    sims, ids = index.search(val.embeddings, k)
    votes = index.votes(ids)
    y = val.labels
    raw = softmax(val.logits)
    t_only, _ = fit_calibration(val.logits, votes, y, k, use_knn=False)
    temp_probs = combine(val.logits, votes, t_only, 0.0, k)
    temperature, knn_weight = fit_calibration(val.logits, votes, y, k, use_knn=True)
    ood = 1.0 - sims.mean(axis=1).astype(np.float64)
    calibration = Calibration(temperature, knn_weight, k, ood_alpha, sorted(ood.tolist()))
    scores = score_outputs(val.logits, val.embeddings, index, calibration)
    correct = scores.predictions == y
    threshold = choose_threshold(scores.confidence, correct, target)
    cm = confusion_matrix(y, scores.predictions, len(domains))
    routed = scores.confidence >= threshold
    metrics = {
        "val_photos": int(len(y)),
        "train_photos": int(len(train.labels)),
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
        "ece_after_crossfit": _crossfit_ece(val.logits, votes, y, k),
        "ece_confidence": expected_calibration_error(scores.confidence, correct),
        "temperature_only": t_only,
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
    return index, calibration, threshold, metrics


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
