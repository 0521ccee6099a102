"""Shared fixtures: small generated photo folders (no ../shared needed)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PALETTES = {"warm": (200, 90, 60), "cool": (50, 110, 190)}


def make_photo(rng: np.random.Generator, rgb: tuple[int, int, int], size: int = 48) -> Image.Image:
    """A textured colour photo whose hue depends on its domain and brightness on position."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    shade = 0.45 + 0.5 * (0.6 * xx + 0.4 * yy) + rng.normal(0, 0.04, (size, size))
    pixels = np.clip(np.array(rgb)[None, None, :] * shade[..., None], 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def make_split_folder(root: Path, per_domain: tuple[int, int] = (16, 4), size: int = 48) -> Path:
    """``root/{train,val}/{warm,cool}/*.png``, like colorize-v1."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "val"), per_domain):
        for domain, rgb in PALETTES.items():
            folder = root / split / domain
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                make_photo(rng, rgb, size).save(folder / f"{domain}_{i:03d}.png")
    return root


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    return make_split_folder(tmp_path / "data")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use tiny tensors: one thread beats two contending on a small, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but real weights folder (router, specialists, judge) for serving tests."""
    from tests.serve_support import make_weights

    return make_weights(tmp_path_factory.mktemp("weights"))
