"""A resized copy of a photo folder, small enough to travel with the code to an accelerator.

    python -m training.shrink_data ../shared/data/colorize-v2 small-v2 --short-side 144
    python -m training.shrink_data DATA small --short-side 128 --quality 85 --limit 1500

Training crops 128 px squares from photos resized to about that size, so a copy whose short
sides are a little larger trains the same way and weighs a fraction of the original: the same
tree (splits, domains, file names with a ``.jpg`` suffix), every photo read as training reads
it (link placeholders followed, EXIF orientation applied) and written as JPEG, never enlarged.
Rerunning it continues: finished photos are skipped. An unreadable photo is reported and the
rest are still copied (exit 1). Text files such as ``manifest.csv`` are copied as they are
(its width and height columns then describe the originals).
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from common.cli import HelpFormatter, UsageError, plain, run_command
from common.files import atomic_write_bytes, visible_files
from common.images import ImageReadError, image_files, read_image, save_image
from training.data import evenly_spaced

TEXT_SUFFIXES = {".csv", ".md", ".txt", ".json"}


@dataclass
class ShrinkReport:
    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    bytes: int = 0


def shrunk(image: Image.Image, short_side: int) -> Image.Image:
    """``image`` with its short side at most ``short_side`` (antialiased; never enlarged)."""
    width, height = image.size
    scale = short_side / min(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def destination(source: Path, src_root: Path, dst_root: Path) -> Path:
    return (dst_root / source.relative_to(src_root)).with_suffix(".jpg")


def check_folders(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise UsageError(f"{src}: no such folder")
    src_real, dst_real = src.resolve(), dst.resolve()
    if dst_real == src_real or src_real in dst_real.parents or dst_real in src_real.parents:
        raise UsageError(f"{dst}: the copy may not be the source folder, inside it or above it")


def clashing_names(photos: list[Path], src: Path, dst: Path) -> list[str]:
    """Photos whose copies would share a name (``a.png`` and ``a.jpg`` both -> ``a.jpg``)."""
    seen: dict[Path, Path] = {}
    clashes = []
    for photo in photos:
        target = destination(photo, src, dst)
        if target in seen:
            clashes.append(f"{seen[target]} and {photo} would both be copied to {target}")
        seen[target] = photo
    return clashes


def evenly_spread(photos: list[Path], limit: int | None) -> list[Path]:
    """At most ``limit`` photos of each folder, evenly spaced over its sorted names (so every
    source tag of a folder keeps its share)."""
    if limit is None:
        return photos
    folders: dict[Path, list[Path]] = {}
    for photo in photos:
        folders.setdefault(photo.parent, []).append(photo)
    return sorted(path for members in folders.values() for path in evenly_spaced(members, limit))


def shrink_folder(
    src: Path,
    dst: Path,
    short_side: int = 144,
    quality: int = 90,
    limit: int | None = None,
    progress: bool = True,
) -> ShrinkReport:
    """Copy ``src``'s photos (``limit`` per folder) into ``dst`` at ``short_side``."""
    check_folders(src, dst)
    photos = evenly_spread(image_files(src), limit)
    clashes = clashing_names(photos, src, dst)
    if clashes:
        raise UsageError("; ".join(clashes[:3]) + (" ..." if len(clashes) > 3 else ""))
    report = ShrinkReport()
    for text in (path for path in visible_files(src) if path.suffix.lower() in TEXT_SUFFIXES):
        atomic_write_bytes(dst / text.relative_to(src), text.read_bytes())
    for photo in tqdm(photos, desc="resizing", unit="photo", disable=not progress):
        target = destination(photo, src, dst)
        if target.exists():
            report.skipped += 1
            report.bytes += target.stat().st_size
            continue
        try:
            decoded = read_image(photo, classify=False)
        except ImageReadError as exc:
            report.failed.append(f"{photo}: {exc.reason}")
            continue
        pixels = decoded.pixels
        if pixels.dtype != "uint8":
            pixels = (pixels >> 8).astype("uint8")
        image = shrunk(Image.fromarray(pixels), short_side)
        save_image(image, target, "jpg", quality, root=dst)
        report.written += 1
        report.bytes += target.stat().st_size
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.shrink_data",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("src", type=Path, help="photo folder (any layout training reads)")
    parser.add_argument("dst", type=Path, help="where the copy goes (created; may exist)")
    parser.add_argument(
        "--short-side", type=int, default=144, help="short side of the copies in pixels"
    )
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the copies")
    parser.add_argument(
        "--limit", type=int, help="at most this many photos per folder, evenly spread by name"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.short_side < 16 or not 1 <= args.quality <= 100 or (args.limit or 1) < 1:
            raise UsageError("--short-side must be at least 16, --quality 1-100, --limit >= 1")
        report = shrink_folder(
            args.src, args.dst, args.short_side, args.quality, args.limit, args.progress
        )
        for failure in report.failed:
            print(f"error: {failure}", file=sys.stderr)
        print(
            f"{args.dst}: {report.written} photos written, {report.skipped} already there, "
            f"{len(report.failed)} failed; the photos take {report.bytes / 2**20:.1f} MiB"
        )
        return 1 if report.failed else 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
