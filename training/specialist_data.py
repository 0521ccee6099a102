"""A specialist run's photos: the training and validation sets, and the fixed sample photos."""

from pathlib import Path

import torch

from common.cli import UsageError
from common.images import image_files
from training.data import (
    PLAIN_VAL_PERCENT,
    ColourPhotos,
    find_images,
    has_splits,
    list_domains,
    scan_images,
)
from training.specialist_config import TrainConfig

LAYOUTS = (
    "expected DIR/<domain>/*.jpg, DIR/train/<domain>/ + DIR/val/<domain>/, "
    "or a plain folder of photos"
)


def domain_folder(data: str | Path, domain: str | None) -> str | None:
    """The subfolder ``find_images`` should read for ``domain``: the domain itself when the
    data has such a folder, None (every photo) for a plain folder of one domain's photos."""
    if domain is None:
        return None
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"{root}: no such data folder")
    found = list_domains(root)
    if domain in found:
        return domain
    if has_splits(root) or any(image_files(root / name) for name in found):
        raise UsageError(
            f"{root}: no {domain!r} domain folder (it has {', '.join(found) or 'none'}); " + LAYOUTS
        )
    print(f"{root}: no domain folders; training the {domain!r} specialist on all its photos")
    return None


def load_data(config: TrainConfig) -> tuple[ColourPhotos, ColourPhotos, dict]:
    """(train, val, what the checkpoint records about them); refuses data it cannot train on."""
    folder = domain_folder(config.data, config.domain)
    train_paths = find_images(config.data, "train", folder)
    val_paths = find_images(config.data, config.val_split, folder)
    if not train_paths:
        where = f"{config.data} (domain {config.domain})" if config.domain else config.data
        raise UsageError(f"{where}: no training images found; {LAYOUTS}")
    train_scan = scan_images(train_paths, progress=config.progress)
    val_scan = scan_images(val_paths, progress=config.progress)
    if len(train_scan.usable) < config.batch_size:
        raise UsageError(
            f"{config.data}: {train_scan.summary()}; need at least --batch-size "
            f"({config.batch_size}) colour photos to train"
        )
    print(f"train: {train_scan.summary()}", flush=True)
    print(f"{config.val_split}: {val_scan.summary()}", flush=True)
    if not val_scan.usable:
        print(f"warning: {no_validation(config.data, len(train_paths))}", flush=True)
    info = {
        "root": str(config.data),
        "domain": config.domain,
        "train_images": len(train_scan.usable),
        "val_images": len(val_scan.usable),
        "skipped_grayscale": len(train_scan.grayscale) + len(val_scan.grayscale),
        "skipped_unreadable": len(train_scan.unreadable) + len(val_scan.unreadable),
    }
    train = ColourPhotos(train_scan.usable, config.size, train=True, seed=config.seed)
    val = ColourPhotos(val_scan.usable[: config.num_val], config.size, train=False)
    return train, val, info


def no_validation(data: str | Path, photos: int) -> str:
    """Why a run has no validation photos, and what to do about it."""
    if has_splits(data):
        how = "put some photos in its val/<domain>/ folder"
    else:
        how = (
            f"a fixed {PLAIN_VAL_PERCENT}% of a folder's photos, chosen by file name, is held "
            f"out and none of these {photos} was; add photos, or put some in "
            "DIR/val/<domain>/ (and the rest in DIR/train/<domain>/)"
        )
    return f"{data}: no validation photos, so no validation metrics or samples ({how})"


def fixed_samples(dataset: ColourPhotos, count: int) -> torch.Tensor:
    """Centre crops of evenly spaced photos: the same ones at every evaluation."""
    if len(dataset) == 0:
        return torch.empty(0)
    view = ColourPhotos(dataset.paths, dataset.size, train=False)
    picks = torch.linspace(0, len(view) - 1, min(count, len(view))).round().long().tolist()
    return torch.stack([view[i] for i in picks])
