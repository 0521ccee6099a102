"""Help text that lists a registry's models (the rest of the help machinery: common.cli)."""

import textwrap

from .registry import Registry

WIDTH = 92  # of the lists under a --help, which argparse leaves as they are


def catalogue(registry: Registry, title: str) -> str:
    """``title`` and one line per registered model: its name and its docstring's first line,
    so --help explains names such as beta, gamma or unet_rgb."""
    width = max(len(name) for name in registry.names()) + 4
    lines = [
        textwrap.fill(
            f"  {name:<{width - 2}}{registry.summary(name)}",
            width=WIDTH,
            subsequent_indent=" " * width,
        )
        for name in registry.names()
    ]
    return "\n".join([f"{title}:", *lines])
