"""16-bit scans stay 16-bit: a 16-bit PNG or TIFF comes out, its L at 16-bit precision;
8-bit input gives 8-bit files in every format."""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage import color

from common.images import write_png
from serve.colorize import main
from tests.serve_support import grey_photo


def _read_png16(path):
    """A PNG of 16-bit RGB samples (filter type 2 rows, as ours are) back as uint16,
    checking every chunk's CRC; Pillow would reduce it to 8 bits."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header = 8, b"", None
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height, depth, kind = header
    assert depth == 16
    channels = {2: 3, 6: 4}[kind]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert (rows[:, 0] == 2).all()  # up: undone by a running sum down the rows, mod 256
    pixels = np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8)
    return pixels.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _lightness(rgb16):
    return color.rgb2lab(rgb16[..., :3] / 65535.0)[..., 0]


def _deep_grey(width=90, height=64):
    """A grey photo with detail below 8 bits: levels 1/257 of an 8-bit step apart."""
    base = np.asarray(grey_photo(width, height, seed=3), np.uint16) * 257
    return base + (np.arange(width, dtype=np.uint16)[None, :] * 7) % 250


def _run(weights, source, out, *args):
    return main([str(source), "-o", str(out), "--weights", str(weights), "--no-progress", *args])


def test_png16_writer_round_trips_in_strips(tmp_path):
    pixels = (np.random.default_rng(0).random((600, 7, 4)) * 65535).astype(np.uint16)
    with open(tmp_path / "a.png", "wb") as handle:  # 600 rows: three strips, three IDATs
        write_png(handle, pixels)
    np.testing.assert_array_equal(_read_png16(tmp_path / "a.png"), pixels)
    assert Image.open(tmp_path / "a.png").size == (7, 600)  # a valid PNG to Pillow too


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_grey_in_sixteen_bit_png_and_tiff_out(weights, tmp_path, suffix):
    source = tmp_path / "in"
    source.mkdir()
    deep = _deep_grey()
    Image.fromarray(deep).save(source / f"scan.{suffix}")
    assert len(np.unique(deep)) > 1000
    assert _run(weights, source, tmp_path / "png", "--strength", "0.3") == 0
    assert _run(weights, source, tmp_path / "tiff", "--strength", "0.3", "--format", "tiff") == 0
    assert _run(weights, source, tmp_path / "grey", "--strength", "0") == 0
    outputs = {
        "png": _read_png16(tmp_path / "png" / "scan.png"),
        "tiff": tifffile.imread(tmp_path / "tiff" / "scan.tiff"),
        "grey": _read_png16(tmp_path / "grey" / "scan.png"),
    }
    expect = color.rgb2lab(np.repeat(deep[..., None] / 65535.0, 3, axis=2))[..., 0]
    for name, out in outputs.items():
        assert out.dtype == np.uint16 and out.shape == (64, 90, 3), name
        in_gamut = (out > 0).all(axis=2) & (out < 65535).all(axis=2)  # colour not clipped
        assert in_gamut.mean() > 0.9, name
        error = np.abs(_lightness(out) - expect)[in_gamut]
        assert error.max() < 0.02, name  # the L of 16 bits: 8 bits are up to 0.2 apart
        lightness_levels = len(np.unique(np.round(_lightness(out) * 1000)))
        assert lightness_levels > 1000, name  # far more than 256 levels of lightness
    np.testing.assert_array_equal(outputs["png"], outputs["tiff"])
    grey = outputs["grey"]
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    np.testing.assert_allclose(grey[..., 0], deep, atol=1)  # strength 0: the scan itself
    assert (outputs["png"] != grey).any()  # and strength 0.3 does colour it


def test_sixteen_bit_jpeg_is_the_nearest_eight_bits(weights, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(_deep_grey()).save(source / "scan.png")
    assert _run(weights, source, tmp_path / "jpg", "--format", "jpg", "--strength", "0") == 0
    out = np.asarray(Image.open(tmp_path / "jpg" / "scan.jpg"))
    assert out.dtype == np.uint8 and out.shape == (64, 90, 3)
    assert np.abs(out[..., 1].astype(int) - _deep_grey() / 257).mean() < 2  # JPEG's loss only


def test_eight_bit_input_gives_eight_bit_tiff_and_png(weights, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    grey_photo(40, 30).save(source / "a.jpg")
    rgba = grey_photo(20, 10).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((10, 20), 77, np.uint8)))
    rgba.save(source / "b.png")
    assert _run(weights, source, tmp_path / "tiff", "--format", "tiff") == 0
    assert _run(weights, source, tmp_path / "png") == 0
    for name, shape in (("a", (30, 40, 3)), ("b", (10, 20, 4))):
        tiff = tifffile.imread(tmp_path / "tiff" / f"{name}.tiff")
        assert tiff.dtype == np.uint8 and tiff.shape == shape
        png = Image.open(tmp_path / "png" / f"{name}.png")
        assert png.mode == ("RGB" if shape[2] == 3 else "RGBA")
        np.testing.assert_array_equal(np.asarray(png), tiff)
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "tiff" / f"{name}.tiff")), tiff
        )
