"""Colour at model resolution, then put the colour back on the full-resolution photo.

The richzhang/colorization recipe: the generator colours a small copy of the photo's L
channel; its ab is upsampled bilinearly to the photo's own size and joined with the
*original* full-resolution L, so the output has exactly the input's size and every bit of
its detail (chroma is smooth; the eye takes detail from luminance).

The join runs in horizontal strips with a separable bilinear upsampling that gives exactly
what ``F.interpolate(mode="bilinear", align_corners=False)`` gives, so a 24-megapixel scan
never holds more than a strip of float L/Lab/RGB at once. All colour maths is
``common.lab``'s.
"""

from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from common.lab import join_lab, normalize_l, rgb_to_lightness

from .options import MAX_STRENGTH

STRIP_PIXELS = 1 << 20  # pixels per strip of the full-resolution join
# Long side / short side of the model-input shapes ("buckets"): every photo is stretched to
# the nearest, so a folder of mixed sizes and orientations needs only a few shapes per model
# size and fills its batches. At the shipped size (128, stride 32) the ratios up to 2 are the
# stride steps themselves, so those photos get the shape they always had.
ASPECTS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
MAX_ASPECT = ASPECTS[-1]  # the model input's long side is at most this many times its short


def check_strength(strength: float) -> float:
    """``strength`` as a float, or ValueError when it is outside [0, MAX_STRENGTH]."""
    value = float(strength)
    if not 0.0 <= value <= MAX_STRENGTH:  # also refuses NaN
        raise ValueError(f"colour strength must be between 0 and {MAX_STRENGTH:g}, got {strength}")
    return value


def model_shape(width: int, height: int, size: int, stride: int) -> tuple[int, int]:
    """(height, width) of the model input: the bucket of a ``width`` x ``height`` photo.

    The short side is ``size`` rounded to a multiple of ``stride``; the long side is that
    times the ratio of :data:`ASPECTS` nearest the photo's own (rounded to ``stride``). The
    photo is resized to it, so it is stretched a little (at most ~12% along one side for
    ordinary ratios; very wide or tall photos are squeezed to 4:1); its ab is stretched back
    exactly by :func:`rejoin`, so colours stay where they belong.
    """
    short = max(stride, round(size / stride) * stride)
    steps = round(size * max(width, height) / min(width, height) / stride)  # as before buckets
    ratio = min(ASPECTS, key=lambda r: abs(steps * stride / short - r))
    long = max(short, round(short * ratio / stride) * stride)
    return (long, short) if height > width else (short, long)


@lru_cache(maxsize=2)
def _grey_lut(levels: int) -> np.ndarray:
    """L (0..100) of every grey level: a grey photo's L is a lookup, not a conversion."""
    grey = torch.linspace(0.0, 1.0, levels, dtype=torch.float64).view(1, levels, 1)
    return rgb_to_lightness(grey).view(levels).float().numpy()  # one plane: R = G = B


def _rows_per_strip(width: int) -> int:
    return max(1, STRIP_PIXELS // max(1, width))


def full_lightness(pixels: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """CIE L (0..100) of a grey (H, W) or RGB (H, W, 3) uint8/uint16 array: (1, H, W) float."""
    levels = 65536 if pixels.dtype == np.uint16 else 256
    if pixels.ndim == 2:
        return torch.from_numpy(np.take(_grey_lut(levels), pixels)).unsqueeze(0).to(device)
    height, width = pixels.shape[:2]
    out = torch.empty((1, height, width), dtype=torch.float32, device=device)
    step = _rows_per_strip(width)
    for top in range(0, height, step):
        strip = torch.from_numpy(pixels[top : top + step].astype(np.float32)).to(device)
        out[:, top : top + step] = rgb_to_lightness(strip.permute(2, 0, 1) / (levels - 1))
    return out


def model_pixels(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The photo's pixels resized to the model's ``shape`` (h, w), as the models see them
    (Pillow's antialiased bilinear, fast at any size)."""
    height, width = shape
    if pixels.dtype == np.uint16:  # Pillow resizes 16-bit grey as 32-bit float
        image = Image.fromarray(pixels.astype(np.float32))
        small = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
        return small.round().clip(0, 65535).astype(np.uint16)
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


def model_input(
    pixels: np.ndarray, shape: tuple[int, int], device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Normalised L (1, 1, h, w) of the photo resized to the model's ``shape`` (h, w).

    The pixels are resized first (:func:`model_pixels`) and only the small copy is
    converted, so a big scan's full-resolution L is computed once, at the join, not twice.
    """
    small = model_pixels(pixels, shape)
    return normalize_l(full_lightness(small, device)).clamp(-1.0, 1.0).unsqueeze(0)


def _source_index(out_size: int, in_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """PyTorch's bilinear (align_corners=False) source indices and weights along one axis."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device) + 0.5) * scale - 0.5).clamp_min(0.0)
    low = src.floor().long().clamp_max(in_size - 1)
    high = (low + 1).clamp_max(in_size - 1)
    return low, high, (src - low).unsqueeze(-1)


def upsample_rows(ab: torch.Tensor, height: int, rows: slice) -> torch.Tensor:
    """Rows ``rows`` of ``ab`` (C, h, W) bilinearly upsampled to ``height`` rows."""
    low, high, weight = _source_index(height, ab.shape[-2], ab.device)
    low, high, weight = low[rows], high[rows], weight[rows]
    return torch.lerp(ab.index_select(-2, low), ab.index_select(-2, high), weight)


def upsample_ab(ab: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) -> (C, height, width), as F.interpolate bilinear would (for tests, small use)."""
    return upsample_rows(_upsample_width(ab, width), height, slice(None))


def _upsample_width(ab: torch.Tensor, width: int) -> torch.Tensor:
    low, high, weight = _source_index(width, ab.shape[-1], ab.device)
    # index_select gathers the same values as ab[..., low], 2-3x faster on a CPU
    return torch.lerp(ab.index_select(-1, low), ab.index_select(-1, high), weight.squeeze(-1))


def rejoin(
    pixels: np.ndarray,
    ab_norm: torch.Tensor,
    device: str | torch.device = "cpu",
    strength: float = 1.0,
) -> np.ndarray:
    """The photo's own pixels (their L) + model-resolution normalised ab (2, h, w) -> RGB.

    ``strength`` scales ab (0: the grey photo, 1: the model's colours; above 1 more
    saturated, clipped to valid sRGB). Returns an (H, W, 3) uint8 array of exactly the
    photo's size, built strip by strip: the full-resolution L is computed a strip at a
    time, never whole.
    """
    return rejoin_deep(pixels, ab_norm, device, strength)[0]


def rejoin_deep(
    pixels: np.ndarray,
    ab_norm: torch.Tensor,
    device: str | torch.device = "cpu",
    strength: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`rejoin`'s uint8 RGB and, for 16-bit pixels, the same join as uint16 (H, W, 3),
    their L kept at 16-bit precision (else None); both rounded from one float join."""
    strength = check_strength(strength)
    height, width = pixels.shape[:2]
    ab_norm = ab_norm.to(device, torch.float32)
    if strength != 1.0:
        ab_norm = ab_norm * strength
    wide = _upsample_width(ab_norm, width)
    out = np.empty((height, width, 3), dtype=np.uint8)
    deep = np.empty((height, width, 3), np.uint16) if pixels.dtype == np.uint16 else None
    step = _rows_per_strip(width)
    for top in range(0, height, step):
        rows = slice(top, min(height, top + step))
        l_norm = normalize_l(full_lightness(pixels[rows], device))
        rgb = join_lab(l_norm, upsample_rows(wide, height, rows))
        if strength == 0.0:  # neutral exactly: float error can leave channels a level apart
            rgb = rgb.mean(dim=0, keepdim=True).expand(3, -1, -1)
        rgb = rgb.permute(1, 2, 0)
        out[rows] = (rgb * 255.0).round_().to(torch.uint8).cpu().numpy()
        if deep is not None:
            deep[rows] = (rgb * 65535.0).round_().to(torch.int32).cpu().numpy()
    return out, deep
