"""What every command shares: its options declared once (on a config dataclass), help text
with every default shown, one usage error and its exit code, and the choice of device.

A config field becomes an option through :func:`option`, which keeps the help text (and the
flag's name, choices or metavar where they are not the obvious ones) in the field's metadata;
:func:`add_options` turns the fields into ``argparse`` options and :func:`from_args` turns the
parsed namespace back into the config::

    @dataclass
    class Config:
        out: str = option(help="run folder")
        size: int = option(128, help="crop size in pixels")

    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_options(parser, Config)
    config = from_args(Config, parser.parse_args())
"""

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(Exception):
    """A problem with the command line or the data that the user must fix (exit code 2)."""


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


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    choices: Callable[[], Iterable[str]] | Iterable[str] | None = None,
    metavar: str | None = None,
) -> Any:
    """A config field that is also a command-line option (see the module's docstring).

    A mutable default (a dict) is copied for every config. ``choices`` may be a function, so a
    registry is listed when the parser is built. A dict field is a repeatable ``KEY=VALUE``
    option (JSON values); a bool field an on/off switch (``--no-NAME`` when it is on by default).
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "metavar": metavar}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with a JSON value (a plain string where it is not JSON)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _value_type(annotation: Any) -> Any:
    """``int`` for ``int`` and ``int | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (kind,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kind
    return annotation


def add_options(
    parser: argparse.ArgumentParser,
    config: type,
    only: Iterable[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    required: Iterable[str] = (),
    helps: Mapping[str, str] | None = None,
) -> None:
    """One option per field of the dataclass ``config`` that has :func:`option` metadata
    (of the fields named in ``only``, in the class's order). For a command that takes a
    subset of them, ``defaults`` and ``helps`` replace some defaults and help texts, and
    ``required`` makes some options required."""
    defaults, required, hints = dict(defaults or {}), set(required), typing.get_type_hints(config)
    helps = dict(helps or {})
    wanted = None if only is None else set(only)
    for item in dataclasses.fields(config):
        meta = item.metadata
        if "help" not in meta or (wanted is not None and item.name not in wanted):
            continue
        if item.name in defaults:
            default = defaults[item.name]
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = item.default
        kind = _value_type(hints[item.name])
        flag = meta["flag"] or "--" + item.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": item.name, "help": helps.get(item.name, meta["help"])}
        if kind is bool:
            kwargs["action"] = "store_false" if default else "store_true"
            flag = meta["flag"] or ("--no-" if default else "--") + item.name.replace("_", "-")
        elif kind is dict:
            kwargs |= {"action": "append", "type": key_value, "default": [], "metavar": "KEY=VALUE"}
        else:
            kwargs["type"] = kind
            if default is dataclasses.MISSING or item.name in required:
                kwargs["required"] = True
            else:
                kwargs["default"] = default
        choices = meta["choices"]
        if choices is not None:
            kwargs["choices"] = list(choices() if callable(choices) else choices)
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag, **kwargs)


def from_args(config: type, args: argparse.Namespace, **settings: Any) -> Any:
    """The ``config`` dataclass from parsed options (and ``settings`` for fields that are not
    options); a ``KEY=VALUE`` option's pairs become its dict."""
    names = {item.name: item for item in dataclasses.fields(config)}
    values = {k: v for k, v in vars(args).items() if k in names}
    for name, value in values.items():
        if isinstance(value, list) and names[name].default_factory is not dataclasses.MISSING:
            values[name] = dict(value)
    return config(**values | settings)


def changed_settings(saved: Mapping[str, Any], config: Any, names: Iterable[str]) -> list[str]:
    """``--option saved -> now`` for each of the fields ``names`` of the dataclass ``config``
    whose value differs from the run's saved settings (one the saved run does not record
    counts as unchanged)."""
    flags = {item.name: item.metadata.get("flag") for item in dataclasses.fields(config)}
    changed = []
    for name in names:
        now = getattr(config, name)
        before = saved.get(name, now)
        if before != now:
            flag = flags[name] or "--" + name.replace("_", "-")
            changed.append(f"{flag} {_shown(before)} -> {_shown(now)}")
    return changed


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def refuse_changes(where: str, changed: list[str]) -> None:
    """The one resume rule: a setting that changes the model or the data must be what the run
    started with (settings that only extend or watch the run, such as --steps, may change)."""
    if changed:
        raise UsageError(
            f"{where}: this run was started with different settings ({'; '.join(changed)}); "
            "give the values it started with to resume it, or use another --out for a new run"
        )


def choose_device(requested: str, local_rank: int = 0) -> Any:
    """The ``torch.device`` for ``--device``: ``auto`` is the GPU when there is one, else the
    CPU; plain ``cuda`` is this process's own GPU (``local_rank`` under torchrun)."""
    import torch  # here, so that --help and the CPU need no torch import at start-up

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {requested} asked for, but no CUDA GPU is available")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"--device {requested}: not a device torch knows") from None
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def run_command(body: Callable[[], object], errors: tuple[type[Exception], ...] = ()) -> int:
    """A command's exit code: 0 when ``body`` returns (or the int it returns, for a command
    with other outcomes, such as a failed run); 2 and one ``error:`` line (no traceback) for
    a usage error, one of ``errors`` or an unwritable file; 130 on Ctrl-C."""
    try:
        result = body()
    except (UsageError, OSError, *errors) as exc:
        print(f"error: {_reason(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)
