"""Colourize photos, folders and globs from the command line.

    python -m serve.colorize scans/ 'more/**/*.tif' -o coloured/ --report run.jsonl
    python -m serve.colorize photo.jpg           # -> colorized/photo.png

Outputs mirror the input tree under the output folder (``colorized/`` in the current folder
unless ``-o`` says otherwise), one distinct output per input, each written atomically and
never through a link (``common.files``); inputs are never written to. Each input gets one
JSON line in the report (input, output, domain, confidence, probs, strategy, scores, seconds,
error ...). A broken photo is reported by name with a reason and the run carries on.

Exit codes: 0 all done, 1 some inputs failed or the report could not be written (the rest
are done), 2 usage error (bad arguments, missing or broken weights, an output folder that
would swallow its inputs or cannot be written), 130 Ctrl-C, 143 SIGTERM (pre-emption).
"""

from __future__ import annotations

import argparse
import errno
import fnmatch
import glob
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image
from tqdm import tqdm

from common.cli import UsageError, choose_device
from common.files import UnsafePathError, check_writable, open_fresh, remove_stale_temps
from common.images import (
    MAX_SIDE,
    SAVE_FORMATS,
    ImageReadError,
    Photo,
    image_files,
    read_image,
    save_image,
)

from . import _threads  # noqa: F401  (OpenMP settings, before torch loads)
from ._malloc import return_big_buffers
from .options import MAX_STRENGTH
from .weights import ENV_VAR, WeightsError, default_weights_dir, domain_names

if TYPE_CHECKING:  # torch and the models load only once a command needs them
    from .colorizer import Colorizer, ColorizeResult, Prediction

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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


def _round(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def report_line(
    job: Job,
    result: ColorizeResult | None,
    seconds: float,
    error: str | None = None,
    skipped: bool = False,
    size: tuple[int, int] | None = None,
) -> dict:
    """One report record (the schema is in the README)."""
    confidence = result.confidence if result is not None else None
    return {
        "input": str(job.source),
        "output": str(job.output) if (result is not None or skipped) else None,
        "domain": result.domain if result else None,
        "confidence": round(confidence, 4) if confidence is not None else None,
        "probs": _round(result.probs) if result else {},
        "strategy": result.strategy if result else None,
        "scores": _round(result.scores) if result else {},
        "seconds": round(seconds, 4),
        "error": error,
        "skipped": skipped,
        "already_colour": result.already_colour if result else None,
        "strength": result.strength if result else None,
        "restraint": round(result.restraint, 3) if result else None,
        "size": list(size) if size is not None else None,
        "model_size": list(result.model_size) if result else None,
        "notes": result.notes if result else [],
    }  # fmt: skip


DEFAULT_OUT = "colorized"  # output folder when -o is not given, in the current folder
BATCH_PIXELS = 4_000_000  # a batch stops growing here: big scans are coloured one at a time
# Photos alive in the pipeline at once (decoding, waiting in a bucket, being joined and
# written), in pixels: a folder of big scans holds about two at a time, as before the
# pipeline; small photos are limited by the number of photos in flight instead.
HELD_PIXELS = 32_000_000
IO_THREADS = 2  # decode ahead / join and encode behind: Pillow, zlib and torch drop the GIL


def _read(job: Job, max_pixels: int) -> tuple[Photo | ImageReadError, float]:
    start = time.perf_counter()
    try:
        photo: Photo | ImageReadError = read_image(job.source, MAX_SIDE, max_pixels)
    except ImageReadError as exc:
        photo = exc
    return photo, time.perf_counter() - start


def _os_reason(exc: OSError) -> str:
    """``strerror``, with the file it is about when that is another one (a link on the way)."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if isinstance(exc, UnsafePathError) else reason


def _save(
    result: ColorizeResult, path: Path, fmt: str, root: Path | None
) -> tuple[str | None, float]:
    """Write one output (in the writer thread), at 16 bits for a 16-bit photo where the
    format has them; returns (error or None, seconds)."""
    start = time.perf_counter()
    try:
        save_image(result.image, path, fmt, root=root, deep=result.deep)
        error = None
    except OSError as exc:
        error = f"cannot write {path} ({_os_reason(exc)})"
    return error, time.perf_counter() - start


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm and Kubernetes send on pre-emption), handled like Ctrl-C."""


class _Signals:
    """Ctrl-C and SIGTERM as exceptions, held back while finished photos are being reported.

    They are raised at once while photos are read or coloured; inside :meth:`held` (waiting
    for a batch's writes and writing its report lines) they wait for its end, so every output
    on disk is in the report. ``main`` installs :meth:`handle` for both signals.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.waiting: type[KeyboardInterrupt] | None = None

    def handle(self, signum: int, frame: object) -> None:
        kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if not self.depth:
            raise kind()
        self.waiting = self.waiting or kind

    @contextmanager
    def held(self, then_raise: bool = True) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.waiting is not None:
                kind, self.waiting = self.waiting, None
                if then_raise:
                    raise kind()


SIGNALS = _Signals()
INTERRUPT_EXIT = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + SIGINT, 128 + SIGTERM


class Report:
    """The ``--report`` file, one JSON line per input.

    Opened by atomically replacing the path with a new file of our own (holding the earlier
    run's complete lines with ``--skip-existing``), so it is never written through a link and
    a kill leaves whole lines. A failed write (a full disk) is said once; the run goes on.
    """

    def __init__(self, path: Path, keep: bool = False) -> None:
        self.path = path
        self.error: str | None = None
        initial = b""
        if keep and path.is_file() and not path.is_symlink():
            initial = path.read_bytes()
            initial = initial[: initial.rfind(b"\n") + 1]  # no half line from a full disk
        self.handle: BinaryIO | None = open_fresh(path, initial)

    def write(self, record: dict) -> None:
        if self.handle is None:
            return
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            if self.handle.write(line) != len(line):
                raise OSError(errno.ENOSPC, "short write (disk full?)")
        except OSError as exc:
            self.error = f"cannot write ({_os_reason(exc)}); it is incomplete from here on"
            tqdm.write(f"colorize: error: report {self.path}: {self.error}", file=sys.stderr)
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            try:
                handle.close()
            except OSError:
                pass


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    fallbacks: int = 0
    already_colour: int = 0
    seconds: float = 0.0
    domains: Counter = field(default_factory=Counter)
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C or SIGTERM stopped the run
    left: int = 0  # inputs not reached because of the interruption

    def text(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        domains = ", ".join(f"{d} {n}" for d, n in sorted(self.domains.items())) or "none"
        left = f"; {self.left} not reached (interrupted)" if self.interrupted else ""
        return (
            f"colourized {self.done} photo(s) in {self.seconds:.1f} s ({rate:.2f} images/s); "
            f"per domain: {domains}; {self.fallbacks} by the judge (router unsure); "
            f"{self.already_colour} already in colour; {self.skipped} skipped (output exists); "
            f"{self.failed} failed{left}"
        )


def _predict(
    colorizer: Colorizer, photos: list[Photo], domain: str | None
) -> list[Prediction | str]:
    """The models' part for a batch; if it fails as a whole, retry one by one so one bad photo
    stays alone (its entry is then the reason)."""
    try:
        return list(colorizer.predict(photos, domain))
    except Exception:  # noqa: BLE001 - isolate the photo that breaks the batch
        if len(photos) == 1:
            exc_type, exc, _ = sys.exc_info()
            return [f"colourizing failed ({exc_type.__name__}: {exc})"]
    out: list[Prediction | str] = []
    for photo in photos:
        out += _predict(colorizer, [photo], domain)
    return out


def _finish_and_save(
    colorizer: Colorizer,
    photo: Photo,
    prediction: Prediction,
    strength: float,
    job: Job,
    fmt: str,
    root: Path | None,
) -> tuple[ColorizeResult | None, str | None, float]:
    """Join the colour with the full-resolution photo and write it (in a worker thread):
    (result, None, seconds) or (None, the reason it failed, seconds)."""
    start = time.perf_counter()
    try:
        result = colorizer.finish(photo, prediction, strength)
    except Exception as exc:  # noqa: BLE001 - one photo's failure is reported, the run goes on
        return None, f"colourizing failed ({type(exc).__name__}: {exc})", 0.0
    error, _ = _save(result, job.output, fmt, root)
    return (None if error else result), error, time.perf_counter() - start


def _declared_pixels(path: Path) -> int:
    """The pixels a file's header declares (cheap: nothing is decoded); 0 if unreadable, and
    then ``read_image`` says why."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - any reason is read_image's to report
        return 0


def run(
    colorizer: Colorizer,
    jobs: list[Job],
    report: Report | None,
    *,
    out_dir: Path | None = None,
    domain: str | None = None,
    batch_size: int = 8,
    fmt: str = "png",
    skip_existing: bool = False,
    max_pixels: int = 64_000_000,
    progress: bool = True,
    strength: float = 1.0,
) -> Summary:
    """Colour ``jobs`` (already sharded) and write the report; returns the tallies.

    A pipeline keeps the models busy: threads decode photos ahead, photos wait in buckets of
    one model-input shape until a batch is full (or the folder ends, or memory says stop),
    the models colour a bucket, and threads join the colour with each full-resolution photo
    and write it while the models colour the next. Report lines follow colouring order.
    Outputs are written link-safely below ``out_dir``. On Ctrl-C or SIGTERM the outputs being
    written are finished and reported, and the summary says it was interrupted.
    """
    from .colorizer import JUDGE

    summary = Summary()

    def emit(record: dict) -> None:
        if report is not None:
            report.write(record)

    def fail(job: Job, error: str, seconds: float, size: tuple[int, int] | None = None) -> None:
        summary.failed += 1
        bar.write(f"error: {job.source}: {error}", file=sys.stderr)
        emit(report_line(job, None, seconds, error=error, size=size))

    def finish(pending: list) -> None:
        """Wait for a batch's writes, then report it (a reported output is on disk)."""
        while pending:
            job, size, result, seconds, future = pending[0]
            error, save_seconds = future.result()
            del pending[0]
            if error is not None:
                fail(job, error, seconds + save_seconds, size)
            else:
                summary.done += 1
                summary.domains[result.domain] += 1
                summary.fallbacks += result.strategy == JUDGE
                summary.already_colour += result.already_colour
                emit(report_line(job, result, seconds + save_seconds, size=size))
            bar.update()

    todo = deque()
    for job in jobs:
        if skip_existing and job.output.is_file() and not job.output.is_symlink():
            summary.skipped += 1
            emit(report_line(job, None, 0.0, skipped=True))
        else:
            todo.append((job, _declared_pixels(job.source)))
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), initial=summary.skipped, unit="photo", disable=not progress)
    decoding: deque = deque()  # (job, pixels, future of (photo or error, seconds)), in order
    buckets: dict[tuple[int, int], list] = defaultdict(list)  # shape -> [(job, photo, seconds)]
    writing: deque = deque()  # (job, pixels, size, seconds so far, future), in colouring order
    held = 0  # pixels of the photos in flight (decoding, in a bucket, being written)

    def collect(wait: bool) -> None:
        """Report finished writes, oldest first (a reported output is on disk); with ``wait``,
        wait for the oldest first."""
        nonlocal held
        with SIGNALS.held():  # a photo on disk is in the report before a signal stops the run
            while writing and (wait or writing[0][-1].done()):
                job, pixels, size, seconds, future = writing.popleft()
                result, error, finish_seconds = future.result()
                held -= pixels
                if error is not None:
                    fail(job, error, seconds + finish_seconds, size)
                else:
                    summary.done += 1
                    summary.domains[result.domain] += 1
                    summary.fallbacks += result.strategy == JUDGE
                    summary.already_colour += result.already_colour
                    emit(report_line(job, result, seconds + finish_seconds, size=size))
                bar.update()
                wait = False

    def colour(shape: tuple[int, int]) -> None:
        """Run the models on one bucket and hand its photos to the finishing threads."""
        nonlocal held
        batch = buckets.pop(shape)
        colour_start = time.perf_counter()
        predictions = _predict(colorizer, [photo for _, photo, _ in batch], domain)
        share = (time.perf_counter() - colour_start) / len(batch)
        for (job, photo, seconds), prediction in zip(batch, predictions):
            pixels = photo.size[0] * photo.size[1]
            if isinstance(prediction, str):
                held -= pixels
                fail(job, prediction, seconds + share, photo.size)
                bar.update()
                continue
            args = (colorizer, photo, prediction, strength, job, fmt, out_dir)
            with SIGNALS.held():  # a photo handed to a writer is always collected
                future = finisher.submit(_finish_and_save, *args)
                writing.append((job, pixels, photo.size, seconds + share, future))
        while len(writing) > 2 * batch_size:  # the writers are behind: wait for them
            collect(wait=True)
        collect(wait=False)

    def room(pixels: int) -> bool:
        """Whether a photo of ``pixels`` may start decoding (one always may, however big)."""
        return not held or held + pixels <= HELD_PIXELS

    def fullest() -> tuple[int, int]:
        return max(buckets, key=lambda shape: len(buckets[shape]))

    with (
        bar,
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="decode") as decoder,
        ThreadPoolExecutor(IO_THREADS, thread_name_prefix="finish") as finisher,
    ):
        try:
            while todo or decoding or buckets:
                # decode ahead: a batch's worth in flight, within the memory budget
                while todo and len(decoding) < batch_size and room(todo[0][1]):
                    job, pixels = todo.popleft()
                    held += pixels
                    decoding.append((job, pixels, decoder.submit(_read, job, max_pixels)))
                if decoding:
                    job, pixels, future = decoding.popleft()
                    photo, seconds = future.result()
                    if isinstance(photo, ImageReadError):
                        held -= pixels
                        fail(job, photo.reason, seconds)
                        bar.update()
                        continue
                    held += photo.size[0] * photo.size[1] - pixels  # what it really holds
                    shape = colorizer.input_shape(photo)
                    buckets[shape].append((job, photo, seconds))
                    area = sum(p.size[0] * p.size[1] for _, p, _ in buckets[shape])
                    if len(buckets[shape]) >= batch_size or area >= BATCH_PIXELS:
                        colour(shape)
                elif buckets:  # nothing more to decode now (memory) or at all: colour the fullest
                    colour(fullest())
                else:  # the budget is spent on photos being written: wait for the oldest
                    collect(wait=True)
            while writing:
                collect(wait=True)
        except KeyboardInterrupt as exc:  # Terminated (SIGTERM) included
            summary.interrupted = exc
            with SIGNALS.held(then_raise=False):  # a second signal does not cut this short
                while writing:  # what the threads have in hand is finished and reported
                    collect(wait=True)
    summary.seconds = time.perf_counter() - start
    summary.left = len(jobs) - summary.done - summary.failed - summary.skipped
    return summary


DESCRIPTION = """\
Colourize black-and-white photos with routed domain specialists. A router picks each
photo's domain and that domain's specialist colours it; when the router is unsure, every
specialist colours it and a panel of discriminators picks the most realistic result.
Outputs have the input's exact size; inputs are never written to."""
EXAMPLES = """\
examples:
  python -m serve.colorize grandma.jpg                  # -> colorized/grandma.png
  python -m serve.colorize scans/ -o coloured/ --report run.jsonl
  python -m serve.colorize 'archive/**/*.tif' -o out/ --skip-existing   # resume a big run
  python -m serve.colorize scans/ -o out/ --domain portrait             # no routing
  python -m serve.colorize scans/ -o out/ --shard 0/4   # this job's quarter of the folder
  python -m serve.colorize scans/ -o out/ --device cuda --batch-size 64"""


def _domains_line(weights: Path | None) -> str:
    """Which specialists ``--domain`` can name, from the weights folder's file names only."""
    folder = weights if weights is not None else default_weights_dir()
    names = domain_names(folder)
    where = "the shipped weights" if weights is None else str(weights)
    listed = ", ".join(names) if names else f"none found in {folder}"
    return f"domains in {where}: {listed}"


def build_parser(weights: Path | None = None) -> argparse.ArgumentParser:
    """The command line; ``weights`` (from a ``--weights`` on the command line) names the
    folder whose domains ``--help`` lists. Building it imports no torch."""
    parser = argparse.ArgumentParser(
        prog="python -m serve.colorize",
        description=DESCRIPTION,
        epilog=f"{_domains_line(weights)}\n\n{EXAMPLES}\n\n"
        "exit codes: 0 all done, 1 some inputs failed (the rest are done and reported), "
        "2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    parser.add_argument(
        "-o", "--out", type=Path, metavar="DIR", default=Path(DEFAULT_OUT),
        help="output folder; the input tree is mirrored below it (default: %(default)s/)",
    )  # fmt: skip
    parser.add_argument(
        "--weights", type=Path, metavar="DIR",
        help=f"weights folder (default: ${ENV_VAR} if set, else the shipped weights)",
    )  # fmt: skip
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="write one JSON line per input here"
    )
    parser.add_argument(
        "--domain", metavar="NAME", help="use this specialist for every photo (no routing)"
    )
    parser.add_argument(
        "--threshold", type=float, metavar="P",
        help="router confidence needed to trust one specialist; 0 never falls back, above 1 "
        "always does (default: the router's own, fitted on held-out photos)",
    )  # fmt: skip
    parser.add_argument(
        "--size", type=int, metavar="PX",
        help="model resolution, short side in pixels (default: the specialists' training "
        "size); the output keeps the input's size either way",
    )  # fmt: skip
    parser.add_argument(
        "--strength", type=float, default=1.0, metavar="S",
        help=f"colour strength: 0 the grey photo, 1 the model's colours, up to "
        f"{MAX_STRENGTH:g} for more (default: %(default)g); it multiplies each photo's "
        "restraint (see --no-restraint)",
    )  # fmt: skip
    parser.add_argument(
        "--no-restraint", dest="restraint", action="store_false",
        help="colour every photo at full strength, ignoring the weights' per-photo restraint "
        "(restraint.safetensors: weaker colour for photos like those the models coloured "
        "wrongly on held-out photos; the report's restraint field says what each photo got)",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="auto", metavar="NAME",
        help="cpu, cuda, cuda:1 ... (default: %(default)s, cuda when available)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=8, metavar="N",
        help="photos per forward pass (default: %(default)s; larger on a GPU)",
    )  # fmt: skip
    parser.add_argument(
        "--format", choices=sorted(SAVE_FORMATS), default="png",
        help="output format (default: %(default)s); png and tiff keep a 16-bit scan at 16 "
        "bits, jpg is 8-bit",
    )  # fmt: skip
    parser.add_argument(
        "--skip-existing", action="store_true",
        help="resume: leave inputs whose output exists (the report is appended to)",
    )  # fmt: skip
    parser.add_argument(
        "--shard", type=parse_shard, metavar="K/N",
        help="take shard K of N (0-based), decided by a hash of each file's path",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's, all cores)",
    )
    parser.add_argument(
        "--max-megapixels", type=float, default=64.0, metavar="MP",
        help="refuse larger photos before decoding them (default: %(default)g)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _device(name: str) -> str:
    """The device to run on (``common.cli.choose_device``); no torch import for the CPU."""
    return name if name == "cpu" else str(choose_device(name))


def _weights_arg(argv: Sequence[str]) -> Path | None:
    """A ``--weights`` given on the command line, read before the full parse (for --help)."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--weights", type=Path)
    return peek.parse_known_args(argv)[0].weights


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_weights_arg(argv)).parse_args(argv)
    return_big_buffers()  # a batch process: big scans' buffers go back to the system
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, SIGNALS.handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    try:
        return _main(args)
    except (UsageError, WeightsError) as exc:
        print(f"colorize: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # before any photo (while loading the models)
        print(f"colorize: {_stopped_by(exc)} before any photo was started", file=sys.stderr)
        return INTERRUPT_EXIT[type(exc)]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped_by(exc: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def _check_writable(path: Path, what: str) -> None:
    """Refuse, before any model loads, a folder we could not write in (or make)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(existing))
        check_writable(existing)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename and Path(exc.filename) != path else ""
        raise UsageError(f"{path}: cannot write the {what} there ({where}{exc.strerror})") from None


def _check_report(path: Path, jobs: list[Job]) -> None:
    """The report may not be a folder, an input or an output, and its folder must take it."""
    if path.is_dir():
        raise UsageError(f"--report {path}: is a folder; give a file name")
    folders: dict[Path, str] = {}

    def real(file: Path) -> str:  # the entry a rename would replace, folder links resolved
        if file.parent not in folders:
            folders[file.parent] = os.path.realpath(file.parent)
        return os.path.join(folders[file.parent], file.name)

    target = real(path)
    for job in jobs:
        if target == real(job.source):
            raise UsageError(f"--report {path}: is an input; it would be replaced")
        if target == real(job.output):
            raise UsageError(f"--report {path}: is the output of {job.source}")
    _check_writable(path.parent, "report")


def _remove_leftovers(jobs: list[Job], out_dir: Path, report: Path | None) -> int:
    """Temporary files of killed runs in the folders this run writes to (ours only)."""
    folders = {job.output.parent for job in jobs} | {out_dir}
    removed = 0
    for folder in folders:
        try:
            removed += remove_stale_temps(folder, root=out_dir)
        except OSError:  # a folder behind a link, unreadable ...: its writes will say why
            pass
    if report is not None:
        removed += remove_stale_temps(report.parent)
    return removed


def _main(args: argparse.Namespace) -> int:
    """Check everything a user can get wrong first (cheap, no torch), then load and run."""
    for name, value, low in (("--batch-size", args.batch_size, 1), ("--size", args.size, 32)):
        if value is not None and value < low:
            raise UsageError(f"{name} must be at least {low}")
    if args.threshold is not None and args.threshold < 0:
        raise UsageError("--threshold must be >= 0")
    if not 0.0 <= args.strength <= MAX_STRENGTH:
        raise UsageError(f"--strength must be between 0 and {MAX_STRENGTH:g}")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"{args.out}: exists and is not a folder")
    known = domain_names(args.weights)
    if args.domain is not None and known and args.domain not in known:
        raise UsageError(f"--domain {args.domain}: no such specialist (have {', '.join(known)})")
    jobs = expand_inputs(args.inputs, args.out, args.format)
    _check_writable(args.out, "output folder")
    if args.report is not None:
        _check_report(args.report, jobs)
    total = len(jobs)
    if args.shard is not None:
        k, n = args.shard
        jobs = [job for job in jobs if shard_of(job.relative, n) == k]
    device = _device(args.device)
    import torch

    from .colorizer import Colorizer

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_start = time.perf_counter()
    colorizer = Colorizer.from_weights(
        args.weights, device, args.size, args.threshold, args.restraint
    )
    for warning in colorizer.warnings:
        print(f"colorize: warning: {warning}", file=sys.stderr)
    shard = f" (shard {args.shard[0]}/{args.shard[1]} of {total})" if args.shard else ""
    print(
        f"colorize: {len(jobs)} input(s){shard}; models loaded in "
        f"{time.perf_counter() - load_start:.1f} s on {device}, size {colorizer.size}",
        file=sys.stderr,
    )
    removed = _remove_leftovers(jobs, args.out, args.report)
    if removed:
        print(
            f"colorize: removed {removed} temporary file(s) left by a killed run", file=sys.stderr
        )
    report = None
    if args.report is not None:
        try:
            report = Report(args.report, keep=args.skip_existing)
        except OSError as exc:
            raise UsageError(f"--report {args.report}: cannot write ({_os_reason(exc)})") from None
    try:
        summary = run(
            colorizer,
            jobs,
            report,
            out_dir=args.out,
            domain=args.domain,
            batch_size=args.batch_size,
            fmt=args.format,
            skip_existing=args.skip_existing,
            max_pixels=int(args.max_megapixels * 1e6),
            progress=not args.no_progress,
            strength=args.strength,
        )
    finally:
        if report is not None:
            report.close()
    print(f"colorize: {summary.text()}", file=sys.stderr)
    if summary.interrupted is not None:
        listed = " (listed in the report)" if report is not None and not report.error else ""
        print(
            f"colorize: {_stopped_by(summary.interrupted)}: every output written is complete"
            f"{listed}; run again with --skip-existing to do the {summary.left} left",
            file=sys.stderr,
        )
        return INTERRUPT_EXIT[type(summary.interrupted)]
    if report is not None and report.error:
        return EXIT_FAILED
    return EXIT_FAILED if summary.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
