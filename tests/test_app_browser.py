"""End to end: the real Streamlit server and a real headless Chromium (Debian's package).

Starts ``streamlit run serve/app.py`` on a free port, uploads two grayscale photos through
the page's file input, waits for both result cards, checks their domains, the downloads
and the before/after slider, and saves a screenshot. Skipped (with the reason) only when
Chromium or Python's playwright is missing; ``.ci/run`` installs both.

Also a script, for the README's screenshot:
    python -m tests.test_app_browser --weights WEIGHTS --out docs/app.png PHOTO...
"""

import argparse
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

import pytest

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


@contextmanager
def running_app(weights: Path, log: Path, timeout: float = 30.0) -> Iterator[str]:
    """``streamlit run serve/app.py`` on a free port; yields its URL, stops it after."""
    port = _free_port()
    env = dict(os.environ, COLORIZER_WEIGHTS=str(weights), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "serve" / "app.py"),
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
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


def colourize_in_browser(
    url: str, photos: Sequence[Path], screenshot: Path, timeout_s: float = 60.0
) -> dict:
    """Upload ``photos`` on the page, wait for every card, screenshot; return what it shows."""
    from playwright.sync_api import expect, sync_playwright

    timeout = timeout_s * 1000
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect(page.get_by_text("Colourize old photos").first).to_be_visible(timeout=timeout)
            page.locator("input[type=file]").set_input_files([str(p) for p in photos])
            zip_button = page.get_by_role("button", name="Download all (ZIP)")
            expect(zip_button).to_be_visible(timeout=timeout)
            cards = page.get_by_text(re.compile(r"^Domain: \w+$"))
            expect(cards).to_have_count(len(photos), timeout=timeout)
            domains = [text.split(":", 1)[1].strip() for text in cards.all_inner_texts()]
            buttons = page.locator('[data-testid="stDownloadButton"] button')
            for i in range(buttons.count()):
                expect(buttons.nth(i)).to_be_visible()
            # the icon is a font ligature: its name is text too, on a line of its own
            labels = [label.strip().split("\n")[-1] for label in buttons.all_inner_texts()]
            # the before/after slider: drag it (set the range) and the colour layer follows
            page.get_by_role("tab", name="Before / after").first.click()
            frame = page.frame_locator("iframe").first
            frame.locator("input[type=range]").fill("20")
            clip = frame.locator("img.after").evaluate("img => img.style.clipPath")
            page.get_by_role("tab", name="Side by side").first.click()
            # Streamlit scrolls inside its own container: a tall viewport shows every card
            height = page.evaluate(
                "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight"
                " || document.body.scrollHeight"
            )
            page.set_viewport_size({"width": 1400, "height": min(4000, max(1000, height))})
            page.wait_for_timeout(500)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"domains": domains, "downloads": labels, "clip": clip}


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.mark.browser
@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_two_photos_in_a_real_browser(tmp_path):
    from tests.serve_support import grey_photo, make_weights

    weights = make_weights(tmp_path / "weights")
    photos = [tmp_path / "grandma.png", tmp_path / "harbour.png"]
    grey_photo(160, 120, 1).save(photos[0])
    grey_photo(120, 160, 2).save(photos[1])
    screenshot = Path(os.environ.get("APP_SCREENSHOT", tmp_path / "app.png"))
    start = time.monotonic()
    with running_app(weights, tmp_path / "streamlit.log") as url:
        shown = colourize_in_browser(url, photos, screenshot)
    assert len(shown["domains"]) == 2 and set(shown["domains"]) <= set(DOMAINS)
    assert shown["downloads"] == [
        "Download all (ZIP)", "Download PNG (160×120)", "Download PNG (120×160)",
    ]  # fmt: skip
    assert shown["clip"] == "inset(0px 80% 0px 0px)"
    assert screenshot.stat().st_size > 10_000
    assert time.monotonic() - start < 90


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the page with results.")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("photos", type=Path, nargs="+")
    args = parser.parse_args(argv)
    log = args.out.with_suffix(".log")
    with running_app(args.weights, log, timeout=60) as url:
        shown = colourize_in_browser(url, args.photos, args.out, timeout_s=300)
    log.unlink()
    print(shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
