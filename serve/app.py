"""The web page: upload old photos, get them back in colour.

    streamlit run serve/app.py          (or the console script: colorizer-app)

A thin page over the same :class:`~serve.colorizer.Colorizer` the command line uses. The
models load once per weights folder (``st.cache_resource``); each upload is coloured once
per setting and kept in the browser session, so moving a control or clicking a download
re-runs this script without re-uploading or reloading anything. All decisions live in
``serve.app_logic`` and ``serve.app_explain``; this file only lays them out.
"""

import functools
import sys
from pathlib import Path

import streamlit as st

from common.cli import choose_device
from serve import app_explain as explain
from serve import app_logic as logic
from serve.app_compare import comparison_html, frame_height, full_size_html
from serve.colorizer import Colorizer
from serve.result import JUDGE
from serve.transfer import MAX_STRENGTH
from serve.weights import ENV_VAR, WeightsError, default_weights_dir

AUTOMATIC = "Automatic (router decides)"
SIZES = (64, 96, 128, 160, 192, 256, 320, 384, 512)
SLIDER_WIDTH, SLIDER_MAX_HEIGHT = 560, 480  # the image column on a laptop screen
FULL_SIZE_HEIGHT = 640  # of the full-size view's frame, in the large dialog


@st.cache_resource(show_spinner="Loading the models…", max_entries=4)
def load_colorizer(folder: str, device: str) -> Colorizer:
    """The models of one weights folder, loaded once for every session and rerun."""
    return Colorizer.from_weights(folder or None, device)


@st.cache_data(show_spinner=False, max_entries=512)
def neighbour_thumbnail(path: str) -> object:
    return explain.thumbnail(Path(path))


def show_frame(html: str, height: int) -> None:
    """An HTML snippet with its script, in an iframe (st.iframe where this Streamlit has it)."""
    if hasattr(st, "iframe"):
        st.iframe(html, height=height)
    else:  # older Streamlit
        import streamlit.components.v1 as components

        components.html(html, height=height)


def sidebar_weights() -> tuple[str, str]:
    st.header("Settings")
    folder = st.text_input(
        "Weights folder",
        value=str(default_weights_dir()),
        key="weights",
        help=f"A folder with router/ and specialists/ (default: ${ENV_VAR} or the repo's "
        "weights/).",
    )
    device = str(choose_device("auto"))
    return folder.strip(), device


def sidebar_controls(base: Colorizer) -> dict:
    """The settings that change results (and those that only change the display)."""
    choice = st.selectbox(
        "Domain",
        [AUTOMATIC, *base.domains],
        key="domain",
        help="Force one specialist for every photo instead of asking the router.",
    )
    domain = None if choice == AUTOMATIC else choice
    threshold = st.slider(
        "Fallback threshold",
        0.0,
        1.0,
        value=float(base.threshold),  # the router's calibrated default, exactly
        format="%.3f",
        step=0.01,
        key="threshold",
        disabled=domain is not None,
        help="Below this router confidence the specialists compete and the discriminators "
        "pick the most realistic result (weighed with the router's belief).",
    )
    size = st.select_slider(
        "Model resolution",
        options=sorted({*SIZES, base.size}),
        value=base.size,
        key="size",
        help="Short side of the copy the models colour (px). The colours are put back on "
        "the photo at its own full resolution; the trained size is usually best.",
    )
    demo = st.toggle(
        "Demo mode for colour photos",
        value=True,
        key="demo",
        help="A colour upload is shown desaturated, recolourized and next to its true "
        "colours, with PSNR and colourfulness.",
    )
    data_root = st.text_input(
        "Training photos folder",
        value=explain.default_data_root(base),
        key="data_root",
        help=f"Where the router's training photos are (${explain.DATA_ENV}): the nearest ones "
        "are then shown under each photo to explain its domain. Empty: not shown.",
    )
    return {
        "domain": domain,
        "threshold": float(threshold),
        "size": int(size),
        "demo": bool(demo),
        "data_root": data_root.strip(),
    }


def show_images(card: logic.Card, view: logic.View, demo: bool) -> None:
    coloured = view.image
    if demo and view.demo is not None:
        pictures = [
            (view.demo.desaturated, "Desaturated (what the model saw)"),
            (coloured, "Recolourized"),
            (view.demo.truth, "True colours"),
        ]
        before, after, labels = view.demo.truth, coloured, ("True colours", "Recolourized")
    else:
        original = logic.preview(card.original)
        pictures = [(original, "Original"), (coloured, "Colourized")]
        before, after, labels = original, coloured, ("Original", "Colour")
    side, slider = st.tabs(["Side by side", "Before / after"])
    with side:
        for column, (image, caption) in zip(st.columns(len(pictures)), pictures):
            column.image(image, caption=caption, width="stretch")
    with slider:
        height = frame_height(before.size, SLIDER_WIDTH, SLIDER_MAX_HEIGHT)
        show_frame(comparison_html(before, after, height, *labels), height + 8)


@st.dialog("Full size", width="large")
def show_full_size(card: logic.Card, strength: float) -> None:
    """The colourized photo at its own resolution, to pan around a big scan."""
    width, height = card.result.image.size
    st.caption(
        f"{explain.md_escape(card.name)}: {width}×{height} px. Click the photo to switch "
        "between fitting the window and 100 %; at 100 % scroll or drag to look around."
    )
    show_frame(full_size_html(card.image(strength)), FULL_SIZE_HEIGHT + 8)


def show_demo_metrics(demo: logic.Demo) -> None:
    left, right = st.columns(2)
    left.metric(
        "PSNR vs true colours",
        f"{demo.psnr:.1f} dB",
        delta=f"{demo.psnr - demo.psnr_grey:+.1f} dB vs grey",
        help=f"Desaturated photo: {demo.psnr_grey:.1f} dB. Measured at {demo.measured_side} px.",
    )
    right.metric(
        "Colourfulness",
        f"{demo.colourfulness:.0f}",
        delta=f"{demo.colourfulness - demo.colourfulness_truth:+.0f} vs truth "
        f"({demo.colourfulness_truth:.0f})",
        delta_color="off",
        help="Hasler-Suesstrunk colourfulness; 0 is grey.",
    )


def show_neighbours(card: logic.Card, data_root: str) -> None:
    """The nearest training photos, large enough to see, when their folder is here; else
    nothing (a list of file names explains no route)."""
    shown = [
        (n, thumb)
        for n, path in explain.shown_neighbours(card.neighbours, data_root)
        if (thumb := neighbour_thumbnail(str(path))) is not None
    ]
    if not shown:
        return
    with st.expander(f"Why this domain: the {len(shown)} nearest training photos"):
        for column, (n, thumb) in zip(st.columns(explain.NEIGHBOURS_SHOWN), shown):
            column.image(thumb, width="stretch")
            column.caption(f"{n.domain}, distance {n.distance:.2f}")


def show_details(
    card: logic.Card, view: logic.View, colorizer: Colorizer, settings: dict, key: str
) -> None:
    result = card.result
    st.markdown(f"Domain: **{result.domain}**")
    st.markdown(explain.route_summary(result, colorizer.threshold))
    if result.restraint < 1.0:
        st.caption(
            f"Colour restrained to {result.restraint:.0%} for this photo: photos like it were "
            "further from their true colours at full strength. The strength slider scales "
            "on top of it."
        )
    for domain, p in explain.ranked(result.probs):
        st.progress(min(max(p, 0.0), 1.0), text=f"{domain}: {p:.0%}")
    if result.strategy == JUDGE and result.scores:
        st.markdown(
            "Discriminator fallback, realism per specialist (one the router's belief rules "
            "out whatever it scores is not run):"
        )
        st.table(
            [
                {"specialist": d, "score": round(s, 3), "chosen": "✓" if d == result.domain else ""}
                for d, s in explain.ranked(result.scores)
            ]
        )
    if settings["demo"] and view.demo is not None:
        show_demo_metrics(view.demo)
    width, height = result.image.size
    notes = [*result.notes, f"{card.seconds:.1f} s at {result.model_size[0]}×"
             f"{result.model_size[1]} px"]  # fmt: skip
    st.caption(" · ".join(explain.md_escape(n) for n in notes))
    strength = settings["strength"]
    st.download_button(
        f"Download PNG ({width}×{height})",
        data=functools.partial(card.png, strength),
        file_name=card.download_name,
        mime="image/png",
        key=f"png-{key}",
        on_click="ignore",
        icon=":material/download:",
    )
    if st.button("Full size", key=f"full-{key}", icon=":material/zoom_in:"):
        show_full_size(card, strength)


def show_card(card: logic.Card, colorizer: Colorizer, settings: dict, key: str) -> float:
    """One upload's card; returns the colour strength chosen on it (1 for a failed one)."""
    with st.container(border=True):
        st.subheader(explain.md_escape(card.name), anchor=False)
        if not card.ok:
            st.error(f"{explain.md_escape(card.name)}: {explain.md_escape(card.error or '')}")
            return 1.0
        pictures, details = st.columns([3, 2], gap="medium")
        images = pictures.container()
        strength = pictures.slider(
            "Colour strength",
            0.0,
            MAX_STRENGTH,
            value=1.0,
            step=0.05,
            key=f"strength-{key}",
            help="0: the black-and-white photo; 1: the model's colours; above 1: more vivid. "
            "Instant: the models do not run again, and the download follows it.",
        )
        view = card.view(strength)
        with images:
            show_images(card, view, settings["demo"])
        with details:
            show_details(card, view, colorizer, settings | {"strength": strength}, key)
        show_neighbours(card, settings["data_root"])
    return strength


def main() -> None:
    st.set_page_config(page_title="Colourize old photos", page_icon="🎨", layout="wide")
    st.title("Colourize old photos")
    st.caption(
        "Upload black-and-white photos: a classifier picks the specialist for each "
        "(portrait, landscape or general) and it paints in the colours."
    )
    with st.sidebar:
        folder, device = sidebar_weights()
        try:
            base = load_colorizer(folder, device)
        except WeightsError as exc:
            first, _, rest = str(exc).partition("\n")
            st.error(f"**No usable weights.** {first}\n\n```text\n{rest}\n```")
            st.stop()
        settings = sidebar_controls(base)
        st.caption(f"{len(base.domains)} specialists ({', '.join(base.domains)}) on {device}.")
        for warning in base.warnings:
            st.warning(warning)
    colorizer = base.with_settings(settings["size"], settings["threshold"])
    max_bytes = int(st.get_option("server.maxUploadSize")) * logic.MB  # what the box says
    uploads = st.file_uploader(
        "Photos (JPEG, PNG, WebP, TIFF, BMP)",
        type=list(logic.UPLOAD_TYPES),
        accept_multiple_files=True,
    )
    if not uploads:
        st.info("Drop one or more photos above. Colour photos work too, as a demo.")
        return
    if "results" not in st.session_state:
        st.session_state["results"] = logic.ResultCache()
    cache: logic.ResultCache = st.session_state["results"]
    summary = st.container()
    progress = None
    cards, strengths = [], []
    for i, upload in enumerate(uploads):
        data = upload.getvalue()
        key = logic.upload_key(
            data, upload.name, folder, device, settings["size"], settings["threshold"],
            settings["domain"],
        )  # fmt: skip
        card = cache.get(key)
        if card is None:
            if progress is None:
                progress = summary.progress(0.0)
            progress.progress(i / len(uploads), text=f"Colourizing {i + 1} of {len(uploads)}…")
            card = logic.colourize_upload(
                colorizer, upload.name, data, settings["domain"], max_bytes
            )
            cache.put(key, card)
            # one line per colouring in the server's log: what was computed, and when
            print(f"colorizer-app: {explain.log_line(card)}", file=sys.stderr, flush=True)
        cards.append(card)
        strengths.append(show_card(card, colorizer, settings, f"{i}-{key[0][:12]}"))
    if progress is not None:
        progress.empty()
    with summary:
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.markdown(explain.summary(cards))
        if any(card.ok for card in cards):
            right.download_button(
                "Download all (ZIP)",
                data=lambda: logic.zip_bytes(cards, strengths),
                file_name="colourized.zip",
                mime="application/zip",
                key="zip",
                on_click="ignore",
                type="primary",
                icon=":material/folder_zip:",
            )


main()
