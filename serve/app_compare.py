"""A before/after slider in a few lines of HTML, CSS and JavaScript (no extra package).

Two stacked copies of the photo: the "before" one is clipped to the left of a range input
laid over both, so before is on the left, as in every such slider. Only our own re-encoded
images go in (as data URLs); no text from the upload (its name) is ever put into this HTML.
"""

import base64
import html
import io

from PIL import Image

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body {{ margin: 0; background: transparent; font-family: sans-serif; }}
  /* the box has the photo's own shape, so the labels sit on the photo, upright or wide */
  .cmp {{ position: relative; margin: 0 auto; aspect-ratio: {width} / {height};
          width: min(100%, {box_width}px); user-select: none; }}
  .cmp img {{ position: absolute; inset: 0; width: 100%; height: 100%; }}
  .cmp img.before {{ clip-path: inset(0 50% 0 0); }}
  .cmp .line {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px;
                background: #fff; box-shadow: 0 0 3px rgba(0,0,0,.6); pointer-events: none; }}
  .cmp input {{ position: absolute; inset: 0; width: 100%; height: 100%; margin: 0;
                opacity: 0; cursor: ew-resize; }}
  .cmp .tag {{ position: absolute; top: 6px; padding: 1px 6px; border-radius: 4px;
               background: rgba(0,0,0,.55); color: #fff; font-size: 12px;
               pointer-events: none; max-width: 40%; overflow: hidden; white-space: nowrap; }}
</style></head><body>
<div class="cmp">
  <img class="after" src="{after}" alt="{after_label}">
  <img class="before" src="{before}" alt="{before_label}">
  <div class="line"></div>
  <span class="tag" style="left: 6px">{before_label}</span>
  <span class="tag" style="right: 6px">{after_label}</span>
  <input type="range" min="0" max="100" value="50" step="0.5"
         aria-label="Drag to compare {before_label} with {after_label}">
</div>
<script>
  const box = document.currentScript.previousElementSibling;
  const range = box.querySelector("input"), before = box.querySelector(".before"),
        line = box.querySelector(".line");
  range.addEventListener("input", () => {{
    before.style.clipPath = "inset(0 " + (100 - range.value) + "% 0 0)";
    line.style.left = range.value + "%";
  }});
</script>
</body></html>"""

FULL_SIZE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body {{ margin: 0; height: 100%; background: #111; }}
  .view {{ height: 100%; overflow: auto; cursor: zoom-in; display: flex; }}
  .view img {{ display: block; max-width: 100%; max-height: 100%; margin: auto; }}
  .view.actual {{ cursor: grab; }}
  .view.actual img {{ max-width: none; max-height: none; }}
</style></head><body>
<div class="view"><img src="{image}" alt="the colourized photo at full size"></div>
<script>
  const view = document.querySelector(".view");
  let drag = null, moved = false;
  view.addEventListener("mousedown", e => {{
    drag = [e.clientX, e.clientY, view.scrollLeft, view.scrollTop]; moved = false;
  }});
  window.addEventListener("mouseup", () => {{ drag = null; }});
  view.addEventListener("mousemove", e => {{
    if (!drag || !view.classList.contains("actual")) return;
    moved = moved || Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3;
    view.scrollLeft = drag[2] - (e.clientX - drag[0]);
    view.scrollTop = drag[3] - (e.clientY - drag[1]);
  }});
  view.addEventListener("click", e => {{
    if (moved) return;  // the end of a drag, not a click
    const img = view.querySelector("img"), box = img.getBoundingClientRect();
    const fx = (e.clientX - box.left) / box.width, fy = (e.clientY - box.top) / box.height;
    view.classList.toggle("actual");
    if (view.classList.contains("actual")) {{  // keep the clicked spot under the pointer
      view.scrollLeft = fx * img.naturalWidth - view.clientWidth / 2;
      view.scrollTop = fy * img.naturalHeight - view.clientHeight / 2;
    }}
  }});
</script>
</body></html>"""


def data_url(image: Image.Image, quality: int = 88) -> str:
    """A JPEG data URL of ``image`` (RGB); the page copy, not the download."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def comparison_html(
    before: Image.Image,
    after: Image.Image,
    height: int = 420,
    before_label: str = "Original",
    after_label: str = "Colour",
) -> str:
    """The slider page: ``before`` left of the handle, ``after`` right of it, each label on
    its own side of the photo, inside it; the photo is at most ``height`` pixels tall.

    The labels are ours (fixed words), never user text; they are escaped all the same.
    """
    if before.size != after.size:
        after = after.resize(before.size, Image.Resampling.BILINEAR)
    width, tall = before.size
    return TEMPLATE.format(
        before=data_url(before),
        after=data_url(after),
        width=width,
        height=tall,
        box_width=max(1, round(int(height) * width / tall)),
        before_label=html.escape(before_label),
        after_label=html.escape(after_label),
    )


def full_size_html(image: Image.Image) -> str:
    """A page showing ``image`` fitted to its frame; a click toggles 100 % (drag to pan)."""
    return FULL_SIZE.format(image=data_url(image, quality=92))


def frame_height(size: tuple[int, int], width: int, max_height: int) -> int:
    """The height that shows a ``size`` photo ``width`` wide, at most ``max_height`` tall.

    Small photos are scaled up to fill the column, as ``st.image`` does beside it.
    """
    w, h = size
    return max(1, min(max_height, round(h * width / max(1, w))))
