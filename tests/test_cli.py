"""common.cli: options generated from a config dataclass, the resume rule, the exit codes."""

import argparse
from dataclasses import dataclass

import pytest

from common.cli import (
    HelpFormatter,
    UsageError,
    add_options,
    changed_settings,
    choose_device,
    from_args,
    option,
    refuse_changes,
    run_command,
)


@dataclass
class Config:
    out: str = option(help="run folder")
    size: int = option(128, help="crop size")
    steps: int | None = option(None, help="optimizer steps")
    arch: str = option("a", choices=lambda: ["a", "b"], metavar="ARCH", help="network")
    arch_args: dict = option({}, flag="--arch-arg", help="network setting")
    pretrained: bool = option(True, help="random init")
    verbose: bool = option(False, help="say more")
    internal: int = 3  # no option metadata: not on the command line


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    add_options(parser, Config, **kwargs)
    return parser


def test_options_come_from_the_fields():
    argv = ["--out", "o", "--size", "64", "--steps", "9", "--arch", "b", "--no-pretrained"]
    argv += ["--arch-arg", "ngf=8", "--arch-arg", "norm=batch", "--verbose"]
    config = from_args(Config, _parser().parse_args(argv), internal=5)
    assert config == Config("o", 64, 9, "b", {"ngf": 8, "norm": "batch"}, False, True, 5)
    assert from_args(Config, _parser().parse_args(["--out", "o"])) == Config("o")
    assert Config("x").arch_args is not Config("y").arch_args  # a fresh dict for each


def test_bad_values_and_missing_options_are_refused(capsys):
    for argv in (["--size", "64"], ["--out", "o", "--arch", "c"], ["--out", "o", "--size", "x"]):
        with pytest.raises(SystemExit) as exit_:
            _parser().parse_args(argv)
        assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        _parser().parse_args(["--out", "o", "--arch-arg", "ngf"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_help_explains_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--size SIZE crop size (default: 128)" in text
    assert "--arch ARCH network (default: a)" in text
    assert "--no-pretrained random init" in text and "--internal" not in text


def test_a_command_can_take_a_subset_with_its_own_defaults_and_help(capsys):
    parser = _parser(
        only=["out", "steps"], defaults={"out": "runs"}, required=["steps"], helps={"out": "x"}
    )
    args = parser.parse_args(["--steps", "3"])
    assert (args.out, args.steps) == ("runs", 3) and not hasattr(args, "size")
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "--steps" in capsys.readouterr().err


def test_changed_settings_name_the_option_and_both_values():
    now = Config("o", size=64, arch_args={"ngf": 4})
    saved = {"size": 128, "arch_args": {"ngf": 4}, "steps": 5}
    assert changed_settings(saved, now, ["size", "arch_args", "arch"]) == ["--size 128 -> 64"]
    saved["arch_args"] = {"ngf": 8}
    changed = changed_settings(saved, now, ["arch_args"])
    assert changed == ['--arch-arg {"ngf": 8} -> {"ngf": 4}']
    with pytest.raises(UsageError, match=r"run.st: .*\(--size 128 -> 64\).*another --out"):
        refuse_changes("run.st", changed_settings(saved, now, ["size"]))
    refuse_changes("run.st", [])


def test_exit_codes(capsys):
    def fails(exc: BaseException):
        def body():
            raise exc

        return body

    assert run_command(lambda: None) == 0
    assert run_command(lambda: {"step": 3}) == 0  # a trainer's result is not an exit code
    assert run_command(lambda: 1) == 1  # a command's own outcome, such as a failed run
    assert run_command(fails(UsageError("bad --size"))) == 2
    assert capsys.readouterr().err == "error: bad --size\n"
    assert run_command(fails(PermissionError(13, "Permission denied", "/out/x"))) == 2
    assert capsys.readouterr().err == "error: /out/x: Permission denied\n"
    assert run_command(fails(ValueError("mine")), errors=(ValueError,)) == 2
    assert run_command(fails(KeyboardInterrupt())) == 130
    with pytest.raises(RuntimeError):
        run_command(fails(RuntimeError("a bug is a traceback")))


def test_device_choice():
    import torch

    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="--device tpu9: not a device torch knows"):
        choose_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU is available"):
            choose_device("cuda:1")
    else:
        assert choose_device("cuda", local_rank=0) == torch.device("cuda", 0)
