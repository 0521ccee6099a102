"""Before/after grid: scikit-image's camera (a real black-and-white photo) and one val photo
of every source tag, coloured by two weights folders, beside the truth.

    python benchmarks/source_grid.py --data ../shared/data/colorize-v2 \
        --before weights --after runs/v2-weights --out docs/source_grid.jpg

Each val photo is turned grey first (its lightness), so "truth" is what a perfect colorizer
would give; the camera has no truth (its column stays grey). Photos are the first of each
``domain/source`` in sorted order (no choosing of flattering ones).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from skimage import data as skdata

from common.links import follow_link_file
from serve import Colorizer
from training.evaluate.photos import find_items
from training.evaluate.quality import save_comparison_grid
from training.evaluate.realism import source_tag

CELL = 160


def first_of_each_source(root: Path, split: str) -> list[Path]:
    items, _ = find_items(root, split)
    seen, chosen = set(), []
    for item in items:
        key = (item.domain, source_tag(item.path.name))
        if key not in seen:
            seen.add(key)
            chosen.append(item.path)
    return chosen


def cell(image: Image.Image) -> torch.Tensor:
    padded = ImageOps.pad(image.convert("RGB"), (CELL, CELL), color="white")
    return torch.from_numpy(np.array(padded)).permute(2, 0, 1).float() / 255.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--before", type=Path, required=True, help="weights folder (before)")
    p.add_argument("--after", type=Path, required=True, help="weights folder (after)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    before, after = Colorizer.from_weights(args.before), Colorizer.from_weights(args.after)
    photos = [("camera", Image.fromarray(skdata.camera()), None)]
    for path in first_of_each_source(args.data, args.split):
        with Image.open(follow_link_file(path)) as image:
            truth = ImageOps.exif_transpose(image).convert("RGB")
        photos.append((path.name, truth.convert("L"), truth))
    columns: dict[str, list[torch.Tensor]] = {"grey input": [], "before": [], "after": []}
    columns["truth"] = []
    for name, grey, truth in photos:
        columns["grey input"].append(cell(grey))
        columns["before"].append(cell(before.colorize(grey).image))
        columns["after"].append(cell(after.colorize(grey).image))
        columns["truth"].append(cell(truth if truth is not None else grey))
        print(name)
    save_comparison_grid({k: torch.stack(v) for k, v in columns.items()}, args.out)
    print(f"wrote {args.out}: {', '.join(name for name, _, _ in photos)}")


if __name__ == "__main__":
    main()
