"""The near-duplicate check finds planted copies across splits, and nothing else."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from test_router_data import make_dataset

from training.evaluate.dedup import main as dedup_main
from training.evaluate.dedup import parse_args
from training.train_router import main as train_main

TINY = [
    "--arch", "timm_router", "--backbone", "mobilenetv2_035", "--no-pretrained",
    "--size", "32", "--train-blocks", "0", "--views", "1", "--batch-size", "16",
    "--epochs", "3", "--workers", "0", "--threads", "1", "--index-dim", "16", "--k", "5",
    "--calibrate-on", "val",
]  # fmt: skip


def _texture(rng, size=48):
    """A unique smooth random picture (low-frequency noise, random colour cast)."""
    coarse = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8))
    return coarse.resize((size, size), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("dedup")
    data = make_dataset(base / "data", train=8, val=4)
    assert train_main(["--data", str(data), "--out", str(base / "run"), *TINY]) == 0
    return data, base / "run" / "router"


def _textures(root, rng):
    for split, count in (("train", 12), ("val", 6), ("test", 6)):
        for domain in ("a", "b"):
            (root / split / domain).mkdir(parents=True)
            for i in range(count):
                _texture(rng).save(root / split / domain / f"{split}_{domain}_{i}.png")


def test_finds_planted_duplicates_across_splits(router_dir, tmp_path):
    _, weights = router_dir
    root = tmp_path / "photos"
    _textures(root, np.random.default_rng(0))
    with Image.open(root / "train/a/train_a_3.png") as image:  # re-encoded and resized
        image.resize((44, 44), Image.Resampling.BILINEAR).save(root / "val/b/copy.jpg", quality=85)
    shutil.copy(root / "val/a/val_a_1.png", root / "test/b/copy_of_val.png")
    out = tmp_path / "pairs.json"
    assert (
        dedup_main([str(root), "--weights", str(weights), "--json", str(out), "--workers", "0"])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["photos"] == {"train": 24, "val": 13, "test": 13}
    pairs = {key: [(p["a"], p["b"]) for p in found] for key, found in report["pairs"].items()}
    assert pairs == {
        "val~train": [("val/b/copy.jpg", "train/a/train_a_3.png")],
        "test~train": [],
        "test~val": [("test/b/copy_of_val.png", "val/a/val_a_1.png")],
    }
    assert all(p["pixel_correlation"] >= 0.95 for found in report["pairs"].values() for p in found)


def test_within_split_pairs_and_the_router_own_index(router_dir, tmp_path, capsys):
    data, weights = router_dir
    # the router's own training data: its saved index is searched, not rebuilt
    shutil.copy(data / "train/zebra/zebra_002.png", data / "val/document/leaked.png")
    try:
        out = tmp_path / "own.json"
        args = [str(data), "--weights", str(weights), "--json", str(out), "--workers", "0"]
        assert dedup_main(args) == 0
        assert "saved index of 24 training photos" in capsys.readouterr().out
        found = json.loads(out.read_text())["pairs"]["val~train"]
        assert ("val/document/leaked.png", "train/zebra/zebra_002.png") in [
            (p["a"], p["b"]) for p in found
        ]
    finally:
        (data / "val/document/leaked.png").unlink()
    root = tmp_path / "photos"
    _textures(root, np.random.default_rng(1))
    shutil.copy(root / "train/a/train_a_0.png", root / "train/b/again.png")
    out = tmp_path / "within.json"
    args = [str(root), "--weights", str(weights), "--within", "--json", str(out), "--workers", "0"]
    assert dedup_main(args) == 0
    within = json.loads(out.read_text())["pairs"]["train~train"]
    assert [(p["a"], p["b"]) for p in within] in (
        [("train/a/train_a_0.png", "train/b/again.png")],
        [("train/b/again.png", "train/a/train_a_0.png")],
    )


def test_usage_errors_exit_2(router_dir, tmp_path, capsys):
    _, weights = router_dir
    assert dedup_main([str(tmp_path / "nope"), "--weights", str(weights)]) == 2
    assert "no such data folder" in capsys.readouterr().err
    (tmp_path / "one" / "train" / "x").mkdir(parents=True)
    _texture(np.random.default_rng(0)).save(tmp_path / "one" / "train" / "x" / "p.png")
    assert dedup_main([str(tmp_path / "one"), "--weights", str(weights)]) == 2
    assert "at least two splits" in capsys.readouterr().err
    assert dedup_main([str(tmp_path / "one"), "--weights", str(tmp_path / "none")]) == 2


def test_the_default_router_is_the_shipped_one():
    assert (parse_args(["data"]).weights / "router.safetensors").is_file()
