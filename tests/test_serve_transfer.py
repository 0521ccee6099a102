"""serve.transfer: model shapes, full-resolution L, exact bilinear upsampling, strip joins."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import color

from common.lab import join_lab, normalize_l
from serve import transfer
from serve.transfer import full_lightness, model_input, model_shape, rejoin, upsample_ab


@pytest.mark.parametrize(
    "width, height, size",
    [(256, 256, 256), (6000, 4000, 256), (4000, 6000, 128), (1, 1, 256), (3, 2, 64),
     (333, 251, 96), (10000, 7, 256), (7, 10000, 128)],
)  # fmt: skip
def test_model_shape(width, height, size):
    h, w = model_shape(width, height, size, 32)
    assert h % 32 == 0 and w % 32 == 0 and h >= 32 and w >= 32
    assert max(h, w) <= transfer.MAX_ASPECT * size + 32
    if max(width, height) / min(width, height) <= 2:  # ordinary photos keep their short side
        assert abs(min(h, w) - size) <= 16
        assert (w >= h) == (width >= height)


def test_full_lightness_matches_skimage_for_grey_rgb_and_16_bit():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    expect = color.rgb2lab(np.repeat(grey[..., None] / 255.0, 3, axis=2))[..., 0]
    np.testing.assert_allclose(full_lightness(grey)[0].numpy(), expect, atol=1e-3)

    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        full_lightness(rgb)[0].numpy(), color.rgb2lab(rgb / 255.0)[..., 0], atol=1e-3
    )
    deep = rng.integers(0, 65536, (6, 8), dtype=np.uint16)
    expect = color.rgb2lab(np.repeat(deep[..., None] / 65535.0, 3, axis=2))[..., 0]
    np.testing.assert_allclose(full_lightness(deep)[0].numpy(), expect, atol=1e-3)
    # 16-bit precision survives: neighbouring levels give different L
    pair = full_lightness(np.array([[30000, 30001]], dtype=np.uint16))[0, 0]
    assert pair[1] > pair[0]


@pytest.mark.parametrize("src, dst", [((4, 6), (37, 50)), ((8, 8), (8, 8)), ((3, 12), (300, 7))])
def test_upsample_matches_torch_bilinear(src, dst):
    ab = torch.rand(2, *src) * 2 - 1
    expect = F.interpolate(ab[None], size=dst, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(upsample_ab(ab, *dst), expect, atol=1e-6, rtol=0)


def test_rejoin_in_strips_equals_one_piece(monkeypatch):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (45, 31), dtype=np.uint8)
    ab = torch.rand(2, 32, 32) * 0.6 - 0.3
    whole = rejoin(grey, ab)
    monkeypatch.setattr(transfer, "STRIP_PIXELS", 31 * 4)  # 4 rows a strip, a ragged last one
    np.testing.assert_array_equal(rejoin(grey, ab), whole)
    rgb = rng.integers(0, 256, (45, 31, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rejoin(rgb, ab), _one_piece(rgb, ab))
    assert whole.shape == (45, 31, 3) and whole.dtype == np.uint8


def test_rejoin_with_zero_ab_gives_back_the_grey_photo():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = rejoin(grey, torch.zeros(2, 4, 4))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


def test_rejoin_keeps_full_resolution_detail():
    """Colour from a 32x32 model output, detail from the 200x160 photo's own L."""
    rng = np.random.default_rng(2)
    grey = (90 + 60 * rng.random((160, 200))).astype(np.uint8)  # fine noise, mid-tones
    lightness = full_lightness(grey)
    out = rejoin(grey, torch.tensor([0.15, 0.1]).view(2, 1, 1).expand(2, 32, 32))
    out_l = color.rgb2lab(out / 255.0)[..., 0]
    assert np.abs(out_l - lightness[0].numpy()).max() < 0.6  # 8-bit rounding only
    assert np.corrcoef(out_l.ravel(), grey.ravel())[0, 1] > 0.999
    assert out[..., 0].astype(int).mean() > out[..., 2].astype(int).mean()  # warm colour applied


def _one_piece(pixels, ab):
    """The join done the plain way: whole-image interpolate and Lab conversion."""
    lightness = full_lightness(pixels)
    up = F.interpolate(ab[None], size=pixels.shape[:2], mode="bilinear", align_corners=False)[0]
    rgb = join_lab(normalize_l(lightness), up)
    return (rgb * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "dtype, mode", [(np.uint8, "grey"), (np.uint16, "grey"), (np.uint8, "rgb")]
)
def test_model_input_is_the_small_photo_s_normalised_l(dtype, mode):
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(3)
    shape = (300, 500) if mode == "grey" else (300, 500, 3)
    pixels = np.full(shape, top, dtype)
    x = model_input(pixels, (64, 96))
    assert x.shape == (1, 1, 64, 96)
    torch.testing.assert_close(x, torch.ones_like(x), atol=1e-4, rtol=0)  # white is L 100
    ramp = np.linspace(0.1, 0.9, 500)[None, :] * np.linspace(0.5, 1.0, 300)[:, None]
    ramp = ramp[..., None].repeat(3, axis=2) * [1.0, 0.8, 0.6] if mode == "rgb" else ramp
    pixels = (ramp * top + rng.normal(0, top * 0.01, ramp.shape)).clip(0, top).astype(dtype)
    small = model_input(pixels, (30, 50))
    expect = F.interpolate(
        normalize_l(full_lightness(pixels))[None], size=(30, 50), mode="area"
    )  # the same photo, reduced in L rather than in pixel values: nearly the same
    assert float((small - expect).abs().max()) < 0.01


def _stride_steps(width, height, size, stride):
    """The shape every photo got before buckets: the long side scaled with the short one."""
    scale = size / min(width, height)
    h, w = (max(stride, round(n * scale / stride) * stride) for n in (height, width))
    return h, w


@pytest.mark.parametrize("size", [128, 256])
def test_mixed_sizes_fall_into_a_few_buckets(size):
    """Photos of every size and orientation share a few shapes: one per ratio and orientation,
    the short side at ``size`` and the long one at the nearest bucket ratio."""
    rng = np.random.default_rng(0)
    shapes = set()
    for width, height in rng.integers(20, 3000, (500, 2)):
        h, w = model_shape(int(width), int(height), size, 32)
        shapes.add((h, w))
        assert min(h, w) == size and (h == w or (w > h) == (width > height))
        ratio, aspect = max(h, w) / size, max(width, height) / min(width, height)
        assert ratio in transfer.ASPECTS  # the nearest bucket, up to rounding to the stride
        assert abs(ratio - aspect) <= min(abs(r - aspect) for r in transfer.ASPECTS) + 32 / size
    assert len(shapes) <= 2 * len(transfer.ASPECTS) - 1
    assert model_shape(9000, 10, size, 32) == (size, 4 * size)  # squeezed to 4:1
    assert model_shape(10, 9000, size, 32) == (4 * size, size)


def test_buckets_keep_the_shipped_size_shapes_up_to_two_to_one():
    """At the shipped size (128, stride 32) every photo up to 2:1 gets the shape it had before
    buckets (so its colours are unchanged); wider ones move to the nearest bucket."""
    for width in range(128, 257):
        for width_, height in ((width, 128), (128, width), (3 * width, 384)):
            assert model_shape(width_, height, 128, 32) == _stride_steps(width_, height, 128, 32)
    assert _stride_steps(288, 128, 128, 32) == (128, 288)  # 2.25:1 was a shape of its own
    assert model_shape(288, 128, 128, 32) == (128, 256)
