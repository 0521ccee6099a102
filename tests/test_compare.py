"""The system comparison (training.compare) and its reusable measures
(training.evaluate.quality)."""

import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from specialists.checkpoint import read_config
from training.compare import System, compare, main
from training.evaluate.quality import colour_metrics, grey_rgb, markdown_table
from training.train_specialist import TrainConfig


def test_colour_metrics_of_the_truth_and_of_grey():
    torch.manual_seed(0)
    rgb = torch.rand(3, 3, 24, 24)
    same = colour_metrics(rgb, rgb)
    assert same["psnr"] == pytest.approx(100.0) and same["ssim"] == pytest.approx(1.0)
    assert same["colourfulness_gap"] == 0.0
    grey = colour_metrics(grey_rgb(rgb), rgb)
    assert grey["colourfulness"] < 1.0 and grey["colourfulness_gap"] < -10.0
    assert grey["psnr"] < 30.0


def test_markdown_table_formats_numbers_and_leaves_gaps():
    table = markdown_table(
        [{"name": "a", "psnr": 27.6543, "n": 3}, {"name": "b"}], {"name": "system", "psnr": "dB"}
    )
    assert table.splitlines() == ["| system | dB |", "|---|---|", "| a | 27.7 |", "| b |  |"]


def test_compare_trains_scores_and_reports_every_system(photo_folder, tmp_path, capsys):
    systems = {
        "tiny_beta": System("beta", arch_args={"ngf": 4, "num_downs": 2}, disc_args={"ndf": 8}),
        "tiny_rgb": System(
            "unet_rgb",
            "multiscale_patchgan",
            {"ngf": 4, "num_downs": 5},
            {"ndf": 8, "num_scales": 2, "n_layers": 2},
            train={"feature_matching": 1.0},
        ),
    }
    base = TrainConfig(
        data=str(photo_folder),
        out="",
        domain="warm",
        size=32,
        batch_size=4,
        steps=2,
        warmup_steps=1,
        num_val=4,
        threads=1,
        progress=False,
    )
    report = tmp_path / "report"
    rows = compare(systems, base, tmp_path / "runs", report, num_val=4, grid_photos=3)
    assert [r["system"] for r in rows] == ["grayscale input", "tiny_beta", "tiny_rgb"]
    for row in rows[1:]:
        assert 0 < row["ssim"] <= 1 and row["psnr"] > 0 and row["seconds_per_image"] > 0
        assert row["images"] == 4 and row["train_images_per_s"] > 0
    assert rows[2]["train_settings"] == {"feature_matching": 1.0}
    saved = json.loads((report / "results.json").read_text())
    assert [r["system"] for r in saved["rows"]] == [r["system"] for r in rows]
    assert len((report / "table.md").read_text().splitlines()) == 2 + len(rows)
    with Image.open(report / "grid.png") as grid:
        # grey | 2 systems | truth, 3 photos of 32 px with 2 px padding, a 14 px header
        assert grid.size == (4 * 34 + 2, 14 + 3 * 34 + 2)
    capsys.readouterr()
    compare(systems, base, tmp_path / "runs", report, num_val=4, grid_photos=3)
    assert capsys.readouterr().out.count("not training again") == 2
    # a bigger budget resumes the finished runs instead of skipping them
    compare({"tiny_beta": systems["tiny_beta"]}, replace(base, steps=3), tmp_path / "runs", report)
    assert read_config(tmp_path / "runs" / "tiny_beta" / "checkpoint.safetensors")["step"] == 3


def test_unknown_system_is_a_clear_error(tmp_path, capsys):
    assert (
        main(["--data", str(tmp_path), "--out", str(tmp_path), "--steps", "1", "--systems", "nope"])
        == 2
    )
    assert "unknown systems ['nope']" in capsys.readouterr().err
