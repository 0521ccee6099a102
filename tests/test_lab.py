import numpy as np
import pytest
import torch
from skimage import color, data

from common import lab


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[::4, ::4].astype(np.float64) / 255.0


def test_rgb_to_lab_matches_skimage(photo):
    ours = lab.rgb_to_lab(torch.from_numpy(photo).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, color.rgb2lab(photo), atol=1e-3)


def test_lab_to_rgb_matches_skimage(photo):
    reference = color.rgb2lab(photo)
    ours = lab.lab_to_rgb(torch.from_numpy(reference).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, color.lab2rgb(reference), atol=1e-3)


def test_round_trip_is_batched_and_exact(photo):
    batch = torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2)
    l_norm, ab_norm = lab.split_lab(batch)
    assert l_norm.shape == (2, 1, *photo.shape[:2]) and ab_norm.shape == (2, 2, *photo.shape[:2])
    assert l_norm.min() >= -1 and l_norm.max() <= 1 and ab_norm.abs().max() <= 1
    torch.testing.assert_close(lab.join_lab(l_norm, ab_norm), batch, atol=1e-4, rtol=0)


def test_grey_has_no_chroma():
    grey = torch.linspace(0, 1, 11).view(1, 1, 11).expand(3, 4, 11)
    # sRGB's matrix rows sum to the D65 white only to ~1e-4: skimage gives the same 0.005
    assert lab.rgb_to_lab(grey)[1:].abs().max() < 0.01
