"""Toned scans (sepia, tints, casts) are black-and-white photos, for serving and training alike."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from common.images import from_pil
from common.tone import COLOUR, GREY, TONED, colour_kind
from tests import tones
from training.data import scan_images

GREYS = ("camera", "moon", "coins", "page")  # scikit-image's black-and-white photos
COLOURS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")
TONINGS = {
    "sepia 0.3": lambda g: tones.sepia(g, 0.3),
    "sepia 0.6": lambda g: tones.sepia(g, 0.6),
    "selenium": lambda g: tones.lab_tint(g, 45, 12),
    "warm tone": lambda g: tones.lab_tint(g, 75, 18),
    "faint cyanotype": lambda g: tones.lab_tint(g, 250, 6, fade=False),
    "cream paper": lambda g: tones.paper(g, (1, 0.95, 0.82)),
    "scanner cast": lambda g: tones.cast(g, (3, 1, -2)),
}


def _noisy_jpeg(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    return tones.jpeg(tones.noise(rgb, 2.0, np.random.default_rng(seed)), 70)


@pytest.mark.parametrize("name", COLOURS)
def test_colour_photos_are_colour(name):
    assert colour_kind(getattr(skimage.data, name)()) == COLOUR


@pytest.mark.parametrize("toning", sorted(TONINGS))
@pytest.mark.parametrize("name", GREYS)
def test_toned_grey_photos_are_toned_with_noise_and_jpeg(name, toning):
    grey = getattr(skimage.data, name)()
    toned = TONINGS[toning](grey)
    assert colour_kind(toned) == TONED
    assert colour_kind(_noisy_jpeg(toned)) == TONED
    assert colour_kind(np.repeat(grey[..., None], 3, axis=2)) == GREY


def test_sixteen_bit_arrays_are_judged_alike():
    toned = TONINGS["sepia 0.6"](skimage.data.camera())
    assert colour_kind(toned.astype(np.uint16) * 257) == TONED
    colour = skimage.data.coffee()
    assert colour_kind(colour.astype(np.uint16) * 257) == COLOUR


def test_serving_treats_a_toned_scan_as_black_and_white():
    photo = from_pil(Image.fromarray(_noisy_jpeg(TONINGS["sepia 0.6"](skimage.data.camera()))))
    assert not photo.already_colour
    assert "toned photo: treated as black-and-white" in photo.notes
    assert not any("already in colour" in note for note in photo.notes)
    colour = from_pil(Image.fromarray(skimage.data.coffee()))
    assert colour.already_colour and not any("toned" in note for note in colour.notes)


def test_training_skips_toned_photos(tmp_path):
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "colour.png")
    Image.fromarray(TONINGS["cream paper"](skimage.data.moon())).save(tmp_path / "toned.png")
    Image.fromarray(skimage.data.camera()).convert("RGB").save(tmp_path / "grey.png")
    scan = scan_images(sorted(tmp_path.iterdir()), progress=False)
    assert [p.name for p in scan.usable] == ["colour.png"]
    assert sorted(p.name for p in scan.grayscale) == ["grey.png", "toned.png"]
