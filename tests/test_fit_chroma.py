"""The chroma gain: fitted on held-out photos, stored in the specialist, applied when served."""

import json

import numpy as np
import pytest
import torch
from skimage import color

import specialists
from specialists.output import predict_ab
from tests.conftest import PALETTES
from tests.serve_support import make_weights
from training.ship.fit_chroma import choose_gain, main


def _rows(colourfulness: dict[float, float]) -> dict:
    return {str(g): {"psnr": 30.0 - g, "colourfulness": c} for g, c in colourfulness.items()}


def test_the_smallest_gain_reaching_the_target_is_chosen():
    measured = {"truth_colourfulness": 40.0, "gains": _rows({1.0: 30.0, 1.1: 33.0, 1.2: 36.5})}
    assert choose_gain(measured, target=0.9) == 1.2
    assert choose_gain(measured, target=0.8) == 1.1
    assert choose_gain(measured, target=0.5) == 1.0
    assert choose_gain(measured, target=1.0) == 1.2  # out of reach: the largest gain tried


def test_a_gain_that_costs_too_much_psnr_is_not_chosen():
    gains = {
        "1.0": {"psnr": 26.0, "colourfulness": 20.0},
        "1.2": {"psnr": 25.7, "colourfulness": 27.0},
        "1.4": {"psnr": 25.2, "colourfulness": 34.0},
    }
    measured = {"truth_colourfulness": 36.0, "gains": gains}
    assert choose_gain(measured, target=0.9, max_psnr_cost=0.5) == 1.2
    assert choose_gain(measured, target=0.9, max_psnr_cost=1.0) == 1.4
    assert choose_gain(measured, target=0.9, max_psnr_cost=0.1) == 1.0


def _true_ab(rgb: tuple[int, int, int]) -> np.ndarray:
    lab = color.rgb2lab(np.array([[rgb]], dtype=np.float64) / 255.0)[0, 0]
    return lab[1:] / 110.0


def test_a_pale_specialist_gets_a_gain_that_serving_applies(tmp_path, photo_folder, capsys):
    # each constant specialist predicts 60% of its domain's true colour: too pale
    pale = {d: tuple(float(v) for v in 0.6 * _true_ab(rgb)) for d, rgb in PALETTES.items()}
    weights = make_weights(tmp_path / "w", tuple(PALETTES), pale)
    args = ["--data", str(photo_folder), "--weights", str(weights), "--split", "val"]
    # the colourfulness rule alone (the PSNR cap has its own test above): a constant colour
    # on these textured photos loses PSNR at any gain
    assert main([*args, "--max-psnr-cost", "10", "--no-progress"]) == 0
    assert "gain" in capsys.readouterr().out
    for domain in PALETTES:
        file = weights / "specialists" / f"{domain}.safetensors"
        config = json.loads(file.with_suffix(".json").read_text())
        gain = config["serve"]["chroma_gain"]
        fit = config["serve"]["chroma_fit"]
        assert 1.0 < gain < 1.6 and fit["split"] == "val" and fit["photos"] == 4
        at_gain = fit["by_gain"][str(gain)]["colourfulness"]
        assert at_gain >= 0.9 * fit["truth_colourfulness"] > fit["by_gain"]["1.0"]["colourfulness"]
        generator = specialists.load_generator(file)
        assert generator.chroma_gain == gain
        l_norm = torch.zeros(1, 1, 64, 64)
        with torch.inference_mode():
            served = predict_ab(generator, l_norm)[0, :, 0, 0]
        assert served.numpy() == pytest.approx(np.array(pale[domain]) * gain, abs=1e-3)


def test_missing_weights_are_a_clear_error(tmp_path, photo_folder, capsys):
    args = ["--data", str(photo_folder), "--weights", str(tmp_path), "--no-progress"]
    assert main(args) == 2
    assert "no *.safetensors specialists" in capsys.readouterr().err
    weights = make_weights(tmp_path / "w", tuple(PALETTES), colours=None)
    assert main(["--data", str(photo_folder), "--weights", str(weights), "--no-progress"]) == 2
    err = capsys.readouterr().err  # the fixture holds no photo out: holdout is empty
    assert "no colour photos" in err and "'holdout'" in err and "Traceback" not in err
