"""What the Streamlit page does, as plain functions that return values (no Streamlit here).

The page (``serve/app.py``) only lays these values out, so everything that can go wrong
with an upload (a broken file, an oversized one, a hostile name) is decided and tested
here, without a browser. Uploads never touch the disk except for a moment in a private
temporary folder, under a name we choose: the uploader's file name is only ever shown
and, sanitised, offered as a download name. What a card says about a result (the route,
the nearest training photos, the summary) is ``serve.app_explain``.
"""

import dataclasses
import hashlib
import io
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

from common.images import IMAGE_SUFFIXES, ImageReadError, Photo, read_image
from common.lab import lab_to_rgb
from router import Neighbour
from specialists.metrics import colourfulness, psnr

from .colorizer import Colorizer
from .result import ColorizeResult, render
from .transfer import full_lightness

# What the uploader offers; common.images decides what actually opens.
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp")
MB = 1024 * 1024  # Streamlit's megabyte (server.maxUploadSize), so one limit means one size
PREVIEW_SIDE = 1024  # longest side of the copies shown on the page (downloads are full size)
METRIC_SIDE = 1024  # demo metrics are measured on copies at most this long
VIEWS_KEPT = 4  # colour strengths whose page copies a card keeps


class UploadRefused(Exception):
    """An upload we will not decode (too large, empty); ``str()`` is the reason."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


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
    demo: Demo | None = None
    seconds: float = 0.0
    too_large: bool = False  # refused for its size, before decoding
    _png: tuple[float, bytes] | None = field(default=None, repr=False)
    _views: OrderedDict = field(default_factory=OrderedDict, repr=False)

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def neighbours(self) -> list[Neighbour]:
        """The router's nearest training photos to this one ([] when forced or failed)."""
        return self.result.neighbours if self.result is not None else []

    def image(self, strength: float = 1.0) -> Image.Image:
        """The colourized photo at its original size and ``strength`` (no model runs)."""
        if self.result is None:
            raise ValueError(f"{self.name}: no result to download")
        if strength == self.result.strength:
            return self.result.image
        return self.result.with_strength(strength).image

    def png(self, strength: float = 1.0) -> bytes:
        """That photo as PNG (encoded on demand, kept for the last strength asked for)."""
        if self._png is None or self._png[0] != strength:
            self._png = (strength, png_bytes(self.image(strength)))
        return self._png[1]

    def view(self, strength: float = 1.0) -> "View":
        """What the page shows at ``strength``: a page-size copy and, for a colour photo, its
        scores against the true colours. Rendered from the kept colours, never the models."""
        if self.result is None:
            raise ValueError(f"{self.name}: nothing to show")
        if strength not in self._views:
            self._views[strength] = _view(self, strength)
            while len(self._views) > VIEWS_KEPT:
                self._views.popitem(last=False)
        self._views.move_to_end(strength)
        return self._views[strength]


@dataclass(frozen=True)
class View:
    """A card's result as shown at one colour strength."""

    image: Image.Image  # at most PREVIEW_SIDE long
    demo: Demo | None  # scores of this rendering against the true colours (colour uploads)


def _view(card: Card, strength: float) -> View:
    """Render the page copy at ``strength`` on a page-size copy of the photo's lightness."""
    result = card.result
    if strength == result.strength or result.ab is None or card.original is None:
        image = preview(result.image)
    else:
        small = preview(card.original)
        image = render(Photo(np.asarray(small)), result.ab, strength)
        if result.image.mode == "RGBA":
            image.putalpha(preview(result.image).getchannel("A"))
    demo = card.demo
    if demo is not None and strength != result.strength:
        demo = rescored(demo, image)
    return View(image, demo)


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


def zip_bytes(cards: Sequence[Card], strengths: Sequence[float] | None = None) -> bytes:
    """Every successful result as one ZIP of original-size PNGs (stored: PNG is compressed),
    each at its card's colour strength (default 1)."""
    strengths = list(strengths) if strengths is not None else [1.0] * len(cards)
    done = [(card, s) for card, s in zip(cards, strengths) if card.ok]
    if not done:
        raise ValueError("no colourized photos to put in a ZIP")
    buffer = io.BytesIO()
    names = unique_names([card.download_name for card, _ in done])
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for (card, strength), name in zip(done, names):
            archive.writestr(name, card.png(strength))
    return buffer.getvalue()


# ---------------------------------------------------------------- decoding and colouring


def upload_key(data: bytes, *settings: object) -> tuple:
    """Cache key of one upload under one set of settings: its content, not its name."""
    return (hashlib.sha256(data).hexdigest(), *settings)


def decode_upload(name: str, data: bytes, max_bytes: int) -> Photo:
    """Decode uploaded bytes with common.images's safety checks.

    Raises :class:`UploadRefused` (too large, empty) or :class:`ImageReadError` naming the
    upload as the user knows it. The bytes sit for a moment in a private temporary folder
    under a fixed name: the uploaded name is never part of a path. ``max_bytes`` is the
    server's upload limit, the one the upload box states: the browser already refuses larger
    files, so this only meets a client that sends one anyway.
    """
    if len(data) == 0:
        raise UploadRefused("empty file")
    if len(data) > max_bytes:
        raise UploadRefused(
            f"refused: {len(data) / MB:.1f} MB is over the {max_bytes / MB:g} MB upload limit",
            too_large=True,
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
    lightness = full_lightness(np.asarray(truth))
    lab = torch.cat([lightness, torch.zeros((2, *lightness.shape[1:]))])
    grey = (lab_to_rgb(lab) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    desaturated = Image.fromarray(np.ascontiguousarray(grey))
    true, flat = _unit_rgb(truth), _unit_rgb(desaturated)
    baseline = Demo(
        desaturated=desaturated,
        truth=truth,
        psnr=float("nan"),
        psnr_grey=float(psnr(flat, true)[0]),
        colourfulness=float("nan"),
        colourfulness_truth=float(colourfulness(true)[0]),
        measured_side=max(truth.size),
    )
    return rescored(baseline, result.image)


def rescored(demo: Demo, recoloured: Image.Image) -> Demo:
    """``demo`` with the scores of another colouring of the same photo (another strength)."""
    pred = _shrunk(recoloured.convert("RGB"), max(demo.truth.size))
    if pred.size != demo.truth.size:
        pred = pred.resize(demo.truth.size, Image.Resampling.BILINEAR)
    pred, true = _unit_rgb(pred), _unit_rgb(demo.truth)
    return dataclasses.replace(
        demo, psnr=float(psnr(pred, true)[0]), colourfulness=float(colourfulness(pred)[0])
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
        card.too_large = getattr(exc, "too_large", False)
        return card
    card.original = photo_image(photo)
    try:
        card.result = colorizer.colorize(photo, domain)
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


def preview(image: Image.Image, side: int = PREVIEW_SIDE) -> Image.Image:
    """A copy small enough for the page (the download keeps the original size)."""
    return _shrunk(image, side)
