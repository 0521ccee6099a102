"""The web page: upload old photos, get them back in colour.

    streamlit run serve/app.py          (or the console script: colorizer-app)

A thin page over the same :class:`~serve.colorizer.Colorizer` the command line uses. The
models load once per weights folder (``st.cache_resource``); each upload is coloured once
per setting and kept in the browser session, so moving a control or clicking a download
re-runs this script without re-uploading or reloading anything. All decisions live in
``serve.app_logic``; this file only lays them out.
"""

import sys
from pathlib import Path

# `streamlit run serve/app.py` puts serve/ itself first on sys.path, where serve/imageio.py
# would shadow the PyPI package of that name; import the project from the repo root.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "serve"]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402

from serve import app_logic as logic  # noqa: E402
from serve.app_compare import comparison_html, frame_height  # noqa: E402
from serve.colorizer import JUDGE, Colorizer  # noqa: E402
from serve.weights import ENV_VAR, WeightsError, default_weights_dir  # noqa: E402

AUTOMATIC = "Automatic (router decides)"
SIZES = (64, 96, 128, 160, 192, 256, 320, 384, 512)
SLIDER_WIDTH, SLIDER_MAX_HEIGHT = 560, 480  # the image column on a laptop screen


@st.cache_resource(show_spinner="Loading the models…", max_entries=4)
def load_colorizer(folder: str, device: str) -> Colorizer:
    """The models of one weights folder, loaded once for every session and rerun."""
    return Colorizer.from_weights(folder or None, device)


@st.cache_data(show_spinner=False, max_entries=512)
def neighbour_thumbnail(path: str) -> object:
    return logic.thumbnail(Path(path))


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
    device = "cuda" if torch.cuda.is_available() else "cpu"
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
        help="Below this router confidence every specialist colours the photo and the "
        "discriminators pick the most realistic result.",
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
    max_mb = st.number_input(
        "Largest upload (MB)",
        1.0,
        200.0,
        logic.DEFAULT_MAX_MB,
        step=1.0,
        format="%g",
        key="max_mb",
        help="Bigger files are refused with a message on their card.",
    )
    data_root = st.text_input(
        "Training photos folder",
        value=logic.default_data_root(base),
        key="data_root",
        help=f"Where the router's training photos are (${logic.DATA_ENV}), to show the "
        "nearest ones as thumbnails; without it they are listed by name.",
    )
    return {
        "domain": domain,
        "threshold": float(threshold),
        "size": int(size),
        "demo": bool(demo),
        "max_bytes": int(max_mb * 1e6),
        "data_root": data_root.strip(),
    }


def show_images(card: logic.Card, demo: bool) -> None:
    result = card.result
    coloured = logic.preview(result.image)
    if demo and card.demo is not None:
        pictures = [
            (card.demo.desaturated, "Desaturated (what the model saw)"),
            (coloured, "Recolourized"),
            (card.demo.truth, "True colours"),
        ]
        before, after, labels = card.demo.truth, coloured, ("True colours", "Recolourized")
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


def show_demo_metrics(card: logic.Card) -> None:
    demo = card.demo
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
    if not card.neighbours:
        return
    with st.expander(f"Why this domain: the {len(card.neighbours)} nearest training photos"):
        files = [logic.neighbour_file(n, data_root) for n in card.neighbours]
        thumbs = [neighbour_thumbnail(str(f)) if f else None for f in files]
        if any(t is not None for t in thumbs):
            shown = [(t, n) for t, n in zip(thumbs, card.neighbours) if t is not None]
            for column, (thumb, n) in zip(st.columns(len(shown)), shown):
                column.image(thumb, caption=f"{n.domain} · {n.distance:.2f}", width="stretch")
        else:
            st.caption(
                "Thumbnails appear when the training photos folder (sidebar) holds these files."
            )
        st.table(
            [
                {"photo": n.path, "domain": n.domain, "distance": round(n.distance, 3)}
                for n in card.neighbours
            ]
        )


def show_details(card: logic.Card, colorizer: Colorizer, settings: dict, key: str) -> None:
    result = card.result
    st.markdown(f"Domain: **{result.domain}**")
    st.markdown(logic.route_summary(result, colorizer.threshold))
    for domain, p in logic.ranked(result.probs):
        st.progress(min(max(p, 0.0), 1.0), text=f"{domain}: {p:.0%}")
    if result.strategy == JUDGE:
        st.markdown("Discriminator fallback, realism per specialist:")
        st.table(
            [
                {"specialist": d, "score": round(s, 3), "chosen": "✓" if d == result.domain else ""}
                for d, s in logic.ranked(result.scores)
            ]
        )
    if settings["demo"] and card.demo is not None:
        show_demo_metrics(card)
    width, height = result.image.size
    notes = [*result.notes, f"{card.seconds:.1f} s at {result.model_size[0]}×"
             f"{result.model_size[1]} px"]  # fmt: skip
    st.caption(" · ".join(logic.md_escape(n) for n in notes))
    st.download_button(
        f"Download PNG ({width}×{height})",
        data=card.png,
        file_name=card.download_name,
        mime="image/png",
        key=f"png-{key}",
        on_click="ignore",
        icon=":material/download:",
    )
    show_neighbours(card, settings["data_root"])


def show_card(card: logic.Card, colorizer: Colorizer, settings: dict, key: str) -> None:
    with st.container(border=True):
        st.subheader(logic.md_escape(card.name), anchor=False)
        if not card.ok:
            st.error(f"{logic.md_escape(card.name)}: {logic.md_escape(card.error or '')}")
            return
        pictures, details = st.columns([3, 2], gap="medium")
        with pictures:
            show_images(card, settings["demo"])
        with details:
            show_details(card, colorizer, settings, key)


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
    colorizer = logic.with_settings(base, settings["size"], settings["threshold"])
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
    cards = []
    for i, upload in enumerate(uploads):
        data = upload.getvalue()
        key = logic.upload_key(
            data, upload.name, folder, device, settings["size"], settings["threshold"],
            settings["domain"], settings["max_bytes"],
        )  # fmt: skip
        card = cache.get(key)
        if card is None:
            if progress is None:
                progress = summary.progress(0.0)
            progress.progress(i / len(uploads), text=f"Colourizing {i + 1} of {len(uploads)}…")
            card = logic.colourize_upload(
                colorizer, upload.name, data, settings["domain"], settings["max_bytes"]
            )
            cache.put(key, card)
        cards.append(card)
        show_card(card, colorizer, settings, f"{i}-{key[0][:12]}")
    if progress is not None:
        progress.empty()
    done = sum(card.ok for card in cards)
    with summary:
        left, right = st.columns([3, 1], vertical_alignment="center")
        failed = len(cards) - done
        left.markdown(
            f"**{done}** of {len(cards)} photos colourized"
            + (f", **{failed}** could not be read." if failed else ".")
        )
        if done:
            right.download_button(
                "Download all (ZIP)",
                data=lambda: logic.zip_bytes(cards),
                file_name="colourized.zip",
                mime="application/zip",
                key="zip",
                on_click="ignore",
                type="primary",
                icon=":material/folder_zip:",
            )


main()
