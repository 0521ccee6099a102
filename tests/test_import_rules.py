"""The import rule, read from the source (``ast``): which package may import which.

    common  <-  specialists  <-  discriminators, router  <-  serve  <-  training

``common`` (shared primitives) imports no other project package; of the model packages,
``specialists`` imports only ``common``, and ``discriminators`` and ``router`` import
``common`` and ``specialists`` (not each other); ``serve`` may use every model package but
never ``training``; ``training`` may use everything else. ``weights`` is data. ``tests`` and
``benchmarks`` may import anything. Imports inside functions count too, and so does
``importlib.import_module`` with a literal name.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"specialists", "discriminators", "router"}
ALLOWED = {
    "common": set(),
    "weights": set(),
    "specialists": {"common"},
    "discriminators": {"common", "specialists"},
    "router": {"common", "specialists"},
    "serve": {"common", *MODELS},
    "training": {"common", *MODELS, "serve"},
}
UNRESTRICTED = {"tests", "benchmarks"}


def packages(root: Path) -> set[str]:
    """The project's top-level packages: folders of ``root`` with an ``__init__.py``."""
    return {p.parent.name for p in root.glob("*/__init__.py")}


def _module(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_names(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            base = package[: len(package) - node.level + 1]
            if node.level > len(package):
                yield node.lineno, "." * node.level + (node.module or "")  # beyond the top
                continue
            yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield node.lineno, node.args[0].value


def violations(root: Path) -> list[str]:
    """``file:line: a imports b`` for every import the rule forbids, and every package the
    rule does not cover (a new package must say what it may import)."""
    found = []
    project = packages(root)
    uncovered = sorted(project - ALLOWED.keys() - UNRESTRICTED)
    found += [f"{name}/: a package with no import rule" for name in uncovered]
    for name in sorted(project & ALLOWED.keys()):
        for path in sorted((root / name).rglob("*.py")):
            for line, target in imported_names(path, root):
                top = target.split(".")[0]
                if target.startswith("."):
                    found.append(f"{path.relative_to(root)}:{line}: relative import {target}")
                elif top in project | UNRESTRICTED and top != name and top not in ALLOWED[name]:
                    found.append(f"{path.relative_to(root)}:{line}: {name} imports {target}")
    return found


def test_the_tree_keeps_the_import_rule():
    assert packages(ROOT) >= {"common", "serve", "training", *MODELS}
    assert violations(ROOT) == []


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_forbidden_import_is_found(tmp_path):
    for name in (*ALLOWED, "tests"):
        _write(tmp_path, f"{name}/__init__.py", "")
    _write(tmp_path, "common/files.py", "import os\nfrom serve.imageio import read_image\n")
    _write(tmp_path, "serve/app.py", "def load():\n    import training.data\n")
    _write(tmp_path, "router/net.py", "from discriminators import load_discriminator\n")
    _write(
        tmp_path, "specialists/x.py", "import importlib\nimportlib.import_module('router.net')\n"
    )
    _write(tmp_path, "discriminators/y.py", "from tests.conftest import make_split_folder\n")
    _write(tmp_path, "training/evaluate/__init__.py", "from .. import data\nfrom ..data import f\n")
    _write(tmp_path, "training/evaluate/cli.py", "from . import photos\nfrom ...serve import x\n")
    _write(
        tmp_path, "serve/sub/__init__.py", "from ..colorizer import Colorizer\nfrom ... import y\n"
    )
    _write(tmp_path, "extra/__init__.py", "")
    assert violations(tmp_path) == [
        "extra/: a package with no import rule",
        "common/files.py:2: common imports serve.imageio",
        "discriminators/y.py:1: discriminators imports tests.conftest",
        "router/net.py:1: router imports discriminators",
        "serve/app.py:2: serve imports training.data",
        "serve/sub/__init__.py:2: relative import ...",
        "specialists/x.py:2: specialists imports router.net",
        "training/evaluate/cli.py:2: relative import ...serve",
    ]


def test_allowed_imports_are_not_reported(tmp_path):
    for name in ALLOWED:
        _write(tmp_path, f"{name}/__init__.py", "")
    _write(
        tmp_path, "training/evaluate/cli.py", "from serve.colorizer import C\nfrom .. import data\n"
    )
    _write(tmp_path, "serve/colorizer.py", "def f():\n    from router import load_router\n")
    _write(tmp_path, "router/net.py", "import numpy\nfrom specialists.backbones import b\n")
    _write(tmp_path, "tests/test_x.py", "from training.evaluate import cli\n")
    assert violations(tmp_path) == []
