"""Training data from folders of colour photos.

Two layouts are understood:
- split/domain folders, like ``colorize-v1``: ``DIR/train/<domain>/*``, ``DIR/val/<domain>/*``;
- any plain folder of images (searched recursively); a fixed 5% is held out for validation.

Settings chosen after training (the router's calibration and threshold, the specialists'
chroma gain, the judge's calibration) are fitted on the ``holdout`` split, never on val: a
``DIR/holdout/<domain>/*`` folder where the data has one (``colorize-v2``); otherwise, in the
split layout, the same fixed ~5% of ``train`` (chosen by a hash of the file name), and in the
plain layout the held-out 5% itself.

Grayscale, toned (sepia, tinted) and unreadable files cannot teach colour: they are skipped
and counted.
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from tqdm import tqdm

from common.images import ImageReadError, image_files, read_image
from common.splits import HOLDOUT, present_splits

T = TypeVar("T")
PLAIN_VAL_PERCENT = 5


def has_splits(root: Path) -> bool:
    return bool(present_splits(root))


def list_domains(root: str | Path) -> list[str]:
    """Domain names = the subfolder names (under ``train/`` when the data has splits)."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    if has_splits(root) and not (root / "train").is_dir():
        base = root / present_splits(root)[0]
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_holdout_folder(root: str | Path) -> bool:
    """Whether the data brings its own ``holdout/`` split (else it is carved out of train)."""
    return (Path(root) / HOLDOUT).is_dir()


def in_holdout(root: str | Path, path: Path) -> bool:
    """Whether ``path`` (found under ``root``) is a holdout photo: inside the data's own
    ``holdout/`` folder where it has one, else one of the fixed ~5% chosen by file name."""
    if not has_holdout_folder(root):
        return is_held_out(path)
    folder = Path(os.path.abspath(Path(root) / HOLDOUT))
    return folder in Path(os.path.abspath(path)).parents


def is_held_out(path: Path) -> bool:
    """Whether a photo belongs to the fixed held-out ~5%, decided by its file name alone."""
    digest = hashlib.sha1(path.name.encode()).digest()
    return digest[0] % 100 < PLAIN_VAL_PERCENT


def find_images(root: str | Path, split: str = "train", domain: str | None = None) -> list[Path]:
    """Image files of one split (and domain) in either layout; ``split="holdout"`` gives the
    held-out part of train that post-training settings are fitted on."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    if has_splits(root) and split == HOLDOUT and not has_holdout_folder(root):
        return [p for p in find_images(root, "train", domain) if is_held_out(p)]
    if has_splits(root):
        folder = root / split if domain is None else root / split / domain
        return image_files(folder) if folder.is_dir() else []
    folder = root if domain is None else root / domain
    if not folder.is_dir():
        return []
    return [p for p in image_files(folder) if is_held_out(p) == (split != "train")]


def evenly_spaced(paths: list[T], count: int) -> list[T]:
    """At most ``count`` paths spread over the sorted list (not just the first ones)."""
    if len(paths) <= count:
        return paths
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]


def load_rgb(path: Path) -> Image.Image:
    """Decode an image as upright RGB with serving's decoder (``common.images.read_image``;
    raises its ImageReadError for broken files)."""
    return Image.fromarray(read_image(path, classify=False).pixels).convert("RGB")


@dataclass
class ScanResult:
    usable: list[Path] = field(default_factory=list)
    grayscale: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.usable)} colour photos, skipped {len(self.grayscale)} grayscale or toned "
            f"and {len(self.unreadable)} unreadable"
        )


def scan_images(paths: list[Path], progress: bool = True) -> ScanResult:
    """Sort files into usable colour photos, grayscale ones and unreadable ones."""
    result = ScanResult()
    for path in tqdm(paths, desc="checking images", disable=not progress, leave=False):
        try:
            photo = read_image(path)  # its already_colour: not grey, not toned (common.tone)
        except ImageReadError:
            result.unreadable.append(path)
            continue
        (result.usable if photo.already_colour else result.grayscale).append(path)
    return result


def _resize_short_side(image: Image.Image, short: int) -> Image.Image:
    w, h = image.size
    scale = short / min(w, h)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


class ColourPhotos(Dataset):
    """Square RGB crops in [0, 1], shape (3, size, size).

    Training crops are random (scale jitter, position, horizontal flip) but drawn from a
    generator seeded by (seed, epoch, index), so a resumed run sees exactly the same data.
    """

    def __init__(
        self, paths: list[Path], size: int, train: bool, seed: int = 0, max_zoom: float = 1.25
    ) -> None:
        self.paths = list(paths)
        self.size = size
        self.train = train
        self.seed = seed
        self.max_zoom = max_zoom
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_rgb(self.paths[index])
        if self.train:
            rng = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFFFFFF)
            zoom = 1.0 + float(torch.rand((), generator=rng)) * (self.max_zoom - 1.0)
            image = _resize_short_side(image, round(self.size * zoom))
            w, h = image.size
            left = int(torch.randint(0, w - self.size + 1, (), generator=rng))
            top = int(torch.randint(0, h - self.size + 1, (), generator=rng))
            flip = bool(torch.rand((), generator=rng) < 0.5)
        else:
            image = _resize_short_side(image, self.size)
            w, h = image.size
            left, top, flip = (w - self.size) // 2, (h - self.size) // 2, False
        image = image.crop((left, top, left + self.size, top + self.size))
        if flip:
            image = ImageOps.mirror(image)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
