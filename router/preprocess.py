"""From a file or a lightness tensor to the router's input: always grayscale.

The router sees what a user's black-and-white photo would look like: colour files are
reduced to their CIE L channel first (the same L the specialists colour), then the short
side is resized to the router's input size and the centre square is kept.

:func:`router_view` is the one way a decoded photo becomes the router's input: serving
(``serve.Colorizer``) and ``python -m router.evaluate`` both call it (through
``Router.view``), on pixels decoded by the one decoder (``common.images.read_image``), so
evaluation measures exactly what is served.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common.images import read_image
from common.lab import normalize_l, rgb_to_lightness


def load_l_norm(path: str | Path) -> torch.Tensor:
    """Decode an image file (colour or not) to normalised lightness, shape (1, 1, H, W).

    Raises ``common.images.ImageReadError`` for files that cannot be decoded.
    """
    pixels = read_image(path, classify=False).pixels
    rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    top = 65535.0 if rgb.dtype == np.uint16 else 255.0
    array = torch.from_numpy(rgb.astype(np.float32) / top)
    return rgb_to_l_norm(array.permute(2, 0, 1).unsqueeze(0))


def router_view(pixels: np.ndarray, size: int) -> torch.Tensor:
    """A decoded photo (grey (H, W) or RGB (H, W, 3), uint8 or uint16) -> the router's input
    (1, 1, size, size): short side resized to ``size`` (Pillow's antialiased bilinear, on the
    pixels, so a big scan is never converted at full resolution), CIE L, centre square."""
    height, width = pixels.shape[:2]
    scale = size / min(height, width)
    shape = (max(size, round(width * scale)), max(size, round(height * scale)))
    levels = 65535.0 if pixels.dtype == np.uint16 else 255.0
    planes = [pixels] if pixels.ndim == 2 else [pixels[..., c] for c in range(3)]
    small = [
        np.asarray(Image.fromarray(p.astype(np.float32)).resize(shape, Image.Resampling.BILINEAR))
        for p in planes
    ]
    rgb = torch.from_numpy(np.stack(small)).unsqueeze(0) / levels  # grey: one plane
    return fit_square(rgb_to_l_norm(rgb.clamp(0.0, 1.0)), size)


def rgb_to_l_norm(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB batch (B, 3, H, W), or grey (B, 1, H, W), in [0, 1] -> normalised lightness
    (B, 1, H, W) in [-1, 1]."""
    return normalize_l(rgb_to_lightness(rgb)).clamp(-1.0, 1.0)


def check_l_norm(l_norm: torch.Tensor) -> None:
    if not isinstance(l_norm, torch.Tensor) or l_norm.dim() != 4 or l_norm.shape[1] != 1:
        shape = tuple(l_norm.shape) if isinstance(l_norm, torch.Tensor) else type(l_norm)
        raise ValueError(f"router expects normalised lightness of shape (B, 1, H, W), got {shape}")


def resize_short_side(l_norm: torch.Tensor, short: int) -> torch.Tensor:
    """Antialiased bilinear resize so that the short side is ``short`` pixels."""
    h, w = l_norm.shape[-2:]
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    if size == (h, w):
        return l_norm
    return F.interpolate(l_norm, size=size, mode="bilinear", align_corners=False, antialias=True)


def fit_square(l_norm: torch.Tensor, size: int) -> torch.Tensor:
    """Short side to ``size``, then the centre ``size`` x ``size`` square: the router's view."""
    check_l_norm(l_norm)
    resized = resize_short_side(l_norm.float(), size)
    h, w = resized.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return resized[..., top : top + size, left : left + size].clamp(-1.0, 1.0)
