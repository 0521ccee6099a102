"""The web page's logic without Streamlit: names, decoding, colouring, demo metrics, ZIP."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.images import ImageReadError
from router import Neighbour
from serve import FORCED, JUDGE, ROUTER, Colorizer, ColorizeResult
from serve import app_explain as explain
from serve import app_logic as logic
from serve.app_compare import comparison_html, frame_height, full_size_html
from serve.app_launch import APP, streamlit_argv
from tests.serve_support import COLOURS, DOMAINS, colour_photo, grey_photo, make_weights

MB = logic.MB  # Streamlit's megabyte, as server.maxUploadSize counts it


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    return Colorizer.from_weights(make_weights(tmp_path_factory.mktemp("weights")))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("grandma.jpg", "grandma"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan 01.png", "scan_01"),
        (".bashrc", "bashrc"),
        ("Großmutter 1950.TIF", "Großmutter_1950"),
        ("a\x00b/../c.png", "c"),
        ("\u202egnp.exe", "gnp"),
        ("....", "photo"),
        ("", "photo"),
    ],
)
def test_safe_stem_never_yields_a_path(name, stem):
    assert logic.safe_stem(name) == stem
    assert logic.download_name(name) == f"{stem}-colour.png"


def test_unique_names_rename_repeats_only():
    names = logic.unique_names(["a.png", "a.png", "a-2.png", "b", "a.png", "b"])
    assert names[0] == "a.png" and names[2] == "a-2.png" and names[3] == "b"
    assert len(set(names)) == len(names)


def test_markdown_in_names_is_shown_literally():
    text = explain.md_escape("**x** [y](javascript:alert(1)) $z$ :red[w]\nnext")
    assert "\n" not in text
    for char in "*[]()$:":
        assert f"\\{char}" in text


def test_decode_refuses_oversized_and_empty_uploads_before_decoding():
    with pytest.raises(logic.UploadRefused, match="over the 1 MB upload limit"):
        logic.decode_upload("big.png", b"\0" * (MB + 1), max_bytes=MB)
    with pytest.raises(logic.UploadRefused, match="empty"):
        logic.decode_upload("empty.png", b"", max_bytes=MB)


def test_decode_names_the_upload_not_the_temporary_file(tmp_path, monkeypatch):
    """A broken file's message names the upload; nothing is left in (or out of) the tmp dir."""
    monkeypatch.setattr(logic.tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    truncated = png(grey_photo(64, 64))[:200]
    with pytest.raises(ImageReadError) as info:
        logic.decode_upload("../../evil.png", truncated, max_bytes=MB)
    assert str(info.value).startswith("../../evil.png: ")
    assert "colorizer-upload" not in str(info.value)
    photo = logic.decode_upload("../ok.png", png(grey_photo(40, 30)), max_bytes=MB)
    assert photo.size == (40, 30)
    assert list(tmp_path.iterdir()) == []  # the private folder is gone, no ../evil.png
    assert not (tmp_path.parent / "evil.png").exists()


def test_colourize_upload_keeps_the_size_and_explains_the_route(colorizer):
    card = logic.colourize_upload(colorizer, "grandma.png", png(grey_photo(90, 70)), None, MB)
    assert card.ok and card.error is None
    assert card.result.image.size == (90, 70)
    assert card.result.strategy in (ROUTER, JUDGE)
    assert set(card.result.probs) == set(DOMAINS)
    index = colorizer.router.index
    assert card.neighbours and all(n.path in index.paths for n in card.neighbours)
    assert card.demo is None  # a grey photo has no true colours to compare with
    decoded = Image.open(io.BytesIO(card.png()))
    assert decoded.size == (90, 70) and decoded.mode == "RGB"


def test_the_card_shows_the_route_the_colorizer_acted_on(colorizer):
    card = logic.colourize_upload(colorizer, "a.png", png(grey_photo(80, 64, 3)), None, MB)
    decision = card.result.decision
    assert decision.probs == card.result.probs and decision.confidence == card.result.confidence
    assert decision.domain in DOMAINS and card.neighbours == decision.neighbours != []
    forced = logic.colourize_upload(colorizer, "a.png", png(grey_photo(80, 64, 3)), "portrait", MB)
    assert forced.result.decision is None and forced.result.domain == "portrait"


def test_forced_domain_uses_that_specialist_and_skips_the_router(colorizer):
    card = logic.colourize_upload(colorizer, "x.png", png(grey_photo(64, 64)), "landscape", MB)
    assert card.result.domain == "landscape" and card.result.strategy == FORCED
    assert card.neighbours == []
    rgb = np.asarray(card.result.image, dtype=np.float32)
    assert COLOURS["landscape"][0] < 0  # serve_support's landscape specialist paints green
    assert (rgb[..., 1] - rgb[..., 0]).mean() > 5


def test_broken_and_oversized_uploads_become_card_errors(colorizer):
    broken = logic.colourize_upload(colorizer, "scan.jpg", b"\xff\xd8\xff not a jpeg", None, MB)
    assert not broken.ok and broken.error and "scan.jpg" not in broken.error
    with pytest.raises(ValueError):
        broken.png()
    big = logic.colourize_upload(colorizer, "big.png", b"0" * (MB + 1), None, MB)
    assert not big.ok and "limit" in big.error


def test_demo_mode_measures_against_the_true_colours(colorizer):
    photo = colour_photo(120, 80)
    card = logic.colourize_upload(colorizer, "colour.png", png(photo), None, MB)
    demo = card.demo
    assert card.result.already_colour and demo is not None
    assert demo.truth.size == demo.desaturated.size == (120, 80)
    grey = np.asarray(demo.desaturated, dtype=np.int16)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1  # no colour left
    assert demo.colourfulness_truth > 20 and demo.psnr_grey < 30
    # the judge of the demo is honest: the truth itself scores perfectly, grey does not
    truthful = ColorizeResult(photo, "general", {}, None, FORCED, {})
    perfect = logic.demo_comparison(logic.decode_upload("c.png", png(photo), MB), truthful)
    assert perfect.psnr > 60 and perfect.psnr > perfect.psnr_grey + 20
    assert perfect.colourfulness == pytest.approx(perfect.colourfulness_truth)


def test_zip_holds_every_result_at_its_original_size(colorizer):
    cards = [
        logic.colourize_upload(colorizer, "scan.png", png(grey_photo(50, 40, 1)), None, MB),
        logic.colourize_upload(colorizer, "scan.png", png(grey_photo(30, 60, 2)), None, MB),
        logic.colourize_upload(colorizer, "bad.png", b"junk", None, MB),
    ]
    with zipfile.ZipFile(io.BytesIO(logic.zip_bytes(cards))) as archive:
        names = archive.namelist()
        sizes = [Image.open(io.BytesIO(archive.read(n))).size for n in names]
    assert names == ["scan-colour.png", "scan-colour-2.png"]
    assert sizes == [(50, 40), (30, 60)]
    with pytest.raises(ValueError):
        logic.zip_bytes(cards[2:])


def test_result_cache_keeps_the_newest():
    cache = logic.ResultCache(max_entries=2)
    cards = [logic.Card(name=str(i), download_name="x") for i in range(3)]
    cache.put(("a",), cards[0])
    cache.put(("b",), cards[1])
    assert cache.get(("a",)) is cards[0]  # now the newest
    cache.put(("c",), cards[2])
    assert cache.get(("b",)) is None and cache.get(("a",)) is cards[0] and len(cache) == 2
    assert logic.upload_key(b"x", 64) == logic.upload_key(b"x", 64) != logic.upload_key(b"y", 64)


def test_settings_reuse_the_loaded_models(colorizer, monkeypatch):
    monkeypatch.setattr(colorizer, "restraint", object())  # a loaded restraint table
    same = colorizer.with_settings(colorizer.size, colorizer.threshold)
    other = colorizer.with_settings(96, 0.9)
    assert same is colorizer
    assert other.size == 96 and other.threshold == 0.9
    assert other.router is colorizer.router and other.judge is colorizer.judge
    assert other.restraint is colorizer.restraint  # other settings, the same restraint
    assert all(other.generators[d] is colorizer.generators[d] for d in DOMAINS)


def test_route_summary_says_what_happened():
    result = ColorizeResult(
        Image.new("RGB", (2, 2)), "portrait", {"portrait": 0.8}, 0.8, ROUTER, {}
    )
    summary = explain.route_summary(result, 0.5)
    assert "Router sure" in summary and "**portrait**" in summary
    result.strategy, result.confidence = JUDGE, 0.3
    assert "no discriminator score could change" in explain.route_summary(result, 0.5)
    result.scores = {"portrait": 0.6, "general": 0.4}
    assert "discriminators chose **portrait**" in explain.route_summary(result, 0.5)
    result.strategy = ROUTER  # a lone specialist is used even when the router is unsure
    assert "only specialist" in explain.route_summary(result, 0.5)
    result.strategy, result.confidence = FORCED, None
    assert "chosen by you" in explain.route_summary(result, 0.5)
    assert explain.ranked({"a": 0.2, "b": 0.7, "c": 0.1}) == [("b", 0.7), ("a", 0.2), ("c", 0.1)]


def test_neighbour_files_stay_inside_the_data_root(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "portrait").mkdir(parents=True)
    grey_photo(40, 40).save(root / "train" / "portrait" / "p.png")
    grey_photo(40, 40).save(tmp_path / "outside.png")
    here = Neighbour("train/portrait/p.png", "portrait", 0.1)
    assert explain.neighbour_file(here, root) == (root / "train/portrait/p.png").resolve()
    assert explain.neighbour_file(Neighbour("../outside.png", "general", 0.2), root) is None
    assert explain.neighbour_file(Neighbour("train/missing.png", "general", 0.2), root) is None
    assert explain.neighbour_file(here, "") is None
    thumb = explain.thumbnail(explain.neighbour_file(here, root), side=16)
    assert thumb is not None and max(thumb.size) == 16


def test_data_root_comes_from_the_env_or_the_router_when_it_exists(
    colorizer, monkeypatch, tmp_path
):
    monkeypatch.delenv(explain.DATA_ENV, raising=False)
    index = colorizer.router.index
    monkeypatch.setattr(index, "data_root", "../shared/data/colorize-v1-not-here")
    assert explain.default_data_root(colorizer) == ""  # after pip install: no such folder
    monkeypatch.setattr(index, "data_root", str(tmp_path))
    assert explain.default_data_root(colorizer) == str(tmp_path)
    monkeypatch.setenv(explain.DATA_ENV, "/photos")
    assert explain.default_data_root(colorizer) == "/photos"


def test_a_few_neighbours_are_shown_and_only_those_on_disk(tmp_path):
    near = [Neighbour(f"train/p/{i}.png", "portrait", i / 10) for i in range(10)]
    assert explain.shown_neighbours(near, tmp_path) == []
    (tmp_path / "train" / "p").mkdir(parents=True)
    for i in (1, 2, 4, 5, 6, 8):
        grey_photo(300, 200).save(tmp_path / "train" / "p" / f"{i}.png")
    shown = explain.shown_neighbours(near, tmp_path)
    assert [n.path for n, _ in shown] == [f"train/p/{i}.png" for i in (1, 2, 4, 5)]
    assert max(explain.thumbnail(shown[0][1]).size) == explain.THUMBNAIL_SIDE  # big enough


def test_the_summary_counts_refusals_as_refusals(colorizer):
    cards = [
        logic.colourize_upload(colorizer, "a.png", png(grey_photo(40, 30)), None, MB),
        logic.colourize_upload(colorizer, "big.png", b"0" * (MB + 1), None, MB),
        logic.colourize_upload(colorizer, "bad.png", b"junk", None, MB),
    ]
    assert [c.too_large for c in cards] == [False, True, False]
    assert explain.summary(cards) == (
        "**1** of 3 photos colourized, **1** refused for size, **1** could not be read."
    )
    assert explain.summary(cards[:1]) == "**1** of 1 photos colourized."
    assert "coloured by" in explain.log_line(cards[0]) and "limit" in explain.log_line(cards[1])


def test_strength_views_come_from_the_kept_colours(colorizer, monkeypatch):
    photo = colour_photo(120, 80)
    card = logic.colourize_upload(colorizer, "colour.png", png(photo), None, MB)
    full = card.view(1.0)
    monkeypatch.setattr(Colorizer, "colorize_batch", None)  # no model may run from here on
    grey, strong = card.view(0.0), card.view(1.5)
    spread = [np.ptp(np.asarray(v.image.convert("RGB"), dtype=int), axis=2).max()
              for v in (grey, full, strong)]  # fmt: skip
    assert spread[0] == 0 and spread[1] < spread[2]
    assert grey.demo.psnr == pytest.approx(grey.demo.psnr_grey, abs=0.2)  # grey scores as grey
    assert strong.demo.colourfulness > full.demo.colourfulness
    assert card.view(0.0) is grey  # kept, not rendered again
    assert Image.open(io.BytesIO(card.png(0.0))).size == (120, 80)
    with zipfile.ZipFile(io.BytesIO(logic.zip_bytes([card], [0.0]))) as archive:
        zipped = Image.open(io.BytesIO(archive.read(archive.namelist()[0]))).convert("RGB")
    assert np.ptp(np.asarray(zipped, dtype=int), axis=2).max() == 0


def test_comparison_slider_embeds_our_images_only():
    before, after = grey_photo(80, 60).convert("RGB"), colour_photo(40, 30)
    html = comparison_html(before, after, 300, before_label="<b>x</b>", after_label="Colour")
    assert html.count("data:image/jpeg;base64,") == 2
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert 'type="range"' in html
    # the box has the photo's shape (80 x 60 shown 300 tall: 400 wide), so the labels on
    # its corners are on the photo; "before" is the clipped, left-hand layer and label
    assert "aspect-ratio: 80 / 60" in html and "width: min(100%, 400px)" in html
    assert html.index('class="tag" style="left: 6px">&lt;b&gt;') > 0
    assert "img.before {{".replace("{{", "{") in html
    assert full_size_html(after).count("data:image/jpeg;base64,") == 1
    assert frame_height((800, 600), 400, 480) == 300
    assert frame_height((160, 120), 400, 480) == 300  # small photos fill the column
    assert frame_height((300, 2000), 640, 480) == 480


def test_console_script_runs_this_app():
    argv = streamlit_argv(["--server.port", "8600"])
    assert argv[:3] == ["streamlit", "run", str(APP)] and Path(argv[2]).is_file()
    assert argv[-2:] == ["--server.port", "8600"]  # the user's options come last and win
    assert os.path.basename(argv[2]) == "app.py"
