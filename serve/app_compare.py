"""A before/after slider in a few lines of HTML, CSS and JavaScript (no extra package).

Two stacked copies of the photo: the "after" one is clipped to the left of a range input
laid over both. Only our own re-encoded images go in (as data URLs); no text from the
upload (its name) is ever put into this HTML.
"""

import base64
import html
import io

from PIL import Image

TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body {{ margin: 0; background: transparent; font-family: sans-serif; }}
  .cmp {{ position: relative; width: 100%; height: {height}px; user-select: none; }}
  /* both layers fill the same box and keep their aspect, so they stay aligned */
  .cmp img {{ position: absolute; inset: 0; width: 100%; height: 100%;
              object-fit: contain; }}
  .cmp img.after {{ clip-path: inset(0 50% 0 0); }}
  .cmp .line {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px;
                background: #fff; box-shadow: 0 0 3px rgba(0,0,0,.6); pointer-events: none; }}
  .cmp input {{ position: absolute; inset: 0; width: 100%; height: 100%; margin: 0;
                opacity: 0; cursor: ew-resize; }}
  .cmp .tag {{ position: absolute; top: 6px; padding: 1px 6px; border-radius: 4px;
               background: rgba(0,0,0,.55); color: #fff; font-size: 12px;
               pointer-events: none; }}
</style></head><body>
<div class="cmp">
  <img class="before" src="{before}" alt="{before_label}">
  <img class="after" src="{after}" alt="{after_label}">
  <div class="line"></div>
  <span class="tag" style="left: 6px">{after_label}</span>
  <span class="tag" style="right: 6px">{before_label}</span>
  <input type="range" min="0" max="100" value="50" step="0.5"
         aria-label="Drag to compare {after_label} with {before_label}">
</div>
<script>
  const box = document.currentScript.previousElementSibling;
  const range = box.querySelector("input"), after = box.querySelector(".after"),
        line = box.querySelector(".line");
  range.addEventListener("input", () => {{
    after.style.clipPath = "inset(0 " + (100 - range.value) + "% 0 0)";
    line.style.left = range.value + "%";
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
    """The slider page: ``after`` left of the handle, ``before`` right of it.

    The labels are ours (fixed words), never user text; they are escaped all the same.
    """
    if before.size != after.size:
        after = after.resize(before.size, Image.Resampling.BILINEAR)
    return TEMPLATE.format(
        before=data_url(before),
        after=data_url(after),
        height=int(height),
        before_label=html.escape(before_label),
        after_label=html.escape(after_label),
    )


def frame_height(size: tuple[int, int], width: int, max_height: int) -> int:
    """The height that shows a ``size`` photo ``width`` wide, at most ``max_height`` tall.

    Small photos are scaled up to fill the column, as ``st.image`` does beside it.
    """
    w, h = size
    return max(1, min(max_height, round(h * width / max(1, w))))
