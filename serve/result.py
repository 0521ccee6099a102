"""What colouring a photo gives back, and how its colour goes on the photo.

:class:`Prediction` is the models' part (``Colorizer.predict``): the router's decision,
every candidate colouring made, the judge's scores and the choice. :class:`ColorizeResult`
is the finished photo with what was decided for it; it keeps its model-resolution ab and
decoded photo, so :meth:`ColorizeResult.with_strength` (or :func:`render`) re-renders it at
another colour strength without running any model.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from common.images import Photo

from .transfer import MAX_STRENGTH, check_strength, rejoin_deep

ROUTER = "router"  # the router was confident: its domain's specialist coloured the photo
JUDGE = "discriminator"  # it was not: the judge picked among the specialists' colourings
FORCED = "forced"  # the caller named the specialist


class Decision(Protocol):
    domain: str
    probs: dict[str, float]
    confidence: float

    def confident(self, threshold: float | None = None) -> bool: ...


@dataclass
class ColorizeResult:
    """A coloured photo and what was decided for it."""

    image: Image.Image  # RGB (RGBA when the input had alpha), the input's exact size
    domain: str  # the specialist whose colours were used
    probs: dict[str, float]  # router's calibrated domain probabilities ({} when forced)
    confidence: float | None  # router's confidence (None when forced)
    strategy: str  # "router", "discriminator" or "forced"
    scores: dict[str, float]  # judge's realism per candidate domain (fallback only)
    already_colour: bool = False  # the input was a colour photo, recoloured from its L
    notes: list[str] = field(default_factory=list)  # what decoding did (EXIF, 16-bit ...)
    model_size: tuple[int, int] = (0, 0)  # (width, height) the models saw
    strength: float = 1.0  # the colour strength ``image`` was rendered at
    ab: torch.Tensor | None = None  # (2, h, w) normalised model-resolution ab, on the CPU
    photo: Photo | None = None  # the decoded input whose L ``image`` carries
    deep: np.ndarray | None = None  # a 16-bit input's output at 16 bits: uint16 (H, W, 3 or 4)
    restraint: float = 1.0  # per-photo strength from serve.restraint (1.0 without one)
    decision: Decision | None = None  # the router's, acted on (None when forced)

    @property
    def neighbours(self) -> list:
        """The training photos nearest to this one, where the router gives them: why it
        went where it went (``router.Neighbour``; [] when forced)."""
        return list(getattr(self.decision, "neighbours", None) or [])

    def with_strength(self, strength: float) -> "ColorizeResult":
        """The same result rendered at another colour strength (no model runs)."""
        if self.ab is None or self.photo is None:
            raise ValueError("this result keeps no ab and photo to re-render")
        strength = check_strength(strength)
        image, deep = render_deep(self.photo, self.ab, applied_strength(strength, self.restraint))
        return dataclasses.replace(self, image=image, deep=deep, strength=strength)


def applied_strength(strength: float, restraint: float) -> float:
    """The strength a render uses: the user's times the photo's restraint, within bounds."""
    return min(strength * restraint, MAX_STRENGTH)


def render(
    photo: Photo, ab: torch.Tensor, strength: float = 1.0, device: str | torch.device = "cpu"
) -> Image.Image:
    """The photo's own full-resolution L + model-resolution normalised ``ab`` (2, h, w) at
    ``strength`` -> the output image (8-bit RGB, or RGBA keeping the photo's alpha)."""
    return render_deep(photo, ab, strength, device)[0]


def render_deep(
    photo: Photo, ab: torch.Tensor, strength: float = 1.0, device: str | torch.device = "cpu"
) -> tuple[Image.Image, np.ndarray | None]:
    """:func:`render`'s image and, for a 16-bit photo, the same output at 16 bits (uint16
    (H, W, 3), or 4 with the alpha): what a 16-bit PNG or TIFF keeps."""
    rgb, deep = rejoin_deep(photo.pixels, ab, device, strength)
    if deep is not None and photo.alpha is not None:
        deep = np.dstack([deep, photo.alpha.astype(np.uint16) * 257])
    image = Image.fromarray(rgb, "RGB")
    if photo.alpha is not None:
        image.putalpha(Image.fromarray(photo.alpha, "L"))
    return image, deep


@dataclass
class Prediction:
    """The models' part of colouring one photo (:meth:`Colorizer.predict`): the router's
    decision, every candidate colouring that was made, the judge's scores of them and the
    choice; :meth:`Colorizer.finish` puts the chosen colour on the photo."""

    domain: str  # the chosen candidate
    strategy: str  # ROUTER, JUDGE or FORCED: what chose it
    decision: Decision | None  # the router's (None when forced)
    candidates: dict[str, torch.Tensor]  # domain -> (2, h, w) normalised ab, each one made
    scores: dict[str, float] = field(default_factory=dict)  # judge's realism per candidate
    judge_pick: str | None = None  # the judge's choice among them (None: it did not judge)
    restraint: float = 1.0  # the photo's colour strength factor (serve.restraint)

    @property
    def ab(self) -> torch.Tensor:
        """The chosen colour, (2, h, w) normalised."""
        return self.candidates[self.domain]

    @property
    def probs(self) -> dict[str, float]:
        return {} if self.decision is None else dict(self.decision.probs)

    @property
    def confidence(self) -> float | None:
        return None if self.decision is None else float(self.decision.confidence)
