"""What a card says beside the photo (no Streamlit here): how the domain was chosen, the
router's nearest training photos behind that choice, the line over the results and the
server's log line, with uploaded names and errors escaped for markdown.
"""

import os
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from common.images import ImageReadError, read_image
from router import Neighbour

from .app_logic import Card, photo_image, preview
from .colorizer import Colorizer
from .result import FORCED, JUDGE, ColorizeResult

DATA_ENV = "COLORIZER_DATA"  # where the router's training photos are, for thumbnails
NEIGHBOURS_SHOWN = 4  # nearest training photos shown under a card, large enough to see
THUMBNAIL_SIDE = 256

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def md_escape(text: str) -> str:
    """Text (an uploaded file's name, an error) shown literally by Streamlit's markdown."""
    return _MARKDOWN.sub(r"\\\1", text.replace("\n", " "))


def route_summary(result: ColorizeResult, threshold: float) -> str:
    """One line on how the domain was chosen (markdown)."""
    if result.strategy == FORCED:
        return f"**{result.domain}** specialist, chosen by you (the router was not asked)."
    confidence = result.confidence if result.confidence is not None else float("nan")
    if result.strategy == JUDGE and not result.scores:
        return (
            f"Router unsure (confidence {confidence:.3f} < {threshold:.3f}), but it believes "
            f"**{result.domain}** so far above the rest that no discriminator score could "
            "change the pick: that specialist coloured it, unjudged."
        )
    if result.strategy == JUDGE:
        return (
            f"Router unsure (confidence {confidence:.3f} < {threshold:.3f}): the specialists "
            f"competed and the discriminators chose **{result.domain}**."
        )
    if confidence < threshold:  # a single specialist: nothing to fall back to
        return (
            f"Router unsure (confidence {confidence:.3f} < {threshold:.3f}), but "
            f"**{result.domain}** is the only specialist."
        )
    return (
        f"Router sure (confidence {confidence:.3f} ≥ {threshold:.3f}): "
        f"the **{result.domain}** specialist coloured it."
    )


def ranked(values: dict[str, float]) -> list[tuple[str, float]]:
    """Domains by value, highest first (probabilities or realism scores)."""
    return sorted(values.items(), key=lambda item: (-item[1], item[0]))


def log_line(card: Card) -> str:
    """What one colouring did, for the server's log (the name is the uploader's: repr'd)."""
    if not card.ok:
        return f"{card.name!r}: {card.error}"
    result = card.result
    return f"{card.name!r}: coloured by {result.domain} ({result.strategy}) in {card.seconds:.2f} s"


def summary(cards: Sequence[Card]) -> str:
    """The line over the results (markdown): how many were coloured, refused for their size,
    or could not be read or coloured."""
    done = sum(card.ok for card in cards)
    too_large = sum(card.too_large for card in cards)
    unread = len(cards) - done - too_large
    parts = [f"**{done}** of {len(cards)} photos colourized"]
    if too_large:
        parts.append(f"**{too_large}** refused for size")
    if unread:
        parts.append(f"**{unread}** could not be read")
    return ", ".join(parts) + "."


def default_data_root(colorizer: Colorizer) -> str:
    """``$COLORIZER_DATA``, else the data root the router's index recorded, when that folder
    exists here (after ``pip install`` it usually does not); else ''."""
    env = os.environ.get(DATA_ENV)
    if env:
        return env
    index = getattr(colorizer.router, "index", None)
    recorded = str(getattr(index, "data_root", "") or "")
    return recorded if recorded and Path(recorded).is_dir() else ""


def shown_neighbours(
    neighbours: Sequence[Neighbour], data_root: str | Path, count: int = NEIGHBOURS_SHOWN
) -> list[tuple[Neighbour, Path]]:
    """The nearest ``count`` training photos whose files are under ``data_root``: what the
    page shows to explain a route (nothing at all without them)."""
    found = [(n, neighbour_file(n, data_root)) for n in neighbours]
    return [(n, path) for n, path in found if path is not None][:count]


def neighbour_file(neighbour: Neighbour, data_root: str | Path) -> Path | None:
    """The neighbour's image file under ``data_root`` when it is there, else None.

    The path comes from the router's index, but it is still confined to the data root.
    """
    if not data_root:
        return None
    root = Path(data_root).resolve()
    try:
        path = (root / neighbour.path).resolve()
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def thumbnail(path: Path, side: int = THUMBNAIL_SIDE) -> Image.Image | None:
    """A small copy of a training photo, or None when it cannot be read."""
    try:
        photo = read_image(path)
    except ImageReadError:
        return None
    return preview(photo_image(photo), side)
