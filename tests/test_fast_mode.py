"""Serving's fast mode (``--fast``): each U-Net's top decoder block and head at half size."""

import numpy as np
import torch
from PIL import Image

from serve.colorize import main
from specialists.output import predict_ab
from specialists.serving import half_res_top
from specialists.timm_unet import TimmUNet
from tests.serve_support import grey_photo


def test_a_fast_unet_colours_at_half_size_and_predict_ab_stretches_it_back():
    model = TimmUNet(pretrained=False).eval()
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    with torch.inference_mode():
        full = predict_ab(model, x)
        assert half_res_top(model)
        assert model(x).shape == (2, 2, 32, 48)
        fast = predict_ab(model, x)
    assert fast.shape == full.shape == (2, 2, 64, 96)
    assert not torch.equal(fast, full)  # the top block really ran at another size


def test_a_model_without_a_unet_top_is_left_alone():
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    assert not half_res_top(conv)
    assert not hasattr(conv, "half_res_top")


def test_the_command_says_it_runs_fast_and_writes_full_size_colour(weights, tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    grey_photo(70, 50).save(source / "a.jpg")
    args = [source, "-o", out, "--weights", weights, "--no-progress", "--fast"]
    assert main([str(a) for a in args]) == 0
    assert "fast mode" in capsys.readouterr().err
    written = Image.open(out / "a.png")
    assert written.size == (70, 50) and written.mode == "RGB"
    assert np.asarray(written).std(axis=2).max() > 0  # coloured, not the grey photo
