"""Realism measures beyond PSNR: do the colours look like real photos' colours?

- Frechet distance between the pooled features of an ImageNet classifier on the colourized
  photos and on the originals (FID's recipe on the offline MobileNetV2: Inception weights
  cannot be had offline). torchmetrics does the maths; the features come from the same
  forward pass as the classifier agreement, so they cost nothing extra.
- The hue entropy of visible chroma (bits over 36 hue bins): one hue everywhere scores 0.
- The brown/orange share: the part of visible chroma whose Lab hue lies in 35-95 degrees,
  where an L1 regression's average of possible colours lands (about 0.37 in real photos).
"""

import math

import numpy as np
import torch
from torch import nn

from common.lab import rgb_to_lab

VISIBLE_CHROMA = 5.0  # Lab chroma below this reads as grey
HUE_BINS = 36
BROWN_BAND = (35.0, 95.0)  # Lab hue angle, degrees
MIN_FRECHET_PHOTOS = 50  # fewer photos than this give a covariance too noisy to report


def classify(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 class, pooled pre-logit features) of a timm classifier in one forward pass."""
    pooled = model.forward_head(model.forward_features(images), pre_logits=True)
    return model.get_classifier()(pooled).argmax(dim=1), pooled


def chroma_stats(rgb: torch.Tensor) -> dict[str, float | None]:
    """Hue entropy (bits) and brown-band share of the visible chroma of one (3, H, W) image
    in [0, 1]; both None when nothing is visibly coloured (a grey photo has no hue)."""
    lab = rgb_to_lab(rgb.float())
    a, b = lab[1].flatten(), lab[2].flatten()
    chroma = torch.hypot(a, b)
    visible = chroma >= VISIBLE_CHROMA
    if not bool(visible.any()):
        return {"hue_entropy": None, "brown_share": None}
    hue = torch.rad2deg(torch.atan2(b[visible], a[visible])) % 360.0
    weight = chroma[visible]
    counts = torch.histc(hue, bins=HUE_BINS, min=0.0, max=360.0)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * torch.log2(p)).sum())
    low, high = BROWN_BAND
    brown = (hue >= low) & (hue <= high)
    return {"hue_entropy": entropy, "brown_share": float(weight[brown].sum() / weight.sum())}


class _Precomputed(nn.Module):
    """Hands torchmetrics features already computed by :func:`classify`."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float | None:
    """Frechet distance between two (N, D) feature sets; None below MIN_FRECHET_PHOTOS."""
    if min(len(real), len(fake)) < MIN_FRECHET_PHOTOS:
        return None
    # here, not at the top: torchmetrics' image package imports torchvision (2 s)
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(torch.from_numpy(np.asarray(real, dtype=np.float64)), real=True)
    metric.update(torch.from_numpy(np.asarray(fake, dtype=np.float64)), real=False)
    value = float(metric.compute())
    return value if math.isfinite(value) else None


def source_tag(name: str) -> str:
    """The source collection a file name starts with (``s40_0012.jpg`` -> ``s40``)."""
    stem = name.rsplit("/", 1)[-1]
    return stem.split("_", 1)[0] if "_" in stem else "untagged"
