"""Routing metrics: confusion matrix, per-domain precision/recall/F1, selective accuracy."""

from pathlib import Path

import numpy as np

from common.files import atomic_write

DEFAULT_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    """Rows: true domain, columns: routed domain."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def per_domain_scores(cm: np.ndarray, domains: list[str]) -> dict[str, dict[str, float | None]]:
    """Precision, recall, F1 and support of each domain."""
    scores = {}
    for i, name in enumerate(domains):
        tp, routed, support = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        # Undefined (None) when nothing was routed to / nothing belongs to the domain.
        precision = float(tp / routed) if routed else None
        recall = float(tp / support) if support else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(support)}
    return scores


def accuracy_by_threshold(
    confidence: np.ndarray, correct: np.ndarray, thresholds: list[float] | tuple[float, ...]
) -> list[dict[str, float]]:
    """For each threshold: share of photos that would fall back, accuracy of those routed."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=bool)
    rows = []
    for t in sorted(set(float(t) for t in thresholds)):
        routed = confidence >= t
        rows.append(
            {
                "threshold": t,
                "routed": int(routed.sum()),
                "fallback": int((~routed).sum()),
                "fallback_fraction": float((~routed).mean()) if len(routed) else 0.0,
                "routed_accuracy": float(correct[routed].mean()) if routed.any() else float("nan"),
            }
        )
    return rows


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with right-aligned columns."""

    def cell(c: object) -> str:
        return "-" if c is None else f"{c:.4f}" if isinstance(c, float) else str(c)

    cells = [header] + [[cell(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_confusion(cm: np.ndarray, domains: list[str], path: Path, title: str = "") -> None:
    """Confusion matrix as a PNG (counts, coloured by row share)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(domains)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(domains)):
        for j in range(len(domains)):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(domains)), domains, rotation=30, ha="right")
    ax.set_yticks(range(len(domains)), domains)
    ax.set_xlabel("routed to")
    ax.set_ylabel("true domain")
    ax.set_title(title or "router confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true domain")
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format=Path(path).suffix[1:], dpi=100))
    plt.close(fig)


def plot_reliability(curves: dict[str, list[dict]], path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, one line per curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect")
    for name, bins in curves.items():
        xs, ys = [b["confidence"] for b in bins], [b["accuracy"] for b in bins]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format=Path(path).suffix[1:], dpi=100))
    plt.close(fig)
