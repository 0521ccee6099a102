"""PNG writing: ``common.images.write_png`` against Pillow's ``compress_level=1``.

    python benchmarks/bench_png.py FOLDER [--repeats 2]

FOLDER holds colourized outputs (e.g. ``python -m serve.colorize PHOTOS -o FOLDER``); each is
encoded in memory both ways (milliseconds and kilobytes per photo) and checked to decode
back to the same pixels.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.images import write_png  # noqa: E402


def pillow(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def ours(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    write_png(buffer, image)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    images = []
    for path in sorted(args.folder.rglob("*.png")):
        with Image.open(path) as image:
            images.append(image.convert("RGBA" if "A" in image.mode else "RGB"))
    if not images:
        sys.exit(f"bench_png: no PNG files in {args.folder}")
    for image in images:
        written = np.asarray(Image.open(io.BytesIO(ours(image))))
        if not np.array_equal(written, np.asarray(image)):
            sys.exit("bench_png: write_png did not round-trip a photo")
    print(f"{len(images)} photos, {np.mean([i.width * i.height for i in images]):.0f} px mean")
    for _ in range(args.repeats):
        for name, encode in (("pillow compress_level=1", pillow), ("write_png", ours)):
            start = time.perf_counter()
            size = sum(len(encode(image)) for image in images)
            ms = 1000 * (time.perf_counter() - start) / len(images)
            print(f"{name}: {ms:.2f} ms, {size / len(images) / 1000:.1f} kB per photo")


if __name__ == "__main__":
    main()
