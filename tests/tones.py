"""Synthetic toned black-and-white photos: sepia, Lab tints, paper and scanner casts, noise, JPEG.

What a scan of a toned print or a slightly tinted scan of a black-and-white one looks like;
used by the tests and by ``benchmarks/toned_photos.py``, which fits and checks
``common.tone`` with them.
"""

import io
import warnings

import numpy as np
from PIL import Image
from skimage import color

# The classic sepia filter (the matrix of Photoshop/GIMP-style "sepia" effects)
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
LAB_HUES = (20, 45, 60, 75, 85, 100, 150, 200, 250, 270, 330)  # degrees in the ab plane
LAB_CHROMAS = (2, 4, 8, 12, 18, 25, 32)
PAPERS = ((1, 0.95, 0.82), (1, 0.9, 0.75), (0.9, 0.95, 1), (1, 0.97, 0.92), (0.95, 1, 0.95),
          (1, 0.85, 0.7))  # fmt: skip
CASTS = ((3, 1, -2), (6, 2, -5), (-3, 0, 4), (2, 4, 1), (8, 4, -6), (0, -3, 2))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def sepia(grey: np.ndarray, strength: float) -> np.ndarray:
    """The sepia filter mixed with the grey photo: 0 = grey, 1 = full sepia."""
    g = np.repeat(grey[..., None].astype(np.float64), 3, axis=2)
    return _to_uint8((1 - strength) * g + strength * np.clip(g @ SEPIA.T, 0, 255))


def lab_tint(grey: np.ndarray, hue: float, chroma: float, fade: bool = True) -> np.ndarray:
    """The grey photo's L with ab of one hue; with ``fade`` the tint fades towards black and
    white, as a toner's does."""
    lightness = color.rgb2lab(np.repeat(grey[..., None] / 255.0, 3, axis=2))[..., 0]
    weight = np.sin(np.pi * np.clip(lightness, 0, 100) / 100) if fade else 1.0
    strength = chroma * weight * np.ones_like(lightness)
    angle = np.deg2rad(hue)
    lab = np.stack([lightness, strength * np.cos(angle), strength * np.sin(angle)], axis=-1)
    with warnings.catch_warnings():  # strong tints leave sRGB's gamut: clipped, as a scan is
        warnings.simplefilter("ignore")
        return _to_uint8(color.lab2rgb(lab) * 255)


def paper(grey: np.ndarray, tint: tuple[float, float, float]) -> np.ndarray:
    """A print on tinted paper: the grey photo multiplied by the paper's colour."""
    return _to_uint8(grey[..., None].astype(np.float64) * np.array(tint))


def cast(grey: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """A scanner's colour cast: a few levels added to each channel."""
    return _to_uint8(grey[..., None].astype(np.float64) + np.array(offset))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``rgb`` after a round trip through JPEG (4:2:0 chroma, Pillow's default)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer).convert("RGB"))


def noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Independent per-channel noise, as a scanner's sensor adds."""
    return _to_uint8(rgb + rng.normal(0, sigma, rgb.shape))


def random_toned(grey: np.ndarray, rng: np.random.Generator) -> tuple[str, str, np.ndarray]:
    """One randomly toned version of a grey photo: (family, full description, RGB array).

    Families: ``sepia S`` (filter strength), ``lab hue H`` (tints of chroma over 10),
    ``lab weak`` (chroma 2-8, any hue), ``paper``, ``cast``."""
    kind = int(rng.integers(4))
    if kind == 0:
        strength = float(rng.choice([0.15, 0.3, 0.6, 1.0]))
        family = name = f"sepia {strength}"
        rgb = sepia(grey, strength)
    elif kind == 1:
        hue, chroma = int(rng.choice(LAB_HUES)), int(rng.choice(LAB_CHROMAS))
        fade = bool(rng.random() < 0.7)
        family = f"lab hue {hue}" if chroma > 10 else "lab weak"
        name, rgb = f"lab hue {hue} chroma {chroma}", lab_tint(grey, hue, chroma, fade)
    elif kind == 2:
        tint = PAPERS[int(rng.integers(len(PAPERS)))]
        family, name, rgb = "paper", f"paper {tint}", paper(grey, tint)
    else:
        offset = CASTS[int(rng.integers(len(CASTS)))]
        family, name, rgb = "cast", f"cast {offset}", cast(grey, offset)
    if rng.random() < 0.5:
        sigma = float(rng.choice([1.0, 2.0, 4.0]))
        name, rgb = f"{name} + noise {sigma}", noise(rgb, sigma, rng)
    if rng.random() < 0.8:
        quality = int(rng.choice([50, 70, 85, 95]))
        name, rgb = f"{name} + jpeg {quality}", jpeg(rgb, quality)
    return family, name, rgb
