"""Colouring and scoring: each photo routed, coloured by every specialist and judged once,
then every candidate colouring measured against the original."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.images import Photo
from router.evaluate import relative_name
from serve.colorizer import Colorizer
from serve.result import JUDGE
from serve.transfer import rejoin
from training.evaluate.agreement import agreement
from training.evaluate.photos import Item, by_shape, decode
from training.evaluate.quality import image_metrics
from training.evaluate.realism import chroma_stats, source_tag

GREY = "grayscale"  # the candidate with a = b = 0
METRICS = ("psnr", "ssim", "colourfulness", "colourfulness_true")
CHROMA = ("hue_entropy", "brown_share")
CHROMA_TRUE = tuple(f"{m}_true" for m in CHROMA)  # the same, measured on the original
TRUTH = "truth"  # the features of the original photo


@dataclass
class Scored:
    """One photo: its routing and the metrics of every candidate colouring of it."""

    path: str
    domain: str
    routed: str  # the router's most likely domain
    confidence: float
    fell_back: bool  # below the threshold: the judge chose among all specialists
    served: str  # the candidate the served Colorizer uses
    judge_pick: str  # the judge's most realistic candidate
    metrics: dict[str, dict[str, float | None]]  # candidate -> metric -> value
    features: dict[str, np.ndarray] = field(default_factory=dict)  # candidate/truth -> pooled
    restraint: float = 1.0  # the photo's colour restraint, applied to every specialist's ab

    @property
    def source(self) -> str:
        return source_tag(self.path)


@dataclass
class Run:
    """Everything one pass over the photos produced."""

    scored: list[Scored] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    grid: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # path -> column


def truth_rgb(photo: Photo) -> torch.Tensor:
    """The original photo as (1, 3, H, W) floats in [0, 1] (grey files become 3 equal channels)."""
    pixels = torch.from_numpy(photo.pixels.astype(np.float32) / photo.max_value)
    if pixels.ndim == 2:
        pixels = pixels.unsqueeze(-1).expand(-1, -1, 3)
    return pixels.permute(2, 0, 1).unsqueeze(0)


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)


def measure(
    photo: Photo,
    abs_: dict[str, torch.Tensor],
    classifier: nn.Module | None,
    device: torch.device,
) -> tuple[
    dict[str, dict[str, float | None]], dict[str, np.ndarray], torch.Tensor, dict[str, np.ndarray]
]:
    """Each candidate ab on the photo's full-resolution L, measured against the original.

    Returns (candidate -> metric -> value, candidate -> RGB uint8, the truth as floats,
    candidate and ``truth`` -> classifier features; empty without a classifier).
    """
    rgbs = {key: rejoin(photo.pixels, ab, device) for key, ab in abs_.items()}
    truth = truth_rgb(photo)
    preds = torch.stack([as_tensor(rgb) for rgb in rgbs.values()])
    values = image_metrics(preds, truth.expand(len(preds), -1, -1, -1))
    agree, features = None, {}
    if classifier is not None:
        agree, pooled = agreement(classifier, truth, preds)
        features = {TRUTH: pooled[0], **{key: pooled[k + 1] for k, key in enumerate(rgbs)}}
    true_chroma = chroma_stats(truth[0])
    metrics = {
        key: {
            **{m: float(values[m][k]) for m in METRICS},
            **chroma_stats(preds[k]),
            **dict(zip(CHROMA_TRUE, (true_chroma[m] for m in CHROMA))),
            "agreement": None if agree is None else agree[k],
        }
        for k, key in enumerate(rgbs)
    }
    return metrics, rgbs, truth, features


@torch.inference_mode()
def score_group(
    colorizer: Colorizer,
    items: Sequence[Item],
    photos: Sequence[Photo],
    classifier: nn.Module | None,
    root: Path,
    sample: set[Path],
    run: Run,
) -> None:
    """Route, colour with every specialist and judge a batch of same-shape photos once
    (``Colorizer.predict(every=True)``: the served choice among every candidate)."""
    for item, photo, p in zip(items, photos, colorizer.predict(photos, every=True)):
        # served colour is scaled by the photo's restraint; every system gets the same scale,
        # so systems differ only in whose colours they pick (the judge scored them unscaled)
        r = p.restraint
        abs_ = {GREY: torch.zeros_like(p.ab), **{n: ab * r for n, ab in p.candidates.items()}}
        metrics, rgbs, truth, features = measure(photo, abs_, classifier, colorizer.device)
        run.scored.append(
            Scored(
                relative_name(item.path, root),
                item.domain,
                p.decision.domain,
                p.confidence,
                p.strategy == JUDGE,
                p.domain,
                p.judge_pick or p.domain,  # no judge with a single specialist
                metrics,
                features,
                r,
            )
        )
        if item.path in sample:
            truth_u8 = (truth[0].permute(1, 2, 0) * 255).round().byte().numpy()
            run.grid[str(item.path)] = {**rgbs, "truth": truth_u8, "served": rgbs[p.domain]}


def colour_all(
    colorizer: Colorizer,
    items: Sequence[Item],
    root: Path,
    classifier: nn.Module | None = None,
    batch_size: int = 8,
    sample: set[Path] | None = None,
) -> Run:
    """Score every photo, ``batch_size`` at a time, with a progress bar."""
    run = Run()
    with tqdm(total=len(items), desc="evaluating", unit="photo") as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            for group in by_shape(decode(chunk, root, run.unreadable), colorizer):
                members, photos = zip(*group)
                score_group(colorizer, members, photos, classifier, root, sample or set(), run)
            bar.update(len(chunk))
    return run
