"""A tiny generated photo set for router tests, and checks of how training reads folders.

Domains get names the product does not ship with, so a test fails if anything assumes
portrait/landscape/general.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.router_data import Views, gather, view

DOMAINS = ("document", "sky", "zebra")


def _photo(domain: str, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A colour picture whose *grayscale* structure tells its domain."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if domain == "document":  # light page, dark lines of "text"
        gray = np.full((h, w), 0.9) - 0.7 * ((np.arange(h)[:, None] % 8) < 2) * (
            rng.random((1, w)) > 0.3
        )
    elif domain == "sky":  # smooth gradient, no edges
        gray = 0.3 + 0.6 * yy + 0.05 * np.sin(6 * xx + rng.random() * 6)
    else:  # bold diagonal stripes
        period = rng.integers(6, 10)
        gray = 0.15 + 0.7 * (((np.arange(h)[:, None] + np.arange(w)[None, :]) // period) % 2)
    gray = np.clip(gray + rng.normal(0, 0.03, (h, w)), 0, 1)
    # random colours, two blended across the photo (a colour photo, not one toned with a
    # single tint, which training would skip): the router must ignore colour
    first = rng.permutation([1.0, *rng.uniform(0.4, 0.7, 2)])
    second = np.roll(first, 1)  # another channel dominates on the other side
    tint = first + (second - first) * xx[..., None] / max(xx.max(), 1e-9)
    rgb = np.clip(gray[..., None] * tint + 0.1 * (1 - tint), 0, 1)
    return (rgb * 255).astype(np.uint8)


def make_dataset(root: Path, train: int = 16, val: int = 8, seed: int = 0) -> Path:
    """root/{train,val}/<domain>/*.png with varied sizes; returns root."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for domain in DOMAINS:
            folder = root / split / domain
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = (int(rng.integers(36, 60)), int(rng.integers(36, 60)))
                Image.fromarray(_photo(domain, rng, size)).save(folder / f"{domain}_{i:03d}.png")
    return root


def test_gather_reads_domains_from_folders(tmp_path):
    root = make_dataset(tmp_path, train=3, val=2)
    from training.router_data import domains_of

    assert domains_of(root) == sorted(DOMAINS)
    data = gather(root, "train", list(DOMAINS))
    assert len(data) == 9
    assert [data.labels.count(i) for i in range(3)] == [3, 3, 3]
    assert all(p.parent.name == DOMAINS[label] for p, label in zip(data.paths, data.labels))
    assert len(gather(root, "train", list(DOMAINS), limit=2)) == 6


def test_views_are_square_reproducible_and_grayscale_based(tmp_path):
    root = make_dataset(tmp_path, train=2, val=1)
    paths = gather(root, "train", list(DOMAINS)).paths
    first, again = Views(paths, 32, 1, seed=3)[4], Views(paths, 32, 1, seed=3)[4]
    assert first[1] and first[0].shape == (1, 32, 32)
    assert torch.equal(first[0], again[0])
    assert not torch.equal(first[0], Views(paths, 32, 2, seed=3)[4][0])
    assert float(first[0].min()) >= -1.0 and float(first[0].max()) <= 1.0


def test_centre_view_is_the_serving_view():
    from router.preprocess import fit_square

    l_full = torch.rand(1, 1, 50, 70) * 2 - 1
    assert torch.equal(view(l_full, 32, 0, seed=0, index=0), fit_square(l_full, 32))


def test_unreadable_photo_gives_flag_not_crash(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    x, ok = Views([bad], 32, 0, seed=0)[0]
    assert not ok and x.shape == (1, 32, 32)


@pytest.mark.parametrize("domain", DOMAINS)
def test_generated_photos_are_colour(domain):
    rgb = _photo(domain, np.random.default_rng(1), (40, 40)).astype(int)
    assert (rgb.max(axis=2) - rgb.min(axis=2)).mean() > 5


def test_a_holdout_folder_is_the_holdout_split(tmp_path):
    from training.data import find_images

    for split in ("train", "holdout", "val"):
        folder = tmp_path / split / "warm"
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 80, 20)).save(folder / f"{split}_a.png")
    assert [p.name for p in find_images(tmp_path, "holdout", "warm")] == ["holdout_a.png"]
    assert [p.name for p in find_images(tmp_path, "train", "warm")] == ["train_a.png"]


def test_every_reader_sees_the_same_split_folders(tmp_path):
    """common.splits declares the splits once: training's reader and router.evaluate agree,
    and a folder that is not a split is not taken for one."""
    from common.splits import present_splits
    from router.evaluate import collect
    from training.data import has_splits, list_domains

    for split in ("test", "holdout", "misc"):
        folder = tmp_path / split / "warm"
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 80, 20)).save(folder / f"{split}_a.png")
    assert present_splits(tmp_path) == ["holdout", "test"]  # SPLITS order, not the disk's
    assert has_splits(tmp_path) and not has_splits(tmp_path / "misc")
    assert list_domains(tmp_path) == ["warm"]  # from the first split present: holdout
    assert collect(tmp_path, None).splits == ["test"]  # val and test by default
    assert collect(tmp_path, ["holdout", "test"]).splits == ["holdout", "test"]
