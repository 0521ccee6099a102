"""Colourize photos, folders and globs from the command line.

    python -m serve.colorize scans/ 'more/**/*.tif' -o coloured/ --report run.jsonl
    python -m serve.colorize photo.jpg           # -> colorized/photo.png

Outputs mirror the input tree under the output folder (``colorized/`` in the current folder
unless ``-o`` says otherwise), one distinct output per input, each written atomically and
never through a link (``common.files``); inputs are never written to. Each input gets one
JSON line in the report (input, output, domain, confidence, probs, strategy, scores, seconds,
error ...). A broken photo is reported by name with a reason and the run carries on.

The command line lives here; the work is split by job: ``serve.inputs`` (which files, where
their outputs go), ``serve.batch`` (the decode / colour / write pipeline), ``serve.run_report``
(the report and the summary) and ``serve.signals`` (Ctrl-C and SIGTERM).

Exit codes: 0 all done, 1 some inputs failed or the report could not be written (the rest
are done), 2 usage error (bad arguments, missing or broken weights, an output folder that
would swallow its inputs or cannot be written), 130 Ctrl-C, 143 SIGTERM (pre-emption).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from common.cli import UsageError, choose_device
from common.files import check_writable, remove_stale_temps
from common.images import SAVE_FORMATS

from . import _threads  # noqa: F401  (OpenMP settings, before torch loads)
from .batch import run
from .inputs import Job, expand_inputs, parse_shard, shard_of
from .options import MAX_STRENGTH, PRECISIONS
from .run_report import Report, os_reason
from .signals import INTERRUPT_EXIT, SIGNALS, stopped_by
from .weights import ENV_VAR, WeightsError, default_weights_dir, domain_names

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = "colorized"  # output folder when -o is not given, in the current folder


DESCRIPTION = """\
Colourize black-and-white photos with routed domain specialists. A router picks each
photo's domain and that domain's specialist colours it; when the router is unsure, the
specialists compete and a panel of discriminators picks the most realistic result.
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
        "--precision", choices=PRECISIONS, default="auto",
        help="the generators' float type on the CPU: auto is bfloat16 where the CPU has AMX or "
        "AVX-512 BF16 (faster, colours within a level or two of float32's), float32 "
        "elsewhere (default: %(default)s; router and judge always float32; a GPU uses "
        "float16)",
    )  # fmt: skip
    parser.add_argument(
        "--fast", action="store_true",
        help="fast mode: each specialist's last decoder block at half resolution, about a "
        "fifth less time per photo; colours a little smoother and paler (README, "
        "\"Fast mode\")",
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
        help="CPU threads for torch (default: torch's, all cores), shared by the --workers",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="batches coloured at once, each on its share of the threads "
        "(default: 2 on a CPU with 2 or more threads, else 1)",
    )  # fmt: skip
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
        print(f"colorize: {stopped_by(exc)} before any photo was started", file=sys.stderr)
        return INTERRUPT_EXIT[type(exc)]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    for name, value in (("--threads", args.threads), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1")
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
        args.weights,
        device,
        args.size,
        args.threshold,
        args.restraint,
        args.precision,
        fast=args.fast,
    )
    for warning in colorizer.warnings:
        print(f"colorize: warning: {warning}", file=sys.stderr)
    shard = f" (shard {args.shard[0]}/{args.shard[1]} of {total})" if args.shard else ""
    print(
        f"colorize: {len(jobs)} input(s){shard}; models loaded in "
        f"{time.perf_counter() - load_start:.1f} s on {device}, size {colorizer.size}, "
        f"generators in {str(colorizer.dtype).removeprefix('torch.')}"
        f"{', fast mode' if colorizer.fast else ''}",
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
            raise UsageError(f"--report {args.report}: cannot write ({os_reason(exc)})") from None
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
            workers=args.workers,
        )
    finally:
        if report is not None:
            report.close()
    print(f"colorize: {summary.text()}", file=sys.stderr)
    if summary.interrupted is not None:
        listed = " (listed in the report)" if report is not None and not report.error else ""
        print(
            f"colorize: {stopped_by(summary.interrupted)}: every output written is complete"
            f"{listed}; run again with --skip-existing to do the {summary.left} left",
            file=sys.stderr,
        )
        return INTERRUPT_EXIT[type(summary.interrupted)]
    if report is not None and report.error:
        return EXIT_FAILED
    return EXIT_FAILED if summary.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
