"""Serving: safe image I/O, the Colorizer pipeline and the ``colorize`` command line."""

from . import _threads  # noqa: F401  (first: OpenMP settings must precede torch)
from .colorizer import FORCED, JUDGE, ROUTER, Colorizer, ColorizeResult, render
from .imageio import ImageReadError, Photo, from_pil, read_image, save_image
from .weights import WeightsError, default_weights_dir, locate_weights

__all__ = [
    "FORCED",
    "JUDGE",
    "ROUTER",
    "ColorizeResult",
    "Colorizer",
    "ImageReadError",
    "Photo",
    "WeightsError",
    "default_weights_dir",
    "from_pil",
    "locate_weights",
    "read_image",
    "render",
    "save_image",
]
