"""Help text for the project's commands: every default shown, docstrings read as plain text."""

import argparse
import textwrap

from .registry import Registry

WIDTH = 92  # of the lists under a --help, which argparse leaves as they are


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends each option's default to its help
    (left out where there is none to show: no value, or an on/off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        switch = isinstance(action, argparse._StoreFalseAction | argparse._StoreTrueAction)
        empty = action.default in (None, [], argparse.SUPPRESS) or switch
        if "%(default)" in text or not action.option_strings or empty:
            return text
        return f"{text} (default: %(default)s)"


def plain(doc: str) -> str:
    """A docstring as help text: reStructuredText's double backticks dropped."""
    return doc.replace("``", "")


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
