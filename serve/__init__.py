"""Serving: safe image I/O, the Colorizer pipeline and the ``colorize`` command line.

The names below load on first use (PEP 562), so ``python -m serve.colorize --help`` and
usage errors answer without importing torch or timm.
"""

from importlib import import_module

from . import _threads  # noqa: F401  (first: OpenMP settings must precede torch)

_HOMES = {
    "FORCED": "colorizer",
    "JUDGE": "colorizer",
    "ROUTER": "colorizer",
    "ColorizeResult": "colorizer",
    "Colorizer": "colorizer",
    "ImageReadError": "imageio",
    "Photo": "imageio",
    "from_pil": "imageio",
    "read_image": "imageio",
    "save_image": "imageio",
    "WeightsError": "weights",
    "default_weights_dir": "weights",
    "locate_weights": "weights",
    "render": "colorizer",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` only when it is first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
