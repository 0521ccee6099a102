"""How well ``common.tone`` tells toned black-and-white photos from colour photos.

    python benchmarks/toned_photos.py [--data ../shared/data/colorize-v2] [--splits holdout val]

For every photo of each split: its kind as it is (a colour photo should come out ``colour``;
``toned`` is a false positive unless the photo is itself black and white or toned, which
some of the collections hold: the flagged files are listed for a look), and the kind of one
synthetic toned version of its grey copy (``tests/tones.py``: sepia, Lab tints of 11 hues
and 2-32 chroma, tinted paper, scanner casts, with and without noise and JPEG), which should
come out ``toned`` (or ``grey``). The rule's thresholds were fitted on holdout; val checks
them. Writes benchmarks/results/toned_photos.json.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.tone import COLOUR, GREY, TONED, colour_kind  # noqa: E402
from tests.tones import random_toned  # noqa: E402

POINTER_BYTES = 1024  # colorize-v2 links v1 photos; a copy without links holds their paths


def open_rgb(path: Path) -> np.ndarray:
    """The photo as RGB; a small text file holding a relative path is followed."""
    if path.stat().st_size < POINTER_BYTES:
        target = path.read_bytes().decode("utf-8", "replace").strip()
        if target.startswith("."):
            path = (path.parent / target).resolve()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def measure(folder: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    kinds: Counter = Counter()
    flagged: list[str] = []
    toned_ok: dict[str, list[bool]] = defaultdict(list)
    unreadable = 0
    photos = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in photos:
        try:
            rgb = open_rgb(path)
        except OSError:
            unreadable += 1
            continue
        kind = colour_kind(rgb)
        kinds[kind] += 1
        if kind != COLOUR:
            flagged.append(f"{path.relative_to(folder)}: {kind}")
        grey = np.asarray(Image.fromarray(rgb).convert("L"))
        family, _, toned = random_toned(grey, rng)
        toned_ok[family].append(colour_kind(toned) in (TONED, GREY))
    colour_photos = sum(kinds.values())
    synthetic = [ok for oks in toned_ok.values() for ok in oks]
    return {
        "colour_photos": colour_photos,
        "unreadable": unreadable,
        "kinds": dict(kinds),
        "called_toned_or_grey": len(flagged),
        "called_toned_or_grey_rate": round(len(flagged) / max(colour_photos, 1), 4),
        "flagged": flagged,
        "synthetic_toned": len(synthetic),
        "synthetic_detected_rate": round(float(np.mean(synthetic)), 4),
        "synthetic_by_family": {
            family: {"photos": len(oks), "detected": round(float(np.mean(oks)), 3)}
            for family, oks in sorted(toned_ok.items())
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/colorize-v2")
    parser.add_argument("--splits", nargs="+", default=["holdout", "val"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/toned_photos.json")
    args = parser.parse_args()
    result = {}
    for i, split in enumerate(args.splits):
        folder = args.data / split
        if not folder.is_dir():
            print(f"error: {folder}: no such folder", file=sys.stderr)
            return 2
        result[split] = measure(folder, seed=i)
        r = result[split]
        print(
            f"{split}: {r['called_toned_or_grey']} of {r['colour_photos']} colour photos called "
            f"toned or grey ({r['called_toned_or_grey_rate']:.2%}); synthetic toned detected "
            f"{r['synthetic_detected_rate']:.2%} of {r['synthetic_toned']}"
        )
        for family, row in r["synthetic_by_family"].items():
            print(f"  {family}: {row['detected']:.0%} of {row['photos']}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
