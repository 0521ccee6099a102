"""Per-photo colour restraint: looked up from held-out photos like this one, fitted on them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from common.images import from_pil
from common.lab import split_lab
from serve import Colorizer, render
from serve.colorize import main as colorize_main
from serve.restraint import RESTRAINT_FILE, Restraint, load_restraint, save_restraint
from specialists.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import make_photo
from tests.serve_support import DOMAINS, grey_photo
from training.ship.fit_restraint import STRENGTHS, gain_curve
from training.ship.fit_restraint import main as fit_main

LADDER = np.array(STRENGTHS)


def _peaked(at: float, n: int) -> np.ndarray:
    """n gain curves whose best strength is ``at``."""
    return np.tile(-np.abs(LADDER - at), (n, 1))


def test_a_photo_gets_the_best_strength_of_its_neighbours():
    rng = np.random.default_rng(0)
    wrong, right = rng.normal(size=(1, 16)), rng.normal(size=(1, 16))
    embeddings = np.concatenate([wrong + 0.05 * rng.normal(size=(10, 16)),
                                 right + 0.05 * rng.normal(size=(10, 16))])  # fmt: skip
    gains = np.concatenate([_peaked(0.0, 10), _peaked(1.0, 10)])
    table = Restraint(embeddings, gains, LADDER, k=5)
    np.testing.assert_allclose(table.strengths_for(np.concatenate([wrong, right, 3 * right])),
                               [0.0, 1.0, 1.0])  # fmt: skip
    # the mean curve decides, not a vote: 3 neighbours mildly for 1, 2 strongly for 0
    mixed = Restraint(np.ones((5, 4)), np.concatenate([_peaked(1.0, 3) * 0.1, _peaked(0.0, 2)]),
                      LADDER, k=5)  # fmt: skip
    assert mixed.strengths_for(np.ones((1, 4)))[0] == pytest.approx(0.0)


def test_saved_table_round_trips_and_a_broken_one_names_its_file(tmp_path):
    table = Restraint(np.eye(3, 8), _peaked(0.4, 3), LADDER, k=2, info={"photos": 3})
    save_restraint(tmp_path / RESTRAINT_FILE, table)
    back = load_restraint(tmp_path / RESTRAINT_FILE)
    np.testing.assert_allclose(back.gains, table.gains)
    np.testing.assert_allclose(back.embeddings, table.embeddings, atol=1e-3)
    assert (back.k, back.info) == (2, {"photos": 3})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / RESTRAINT_FILE).read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.safetensors: not a colour-restraint table"):
        load_restraint(cut)
    with pytest.raises(ValueError, match="NaN"):
        Restraint(np.eye(2), np.full((2, len(LADDER)), np.nan), LADDER)


def test_gain_curve_rises_for_true_colour_and_falls_for_wrong_colour():
    truth = torch.from_numpy(np.asarray(make_photo(np.random.default_rng(1), (200, 90, 60)),
                                        np.float32) / 255).permute(2, 0, 1)[None]  # fmt: skip
    _, ab = split_lab(truth)
    right, wrong = gain_curve(ab[0], truth), gain_curve(-ab[0], truth)
    assert right[0] == wrong[0] == 0.0
    assert np.all(np.diff(right) > 0) and right[-1] > 10
    assert np.all(np.diff(wrong) < 0)


def _colorizer_with_table(weights, strength_for_photo: float, photo: Image.Image) -> Colorizer:
    colorizer = Colorizer.from_weights(weights, restraint=False)
    embedding = colorizer.route([from_pil(photo)])[0].embedding
    colorizer.restraint = Restraint(embedding[None], _peaked(strength_for_photo, 1), LADDER, k=1)
    return colorizer


def test_served_colour_is_rendered_at_user_strength_times_restraint(weights):
    image = grey_photo(90, 70, seed=5)
    colorizer = _colorizer_with_table(weights, 0.3, image)
    result = colorizer.colorize(image)
    assert result.restraint == pytest.approx(0.3)
    photo = from_pil(image)
    np.testing.assert_array_equal(np.asarray(result.image),
                                  np.asarray(render(photo, result.ab, 0.3)))  # fmt: skip
    np.testing.assert_array_equal(np.asarray(result.with_strength(2.0).image),
                                  np.asarray(render(photo, result.ab, 0.6)))  # fmt: skip
    grey = np.asarray(result.with_strength(0.0).image)
    assert (grey == grey[..., :1]).all()  # strength 0 is still the gray photo
    forced = colorizer.colorize(image, domain=DOMAINS[0])
    assert forced.restraint == 1.0  # no routing, no embedding: the model's colours


def _holdout_folder(root):
    rng = np.random.default_rng(0)
    for domain, rgb in zip(DOMAINS, ((120, 120, 100), (60, 140, 70), (200, 120, 90))):
        folder = root / "holdout" / domain
        folder.mkdir(parents=True)
        for i in range(4):
            make_photo(rng, rgb, 64).save(folder / f"src{i % 2}_{i}.png")
    (root / "holdout" / "general" / "broken.jpg").write_bytes(b"not a photo")
    return root


def test_fit_then_serve_then_stale_weights_drop_the_table(weights, tmp_path, capsys):
    import shutil

    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    data = _holdout_folder(tmp_path / "data")
    assert fit_main(["--data", str(data), "--weights", str(folder), "--k", "3",
                     "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "broken.jpg" in out.err and "overall" in out.out and "portrait/src0" in out.out
    table = load_restraint(folder / RESTRAINT_FILE)
    assert table.embeddings.shape[0] == 12 and table.info["split"] == "holdout"
    colorizer = Colorizer.from_weights(folder)
    assert colorizer.restraint is not None
    assert not any(RESTRAINT_FILE in note for note in colorizer.warnings)

    photo = tmp_path / "in.png"
    grey_photo(80, 60).save(photo)
    report = tmp_path / "r.jsonl"
    assert colorize_main([str(photo), "-o", str(tmp_path / "o"), "--weights", str(folder),
                          "--report", str(report), "--no-progress"]) == 0  # fmt: skip
    served = json.loads(report.read_text())["restraint"]
    assert served in set(np.round(LADDER, 3))
    report.unlink()
    assert colorize_main([str(photo), "-o", str(tmp_path / "o2"), "--weights", str(folder),
                          "--report", str(report), "--no-restraint",
                          "--no-progress"]) == 0  # fmt: skip
    assert json.loads(report.read_text())["restraint"] == 1.0

    specialist = folder / "specialists" / f"{DOMAINS[0]}.safetensors"
    specialist.write_bytes(specialist.read_bytes())  # same bytes: still fresh
    assert Colorizer.from_weights(folder).restraint is not None
    tensors, config = load_checkpoint(specialist)  # a retrained specialist: other colours
    name = next(iter(tensors))
    save_checkpoint(specialist, {**tensors, name: tensors[name] + 0.01}, config)
    stale = Colorizer.from_weights(folder)
    assert stale.restraint is None
    assert any("fitted on other weights" in note for note in stale.warnings)


def test_fit_refuses_a_folder_without_holdout_photos(weights, tmp_path, capsys):
    (tmp_path / "empty" / "holdout").mkdir(parents=True)
    assert fit_main(["--data", str(tmp_path / "empty"), "--weights", str(weights)]) == 2
    assert "no photos in its 'holdout' split" in capsys.readouterr().err
