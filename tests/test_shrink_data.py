"""training.shrink_data: a resized copy of a data folder that trains like the original."""

import numpy as np
from PIL import Image

from tests.conftest import make_photo
from training.data import find_images
from training.shrink_data import main


def make_data(root):
    rng = np.random.default_rng(0)
    folder = root / "train" / "portrait"
    folder.mkdir(parents=True)
    make_photo(rng, (200, 90, 60), 300).resize((300, 200)).save(folder / "wide.png")
    make_photo(rng, (50, 110, 190), 100).save(folder / "small.jpg")
    (root / "v1").mkdir()
    make_photo(rng, (40, 160, 60), 400).save(root / "v1" / "linked.jpg")
    (folder / "linked.jpg").write_text("../../v1/linked.jpg")  # a link placeholder
    (root / "val" / "portrait").mkdir(parents=True)
    (root / "val" / "portrait" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "manifest.csv").write_text("path,split\ntrain/portrait/wide.png,train\n")
    return root


def test_the_copy_keeps_the_tree_at_the_short_side_and_reports_bad_files(tmp_path, capsys):
    src, dst = make_data(tmp_path / "src"), tmp_path / "small"
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    assert main([str(src), str(dst), "--short-side", "144", "--no-progress"]) == 1

    out = capsys.readouterr()
    assert "broken.jpg" in out.err and "4 photos written" in out.out  # v1/ too
    with Image.open(dst / "train/portrait/wide.jpg") as wide:
        assert wide.size == (216, 144) and wide.format == "JPEG"
    with Image.open(dst / "train/portrait/small.jpg") as small:
        assert small.size == (100, 100)  # never enlarged
    with Image.open(dst / "train/portrait/linked.jpg") as linked:
        assert linked.size == (144, 144)  # the placeholder's target, read and resized
        red, green, blue = np.asarray(linked).reshape(-1, 3).mean(0)
        assert green > red + 40 and green > blue + 40  # the colours survive
    assert (dst / "manifest.csv").read_text() == (src / "manifest.csv").read_text()
    assert len(find_images(dst, "train", "portrait")) == 3
    assert before == {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    assert main([str(src), str(dst), "--no-progress"]) == 1  # a rerun continues
    assert "0 photos written, 4 already there, 1 failed" in capsys.readouterr().out


def test_a_copy_inside_the_source_or_clashing_names_are_refused(tmp_path, capsys):
    src = make_data(tmp_path / "src")
    assert main([str(src), str(src / "small"), "--no-progress"]) == 2
    assert "may not be the source folder" in capsys.readouterr().err
    Image.new("RGB", (40, 40)).save(src / "train/portrait/wide.jpg")  # wide.png -> wide.jpg too
    assert main([str(src), str(tmp_path / "out"), "--no-progress"]) == 2
    assert "would both be copied to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_limit_keeps_an_even_spread_of_each_folder(tmp_path):
    src = tmp_path / "src"
    for domain in ("a", "b"):
        (src / "train" / domain).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (20, 20), (9 * i, 0, 0)).save(src / "train" / domain / f"{i}.png")
    assert main([str(src), str(tmp_path / "out"), "--limit", "3", "--no-progress"]) == 0
    for domain in ("a", "b"):
        kept = sorted(p.name for p in (tmp_path / "out/train" / domain).iterdir())
        assert kept == ["0.jpg", "3.jpg", "6.jpg"]
