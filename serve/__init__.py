"""Serving: the Colorizer pipeline and the ``colorize`` command line.

The names below load on first use (PEP 562), so ``python -m serve.colorize --help`` and
usage errors answer without importing torch or timm.
"""

from importlib import import_module

from . import _threads  # noqa: F401  (first: OpenMP settings must precede torch)

_HOMES = {
    "FORCED": "serve.result",
    "JUDGE": "serve.result",
    "ROUTER": "serve.result",
    "ColorizeResult": "serve.result",
    "Colorizer": "serve.colorizer",
    "ImageReadError": "common.images",
    "Photo": "common.images",
    "from_pil": "common.images",
    "read_image": "common.images",
    "save_image": "common.images",
    "WeightsError": "serve.weights",
    "default_weights_dir": "serve.weights",
    "locate_weights": "serve.weights",
    "render": "serve.result",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` only when it is first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
