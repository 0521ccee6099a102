"""The Streamlit page, driven by streamlit.testing.v1.AppTest (no browser, no server)."""

import io
import os
import re

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit import config
from streamlit.testing.v1 import AppTest, element_tree

from serve import Colorizer
from serve import app_explain as explain
from serve import app_logic as logic
from tests.serve_support import DOMAINS, colour_photo, grey_photo, make_weights, tiny_router

# An AppTest that cannot upload files (a Streamlit older than the one pyproject.toml asks
# for) skips the tests that upload, saying why; in CI it fails them: there it is a broken
# install, not a reason to test less.
CANNOT_UPLOAD = (
    None
    if hasattr(element_tree, "FileUploader")
    else f"Streamlit {st.__version__}'s AppTest cannot upload files (pyproject.toml asks for more)"
)
uploads = pytest.mark.skipif(
    CANNOT_UPLOAD is not None and not os.environ.get("CI"), reason=str(CANNOT_UPLOAD)
)

APP = "../serve/app.py"
DOMAIN_LINE = re.compile(r"^Domain: \*\*(\w+)\*\*$")


@pytest.fixture
def app(weights, monkeypatch):
    """The page pointed at the test weights, with a fresh model cache."""
    monkeypatch.setenv("COLORIZER_WEIGHTS", str(weights))
    monkeypatch.delenv(explain.DATA_ENV, raising=False)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(at, *files):
    if CANNOT_UPLOAD is not None:  # only in CI: elsewhere the test was skipped
        pytest.fail(CANNOT_UPLOAD)
    at.file_uploader[0].set_value([(name, data, "image/png") for name, data in files])
    at.run()
    assert not at.exception, at.exception
    return at


def domains_shown(at) -> list[str]:
    return [m.group(1) for m in (DOMAIN_LINE.match(md.value) for md in at.markdown) if m]


def downloads(at) -> list[str]:
    return [button.label for button in at.get("download_button")]


def test_without_weights_one_message_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZER_WEIGHTS", str(tmp_path / "nowhere"))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "No usable weights" in message and str(tmp_path / "nowhere") in message
    assert "python -m training.train_specialist" in message and "COLORIZER_WEIGHTS" in message
    assert len(at.file_uploader) == 0


def test_page_before_any_upload(app):
    assert app.title[0].value == "Colourize old photos"
    assert app.file_uploader[0].accept_multiple_files
    assert set(app.file_uploader[0].allowed_type) >= {".jpg", ".png", ".webp", ".tiff", ".bmp"}
    assert app.selectbox(key="domain").options[1:] == list(DOMAINS)
    assert app.select_slider(key="size").value == 64  # the specialists' training size
    assert app.slider(key="threshold").value == pytest.approx(0.5)
    assert "Drop one or more photos" in app.info[0].value


@uploads
def test_uploads_show_route_downloads_and_a_bad_file_message(app, weights):
    upload(
        app,
        ("grandma.png", png(grey_photo(96, 72, 1))),
        ("broken.png", b"\x89PNG\r\n\x1a\n not really"),
        ("village.png", png(grey_photo(72, 96, 2))),
    )
    shown = domains_shown(app)
    assert len(shown) == 2 and set(shown) <= set(DOMAINS)
    assert [s.value for s in app.subheader] == ["grandma\\.png", "broken\\.png", "village\\.png"]
    assert len(app.error) == 1
    assert app.error[0].value.startswith("broken\\.png: ") and "image" in app.error[0].value
    assert downloads(app) == ["Download all (ZIP)", "Download PNG (96×72)", "Download PNG (72×96)"]
    # one bar per domain and photo: the router's probabilities, highest first, in percent
    colorizer = Colorizer.from_weights(weights)
    expected = []
    for image in (grey_photo(96, 72, 1), grey_photo(72, 96, 2)):
        probs = colorizer.colorize(image).probs
        expected += sorted(probs.items(), key=lambda item: (-item[1], item[0]))
    bars = app.get("progress")
    assert [bar.text.split(":")[0] for bar in bars] == [domain for domain, _ in expected]
    for bar, (_, p) in zip(bars, expected):
        assert 0 <= 100 * p - bar.value < 1 + 1e-6  # Streamlit keeps int(100 p)
    summaries = [md.value for md in app.markdown if md.value.startswith("Router ")]
    assert len(summaries) == 2 and all("confidence" in s for s in summaries)
    counts = "**2** of 3 photos colourized, **1** could not be read"
    assert any(counts in md.value for md in app.markdown)
    assert not app.expander  # no training photos here: nothing to explain the route with


@uploads
def test_fallback_scores_are_shown_when_the_router_is_unsure(app):
    app.slider(key="threshold").set_value(1.0)
    upload(app, ("a.png", png(grey_photo(64, 64))))
    assert any("the specialists competed" in md.value for md in app.markdown)
    scores = [t for t in app.table if "score" in str(t.value.columns.tolist())]
    assert len(scores) == 1 and sorted(scores[0].value["specialist"]) == sorted(DOMAINS)
    app.slider(key="threshold").set_value(0.0)
    app.run()
    assert any(md.value.startswith("Router sure") for md in app.markdown)
    assert not [t for t in app.table if "score" in str(t.value.columns.tolist())]


@uploads
def test_forcing_a_domain(app):
    app.selectbox(key="domain").set_value("landscape")
    upload(app, ("a.png", png(grey_photo(64, 48))), ("b.png", png(grey_photo(48, 64))))
    assert domains_shown(app) == ["landscape", "landscape"]
    assert app.slider(key="threshold").disabled
    assert sum("chosen by you" in md.value for md in app.markdown) == 2
    assert len(app.expander) == 0  # no route, so nothing to explain


@uploads
def test_changing_settings_reuses_models_and_results(app, monkeypatch):
    loads, colourings = [], []
    real_load, real_colour = Colorizer.from_weights.__func__, logic.colourize_upload

    def counted_load(cls, *args, **kwargs):
        loads.append(args)
        return real_load(cls, *args, **kwargs)

    def counted_colour(colorizer, name, *args, **kwargs):
        colourings.append(name)
        return real_colour(colorizer, name, *args, **kwargs)

    monkeypatch.setattr(Colorizer, "from_weights", classmethod(counted_load))
    monkeypatch.setattr(logic, "colourize_upload", counted_colour)
    st.cache_resource.clear()
    upload(app, ("a.png", png(grey_photo(64, 64, 1))), ("b.png", png(grey_photo(80, 64, 2))))
    assert (len(loads), colourings) == (1, ["a.png", "b.png"])
    app.toggle(key="demo").set_value(False).run()  # display only: nothing recomputed
    app.text_input(key="data_root").set_value("/nowhere").run()
    strength = next(s for s in app.slider if s.label == "Colour strength")
    strength.set_value(0.5).run()  # re-rendered from the kept colours, not the models
    assert (len(loads), len(colourings)) == (1, 2)
    app.select_slider(key="size").set_value(96).run()  # new results, same models
    assert (len(loads), len(colourings)) == (1, 4)
    assert "at 96×96 px" in " ".join(c.value.replace("\\", "") for c in app.caption)
    app.select_slider(key="size").set_value(64).run()  # back: from the session's cache
    assert (len(loads), len(colourings)) == (1, 4)
    assert len(downloads(app)) == 3


@pytest.fixture
def one_mb_limit():
    """The server's upload limit at 1 MB (what ``--server.maxUploadSize 1`` would set)."""
    before = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    yield
    config.set_option("server.maxUploadSize", before)


@uploads
def test_one_upload_limit_and_a_refused_photo_counts_as_refused(app, one_mb_limit):
    assert not app.number_input  # no second limit in the sidebar
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    big = png(Image.fromarray(noise))
    assert len(big) > logic.MB
    broken = b"\x89PNG\r\n\x1a\n not really"
    upload(app, ("big.png", big), ("small.png", png(grey_photo(64, 64))), ("bad.png", broken))
    assert len(app.error) == 2 and "over the 1 MB upload limit" in app.error[0].value
    assert domains_shown(app) and downloads(app)[-1] == "Download PNG (64×64)"
    line = "**1** of 3 photos colourized, **1** refused for size, **1** could not be read."
    assert any(md.value == line for md in app.markdown)


def _spread(image: Image.Image) -> int:
    """The largest difference between an RGB pixel's channels: 0 for a grey picture."""
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    return int((rgb.max(axis=2) - rgb.min(axis=2)).max())


@uploads
def test_colour_strength_re_renders_the_photo_and_its_download(app):
    upload(app, ("a.png", png(grey_photo(64, 48))))
    strength = next(s for s in app.slider if s.label == "Colour strength")
    assert strength.value == 1.0 and strength.max == 2.0
    card = next(iter(app.session_state["results"]._cards.values()))
    assert _spread(card.view(1.0).image) > 0 and _spread(Image.open(io.BytesIO(card.png()))) > 0
    strength.set_value(0.0).run()
    assert not app.exception
    assert _spread(card.view(0.0).image) == 0  # strength 0: the black-and-white photo
    download = Image.open(io.BytesIO(card.png(0.0)))
    assert download.size == (64, 48) and _spread(download) == 0


@uploads
def test_demo_mode_for_colour_photos(app):
    upload(app, ("colour.png", png(colour_photo(96, 64))))
    metrics = {m.label: m.value for m in app.metric}
    assert set(metrics) == {"PSNR vs true colours", "Colourfulness"}
    assert re.fullmatch(r"\d+\.\d dB", metrics["PSNR vs true colours"])
    captions = [c for image in app.image for c in image.captions]
    assert captions == ["Desaturated (what the model saw)", "Recolourized", "True colours"]
    app.toggle(key="demo").set_value(False).run()
    assert len(app.metric) == 0
    assert [c for image in app.image for c in image.captions] == ["Original", "Colourized"]


@uploads
def test_neighbour_thumbnails_when_the_training_photos_are_there(app, weights, tmp_path):
    paths = Colorizer.from_weights(weights).router.index.paths
    for relative in paths:  # the router's training photos, where its index says they are
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        grey_photo(32, 32).save(tmp_path / relative, format="JPEG")
    upload(app, ("a.png", png(grey_photo(64, 64))))
    assert not app.expander  # no folder, no thumbnails: nothing at all
    app.text_input(key="data_root").set_value(str(tmp_path)).run()
    assert [e.label for e in app.expander] == ["Why this domain: the 3 nearest training photos"]
    thumbs = [c.value for c in app.caption if ", distance " in c.value]
    assert len(thumbs) == 3 and all(c.split(",")[0] in DOMAINS for c in thumbs)


def test_default_threshold_is_the_routers_calibrated_one(tmp_path, monkeypatch):
    """Untouched, the slider must not round the calibrated threshold into another one."""
    weights = make_weights(tmp_path / "weights", domains=("landscape", "portrait"))
    tiny_router(("landscape", "portrait"), threshold=0.4567).save(weights / "router")
    monkeypatch.setenv("COLORIZER_WEIGHTS", str(weights))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.slider(key="threshold").value == pytest.approx(0.4567, abs=1e-6)
    assert at.selectbox(key="domain").options[1:] == ["landscape", "portrait"]


def test_a_restrained_photo_says_so(weights, tmp_path, monkeypatch):
    import shutil

    from common.images import from_pil
    from serve.restraint import RESTRAINT_FILE, Restraint, save_restraint
    from serve.weights import locate_weights, weights_fingerprints

    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    image = grey_photo(80, 60)
    width = len(Colorizer.from_weights(folder).route([from_pil(image)])[0].embedding)
    ladder = np.round(np.arange(11) / 10, 1)
    hashes = {"checkpoints": weights_fingerprints(locate_weights(folder))}
    gains = np.tile(-np.abs(ladder - 0.4), (1, 1))  # every photo: best at 0.4
    save_restraint(
        folder / RESTRAINT_FILE, Restraint(np.ones((1, width)), gains, ladder, k=1, info=hashes)
    )
    monkeypatch.setenv("COLORIZER_WEIGHTS", str(folder))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    upload(at, ("old.png", png(image)))
    captions = " ".join(c.value for c in at.caption)
    assert "Colour restrained to 40% for this photo" in captions
