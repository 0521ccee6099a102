"""Image files: which ones there are, safe decoding, atomic saving; the one place for each.

Every package that reads photos (serving, training, the router's evaluation) finds them
with :func:`image_files` / :func:`is_image_file` (one suffix set) and decodes them with
:func:`read_image`, so a photo is the same pixels everywhere. Every photo, whatever its
format, becomes a :class:`Photo`: upright (EXIF orientation applied), pixels as grey
``(H, W)`` or RGB ``(H, W, 3)`` in uint8 or uint16 (16-bit scans keep their precision), an
optional alpha channel, and notes on what was done to it.

Hostile or broken files end in an :class:`ImageReadError` naming the file and the reason,
never a traceback: the size a header declares is checked *before* any pixel is decoded
(a decompression bomb never gets to allocate), only plain raster formats are opened (no
EPS, whose plugin runs Ghostscript), and truncated data is refused rather than padded.
"""

import os
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .files import atomic_write, visible_files
from .links import follow_link_file

MAX_SIDE = 16384
MAX_PIXELS = 64_000_000
# Plain raster formats only: Pillow's EPS plugin shells out to Ghostscript. (Phones' MPO
# files open through the JPEG plugin.)
FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP", "PPM", "TGA", "JPEG2000")
# The file names taken for photos, and the formats each may hold (other content is noted).
_SUFFIX_FORMATS = {
    ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".jpe": {"JPEG", "MPO"},
    ".png": {"PNG"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"}, ".webp": {"WEBP"},
    ".gif": {"GIF"}, ".bmp": {"BMP"}, ".ppm": {"PPM"}, ".pgm": {"PPM"}, ".pbm": {"PPM"},
    ".tga": {"TGA"}, ".jp2": {"JPEG2000"}, ".j2k": {"JPEG2000"},
}  # fmt: skip
IMAGE_SUFFIXES = frozenset(_SUFFIX_FORMATS)
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
SAVE_FORMATS = {"png": "PNG", "jpg": "JPEG", "tiff": "TIFF"}
_PNG_ROWS = 256  # rows of a PNG filtered and compressed at a time (one IDAT chunk each)
_PNG_COLOUR_TYPES = {3: 2, 4: 6}  # channels -> PNG colour type: RGB, RGBA


class ImageReadError(Exception):
    """A file that cannot be used as a photo; ``str()`` is "<file>: <reason>"."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Photo:
    """A decoded, upright photo ready for colouring."""

    pixels: np.ndarray  # (H, W) grey or (H, W, 3) RGB, uint8 or uint16
    alpha: np.ndarray | None = None  # (H, W) uint8, kept for the output
    already_colour: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL gives it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255


def check_dimensions(
    width: int, height: int, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS
) -> str | None:
    """Why a photo of this declared size is refused, or None when it is acceptable."""
    if width < 1 or height < 1:
        return f"header declares an empty image ({width}x{height})"
    if max(width, height) > max_side or width * height > max_pixels:
        return (
            f"refused before decoding: header declares {width}x{height} pixels "
            f"(limits: {max_side} a side, {max_pixels / 1e6:g} megapixels)"
        )
    return None


def is_image_file(path: Path) -> bool:
    """A file (or a link to one) with a photo's suffix, not hidden."""
    return (
        path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def image_files(folder: str | Path) -> list[Path]:
    """Image files below ``folder``, sorted: hidden files and folders skipped, and no symbolic
    link to a folder followed (a link loop would list the same photos over and over)."""
    return [path for path in visible_files(folder) if is_image_file(path)]


def _colour_kind(rgb: np.ndarray) -> str:
    """Grey, toned or colour: ``common.tone``'s rule (serving's and training's)."""
    from .tone import colour_kind  # imports torch: not before a photo is decoded

    return colour_kind(rgb)


def _sixteen_bit(image: Image.Image) -> np.ndarray:
    """A 16-bit (or 32-bit integer) grey image as uint16, keeping its precision."""
    array = np.asarray(image)
    if array.dtype != np.uint16:
        array = np.clip(array, 0, 65535).astype(np.uint16)
    return array


def from_pil(image: Image.Image, classify: bool = True) -> Photo:
    """Normalise any PIL image to a :class:`Photo` (upright, grey or RGB, alpha apart).

    Used for files (via :func:`read_image`) and for in-memory images (an upload in the app).
    ``classify=False`` skips telling toned from colour photos (``already_colour`` stays
    False; 3 ms a photo), for callers that only want the pixels.
    """
    notes: list[str] = []
    try:
        orientation = image.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            image = ImageOps.exif_transpose(image)
            notes.append(f"EXIF orientation {orientation} applied")
    except Exception:  # noqa: BLE001 - broken EXIF must not cost a photo its pixels
        notes.append("unreadable EXIF ignored")
    mode = image.mode
    alpha = None
    if mode in _SIXTEEN_BIT_MODES:
        notes.append("16-bit grey")
        return Photo(_sixteen_bit(image), None, False, notes)
    if mode == "F":
        array = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if float(array.max(initial=0.0)) <= 1.0 else 1.0
        notes.append("32-bit float grey")
        return Photo(np.clip(array * scale, 0, 65535).astype(np.uint16), None, False, notes)
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
        notes.append("palette")
    elif mode == "CMYK":
        image = image.convert("RGB")
        notes.append("CMYK converted to RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("LA", "La"):
        image = image.convert("LA")
    elif mode in ("RGBa", "RGBA"):
        image = image.convert("RGBA")
    elif mode not in ("L", "RGB"):
        image = image.convert("RGB")
        notes.append(f"{mode} converted to RGB")
    if image.mode in ("LA", "RGBA"):
        alpha = np.asarray(image.getchannel("A")).copy()
        image = image.convert(image.mode[:-1])
    pixels = np.asarray(image)
    if pixels.ndim == 3:
        if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(
            pixels[..., 0], pixels[..., 2]
        ):
            pixels = pixels[..., 0]
        elif classify:
            kind = _colour_kind(pixels)
            if kind == "toned":  # sepia or a tint: a black-and-white photo, coloured from its L
                notes.append("toned photo: treated as black-and-white")
            elif kind == "colour":
                notes.append("already in colour: recoloured from its luminance")
                return Photo(np.ascontiguousarray(pixels), alpha, True, notes)
    return Photo(np.ascontiguousarray(pixels), alpha, False, notes)


def _formats() -> list[str]:
    """The allowed formats this Pillow build can open."""
    Image.init()
    return [name for name in FORMATS if name in Image.OPEN]


_PILLOW_LIMIT = threading.Lock()


def _open(handle: BinaryIO) -> Image.Image:
    """``Image.open`` of the allowed formats, without Pillow's own pixel limit.

    Pillow refuses over twice ``Image.MAX_IMAGE_PIXELS`` with its own message and limit; we
    check the declared size ourselves (:func:`check_dimensions`), so only for such files is
    it reopened with that limit lifted, under a lock (the limit is a module global).
    """
    try:
        return Image.open(handle, formats=_formats())
    except Image.DecompressionBombError:
        handle.seek(0)
        with _PILLOW_LIMIT:
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(handle, formats=_formats())
            finally:
                Image.MAX_IMAGE_PIXELS = limit


def _bit_depth_note(image: Image.Image) -> str | None:
    """A note when Pillow reduces 16-bit colour to 8 bits (it keeps 16-bit grey only)."""
    if image.mode not in ("RGB", "RGBA") or not image.tile:
        return None
    args = image.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    if isinstance(rawmode, str) and ";16" in rawmode:
        return "16-bit colour read as 8-bit (Pillow keeps 16 bits for grey only)"
    return None


def read_image(
    path: str | Path, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, classify: bool = True
) -> Photo:
    """Decode ``path`` safely; raises :class:`ImageReadError` with a reason on any problem
    (``classify``: see :func:`from_pil`)."""
    path = Path(path)
    try:
        # closed by the with below, whatever happens; a link placeholder reads its target
        handle = open(follow_link_file(path), "rb")
    except OSError as exc:
        raise ImageReadError(path, f"cannot read ({exc.strerror or exc})") from None
    with handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning etc.: we check ourselves
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageReadError(path, "empty file")
        try:
            with _open(handle) as image:
                refusal = check_dimensions(*image.size, max_side=max_side, max_pixels=max_pixels)
                if refusal:
                    raise ImageReadError(path, refusal)
                notes = []
                expected = _SUFFIX_FORMATS.get(path.suffix.lower())
                if expected is not None and image.format not in expected:
                    notes.append(f"{image.format} content in a {path.suffix} file")
                depth = _bit_depth_note(image)
                if depth:
                    notes.append(depth)
                frames = getattr(image, "n_frames", 1)
                if frames > 1:
                    image.seek(0)
                    notes.append(f"first of {frames} frames")
                image.load()
                photo = from_pil(image, classify)
        except ImageReadError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageReadError(path, f"refused before decoding: {exc}") from None
        except UnidentifiedImageError:
            raise ImageReadError(path, "not an image in a supported format") from None
        except MemoryError:
            raise ImageReadError(path, "too large to decode in memory") from None
        except OSError as exc:
            raise ImageReadError(path, f"truncated or corrupt image data ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - a hostile file can trip any decoder error
            raise ImageReadError(path, f"cannot decode ({type(exc).__name__}: {exc})") from None
    photo.notes[:0] = notes
    return photo


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_png(handle: BinaryIO, pixels: np.ndarray | Image.Image) -> None:
    """An RGB or RGBA PNG of ``pixels`` (uint8 or uint16 (H, W, 3 or 4), or an RGB or RGBA
    image), filtered and compressed a strip of rows at a time so a big scan is never copied.

    Every row gets PNG's "up" filter and zlib level 1: lossless, 2% bigger than Pillow's
    ``compress_level=1`` on our outputs but 1.5 times as fast (Pillow tries every filter on
    every row; ``benchmarks/bench_png.py``), and it writes 16-bit colour, which Pillow cannot.
    """
    if isinstance(pixels, Image.Image):
        image = pixels
        (width, height), channels, depth = image.size, len(image.getbands()), 8

        def strip(top: int, bottom: int) -> np.ndarray:
            return np.asarray(image.crop((0, top, width, bottom)))
    else:
        (height, width, channels), depth = pixels.shape, 8 * pixels.dtype.itemsize

        def strip(top: int, bottom: int) -> np.ndarray:
            return pixels[top:bottom]

    if channels not in _PNG_COLOUR_TYPES or depth not in (8, 16):
        raise ValueError(f"cannot write {channels} channels of {depth} bits as an RGB(A) PNG")
    header = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    handle.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))
    packer = zlib.compressobj(1)
    above = np.zeros((1, width * channels * depth // 8), np.uint8)  # what is above row 0
    for top in range(0, height, _PNG_ROWS):
        rows = strip(top, min(top + _PNG_ROWS, height))
        rows = np.ascontiguousarray(rows, ">u2" if depth == 16 else np.uint8)
        rows = rows.view(np.uint8).reshape(len(rows), -1)
        raw = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
        raw[:, 0] = 2  # filter type 2 (up): each byte less the byte above it
        np.subtract(rows[:1], above, out=raw[:1, 1:])
        np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
        above = rows[-1:]
        data = packer.compress(raw.data)
        if top + _PNG_ROWS >= height:
            data += packer.flush()
        if data:
            handle.write(_png_chunk(b"IDAT", data))
    handle.write(_png_chunk(b"IEND", b""))


def _write_tiff(handle: BinaryIO, pixels: np.ndarray) -> None:
    """An RGB or RGBA (H, W, 3 or 4) uint8 or uint16 TIFF, deflate-compressed (tifffile)."""
    import tifffile  # only TIFF output needs it

    alpha = {"extrasamples": [2]} if pixels.shape[2] == 4 else {}  # 2: unassociated alpha
    named = tifffile.FileHandle(handle, mode="wb", name="output.tiff")  # fdopen's name is an int
    tifffile.imwrite(named, pixels, photometric="rgb", compression="zlib", **alpha)


def save_image(
    image: Image.Image,
    path: str | Path,
    fmt: str = "png",
    quality: int = 95,
    *,
    root: str | Path | None = None,
    deep: np.ndarray | None = None,
) -> None:
    """Write ``image`` to ``path`` atomically and link-safely (``common.files.atomic_write``;
    ``root``: the output tree, no symbolic link below it is followed).

    A run killed mid-write leaves no half-written output, so ``--skip-existing`` can trust
    any output file it finds. JPEG has no alpha channel: an RGBA image loses it there.
    ``deep`` (a 16-bit photo's output, uint16 (H, W, 3 or 4)) is what a PNG or TIFF holds
    instead of ``image``, at 16 bits; JPEG has 8 bits only and takes ``image``.
    """
    if fmt not in SAVE_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: use {' or '.join(SAVE_FORMATS)}")
    if fmt == "png" and (deep is not None or image.mode in ("RGB", "RGBA")):
        pixels = image if deep is None else deep
        atomic_write(path, lambda handle: write_png(handle, pixels), root=root)
        return
    if fmt == "tiff":
        if deep is None:
            pixels = np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))
        else:
            pixels = deep
        atomic_write(path, lambda handle: _write_tiff(handle, pixels), root=root)
        return
    options: dict[str, object] = {"compress_level": 1} if fmt == "png" else {"quality": quality}
    if fmt == "jpg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    atomic_write(
        path, lambda handle: image.save(handle, format=SAVE_FORMATS[fmt], **options), root=root
    )
