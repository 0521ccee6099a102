"""End to end: the real Streamlit server and a real headless Chromium (Debian's package).

Starts ``streamlit run serve/app.py`` on a free port and, through the page: uploads an
upright, a wide and a sepia-toned grayscale photo and one over the upload limit, checks the
limit is said once and the big file refused for its size, the before/after slider (before on
the left, labels on the photo), the colour strength (0 gives the grey photo, and neither it
nor demo mode colours anything again: the server logs each colouring), the full-size view,
and saves screenshots. Skipped (with the reason) only when Chromium or Python's playwright is
missing; ``.ci/run`` installs both.

Also a script, for the README's screenshots (scikit-image sample photos by default):
    python -m tests.test_app_browser --weights weights --out docs [PHOTO...]
"""

import argparse
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium's own connections (updates, sync,
# field trials) get refused many at a time on a machine without internet access.
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DOMAINS = ("general", "landscape", "portrait")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LOGGED = "colorizer-app: "  # serve/app.py logs one such line per colouring
SCREENSHOTS = ("app-screenshot.png", "app-slider.png", "app-full-size.png")


@contextmanager
def running_app(
    weights: Path, log: Path, timeout: float = 30.0, max_upload_mb: int = 25
) -> Iterator[str]:
    """``streamlit run serve/app.py`` on a free port; yields its URL, stops it after."""
    port = _free_port()
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, COLORIZER_WEIGHTS=str(weights), OMP_NUM_THREADS="1", PYTHONPATH=path)
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "serve" / "app.py"),
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(max_upload_mb),
    ]  # fmt: skip
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"streamlit exited ({server.returncode}): {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit not ready after {timeout:.0f} s: {log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def colourings(log: Path) -> int:
    """How many photos the server has coloured so far (its log's lines)."""
    return log.read_text(errors="replace").count(LOGGED)


def _spread(png: bytes) -> int:
    """Largest channel difference of a screenshot's pixels: 0 for a grey picture."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((rgb.max(axis=2) - rgb.min(axis=2)).max())


def _inside(inner: dict, outer: dict) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def _tall_viewport(page: object) -> None:
    """Streamlit scrolls inside its own container: a tall viewport shows every card."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight"
        " || document.body.scrollHeight"
    )
    page.set_viewport_size({"width": 1400, "height": min(5000, max(1000, height))})
    page.wait_for_timeout(500)


def colourize_in_browser(
    url: str,
    photos: Sequence[Path],
    out: Path,
    log: Path,
    too_large: Sequence[Path] = (),
    timeout_s: float = 60.0,
) -> dict:
    """Upload ``photos`` (and ``too_large`` ones), use the page, save the screenshots in
    ``out``; return what it showed."""
    from playwright.sync_api import expect, sync_playwright

    timeout = timeout_s * 1000
    shown: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect(page.get_by_text("Colourize old photos").first).to_be_visible(timeout=timeout)
            dropzone = page.locator('[data-testid="stFileUploaderDropzone"]')
            expect(dropzone).to_be_visible(timeout=timeout)
            shown["dropzone"] = dropzone.inner_text()
            shown["limits"] = len(re.findall(r"\d+ ?MB", page.locator("body").inner_text()))
            files = [*photos, *too_large]
            page.locator("input[type=file]").set_input_files([str(p) for p in files])
            zip_button = page.get_by_role("button", name="Download all (ZIP)")
            expect(zip_button).to_be_visible(timeout=timeout)
            cards = page.get_by_text(re.compile(r"^Domain: \w+$"))
            expect(cards).to_have_count(len(photos), timeout=timeout)
            shown["domains"] = [t.split(":", 1)[1].strip() for t in cards.all_inner_texts()]
            shown["uploader"] = page.locator('[data-testid="stFileUploader"]').inner_text()
            shown["summary"] = page.get_by_text(re.compile(r"photos colourized")).inner_text()
            shown["notes"] = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
            buttons = page.locator('[data-testid="stDownloadButton"] button')
            # the icon is a font ligature: its name is text too, on a line of its own
            shown["downloads"] = [b.strip().split("\n")[-1] for b in buttons.all_inner_texts()]
            coloured_at_first = colourings(log)
            why = page.get_by_text(re.compile("^Why this domain"))
            shown["why"] = why.count()
            if shown["why"]:  # the training photos are here: open the first explanation
                why.first.click()
                expect(page.get_by_text(re.compile(", distance ")).first).to_be_visible()
            _tall_viewport(page)
            page.screenshot(path=str(out / SCREENSHOTS[0]), full_page=True)
            page.set_viewport_size({"width": 1400, "height": 1000})

            # the before/after slider of every card: before on the left, labels on the photo
            tabs = page.get_by_role("tab", name="Before / after")
            shown["sliders"] = []
            for i in range(tabs.count()):
                tabs.nth(i).click()
                frame = page.frame_locator("iframe").nth(i)
                photo = frame.locator("img.after").bounding_box()
                tags = frame.locator(".tag")
                boxes = [tags.nth(j).bounding_box() for j in range(tags.count())]
                frame.locator("input[type=range]").fill("20")
                shown["sliders"].append(
                    {
                        "labels": tags.all_inner_texts(),
                        "inside": all(_inside(b, photo) for b in boxes),
                        "left_first": boxes[0]["x"] < boxes[1]["x"],
                        "clip": frame.locator("img.before").evaluate("i => i.style.clipPath"),
                    }
                )
            page.frame_locator("iframe").first.locator("img.after").scroll_into_view_if_needed()
            page.screenshot(path=str(out / SCREENSHOTS[1]))
            sides = page.get_by_role("tab", name="Side by side")
            for i in range(sides.count()):
                sides.nth(i).click()

            # demo mode only changes what is shown: nothing is coloured again
            page.get_by_text("Demo mode for colour photos").click()
            page.wait_for_timeout(1500)
            expect(cards).to_have_count(len(photos), timeout=timeout)

            # the first card's colour strength to 0: its colourized picture turns grey
            slider = page.get_by_role("slider", name="Colour strength").first
            slider.focus()
            slider.press("Home")
            expect(page.get_by_text("0.00").first).to_be_visible(timeout=timeout)
            first = page.locator('[data-testid="stImage"] img:visible').nth(1)
            deadline = time.monotonic() + timeout_s  # until the rerun has drawn it
            while (spread := _spread(first.screenshot())) > 2 and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            shown["spread_at_0"] = spread
            shown["spread_other"] = _spread(
                page.locator('[data-testid="stImage"] img:visible').nth(3).screenshot()
            )
            shown["recoloured"] = colourings(log) - coloured_at_first

            # full size of the widest photo: its own pixels in a dialog, 100 % on a click
            page.get_by_role("button", name=re.compile("Full size")).nth(1).click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_be_visible(timeout=timeout)
            view = dialog.frame_locator("iframe").first.locator(".view")
            expect(view.locator("img")).to_be_visible(timeout=timeout)
            view.locator("img").click()
            shown["full_size"] = view.locator("img").evaluate(
                "i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]"
            )
            shown["actual_size"] = view.evaluate("v => v.classList.contains('actual')")
            page.screenshot(path=str(out / SCREENSHOTS[2]))
            shown["recoloured"] = colourings(log) - coloured_at_first
        finally:
            browser.close()
    return shown


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[dev]')"
    return None


def toned(photo: Image.Image, tint: tuple[float, float, float] = (1.0, 0.86, 0.66)) -> Image.Image:
    """A sepia-toned scan of a grey photo: weak chroma, all of one hue."""
    grey = photo.convert("L")
    return Image.merge("RGB", [grey.point(lambda v, t=t: round(v * t)) for t in tint])


@pytest.mark.browser
@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_the_page_in_a_real_browser(tmp_path):
    from tests.serve_support import grey_photo, make_weights

    weights = make_weights(tmp_path / "weights")
    photos = [tmp_path / "grandma.png", tmp_path / "harbour.png", tmp_path / "street-1915.png"]
    grey_photo(120, 200, 1).save(photos[0])  # upright
    grey_photo(360, 120, 2).save(photos[1])  # wide
    toned(grey_photo(160, 120, 3)).save(photos[2])
    big = tmp_path / "huge-scan.png"
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 1024 * 1024
    out = Path(os.environ.get("APP_SCREENSHOTS", tmp_path))
    log = tmp_path / "streamlit.log"
    start = time.monotonic()
    with running_app(weights, log, max_upload_mb=1) as url:
        shown = colourize_in_browser(url, photos, out, log, too_large=[big])
    # one limit, said once (by the upload box), and the big file refused for its size
    assert "1MB per file" in shown["dropzone"] and shown["limits"] == 1
    assert "huge-scan.png" in shown["uploader"] and "1.0MB or smaller" in shown["uploader"]
    assert shown["summary"] == "3 of 3 photos colourized."  # not "could not be read"
    assert shown["why"] == 0  # no training photos folder: no neighbours, no list of names
    toned_note = [n for n in shown["notes"] if n.startswith("toned photo")]
    assert len(toned_note) == 1 and "treated as black-and-white" in toned_note[0]
    assert len(shown["domains"]) == 3 and set(shown["domains"]) <= set(DOMAINS)
    assert shown["downloads"] == [
        "Download all (ZIP)", "Download PNG (120×200)", "Download PNG (360×120)",
        "Download PNG (160×120)",
    ]  # fmt: skip
    assert shown["spread_at_0"] <= 2 < shown["spread_other"]  # strength 0: the grey photo
    assert shown["recoloured"] == 0  # strength, demo mode and full size coloured nothing
    assert colourings(log) == 3
    for slider in shown["sliders"]:  # upright, wide and toned alike
        assert slider["labels"] == ["Original", "Colour"] and slider["left_first"]
        assert slider["inside"] and slider["clip"] == "inset(0px 80% 0px 0px)"
    assert shown["full_size"] == [360, 120, 360] and shown["actual_size"]  # 100 %
    assert all((out / name).stat().st_size > 10_000 for name in SCREENSHOTS)
    assert time.monotonic() - start < 300  # 80-125 s here, on 2 cores shared with training


def sample_photos(folder: Path) -> list[Path]:
    """Upright, wide and toned black-and-white photos from scikit-image's samples (public
    domain or CC0): the astronaut Eileen Collins cropped upright, the coffee cup, and the
    cameraman in sepia."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(data.astronaut()).crop((96, 0, 416, 512)).convert("L")
    coffee = Image.fromarray(data.coffee()).convert("L")
    cameraman = toned(Image.fromarray(data.camera()))
    photos = []
    for name, image in (("astronaut.png", astronaut), ("coffee.png", coffee),
                        ("cameraman-sepia.png", cameraman)):  # fmt: skip
        image.save(folder / name)
        photos.append(folder / name)
    return photos


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the page with results.")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument("photos", type=Path, nargs="*", help="default: scikit-image samples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "streamlit.log"
    photos = args.photos or sample_photos(args.out / "samples")
    with running_app(args.weights, log, timeout=60) as url:
        shown = colourize_in_browser(url, photos, args.out, log, timeout_s=300)
    log.unlink()
    if not args.photos:
        shutil.rmtree(args.out / "samples")
    print(shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
