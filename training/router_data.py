"""Router training data: labelled photos, their augmented views, and a cache of the frozen trunk.

The frozen part of the backbone is the expensive part on a CPU, and it never changes, so
its output for every view of every photo is computed once and stored in shards (written
atomically, so a killed run resumes at the last complete shard).
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.cli import UsageError
from common.files import atomic_write_bytes
from common.images import ImageReadError
from router.preprocess import fit_square, load_l_norm, resize_short_side
from training.data import (
    HOLDOUT,
    PLAIN_VAL_PERCENT,
    find_images,
    has_holdout_folder,
    has_splits,
    in_holdout,
    list_domains,
)
from training.router_config import RouterTrainConfig

SHARD = 512


@dataclass
class Labelled:
    """Photos of one split with their domain numbers."""

    paths: list[Path]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)


def gather(root: Path, split: str, domains: list[str], limit: int | None = None) -> Labelled:
    """All photos of ``split``, domain by domain (at most ``limit`` per domain, evenly spread)."""
    paths, labels = [], []
    for label, domain in enumerate(domains):
        found = find_images(root, split, domain)
        if limit and len(found) > limit:
            found = [found[round(i * len(found) / limit)] for i in range(limit)]
        paths += found
        labels += [label] * len(found)
    return Labelled(paths, labels)


def domains_of(root: Path) -> list[str]:
    return list_domains(root)


def view(l_full: torch.Tensor, size: int, view_id: int, seed: int, index: int) -> torch.Tensor:
    """View 0 is the centre square (what the router sees when serving); other views are
    random crops with scale jitter, flips and mild tone changes (old prints vary in contrast).
    Each view is fixed by (seed, view, index), so a rerun caches the same thing.
    """
    if view_id == 0:
        return fit_square(l_full, size)
    rng = torch.Generator().manual_seed((seed * 1_000_003 + view_id * 100_003 + index) & 0x7FFFFFFF)
    u = torch.rand(6, generator=rng)
    resized = resize_short_side(l_full.float(), round(size * (1.0 + 0.3 * float(u[0]))))
    h, w = resized.shape[-2:]
    top, left = int(u[1] * (h - size + 1)), int(u[2] * (w - size + 1))
    crop = resized[..., top : top + size, left : left + size]
    if u[3] < 0.5:
        crop = crop.flip(-1)
    contrast, shift = 0.8 + 0.4 * float(u[4]), 0.2 * (float(u[5]) - 0.5)
    mean = crop.mean()
    return ((crop - mean) * contrast + mean + shift).clamp(-1.0, 1.0)


class Views(Dataset):
    """(view (1, S, S), readable flag) for each photo; unreadable ones give zeros."""

    def __init__(self, paths: list[Path], size: int, view_id: int, seed: int) -> None:
        self.paths, self.size, self.view_id, self.seed = paths, size, view_id, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            l_full = load_l_norm(self.paths[i])
        except ImageReadError:
            return torch.zeros(1, self.size, self.size), False
        return view(l_full, self.size, self.view_id, self.seed, i)[0], True


def _cache_key(
    spec: dict, paths: list[Path], size: int, train_blocks: int, view_id: int, seed: int
) -> str:
    description = {
        "spec": spec,
        "paths": [str(p) for p in paths],
        "size": size,
        "train_blocks": train_blocks,
        "view": view_id,
        "seed": seed if view_id else None,
    }
    return hashlib.sha1(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


@torch.inference_mode()
def trunk_outputs(
    net: torch.nn.Module,
    paths: list[Path],
    *,
    name: str,
    folder: Path,
    size: int,
    train_blocks: int,
    view_id: int,
    seed: int,
    batch_size: int,
    device: str,
    workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(frozen-trunk outputs as float16, readable mask) for one view of every photo, cached."""
    key = _cache_key(net.spec, paths, size, train_blocks, view_id, seed)
    folder.mkdir(parents=True, exist_ok=True)
    shards = [
        folder / f"{name}-view{view_id}-{key}-{s:04d}.safetensors"
        for s in range(0, len(paths), SHARD)
    ]
    outputs, masks = [], []
    done = 0
    for shard in shards:
        try:
            tensors = load(shard.read_bytes())
        except (OSError, SafetensorError):
            break
        outputs.append(tensors["trunk"])
        masks.append(tensors["ok"])
        done += len(tensors["ok"])
    net.eval()
    bar = tqdm(total=len(paths), initial=done, desc=f"caching {name} view {view_id}", unit="img")
    for start in range(done, len(paths), SHARD):
        subset = paths[start : start + SHARD]
        loader = DataLoader(
            _Offset(Views(paths, size, view_id, seed), start, len(subset)),
            batch_size=batch_size,
            num_workers=workers,
        )
        parts, oks = [], []
        for x, ok in loader:
            parts.append(net.trunk(x.to(device), train_blocks).half().cpu().contiguous())
            oks.append(ok)
            bar.update(len(ok))
        trunk, ok = torch.cat(parts), torch.cat(oks)
        atomic_write_bytes(shards[start // SHARD], save({"trunk": trunk, "ok": ok}))
        outputs.append(trunk)
        masks.append(ok)
    bar.close()
    return torch.cat(outputs), torch.cat(masks)


class _Offset(Dataset):
    """A window of another dataset (keeps the photo index, so views stay reproducible)."""

    def __init__(self, base: Dataset, start: int, length: int) -> None:
        self.base, self.start, self.length = base, start, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        return self.base[self.start + i]


def check_data(cfg: RouterTrainConfig) -> tuple[Path, list[str], Labelled, Labelled]:
    """(root, domains, train, val) of ``cfg.data``; refuses data a router cannot learn from."""
    root = Path(cfg.data)
    if not root.is_dir():
        raise UsageError(f"{root}: no such data folder")
    domains = domains_of(root)
    if len(domains) < 2:
        raise UsageError(f"{root}: need at least two domain folders, found {domains}")
    train = gather(root, "train", domains, cfg.max_per_domain)
    if cfg.calibrate_on == HOLDOUT and has_holdout_folder(root):
        # the data's own holdout split rides along with train (same views and cache) and is
        # masked out of training by calibration_rows
        holdout = gather(root, HOLDOUT, domains)
        train = Labelled(train.paths + holdout.paths, train.labels + holdout.labels)
    val = gather(root, "val", domains)
    for split, data in (("train", train), ("val", val)):
        counts = np.bincount(np.asarray(data.labels, dtype=np.int64), minlength=len(domains))
        empty = [d for d, c in zip(domains, counts) if c == 0]
        if empty:
            layout = (
                ""
                if has_splits(root)
                else f" (DIR/<domain>/ folders keep a fixed {PLAIN_VAL_PERCENT}% of their photos, "
                "chosen by file name, for validation: add photos, or put them in "
                "DIR/train/<domain>/ and DIR/val/<domain>/)"
            )
            raise UsageError(f"{root}: no {split} photos for domain(s) {', '.join(empty)}{layout}")
    return root, domains, train, val


def calibration_rows(
    cfg: RouterTrainConfig, root: Path, domains: list[str], train_set: Labelled
) -> torch.Tensor:
    """Mask of the training photos kept out of training to calibrate on (none with val)."""
    if cfg.calibrate_on == "val":
        return torch.zeros(len(train_set.paths), dtype=torch.bool)
    held = torch.tensor([in_holdout(root, p) for p in train_set.paths], dtype=torch.bool)
    labels = torch.tensor(train_set.labels)
    missing = [d for i, d in enumerate(domains) if not bool(held[labels == i].any())]
    if missing or held.all():
        raise UsageError(
            f"{root}: no training photos held out for {', '.join(missing) or 'training'}; "
            "use --calibrate-on val"
        )
    return held
