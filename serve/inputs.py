"""Which files a command line names, and where each one's colour goes.

Files, folders (recursive) and globs become :class:`Job` s with mirrored, distinct output
paths below the output folder; ``--shard`` takes a stable share of them. Image files are
found with ``common.images`` (one suffix set), and neither folder links nor hidden folders
are followed.
"""

import argparse
import fnmatch
import glob
import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.cli import UsageError
from common.images import image_files


@dataclass
class Job:
    """One input file and where its colour goes."""

    source: Path
    relative: str  # posix path below the common input root (decides the shard)
    output: Path


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 0 <= K < N: this run takes the K-th of N shards."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N, e.g. 0/8") from None
    if n < 1 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= K < N")
    return k, n


def shard_of(relative: str, count: int) -> int:
    """The shard of a file, from a hash of its relative path alone.

    It does not depend on the other files, so jobs that list the archive at different
    times (a file added meanwhile) still agree on who does what.
    """
    digest = hashlib.sha256(relative.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _matches(parts: Sequence[str], patterns: Sequence[str]) -> bool:
    """Whether path components match glob components (``**``: any number of them)."""
    if not patterns:
        return not parts
    if patterns[0] == "**":
        return any(_matches(parts[i:], patterns[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], patterns[0])
        and _matches(parts[1:], patterns[1:])
    )


def _glob(pattern: str) -> list[Path]:
    """``glob.glob`` without following folder links below the base when ``**`` recurses."""
    if "**" not in pattern:
        return [Path(m) for m in sorted(glob.glob(pattern))]
    base = _glob_base(pattern)
    wanted = Path(pattern).parts[len(base.parts) :]
    found = []
    for top, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs + [f for f in files if not f.startswith(".")]:
            path = Path(top, name)
            if _matches(path.relative_to(base).parts, wanted):
                found.append(path)
    return sorted(found)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


NAME_MAX = 255  # bytes in one file name, on every common file system


def _fit(path: str) -> str:
    """``path`` with its file name cut to NAME_MAX bytes, a hash of the whole kept unique."""
    folder, name = os.path.split(path)
    if len(os.fsencode(name)) <= NAME_MAX:
        return path
    stem, suffix = os.path.splitext(name)
    tag = "~" + hashlib.sha256(os.fsencode(path)).hexdigest()[:8]
    room = NAME_MAX - len(os.fsencode(tag + suffix))
    short = os.fsdecode(os.fsencode(stem)[:room].decode("utf-8", "ignore").encode())
    return os.path.join(folder, short + tag + suffix)


def plan_outputs(relatives: Sequence[str], fmt: str) -> list[str]:
    """One distinct output path (relative) per input: ``a.jpg`` -> ``a.png``.

    Inputs whose natural outputs clash (``photo.jpg`` and ``photo.tif``, or ``A.jpg`` and
    ``a.jpg`` on a case-insensitive disk) keep their suffix (``photo.jpg.png``); if that name
    is taken too (by ``photo.jpg.png``'s own output, say), a number is added
    (``photo.jpg.2.png``). Names are compared case-insensitively, names too long for the disk
    are shortened with a hash, and the result depends only on the list of inputs.
    """
    natural = [_fit(Path(r).with_suffix(f".{fmt}").as_posix()) for r in relatives]
    count = Counter(n.casefold() for n in natural)
    folders = {p.as_posix().casefold() for n in natural for p in Path(n).parents}
    taken = set(folders) | {n.casefold() for n in natural if count[n.casefold()] == 1}
    outputs = []
    for relative, name in zip(relatives, natural):
        key = name.casefold()
        if count[key] == 1 and key not in folders:
            outputs.append(name)
            continue
        number = 1
        while True:
            middle = "" if number == 1 else f".{number}"
            name = _fit(f"{relative}{middle}.{fmt}")
            if name.casefold() not in taken:
                break
            number += 1
        taken.add(name.casefold())
        outputs.append(name)
    return outputs


def expand_inputs(args: Sequence[str], out_dir: Path, fmt: str) -> list[Job]:
    """Files, folders (recursive) and globs -> jobs with mirrored, distinct output paths.

    Raises :class:`UsageError` for inputs that do not exist and for an output folder that
    overlaps the inputs (a later run would read its own outputs, or an input be replaced).
    """
    found: list[tuple[Path, Path]] = []  # (file, the root it mirrors from)
    recursive_roots: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found += [(f, path) for f in image_files(path)]
            recursive_roots.append(path)
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(arg):
            base = _glob_base(arg)
            matches = _glob(arg)
            if not matches:
                raise UsageError(f"{arg}: no file matches this pattern")
            for match in matches:
                if match.is_dir():
                    found += [(f, base) for f in image_files(match)]
                    recursive_roots.append(match)
                elif match.is_file() and not match.name.startswith("."):
                    found.append((match, base))
            if "**" in arg:
                recursive_roots.append(base)
        else:
            raise UsageError(f"{arg}: no such file or folder")
    out_real = out_dir.resolve()
    for root in recursive_roots:
        if _inside(out_real, root.resolve()):
            raise UsageError(
                f"{out_dir}: output folder is inside the input {root}; a later run would read "
                "its own outputs as inputs. Choose an output folder outside the inputs."
            )
    unique: dict[str, tuple[Path, Path]] = {}
    for file, root in found:
        unique.setdefault(os.path.abspath(file), (file, root))
    if not unique:
        return []
    common = Path(os.path.commonpath([os.path.abspath(r) for _, r in unique.values()]))
    sources, relatives = [], []
    for absolute, (file, _) in sorted(unique.items()):
        if _inside(Path(file).resolve(), out_real):
            raise UsageError(f"{file}: input is inside the output folder {out_dir}")
        sources.append(file)
        relatives.append(Path(absolute).relative_to(common).as_posix())
    outputs = plan_outputs(relatives, fmt)
    return [Job(f, r, out_dir / o) for f, r, o in zip(sources, relatives, outputs)]
