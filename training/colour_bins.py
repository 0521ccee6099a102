"""Zhang, Isola and Efros's colour classes (ECCV 2016), fitted on a run's training photos.

- Bins: Lab ab quantised on a grid of ``GRID`` (10) ab units, kept where the training photos
  have pixels (Zhang's 313 in-gamut bins came from ImageNet; ours come from the data).
- Prior: the bins' empirical distribution over ``PRIOR_PHOTOS`` (2,000) centre crops of
  ``PRIOR_SIZE`` (64) px, evenly spaced over the training photos (about 8M pixels: ab
  statistics need neither more photos nor full resolution), smoothed by a Gaussian of
  ``SIGMA`` (5) ab units.
- Rebalancing weights: w ~ ((1 - lambda) p + lambda / Q)^-1 with lambda = 0.5, scaled so that
  the expected weight under the prior is 1: rare, saturated colours count more, so the loss
  no longer rewards painting everything in the commonest (brown, desaturated) bins.
- Soft encoding: each true ab becomes a distribution over its ``NEIGHBOURS`` (5) nearest
  bins, Gaussian-weighted (sigma 5), which the generator's logits are trained towards.

The centres and weights become the generator's ``AbBins`` buffers (``specialists.output``).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from common.lab import AB_SCALE, denormalize_ab, rgb_to_lab
from training.data import ColourPhotos, evenly_spaced

GRID = 10.0  # ab units between bin centres
CELLS = 23  # grid positions per axis: centres -110, -100, ..., 110 cover every sRGB colour
SIGMA = 5.0  # ab units: the prior's smoothing and the soft encoding's Gaussian
NEIGHBOURS = 5
LAMBDA = 0.5
PRIOR_PHOTOS = 2000
PRIOR_SIZE = 64
HEAD_SIGMA = 10.0  # ab units: the spread of a bin head made from an ab head (see head_from_ab)
TABLE_HALF = 128  # the soft-encoding table covers ab in [-128, 128): every sRGB colour


@dataclass
class ColourBins:
    """Bin centres (Q, 2) in ab units, the smoothed prior (Q,) and the weights (Q,)."""

    centres: torch.Tensor
    prior: torch.Tensor
    weights: torch.Tensor
    photos: int

    def describe(self) -> dict:
        """What a checkpoint records about how the bins were made."""
        return {
            "bins": len(self.centres),
            "photos": self.photos,
            "crop_px": PRIOR_SIZE,
            "grid": GRID,
            "sigma": SIGMA,
            "lambda": LAMBDA,
            "weight_range": [float(self.weights.min()), float(self.weights.max())],
        }


def cell_index(ab: torch.Tensor) -> torch.Tensor:
    """Flat grid cell (0 .. CELLS**2 - 1) of ab values (..., 2) in ab units."""
    half = CELLS // 2
    ij = (ab / GRID).round().long().clamp(-half, half) + half
    return ij[..., 0] * CELLS + ij[..., 1]


def ab_histogram(rgb: torch.Tensor) -> torch.Tensor:
    """Pixel counts per grid cell (CELLS**2,) of an RGB batch (B, 3, H, W) in [0, 1]."""
    ab = rgb_to_lab(rgb)[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)
    return torch.bincount(cell_index(ab), minlength=CELLS * CELLS).double()


def _smooth(grid: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (sigma ``SIGMA`` ab units) of a (CELLS, CELLS) distribution."""
    radius = 2
    offsets = torch.arange(-radius, radius + 1, dtype=grid.dtype) * GRID
    kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * SIGMA**2))
    kernel = (kernel / kernel.sum())[None, None]
    return F.conv2d(grid[None, None], kernel, padding=radius)[0, 0]


def fit_bins(counts: torch.Tensor, photos: int) -> ColourBins:
    """Bins, prior and rebalancing weights from per-cell pixel counts (``ab_histogram``)."""
    kept = torch.nonzero(counts > 0).flatten()
    if len(kept) < 2:
        raise ValueError("the training photos hold fewer than 2 ab bins: no colours to learn")
    half = CELLS // 2
    centres = torch.stack(((kept // CELLS - half), (kept % CELLS - half)), dim=1) * GRID
    smoothed = _smooth((counts / counts.sum()).view(CELLS, CELLS)).flatten()[kept]
    prior = smoothed / smoothed.sum()
    weights = 1.0 / ((1.0 - LAMBDA) * prior + LAMBDA / len(kept))
    weights = weights / (prior * weights).sum()
    return ColourBins(centres.float(), prior.float(), weights.float(), photos)


@torch.no_grad()
def bins_from_photos(
    paths: Sequence[Path], photos: int = PRIOR_PHOTOS, progress: bool = False
) -> ColourBins:
    """:func:`fit_bins` on centre crops of ``photos`` training photos spread over ``paths``."""
    sample = ColourPhotos(evenly_spaced(list(paths), photos), PRIOR_SIZE, train=False)
    counts = torch.zeros(CELLS * CELLS, dtype=torch.float64)
    for index in tqdm(range(len(sample)), desc="colour bins", disable=not progress, leave=False):
        counts += ab_histogram(sample[index][None])
    return fit_bins(counts, len(sample))


@functools.lru_cache(maxsize=4)
def _encoding_table(centres: bytes, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The soft encoding of every integer ab (-128..127 squared, a 256 x 256 table): each
    entry's ``NEIGHBOURS`` nearest bins and their weights, computed once per set of bins."""
    bins = torch.frombuffer(bytearray(centres), dtype=torch.float32).view(-1, 2)
    axis = torch.arange(-TABLE_HALF, TABLE_HALF, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).view(-1, 2)
    dist, index = torch.cdist(grid, bins).topk(min(NEIGHBOURS, len(bins)), largest=False)
    weight = torch.softmax(-(dist**2) / (2 * SIGMA**2), dim=1)
    return index.to(device), weight.to(device)


@torch.no_grad()
def soft_encode(ab_norm: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, weights), each (B, NEIGHBOURS, H, W): every pixel's nearest bins, nearest
    first, and their Gaussian weights (sigma ``SIGMA``), summing to 1. The ab is rounded to
    whole ab units and looked up in a table (``_encoding_table``): a per-pixel search of every
    bin would cost a third of a training step."""
    table = _encoding_table(centres.detach().float().cpu().numpy().tobytes(), str(ab_norm.device))
    whole = denormalize_ab(ab_norm).round().long().clamp(-TABLE_HALF, TABLE_HALF - 1) + TABLE_HALF
    cell = whole[:, 0] * (2 * TABLE_HALF) + whole[:, 1]  # (B, H, W)
    index, weight = (part[cell].permute(0, 3, 1, 2) for part in table)
    return index, weight


@torch.no_grad()
def head_from_ab(head: nn.Module, ab_head: nn.Module, centres: torch.Tensor) -> None:
    """Set a bin head (``num_bins`` outputs) from a trained ab head (2 outputs, before its
    tanh), so the bin model starts at the ab model's colours: logit_q = -|ab - c_q|^2 /
    (2 s^2) up to a constant, s = ``HEAD_SIGMA``, with ab = 110 z (the tanh linearised),
    which is linear in the ab head's output z: (110 / s^2) c_q . z - |c_q|^2 / (2 s^2). At
    T 0.38 the annealed mean of that Gaussian (sigma 6 after annealing, over a grid of 10)
    gives ab back. A 3x3 ab head becomes the 1x1 bin head by summing its kernel over space
    (exact where the features are locally constant). Conv2d and ConvTranspose2d heads."""
    transposed = isinstance(head, nn.ConvTranspose2d)
    axis = 1 if transposed else 0  # the output-channel axis of the weight
    old = ab_head.weight.float().movedim(axis, 0)  # (2, in, kh, kw)
    if old.shape[-2:] != head.weight.shape[-2:]:
        old = old.sum(dim=(-2, -1), keepdim=True)
    scale = AB_SCALE / HEAD_SIGMA**2
    c = centres.float().to(old.device)
    weight = scale * torch.einsum("qj,jikl->qikl", c, old)
    bias = scale * c @ ab_head.bias.float() - (c**2).sum(dim=1) / (2 * HEAD_SIGMA**2)
    head.weight.copy_(weight.movedim(0, axis).to(head.weight.dtype))
    head.bias.copy_(bias.to(head.bias.dtype))
