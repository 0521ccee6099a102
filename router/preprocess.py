"""From a file or a lightness tensor to the router's input: always grayscale.

The router sees what a user's black-and-white photo would look like: colour files are
reduced to their CIE L channel first (the same L the specialists colour), then the short
side is resized to the router's input size and the centre square is kept.

:func:`router_view` is the one way a decoded photo becomes the router's input: serving
(``serve.Colorizer``) and ``python -m router.evaluate`` both call it (through
``Router.view``), on pixels decoded alike (:func:`load_pixels` gives what
``serve.imageio.read_image`` gives), so evaluation measures exactly what is served.
"""

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from common.links import follow_link_file
from specialists.lab import normalize_l, rgb_to_lightness

SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # Pillow's 16/32-bit grey
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# What a broken or unsupported image file raises when decoded.
IMAGE_ERRORS = (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


def is_image_file(path: Path) -> bool:
    suffix_ok = path.suffix.lower() in IMAGE_SUFFIXES
    return suffix_ok and not path.name.startswith(".") and path.is_file()


def load_l_norm(path: str | Path) -> torch.Tensor:
    """Decode an image file (colour or not) to normalised lightness, shape (1, 1, H, W).

    Raises one of ``IMAGE_ERRORS`` for files that cannot be decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(follow_link_file(path)) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    array = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)
    return rgb_to_l_norm(array.permute(2, 0, 1).unsqueeze(0))


def load_pixels(path: str | Path) -> np.ndarray:
    """Decode an image file to upright pixels as serving decodes them: grey (H, W) or RGB
    (H, W, 3), uint8, or uint16 for 16-bit grey; alpha dropped, grey-valued RGB made grey.

    Raises one of ``IMAGE_ERRORS`` for files that cannot be decoded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in SIXTEEN_BIT_MODES:
                return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
            grey = image.mode in ("L", "LA", "La", "1")
            pixels = np.asarray(image.convert("L" if grey else "RGB"))
    if pixels.ndim == 3 and (pixels == pixels[..., :1]).all():
        pixels = pixels[..., 0]
    return np.ascontiguousarray(pixels)


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
    rgb = torch.from_numpy(np.stack(small * (3 // len(small)))).unsqueeze(0) / levels
    return fit_square(rgb_to_l_norm(rgb.clamp(0.0, 1.0)), size)


def rgb_to_l_norm(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB batch (B, 3, H, W) in [0, 1] -> normalised lightness (B, 1, H, W) in [-1, 1]."""
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
