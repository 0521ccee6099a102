"""python -m serve.colorize on hostile folders: inputs never change, one output per input or
a reported error, broken weights refused before any photo, kill and pre-emption.

Each test checks the promises the README's "What is promised" lists: inputs unchanged (by hash,
links included), the documented exit code, a summary, no traceback.
"""

import errno
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from serve import Colorizer, run_report
from serve.colorize import main
from specialists.checkpoint import CONFIG_KEY
from tests.serve_support import grey_photo

ROOT = Path(__file__).resolve().parents[1]


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every entry below ``roots``: links by target, files by hash and inode, not followed."""
    state = {}
    for root in roots:
        for top, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(top, name)
                info = os.lstat(path)
                if os.path.islink(path):
                    state[path] = ("link", os.readlink(path))
                elif os.path.isfile(path):
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                    state[path] = ("file", digest, info.st_ino, info.st_size)
    return state


def run_cli(weights, *args, expect, capsys):
    """Run the command in-process; check the exit code, the summary and no traceback."""
    code = main([*map(str, args), "--weights", str(weights), "--no-progress"])
    err = capsys.readouterr().err
    assert code == expect, err
    assert "Traceback" not in err
    return err


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_1_a_link_in_the_output_tree_never_lets_an_input_be_replaced(weights, tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    out.mkdir()
    grey_photo(30, 20).save(source / "top.png")
    grey_photo(32, 24, seed=1).save(source / "sub" / "s.png")
    grey_photo(34, 26, seed=2).save(source / "hard.png")
    grey_photo(36, 28, seed=3).save(source / "soft.png")
    (out / "sub").symlink_to(source / "sub")  # the output tree links into the input
    os.link(source / "hard.png", out / "hard.png")  # an old output hard-linked to its input
    (out / "soft.png").symlink_to(source / "soft.png")
    (tmp_path / "r.jsonl").symlink_to(source / "top.png")  # even the report
    before = snapshot(source)
    err = run_cli(
        weights, source, "-o", out, "--report", tmp_path / "r.jsonl", expect=1, capsys=capsys
    )
    assert snapshot(source) == before
    assert f"{out / 'sub'}: is a symbolic link; refusing to write through it" in err
    assert "colourized 3 photo(s)" in err and "1 failed" in err
    by_input = {Path(r["input"]).name: r for r in records(tmp_path / "r.jsonl")}
    assert set(by_input) == {"top.png", "s.png", "hard.png", "soft.png"}
    assert by_input["s.png"]["output"] is None and "symbolic link" in by_input["s.png"]["error"]
    for name in ("top.png", "hard.png", "soft.png"):
        output = out / name
        assert not output.is_symlink() and output.stat().st_nlink == 1
        assert Image.open(output).size == Image.open(source / name).size


def test_2_clashing_names_each_get_their_own_output(weights, tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    sizes = {"photo.jpg": (30, 20), "photo.tif": (40, 20), "photo.jpg.png": (50, 20),
             "Photo.JPG": (60, 20), "b.png": (20, 10)}  # fmt: skip
    for name, size in sizes.items():
        grey_photo(*size).save(source / name, format=Image.registered_extensions()[
            Path(name).suffix.lower()])  # fmt: skip
    (source / "b.png.png").mkdir()  # a folder whose outputs' folder is b.png.png/
    grey_photo(22, 10).save(source / "b.png.png" / "x.png")
    before = snapshot(source)
    run_cli(weights, source, "-o", out, "--report", tmp_path / "r.jsonl", expect=0, capsys=capsys)
    assert snapshot(source) == before
    lines = records(tmp_path / "r.jsonl")
    outputs = [r["output"] for r in lines]
    assert len(lines) == len(sizes) + 1 and len({o.casefold() for o in outputs}) == len(outputs)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == len(lines)
    for record in lines:  # each output holds its own input's photo
        assert Image.open(record["output"]).size == Image.open(record["input"]).size
    names = {Path(r["input"]).name: Path(r["output"]).name for r in lines}
    assert names["photo.jpg.png"] == "photo.jpg.png" and names["b.png"] == "b.png"
    assert names["photo.tif"] == "photo.tif.png"  # photo.png was wanted by three
    assert names["Photo.JPG"] == "Photo.JPG.2.png"  # photo.jpg.png is taken (case-blind)
    assert names["photo.jpg"] == "photo.jpg.3.png"


def test_4_double_star_globs_do_not_follow_link_loops(weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "loopdir").mkdir()
    grey_photo(30, 20).save(tmp_path / "in" / "top.png")
    grey_photo(30, 20, seed=1).save(tmp_path / "in" / "sub" / "s.png")
    (tmp_path / "in" / "sub" / "loop").symlink_to("../../loopdir")
    (tmp_path / "loopdir" / "back").symlink_to("../in/sub")
    before = snapshot(tmp_path / "in", tmp_path / "loopdir")
    err = run_cli(weights, "in/**/*.png", "-o", tmp_path / "out", "--report", "r.jsonl", expect=0,
                  capsys=capsys)  # fmt: skip
    assert snapshot(tmp_path / "in", tmp_path / "loopdir") == before
    assert sorted(Path(r["input"]).as_posix() for r in records(tmp_path / "r.jsonl")) == [
        "in/sub/s.png", "in/top.png",
    ]  # fmt: skip
    assert "colourized 2 photo(s)" in err


def _rewrite(path: Path, change) -> None:
    """Rewrite a safetensors file: ``change(tensors, metadata)`` edits them in place."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    change(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)


def _nan_generator(tensors, metadata):
    for name, tensor in tensors.items():
        if name.startswith("generator.") and tensor.is_floating_point():
            tensor.fill_(float("nan"))


def _nan_everything(tensors, metadata):
    for tensor in tensors.values():
        if tensor.is_floating_point():
            tensor.fill_(float("inf"))


def _cut_config(tensors, metadata):
    metadata[CONFIG_KEY] = metadata[CONFIG_KEY][: len(metadata[CONFIG_KEY]) // 2]


def _no_config(tensors, metadata):
    metadata.clear()


def _wrong_shape(tensors, metadata):
    name = next(k for k, v in tensors.items() if k.startswith("generator.") and v.ndim == 4)
    tensors[name] = torch.zeros(3, 3, 3, 3)


def _missing_tensor(tensors, metadata):
    del tensors[next(k for k in tensors if k.startswith("generator."))]


@pytest.mark.parametrize(
    "file, change, message",
    [
        ("specialists/portrait.safetensors", _nan_generator, "hold NaN or infinite values"),
        ("router/router.safetensors", _nan_everything, "hold NaN or infinite values"),
        ("specialists/general.safetensors", _cut_config, "embedded config is not valid JSON"),
        ("specialists/general.safetensors", _no_config, "has no embedded config"),
        ("specialists/landscape.safetensors", _wrong_shape, "of the wrong shape"),
        ("specialists/landscape.safetensors", _missing_tensor, "1 missing"),
    ],
)
def test_3_6_broken_weights_are_refused_before_any_photo(
    weights, tmp_path, capsys, file, change, message
):
    broken = tmp_path / "weights"
    shutil.copytree(weights, broken)
    _rewrite(broken / file, change)
    (tmp_path / "in").mkdir()
    grey_photo(30, 20).save(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    err = run_cli(broken, tmp_path / "in", "-o", out, expect=2, capsys=capsys)
    assert str(broken / file) in err and message in err
    assert len(err.splitlines()[0]) < 700  # one clear line, not torch's list of every key
    assert not out.exists()  # nothing was coloured


def test_5_a_bad_report_path_is_refused_before_colouring(weights, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    grey_photo(30, 20).save(tmp_path / "in" / "a.png")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    for report, message in [
        (tmp_path / "folder", "is a folder"),
        (tmp_path / "file" / "r.jsonl", "cannot write the report there"),
        (tmp_path / "in" / "a.png", "is an input"),
    ]:
        err = run_cli(weights, tmp_path / "in", "-o", out, "--report", report, expect=2,
                      capsys=capsys)  # fmt: skip
        assert message in err, err
    assert not out.exists()
    assert Image.open(tmp_path / "in" / "a.png").size == (30, 20)


def test_5_a_full_disk_under_the_report_still_colours_and_summarises(
    weights, tmp_path, monkeypatch, capsys
):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(4):
        grey_photo(30, 20, seed=i).save(source / f"p{i}.png")
    real_open = run_report.open_fresh

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.lines = handle, 0

        def write(self, data):
            self.lines += 1
            if self.lines > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def close(self):
            self.handle.close()

    monkeypatch.setattr(run_report, "open_fresh", lambda *a, **k: FullDisk(real_open(*a, **k)))
    out = tmp_path / "out"
    err = run_cli(weights, source, "-o", out, "--report", tmp_path / "r.jsonl", "--batch-size",
                  "1", expect=1, capsys=capsys)  # fmt: skip
    assert err.count("No space left on device") == 1 and "report" in err
    assert "colourized 4 photo(s)" in err  # the summary, after every photo was coloured
    assert len(list(out.glob("*.png"))) == 4
    assert len(records(tmp_path / "r.jsonl")) == 1  # the line written before the disk filled


@pytest.mark.parametrize("length", [236, 245, 251, 255])
def test_8_file_names_up_to_255_bytes_work(weights, tmp_path, capsys, length):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    name = "p" * (length - 4) + ".jpg"
    grey_photo(30, 20).save(source / name)
    grey_photo(40, 20).save(source / (name[:-4] + ".tif"))  # clashes: the output name grows
    accented = "é" * ((length - 4) // 2) + ".png"
    grey_photo(50, 20).save(source / accented)
    run_cli(weights, source, "-o", out, "--report", tmp_path / "r.jsonl", expect=0, capsys=capsys)
    lines = records(tmp_path / "r.jsonl")
    assert len({r["output"] for r in lines}) == 3
    for record in lines:
        assert len(os.fsencode(Path(record["output"]).name)) <= 255
        assert Image.open(record["output"]).size == Image.open(record["input"]).size


def _no_models(*args, **kwargs):
    raise AssertionError("models loaded although the output folder cannot be written")


def test_9_an_unwritable_output_folder_is_found_before_colouring(
    weights, tmp_path, monkeypatch, capsys
):
    (tmp_path / "in").mkdir()
    grey_photo(30, 20).save(tmp_path / "in" / "a.png")
    (tmp_path / "file").write_text("x")

    monkeypatch.setattr(Colorizer, "from_weights", _no_models)
    err = run_cli(weights, tmp_path / "in", "-o", tmp_path / "file" / "out", expect=2,
                  capsys=capsys)  # fmt: skip
    assert "cannot write the output folder there" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_9_a_read_only_output_folder_is_found_before_colouring(
    weights, tmp_path, monkeypatch, capsys
):
    (tmp_path / "in").mkdir()
    grey_photo(30, 20).save(tmp_path / "in" / "a.png")
    (tmp_path / "ro").mkdir(mode=0o555)
    monkeypatch.setattr(Colorizer, "from_weights", _no_models)
    err = run_cli(weights, tmp_path / "in", "-o", tmp_path / "ro", expect=2, capsys=capsys)
    assert "Permission denied" in err


def _png16_rgb(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def test_9_sixteen_bit_colour_is_noted_and_bombs_get_the_documented_message(
    weights, tmp_path, capsys
):
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65535, (20, 30, 3), dtype=np.uint16)
    _png16_rgb(source / "rgb16.png", pixels)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(source / "rgb16.tif", pixels, photometric="rgb")
    # a PNG header declaring 20000x20000 pixels: over twice Pillow's own limit
    _png16_rgb(source / "bomb.png", np.zeros((1, 1, 3), np.uint16))
    data = bytearray((source / "bomb.png").read_bytes())
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    (source / "bomb.png").write_bytes(bytes(data))
    run_cli(weights, source, "-o", tmp_path / "out", "--report", tmp_path / "r.jsonl", expect=1,
            capsys=capsys)  # fmt: skip
    by_name = {Path(r["input"]).name: r for r in records(tmp_path / "r.jsonl")}
    for name in ("rgb16.png", "rgb16.tif"):
        assert any("16-bit colour read as 8-bit" in note for note in by_name[name]["notes"])
    assert by_name["bomb.png"]["error"].startswith(
        "refused before decoding: header declares 20000x20000 pixels (limits: 16384 a side"
    )
