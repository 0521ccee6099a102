import numpy as np
import pytest
import torch

from common.lab import lab_to_rgb
from training.evaluate.realism import MIN_FRECHET_PHOTOS, chroma_stats, frechet_distance, source_tag


def _lab_image(a: float, b: float, size: int = 8) -> torch.Tensor:
    lab = torch.tensor([60.0, a, b]).view(3, 1, 1).expand(3, size, size)
    return lab_to_rgb(lab.clone())


def test_a_grey_photo_has_no_hue():
    assert chroma_stats(torch.full((3, 8, 8), 0.5)) == {"hue_entropy": None, "brown_share": None}


def test_brown_is_all_brown_and_one_hue():
    stats = chroma_stats(_lab_image(15.0, 30.0))  # hue about 63 degrees: brown/orange
    assert stats["brown_share"] == pytest.approx(1.0)
    assert stats["hue_entropy"] == pytest.approx(0.0)


def test_two_hues_are_one_bit_and_share_by_chroma():
    image = torch.cat([_lab_image(15.0, 30.0), _lab_image(0.0, -40.0)], dim=2)  # + blue
    stats = chroma_stats(image)
    assert stats["hue_entropy"] == pytest.approx(1.0, abs=1e-3)
    brown_chroma, blue_chroma = np.hypot(15, 30), 40.0
    assert stats["brown_share"] == pytest.approx(
        brown_chroma / (brown_chroma + blue_chroma), abs=0.02
    )


def test_frechet_distance_grows_with_a_shift_and_needs_enough_photos():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 8))
    same = frechet_distance(real, rng.normal(size=(200, 8)))
    shifted = frechet_distance(real, rng.normal(size=(200, 8)) + 2.0)
    assert same is not None and shifted is not None
    assert same < 1.0 < 8 * 4 * 0.9 < shifted  # ||shift||^2 = 8 * 2^2 = 32
    assert frechet_distance(real[: MIN_FRECHET_PHOTOS - 1], real[: MIN_FRECHET_PHOTOS - 1]) is None


def test_source_tag_is_the_file_name_prefix():
    assert source_tag("val/portrait/s40_applauding_001.jpg") == "s40"
    assert source_tag("camvid_0001TP_006690.jpg") == "camvid"
    assert source_tag("plain.jpg") == "untagged"
