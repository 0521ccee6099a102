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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lightness_alone_is_rgb_to_labs_l_to_the_bit(photo, dtype):
    """Serving computes only L (router view, model input): it must be Lab's L exactly, and a
    grey image passed as one plane must give what its three equal planes give."""
    rgb = torch.from_numpy(photo).permute(2, 0, 1).to(dtype)
    rgb = torch.cat(
        (
            rgb,
            torch.tensor([0.0, 0.04045, 1.0], dtype=dtype)
            .view(3, 1, 1)
            .expand(3, -1, rgb.shape[-1]),
        ),
        dim=1,
    )
    assert torch.equal(lab.rgb_to_lightness(rgb), lab.rgb_to_lab(rgb)[:1])
    grey = rgb[1:2]
    assert torch.equal(lab.rgb_to_lightness(grey), lab.rgb_to_lab(grey.expand(3, -1, -1))[:1])
    batch = torch.stack((rgb, rgb.flip(-1)))
    assert torch.equal(lab.rgb_to_lightness(batch), lab.rgb_to_lab(batch)[:, :1])
