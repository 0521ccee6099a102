"""What the Streamlit page does, as plain functions that return values (no Streamlit here).

The page (``serve/app.py``) only lays these values out, so everything that can go wrong
with an upload (a broken file, an oversized one, a hostile name) is decided and tested
here, without a browser. Uploads never touch the disk except for a moment in a private
temporary folder, under a name we choose: the uploader's file name is only ever shown
and, sanitised, offered as a download name.
"""

import hashlib
import io
import os
import re
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch
from PIL import Image

from router import Neighbour
from specialists.lab import lab_to_rgb
from specialists.metrics import colourfulness, psnr

from .colorizer import FORCED, JUDGE, Colorizer, ColorizeResult
from .imageio import IMAGE_SUFFIXES, ImageReadError, Photo, read_image
from .transfer import full_lightness

# What the uploader offers (the list); serve.imageio decides what actually opens.
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp")
DATA_ENV = "COLORIZER_DATA"  # where the router's training photos are, for thumbnails
DEFAULT_MAX_MB = 25.0
PREVIEW_SIDE = 1024  # longest side of the copies shown on the page (downloads are full size)
METRIC_SIDE = 1024  # demo metrics are measured on copies at most this long


class UploadRefused(Exception):
    """An upload we will not decode (too large, empty); ``str()`` is the reason."""


@dataclass(frozen=True)
class Demo:
    """A colour photo judged against its own true colours."""

    desaturated: Image.Image  # what the models saw: the photo's L, no colour
    truth: Image.Image  # the upload itself, RGB (both at ``measured_side`` at most)
    psnr: float  # recolourized vs truth, dB
    psnr_grey: float  # desaturated vs truth, dB: the baseline to beat
    colourfulness: float  # of the recolourized photo (Hasler-Suesstrunk)
    colourfulness_truth: float
    measured_side: int  # the longest side the metrics were measured at


@dataclass
class Card:
    """One uploaded file and everything the page shows for it."""

    name: str  # as uploaded: shown, never used as a path
    download_name: str  # sanitised "<stem>-colour.png"
    original: Image.Image | None = None  # upright, as decoded (RGB or L)
    result: ColorizeResult | None = None
    error: str | None = None
    neighbours: list[Neighbour] = field(default_factory=list)
    demo: Demo | None = None
    seconds: float = 0.0
    _png: bytes | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.result is not None

    def png(self) -> bytes:
        """The colourized photo at its original size, as PNG (encoded once, on demand)."""
        if self.result is None:
            raise ValueError(f"{self.name}: no result to download")
        if self._png is None:
            self._png = png_bytes(self.result.image)
        return self._png


# ---------------------------------------------------------------- names and downloads


def safe_stem(name: str, limit: int = 80) -> str:
    """A harmless file stem from an uploaded name: no folders, no dots in front, no oddities.

    Browsers send just a name, but a client can send anything ("../../etc/passwd",
    "C:\\x\\y.png", control characters); this is only ever used as a download name.
    """
    base = PureWindowsPath(PurePosixPath(name.replace("\x00", "")).name).name
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = re.sub(r"[^\w.-]+", "_", stem, flags=re.UNICODE).strip("._-")
    return stem[:limit] or "photo"


def download_name(name: str) -> str:
    return f"{safe_stem(name)}-colour.png"


def unique_names(names: Sequence[str]) -> list[str]:
    """The same names with ``-2``, ``-3`` ... added to repeats (two uploads of "scan.png")."""
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        candidate = name
        if count > 1:
            stem, dot, ext = name.rpartition(".")
            stem, ext = (stem, f".{ext}") if dot else (name, "")
            n = count
            candidate = f"{stem}-{n}{ext}"
            while candidate in taken:
                n += 1
                candidate = f"{stem}-{n}{ext}"
        taken.add(candidate)
        out.append(candidate)
    return out


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def zip_bytes(cards: Sequence[Card]) -> bytes:
    """Every successful result as one ZIP of original-size PNGs (stored: PNG is compressed)."""
    done = [card for card in cards if card.ok]
    if not done:
        raise ValueError("no colourized photos to put in a ZIP")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for card, name in zip(done, unique_names([c.download_name for c in done])):
            archive.writestr(name, card.png())
    return buffer.getvalue()


# ---------------------------------------------------------------- decoding and colouring


def upload_key(data: bytes, *settings: object) -> tuple:
    """Cache key of one upload under one set of settings: its content, not its name."""
    return (hashlib.sha256(data).hexdigest(), *settings)


def decode_upload(name: str, data: bytes, max_bytes: int) -> Photo:
    """Decode uploaded bytes with serve.imageio's safety checks.

    Raises :class:`UploadRefused` (too large, empty) or :class:`ImageReadError` naming the
    upload as the user knows it. The bytes sit for a moment in a private temporary folder
    under a fixed name: the uploaded name is never part of a path.
    """
    if len(data) == 0:
        raise UploadRefused("empty file")
    if len(data) > max_bytes:
        raise UploadRefused(
            f"refused: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit "
            "(a setting in the sidebar)"
        )
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    suffix = suffix if suffix in IMAGE_SUFFIXES else ".img"  # only ever one of our own
    with tempfile.TemporaryDirectory(prefix="colorizer-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with open(path, "xb") as handle:
            handle.write(data)
        try:
            return read_image(path)
        except ImageReadError as exc:
            raise ImageReadError(name, exc.reason) from None


def photo_image(photo: Photo) -> Image.Image:
    """A displayable 8-bit copy of a decoded photo (grey stays grey)."""
    pixels = photo.pixels
    if pixels.dtype != np.uint8:
        pixels = (pixels.astype(np.uint32) * 255 // photo.max_value).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(pixels))  # (H, W) -> L, (H, W, 3) -> RGB


class _RouteRecorder:
    """The Colorizer's router, keeping the decisions it hands out.

    ``ColorizeResult`` does not carry the router's nearest training examples; recording
    the very decision the Colorizer acted on costs nothing and cannot drift from it.
    """

    def __init__(self, router: object) -> None:
        self._router = router
        self.decisions: list = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._router, name)

    def route(self, l_norm: torch.Tensor) -> list:
        decisions = list(self._router.route(l_norm))
        self.decisions.extend(decisions)
        return decisions


def colorize_with_route(
    colorizer: Colorizer, photo: Photo, domain: str | None = None
) -> tuple[ColorizeResult, object | None]:
    """Colour one photo; also return the router's decision for it (None when forced)."""
    recorder = _RouteRecorder(colorizer.router)
    recording = Colorizer(
        recorder,
        colorizer.generators,
        colorizer.judge,
        size=colorizer.size,
        threshold=colorizer.threshold,
        device=colorizer.device,
        warnings=colorizer.warnings,
    )
    result = recording.colorize(photo, domain)
    return result, (recorder.decisions[0] if recorder.decisions else None)


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    copy = image.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


def _unit_rgb(image: Image.Image) -> torch.Tensor:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)


def demo_comparison(photo: Photo, result: ColorizeResult, side: int = METRIC_SIDE) -> Demo:
    """Judge a recolourized colour photo against its true colours, with training's metrics.

    The desaturated copy is the photo's own CIE L with no colour (exactly what the models
    saw); its PSNR is the baseline a colourization has to beat.
    """
    truth = _shrunk(photo_image(photo).convert("RGB"), side)
    recoloured = _shrunk(result.image.convert("RGB"), side)
    lightness = full_lightness(np.asarray(truth))
    lab = torch.cat([lightness, torch.zeros((2, *lightness.shape[1:]))])
    grey = (lab_to_rgb(lab) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    desaturated = Image.fromarray(np.ascontiguousarray(grey))
    pred, true, flat = (_unit_rgb(im) for im in (recoloured, truth, desaturated))
    return Demo(
        desaturated=desaturated,
        truth=truth,
        psnr=float(psnr(pred, true)[0]),
        psnr_grey=float(psnr(flat, true)[0]),
        colourfulness=float(colourfulness(pred)[0]),
        colourfulness_truth=float(colourfulness(true)[0]),
        measured_side=max(truth.size),
    )


def colourize_upload(
    colorizer: Colorizer, name: str, data: bytes, domain: str | None, max_bytes: int
) -> Card:
    """Decode and colour one upload; any problem ends up as the card's ``error``."""
    card = Card(name=name, download_name=download_name(name))
    start = time.perf_counter()
    try:
        photo = decode_upload(name, data, max_bytes)
    except (UploadRefused, ImageReadError) as exc:
        card.error = exc.reason if isinstance(exc, ImageReadError) else str(exc)
        return card
    card.original = photo_image(photo)
    try:
        card.result, decision = colorize_with_route(colorizer, photo, domain)
        card.neighbours = list(getattr(decision, "neighbours", None) or [])
        if photo.already_colour:
            card.demo = demo_comparison(photo, card.result)
    except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. out of memory on a huge scan
        card.result = None
        card.error = f"could not colourize it ({type(exc).__name__}: {exc})"
    card.seconds = time.perf_counter() - start
    return card


class ResultCache:
    """Finished cards per (upload content, settings), newest kept: reruns reuse them.

    Lives in one browser session's state, so one family's photos are never served to
    another session.
    """

    def __init__(self, max_entries: int = 48) -> None:
        self.max_entries = max_entries
        self._cards: OrderedDict[tuple, Card] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cards)

    def get(self, key: tuple) -> Card | None:
        card = self._cards.get(key)
        if card is not None:
            self._cards.move_to_end(key)
        return card

    def put(self, key: tuple, card: Card) -> None:
        self._cards[key] = card
        self._cards.move_to_end(key)
        while len(self._cards) > self.max_entries:
            self._cards.popitem(last=False)


def with_settings(colorizer: Colorizer, size: int, threshold: float) -> Colorizer:
    """The same loaded models at another resolution or threshold (nothing is reloaded)."""
    if size == colorizer.size and threshold == colorizer.threshold:
        return colorizer
    return Colorizer(
        colorizer.router,
        colorizer.generators,
        colorizer.judge,
        size=size,
        threshold=threshold,
        device=colorizer.device,
        warnings=colorizer.warnings,
    )


# ---------------------------------------------------------------- what the card says


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def md_escape(text: str) -> str:
    """Text (an uploaded file's name, an error) shown literally by Streamlit's markdown."""
    return _MARKDOWN.sub(r"\\\1", text.replace("\n", " "))


def route_summary(result: ColorizeResult, threshold: float) -> str:
    """One line on how the domain was chosen (markdown)."""
    if result.strategy == FORCED:
        return f"**{result.domain}** specialist, chosen by you (the router was not asked)."
    confidence = result.confidence if result.confidence is not None else float("nan")
    if result.strategy == JUDGE:
        return (
            f"Router unsure (confidence {confidence:.3f} < {threshold:.3f}): every specialist "
            f"coloured it and the discriminators chose **{result.domain}**."
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


def default_data_root(colorizer: Colorizer) -> str:
    """``$COLORIZER_DATA``, else the data root the router's index recorded, else ''."""
    env = os.environ.get(DATA_ENV)
    if env:
        return env
    index = getattr(colorizer.router, "index", None)
    return str(getattr(index, "data_root", "") or "")


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


def thumbnail(path: Path, side: int = 160) -> Image.Image | None:
    """A small copy of a training photo, or None when it cannot be read."""
    try:
        photo = read_image(path)
    except ImageReadError:
        return None
    return _shrunk(photo_image(photo), side)


def preview(image: Image.Image, side: int = PREVIEW_SIDE) -> Image.Image:
    """A copy small enough for the page (the download keeps the original size)."""
    return _shrunk(image, side)
