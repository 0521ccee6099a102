"""Is a photo grey, toned (a black-and-white photo with a tint) or really in colour?

The one rule that serving (a toned scan is coloured like a grey photo) and training (only
colour photos can teach colour) share. It looks at a 64 x 64 thumbnail in CIE Lab:

- **grey**: the RGB channels barely differ (mean max-min spread under 2 levels of 255);
- **toned**: sepia, selenium, a cyanotype's faint blue, a yellowed print or a scanner's tint
  are one hue whose strength follows the lightness. So: the chroma is weak (mean under
  ``WARM_CHROMA`` for the sepia-to-yellow hues, under ``OTHER_CHROMA`` for every other hue,
  where single-hue colour photos such as glaciers and blue hills are common), ab lies on one
  line through grey (RMS distance from it under ``MAX_OFF_HUE``), and the lightness predicts ab
  (RMS ab left over within 32 lightness bins under ``1.25 + 0.1 x chroma``; JPEG's chroma
  subsampling leaves more where the tint is stronger);
- **colour**: anything else.

The thresholds were fitted on colorize-v2's holdout colour photos against synthetic toned
versions of their grey copies (sepia, Lab tints of 11 hues, paper and scanner casts, noise,
JPEG) and checked on val: ``python benchmarks/toned_photos.py`` (figures in the README).
"""

import numpy as np
import torch
from PIL import Image

from .lab import rgb_to_lab

GREY, TONED, COLOUR = "grey", "toned", "colour"
THUMB = 64  # the thumbnail side the rule looks at
GREY_SPREAD = 2.0  # mean max-min channel spread (0..255) below which a photo is grey
WARM_CHROMA = 30.0  # toned photos of sepia-to-yellow hue: mean Lab chroma at most this
WARM_HUES = (40.0, 110.0)  # those hues, degrees in the ab plane
OTHER_CHROMA = 10.0  # toned photos of any other hue: mean chroma at most this
MAX_OFF_HUE = 4.0  # RMS of ab across the photo's mean hue direction
RESIDUAL = (1.25, 0.1)  # RMS ab that lightness does not explain: at most a + b x chroma
_BINS = 32


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or uint16 -> (THUMB, THUMB, 3) uint8, bilinear."""
    if rgb.dtype == np.uint16:
        rgb = (rgb.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((THUMB, THUMB), Image.Resampling.BILINEAR))


def tone_measures(rgb: np.ndarray) -> dict[str, float]:
    """The numbers :func:`colour_kind` decides on, for an (H, W, 3) uint8/uint16 array."""
    thumb = _thumbnail(rgb)
    spread = float((thumb.max(axis=2).astype(np.int16) - thumb.min(axis=2)).mean())
    tensor = torch.from_numpy(thumb.astype(np.float64) / 255.0).permute(2, 0, 1)
    lab = rgb_to_lab(tensor).reshape(3, -1).T.numpy()
    lightness, ab = lab[:, 0], lab[:, 1:]
    chroma = np.hypot(ab[:, 0], ab[:, 1])
    mean = ab.mean(axis=0)
    direction = mean / max(float(np.hypot(*mean)), 1e-9)
    off_hue = ab[:, 0] * direction[1] - ab[:, 1] * direction[0]
    bins = np.clip((lightness / 100.0 * _BINS).astype(int), 0, _BINS - 1)
    counts = np.maximum(np.bincount(bins, minlength=_BINS), 1)
    bin_ab = np.stack([np.bincount(bins, ab[:, i], _BINS) / counts for i in (0, 1)], axis=1)
    return {
        "spread": spread,
        "chroma": float(chroma.mean()),
        "hue": float(np.degrees(np.arctan2(mean[1], mean[0])) % 360.0),
        "off_hue": float(np.sqrt((off_hue**2).mean())),
        "residual": float(np.sqrt(((ab - bin_ab[bins]) ** 2).sum(axis=1).mean())),
    }


def colour_kind(rgb: np.ndarray) -> str:
    """``GREY``, ``TONED`` or ``COLOUR`` for an (H, W, 3) uint8 or uint16 RGB array."""
    m = tone_measures(rgb)
    if m["spread"] < GREY_SPREAD:
        return GREY
    warm = WARM_HUES[0] <= m["hue"] <= WARM_HUES[1]
    weak = m["chroma"] <= (WARM_CHROMA if warm else OTHER_CHROMA)
    one_hue = m["off_hue"] <= MAX_OFF_HUE
    explained = m["residual"] <= RESIDUAL[0] + RESIDUAL[1] * m["chroma"]
    return TONED if weak and one_hue and explained else COLOUR
