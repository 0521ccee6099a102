"""common.images: awkward photos decode right, broken ones are refused with a reason."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import common.images
from common.images import ImageReadError, from_pil, read_image, save_image, write_png


def _noise(width, height, mode="L", seed=0):
    rng = np.random.default_rng(seed)
    shape = (height, width) if mode == "L" else (height, width, len(mode))
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def _png_declaring(path, width, height):
    """A valid 1x1 PNG whose header then claims width x height (CRC fixed)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_grey_jpeg_is_one_channel_uint8(tmp_path):
    _noise(40, 30).save(tmp_path / "a.jpg")
    photo = read_image(tmp_path / "a.jpg")
    assert photo.pixels.shape == (30, 40) and photo.pixels.dtype == np.uint8
    assert photo.size == (40, 30) and photo.alpha is None and not photo.already_colour


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (20, 1)), "L")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    image.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    photo = read_image(tmp_path / "r.jpg")
    assert photo.size == (20, 40)
    column = photo.pixels[:, 10].astype(int)  # the stored rows' gradient now runs down
    assert column[-1] - column[0] > 150
    assert any("EXIF orientation 6" in note for note in photo.notes)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grey_keeps_its_precision(tmp_path, suffix):
    values = (np.arange(64 * 48).reshape(48, 64) * 21 + 3).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / f"g{suffix}")
    photo = read_image(tmp_path / f"g{suffix}")
    assert photo.pixels.dtype == np.uint16 and photo.max_value == 65535
    np.testing.assert_array_equal(photo.pixels, values)
    assert "16-bit grey" in photo.notes


def test_palette_grey_colour_and_transparent(tmp_path):
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1)), "L").convert("P")
    grey.save(tmp_path / "grey.png")
    photo = read_image(tmp_path / "grey.png")
    assert photo.pixels.ndim == 2 and not photo.already_colour and "palette" in photo.notes

    colour = _noise(32, 32, "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    colour.save(tmp_path / "colour.png")
    assert read_image(tmp_path / "colour.png").already_colour

    grey.info["transparency"] = 0
    grey.save(tmp_path / "transparent.png", transparency=0)
    photo = read_image(tmp_path / "transparent.png")
    assert photo.alpha is not None and photo.alpha.min() == 0 and photo.alpha.max() == 255


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (24, 16), (0, 0, 0, 100)).save(tmp_path / "c.jpg")
    photo = read_image(tmp_path / "c.jpg")
    assert photo.size == (24, 16) and "CMYK converted to RGB" in photo.notes
    assert not photo.already_colour  # K only: a grey print


def test_rgba_and_la_keep_alpha(tmp_path):
    rgba = Image.merge("RGBA", [_noise(20, 10)] * 3 + [_noise(20, 10, seed=1)])
    rgba.save(tmp_path / "a.png")
    photo = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(photo.alpha, np.asarray(rgba.getchannel("A")))
    assert photo.pixels.ndim == 2  # R = G = B: stored as grey

    Image.merge("LA", [_noise(20, 10), _noise(20, 10, seed=2)]).save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").alpha is not None


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("L", (16, 12), v) for v in (10, 128, 250)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    photo = read_image(tmp_path / "a.gif")
    assert photo.size == (16, 12) and abs(int(photo.pixels.mean()) - 10) <= 1
    assert "first of 3 frames" in photo.notes


@pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "BMP"])
def test_other_formats(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    _noise(33, 17).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert read_image(path).size == (33, 17)


def test_rgba_webp_keeps_alpha(tmp_path):
    image = Image.merge("RGBA", [_noise(16, 16)] * 3 + [Image.new("L", (16, 16), 77)])
    image.save(tmp_path / "a.webp", lossless=True)
    assert read_image(tmp_path / "a.webp").alpha.max() == 77


def test_png_named_jpg(tmp_path):
    _noise(12, 9).save(tmp_path / "liar.jpg", "PNG")
    photo = read_image(tmp_path / "liar.jpg")
    assert photo.size == (12, 9) and "PNG content in a .jpg file" in photo.notes


def test_tiny_and_very_wide(tmp_path):
    Image.new("L", (1, 1), 90).save(tmp_path / "dot.png")
    assert read_image(tmp_path / "dot.png").size == (1, 1)
    _noise(4000, 3).save(tmp_path / "strip.png")
    assert read_image(tmp_path / "strip.png").size == (4000, 3)


def test_colour_photo_is_flagged_and_grey_rgb_is_not(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 80, 40
    Image.fromarray(rgb).save(tmp_path / "c.png")
    photo = read_image(tmp_path / "c.png")
    assert photo.already_colour and photo.pixels.shape == (16, 16, 3)
    assert any("already in colour" in n for n in photo.notes)
    # a grey scan saved as a colour JPEG: chroma noise only
    Image.merge("RGB", [_noise(64, 64)] * 3).save(tmp_path / "g.jpg", quality=90)
    assert not read_image(tmp_path / "g.jpg").already_colour


def test_from_pil_accepts_in_memory_images():
    photo = from_pil(Image.new("1", (5, 4), 1))
    assert photo.pixels.dtype == np.uint8 and photo.pixels.max() == 255
    float_photo = from_pil(Image.fromarray(np.full((3, 3), 0.5, np.float32), "F"))
    assert float_photo.pixels.dtype == np.uint16 and abs(int(float_photo.pixels[0, 0]) - 32768) < 2


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.jpg", b"just some text, not a photo\n" * 20, "not an image"),
        ("script.png", b"#!/bin/sh\necho hi\n", "not an image"),
    ],
)
def test_broken_files_have_reasons(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / name)
    assert reason in info.value.reason and name in str(info.value)


def test_truncated_jpeg_is_refused(tmp_path):
    _noise(128, 128).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ImageReadError, match="cannot read"):
        read_image(tmp_path / "folder.jpg")


def test_broken_exif_does_not_lose_the_photo(tmp_path):
    _noise(20, 10).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x13" * 40
    segment = b"\xff\xe1" + (len(junk) + 2).to_bytes(2, "big") + junk
    (tmp_path / "b.jpg").write_bytes(data[:2] + segment + data[2:])
    assert read_image(tmp_path / "b.jpg").size == (20, 10)


@pytest.mark.parametrize("width, height", [(30000, 30000), (40000, 20), (9000, 9000)])
def test_decompression_bombs_are_refused_from_the_header(tmp_path, width, height):
    path = _png_declaring(tmp_path / "bomb.png", width, height)
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "refused before decoding" in info.value.reason
    assert time.perf_counter() - start < 1.0  # nothing was decoded


def test_limits_are_settings(tmp_path):
    _noise(300, 200).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match="300x200"):
        read_image(tmp_path / "a.png", max_pixels=50_000)
    assert read_image(tmp_path / "a.png", max_pixels=60_000).size == (300, 200)


def test_save_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out" / "a.png"
    save_image(_noise(8, 8, "RGB"), target)
    before = target.read_bytes()

    def boom(handle, pixels):
        handle.write(b"\x89PNG\r\n")  # cut off mid-file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(common.images, "write_png", boom)
    with pytest.raises(OSError):
        save_image(_noise(8, 8, "RGB", seed=3), target)
    assert target.read_bytes() == before  # the old output is intact
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]  # no temporary left


def test_save_jpg_drops_alpha_and_png_keeps_it(tmp_path):
    rgba = Image.merge("RGBA", [_noise(8, 8)] * 3 + [Image.new("L", (8, 8), 9)])
    save_image(rgba, tmp_path / "a.png", "png")
    save_image(rgba, tmp_path / "a.jpg", "jpg")
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    with pytest.raises(ValueError, match="unknown output format"):
        save_image(rgba, tmp_path / "a.gif", "gif")


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_png_writer_is_lossless_across_strips(tmp_path, mode):
    image = _noise(37, 600, mode, seed=5)  # 600 rows: three strips, three IDAT chunks
    save_image(image, tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as back:
        assert back.mode == mode
        np.testing.assert_array_equal(np.asarray(back), np.asarray(image))


def test_png_writer_refuses_what_is_not_rgb_or_rgba():
    with pytest.raises(ValueError, match="cannot write 2 channels"):
        write_png(io.BytesIO(), np.zeros((4, 4, 2), np.uint8))


def test_grey_png_is_still_written_by_pillow(tmp_path):
    save_image(_noise(9, 7), tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as back:
        assert back.mode == "L"
        np.testing.assert_array_equal(np.asarray(back), np.asarray(_noise(9, 7)))
