"""--help of the training and evaluation commands: defaults shown, every option explained,
the architectures' names said in words, no reStructuredText backticks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from router.evaluate import parse_args as evaluate_args
from training.compare import parse_args as compare_args
from training.ship.cli import parse_args as ship_args
from training.train_router import parse_args as router_args
from training.train_specialist import parse_args as specialist_args

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "train_specialist": specialist_args,
    "train_router": router_args,
    "router.evaluate": evaluate_args,
    "ship": ship_args,
    "compare": compare_args,
}


def _help(parse, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        parse(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _options(text: str) -> dict[str, str]:
    """Each option of the help's options section -> its explanation."""
    section = text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries = re.split(r"\n(?=  -)", section)
    found = {}
    for entry in entries:
        first, *rest = entry.strip().split("\n")
        invocation, _, explanation = first.partition("  ")
        words = [explanation, *(line.strip() for line in rest)]
        found[invocation] = " ".join(words).strip()
    return found


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_explained_with_its_default(name, capsys):
    text = _help(COMMANDS[name], capsys)
    assert "`" not in text
    options = _options(text)
    unexplained = [option for option, words in options.items() if not words]
    assert not unexplained
    assert "examples:" in text
    if name != "router.evaluate":
        assert "--data DATA" in options
    for option, default in {
        "train_specialist": {"--size SIZE": "128", "--lr LR": "0.0002", "--warmup-steps": "0"},
        "train_router": {"--epochs EPOCHS": "6", "--views VIEWS": "3", "--k K": "10"},
        "router.evaluate": {"--batch-size BATCH_SIZE": "32", "--device DEVICE": "cpu"},
        "ship": {"--runs RUNS": "runs", "--per-domain PER_DOMAIN": "200"},
        "compare": {"--domain DOMAIN": "portrait", "--lr LR": "0.0002", "--seed SEED": "0"},
    }[name].items():
        words = next(w for o, w in options.items() if o.startswith(option))
        assert f"(default: {default})" in words, (option, words)


def test_the_architectures_are_named_and_explained(capsys):
    text = _help(specialist_args, capsys)
    for name, words in {
        "beta": "encoder-decoder, no skips",
        "gamma": "beta fused with",
        "unet_rgb": "predicting sRGB",
        "unet_effnet_lite0": "the default",
        "patchgan": "PatchGAN",
    }.items():
        line = next(line for line in text.splitlines() if line.startswith(f"  {name} "))
        assert words in line, line
    assert "effnet_lite0_router" in _help(router_args, capsys)


@pytest.mark.parametrize("package", ["training.ship", "training.evaluate"])
def test_a_package_runs_as_a_command(package):
    """``python -m PACKAGE`` goes through the package's ``__main__`` to its command line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", package, "--help"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {package} ")


_HEAVY_PROBE = """
import sys
import router.evaluate, training.compare, training.evaluate.cli, training.ship.cli
import training.train_router, training.train_specialist
print(",".join(m for m in ("timm", "torchvision") if m in sys.modules))
"""


def test_the_commands_import_no_timm_or_torchvision_before_a_model_is_built():
    """timm (and the torchvision and torch._dynamo it brings, about 3 s) loads with the first
    model, not with a command's module: ``--help`` and usage errors need neither."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _HEAVY_PROBE], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
