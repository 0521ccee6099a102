"""Fit the per-photo colour restraint (``serve.restraint``) on held-out photos.

    python -m training.ship.fit_restraint --data ../shared/data/colorize-v2 --weights weights

Colours every held-out colour photo with the served system (routing, judge, chroma gains;
no restraint), measures its PSNR gain over the gray photo at strengths 0, 0.1 ... 1 at
model resolution, and writes those gain curves with the photos' router embeddings to
``WEIGHTS/restraint.safetensors``, tied by hash to the router, specialists and judge it
measured (serving ignores it, with a note, once any of them changes). Run it last, after
``training.ship.fit_chroma`` and ``training.ship.calibrate_judge``. It prints what a photo's own
neighbours would have given it, by ``--folds``-fold cross-validation over the held-out
photos (each photo's strength chosen from the other folds only), per domain and source tag.
"""

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.cli import UsageError, run_command
from common.images import ImageReadError, Photo, read_image
from common.lab import join_lab, split_lab
from serve.colorizer import Colorizer
from serve.restraint import DEFAULT_K, RESTRAINT_FILE, Restraint, save_restraint
from serve.weights import WeightsError, locate_weights, weights_fingerprints
from specialists.metrics import psnr
from training.data import HOLDOUT, find_images, list_domains

STRENGTHS = tuple(round(0.1 * i, 1) for i in range(11))  # 0 (gray) .. 1 (the model's colour)


def truth_at(photo: Photo, shape: tuple[int, int]) -> torch.Tensor:
    """The colour photo as (1, 3, h, w) floats in [0, 1] at the model's resolution."""
    rgb = torch.from_numpy(photo.pixels[..., :3].astype(np.float32) / photo.max_value)
    rgb = rgb.permute(2, 0, 1).unsqueeze(0)
    return F.interpolate(rgb, size=shape, mode="bilinear", antialias=True, align_corners=False)


def gain_curve(ab: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """PSNR gain (dB) over the gray photo of the true L + ``ab`` (2, h, w) at each of
    STRENGTHS."""
    l_norm, _ = split_lab(truth.clamp(0.0, 1.0))
    scaled = torch.stack([(ab * s).clamp(-1.0, 1.0) for s in STRENGTHS])
    values = psnr(join_lab(l_norm.expand(len(STRENGTHS), -1, -1, -1), scaled), truth)
    return (values - values[0]).numpy()


@torch.inference_mode()
def measure(
    colorizer: Colorizer, paths: Sequence[Path], batch_size: int = 16, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Path], list[str]]:
    """(embeddings, gain curves, the photos measured, unreadable or grey ones with why)."""
    embeddings, curves, used, skipped = [], [], [], []
    for start in tqdm(range(0, len(paths), batch_size), disable=not progress, unit="batch"):
        photos, names = [], []
        for path in paths[start : start + batch_size]:
            try:
                photo = read_image(path)
            except ImageReadError as exc:
                skipped.append(str(exc))
                continue
            if photo.pixels.ndim != 3:
                skipped.append(f"{path}: a gray photo (no true colour to measure against)")
                continue
            photos.append(photo)
            names.append(path)
        if not photos:
            continue
        for path, photo, pick in zip(names, photos, colorizer.predict(photos)):
            curves.append(gain_curve(pick.ab, truth_at(photo, pick.ab.shape[-2:])))
            embeddings.append(pick.decision.embedding)
            used.append(path)
    if not used:
        return np.zeros((0, 0), np.float32), np.zeros((0, len(STRENGTHS))), used, skipped
    return np.stack(embeddings), np.stack(curves), used, skipped


def cross_validate(
    embeddings: np.ndarray, gains: np.ndarray, k: int, folds: int, seed: int = 0
) -> np.ndarray:
    """Each photo's gain at the strength its neighbours in the other folds choose."""
    fold = np.random.default_rng(seed).integers(0, folds, len(gains))
    got = np.zeros(len(gains), np.float32)
    for f in range(folds):
        test, train = fold == f, fold != f
        if not test.any() or not train.any():
            continue
        table = Restraint(embeddings[train], gains[train], np.array(STRENGTHS), k)
        chosen = table.expected_gains(embeddings[test]).argmax(axis=1)
        got[test] = gains[test][np.arange(int(test.sum())), chosen]
    return got


def summary(paths: Sequence[Path], gains: np.ndarray, restrained: np.ndarray) -> dict:
    """Mean gain over gray at full strength and with restraint, per domain and source tag."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        groups["overall"].append(i)
        groups[path.parent.name].append(i)
        groups[f"{path.parent.name}/{path.name.split('_')[0]}"].append(i)
    full = STRENGTHS.index(1.0)
    return {
        name: {
            "photos": len(rows),
            "full_strength_db": float(gains[rows, full].mean()),
            "restrained_db": float(restrained[rows].mean()),
        }
        for name, rows in sorted(groups.items())
    }


def fit(
    data: Path,
    weights: Path,
    k: int = DEFAULT_K,
    folds: int = 5,
    split: str = HOLDOUT,
    batch_size: int = 16,
    progress: bool = True,
) -> dict:
    """Measure, cross-validate and write ``weights/restraint.safetensors``; the figures."""
    paths = [path for domain in list_domains(data) for path in find_images(data, split, domain)]
    if not paths:
        raise UsageError(f"{data}: no photos in its {split!r} split")
    try:
        folder = locate_weights(weights)
        colorizer = Colorizer.from_weights(weights, restraint=False)
    except WeightsError as exc:
        raise UsageError(str(exc)) from None
    embeddings, gains, used, skipped = measure(colorizer, paths, batch_size, progress)
    if len(used) < 2:
        raise UsageError(f"{data}: fewer than 2 colour photos in its {split!r} split")
    figures = summary(used, gains, cross_validate(embeddings, gains, k, folds))
    info = {
        "checkpoints": weights_fingerprints(folder),
        "data": str(data),
        "split": split,
        "photos": len(used),
        "k": k,
        "cross_validated": figures,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_restraint(weights / RESTRAINT_FILE, Restraint(embeddings, gains, STRENGTHS, k, info))
    return {"figures": figures, "skipped": skipped, "photos": len(used)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship.fit_restraint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, type=Path, help="data folder with a holdout split")
    parser.add_argument("--weights", required=True, type=Path, help="weights folder to add it to")
    parser.add_argument(
        "--k", type=int, default=DEFAULT_K, help="held-out neighbours per photo (default: 20)"
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds for the figures (default: 5)"
    )
    parser.add_argument("--split", default=HOLDOUT, help="split to fit on (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="photos per forward pass")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    return run_command(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """Fit, write and print the figures (a problem the user must fix is a UsageError)."""
    if args.k < 1 or args.folds < 2:
        raise UsageError("--k must be at least 1 and --folds at least 2")
    result = fit(
        args.data, args.weights, args.k, args.folds, args.split, args.batch_size, args.progress
    )
    for reason in result["skipped"]:
        print(f"skipped {reason}", file=sys.stderr)
    print(f"PSNR gain over gray on {result['photos']} {args.split} photos ({args.folds}-fold):")
    print(f"{'':>24} {'photos':>7} {'full strength':>14} {'restrained':>11}")
    for name, row in result["figures"].items():
        print(
            f"{name:>24} {row['photos']:>7} {row['full_strength_db']:>+13.2f}  "
            f"{row['restrained_db']:>+10.2f}"
        )
    print(f"wrote {args.weights / RESTRAINT_FILE}; serving uses it from now on")


if __name__ == "__main__":
    sys.exit(main())
