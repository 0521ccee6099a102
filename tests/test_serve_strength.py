"""Colour strength: 0 is the grey photo, 1 the model's colours, re-rendered without the models."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color

from common.images import from_pil
from discriminators.scoring import Judge
from serve import Colorizer, render
from serve.colorize import main
from serve.transfer import model_input, model_shape, rejoin
from specialists.output import predict_ab
from tests.serve_support import (
    DOMAINS,
    colour_photo,
    constant_generator,
    count_calls,
    grey_photo,
    monotone_discriminator,
    tiny_router,
)


@pytest.fixture(scope="module")
def colorizer():
    """Random-init specialists with a louder head: ab that varies over the photo."""
    generators = {d: constant_generator(None) for d in DOMAINS}
    with torch.no_grad():
        for generator in generators.values():
            generator.head.weight.mul_(150.0)
    judge = Judge({d: monotone_discriminator() for d in DOMAINS})
    return Colorizer(tiny_router(), generators, judge, size=64)


def _chroma(image: Image.Image) -> float:
    lab = color.rgb2lab(np.asarray(image.convert("RGB")) / 255.0)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def test_strength_one_is_the_plain_join_byte_for_byte(colorizer):
    image = grey_photo(150, 97, seed=3)
    default = colorizer.colorize(image, domain="portrait")
    assert default.strength == 1.0
    photo = from_pil(image)
    shape = model_shape(*photo.size, colorizer.size, colorizer.stride)
    with torch.inference_mode():
        ab = predict_ab(colorizer.generators["portrait"], model_input(photo.pixels, shape))[0]
    expect = rejoin(photo.pixels, ab)  # the join as it was before strength existed
    for result in (default, colorizer.colorize(image, "portrait", 1.0), default.with_strength(1)):
        np.testing.assert_array_equal(np.asarray(result.image), expect)
    assert _chroma(default.image) > 1.0  # there is colour to scale


def test_strength_zero_is_exactly_the_grey_photo(colorizer):
    image = grey_photo(301, 177)
    result = colorizer.colorize(image, strength=0.0)
    out = np.asarray(result.image)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], np.asarray(image))
    # a coloured result taken back to 0 gives the same, and a colour photo its own grey
    np.testing.assert_array_equal(np.asarray(colorizer.colorize(image).with_strength(0).image), out)
    source = colour_photo(80, 60)
    grey = np.asarray(colorizer.colorize(source).with_strength(0.0).image)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    lightness = color.rgb2lab(np.asarray(source) / 255.0)[..., :1]
    neutral = color.lab2rgb(np.concatenate([lightness, 0 * lightness, 0 * lightness], -1))
    assert np.abs(grey.astype(int) - np.round(neutral * 255)).max() <= 1  # its own L, no colour


def test_other_strengths_need_no_model_and_match_a_fresh_run(colorizer):
    rgba = Image.merge("RGBA", [grey_photo(90, 70)] * 3 + [grey_photo(90, 70, seed=9)])
    result = colorizer.colorize(rgba)
    calls, handles = count_calls(colorizer)
    again = {s: result.with_strength(s) for s in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)}
    for h in handles:
        h.remove()
    assert not calls  # re-rendering ran no specialist
    for strength, other in again.items():
        assert other.strength == strength and other.domain == result.domain
        assert other.image.mode == "RGBA" and other.image.size == (90, 70)
        fresh = colorizer.colorize(rgba, domain=result.domain, strength=strength)
        np.testing.assert_array_equal(np.asarray(other.image), np.asarray(fresh.image))
        np.testing.assert_array_equal(
            np.asarray(render(result.photo, result.ab, strength)), np.asarray(other.image)
        )
    chroma = [_chroma(other.image) for other in again.values()]
    assert chroma[0] < 0.05 and all(a < b for a, b in zip(chroma, chroma[1:])), chroma
    assert result.image is not again[0.5].image  # the original result is left as it was
    assert result.strength == 1.0


@pytest.mark.parametrize("strength", [-0.1, 2.01, float("nan")])
def test_strength_outside_zero_to_two_is_refused(colorizer, strength):
    with pytest.raises(ValueError, match="strength must be between 0 and 2"):
        colorizer.colorize(grey_photo(20, 20), strength=strength)
    with pytest.raises(ValueError, match="strength must be between 0 and 2"):
        colorizer.colorize(grey_photo(20, 20)).with_strength(strength)


def test_cli_strength_is_applied_and_reported(weights, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    grey_photo(64, 48).save(tmp_path / "in" / "a.png")
    report = tmp_path / "r.jsonl"
    args = ["--weights", str(weights), "--no-progress", "--report", str(report)]
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "grey"), "--strength", "0", *args]) == 0
    out = np.asarray(Image.open(tmp_path / "grey" / "a.png"))
    source = np.asarray(Image.open(tmp_path / "in" / "a.png"))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], source)
    assert json.loads(report.read_text())["strength"] == 0.0
    assert (
        main([str(tmp_path / "in"), "-o", str(tmp_path / "more"), "--strength", "1.5", *args]) == 0
    )
    assert json.loads(report.read_text())["strength"] == 1.5
    assert _chroma(Image.open(tmp_path / "more" / "a.png")) > 1.0
    capsys.readouterr()
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--strength", "3", *args]) == 2
    assert "--strength must be between 0 and 2" in capsys.readouterr().err
