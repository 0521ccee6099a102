"""The command line of ``python -m training.evaluate``: options, the checks made before any
photo is coloured, where the outputs go, and the exit codes."""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

import training.evaluate as package
from common.cli import UsageError, run_command
from common.files import atomic_write_json, atomic_write_text
from common.splits import SPLITS
from serve.colorizer import Colorizer
from serve.weights import WeightsError, default_weights_dir, locate_weights
from training.evaluate.agreement import CLASSIFIER, load_classifier
from training.evaluate.photos import Item, find_items, grid_sample, select
from training.evaluate.render import save_grid, to_markdown
from training.evaluate.report import build_report
from training.evaluate.scoring import Run, colour_all
from training.evaluate.seen import seen_in_training, unseen

EXIT_OK, EXIT_NOTHING = 0, 1


def output_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """(json, markdown, grid): explicit paths, else beside ``--json`` or inside ``--out``."""
    json_path, markdown, grid = args.json, args.markdown, args.grid
    if args.out is not None:
        json_path = json_path or args.out / "evaluation.json"
    if json_path is not None:
        markdown = markdown or json_path.with_suffix(".md")
        grid = grid or json_path.with_name(json_path.stem + "_grid.png")
    return json_path, markdown, grid


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=package.__doc__.split("\n")[0]
    )
    p.add_argument("data", type=Path, help="folder of <domain>/ folders (or val/<domain>/)")
    p.add_argument("--weights", type=Path, help="weights folder (default: weights/)")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="markdown (default: beside JSON)")
    p.add_argument("--grid", type=Path, help="PNG grid (default: beside JSON)")
    p.add_argument("--out", type=Path, help="folder for evaluation.{json,md} + grid")
    p.add_argument(
        "--split",
        choices=SPLITS,
        help="split to evaluate (default: val when present; choose settings on holdout)",
    )
    p.add_argument("--size", type=int, help="model input size (short side, px)")
    p.add_argument("--threshold", type=float, help="override the router's")
    p.add_argument(
        "--no-restraint",
        dest="restraint",
        action="store_false",
        help="every photo at full strength (ignore the weights' per-photo colour restraint)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="serving's fast mode: each specialist's top decoder block at half resolution",
    )
    p.add_argument("--general", default="general", help="the specialist of general-only")
    p.add_argument(
        "--reference",
        type=Path,
        help="an earlier evaluation.json on the same photos: the weights to beat",
    )
    p.add_argument("--limit", type=int, help="at most N photos per domain")
    p.add_argument(
        "--unseen",
        action="store_true",
        help="only photos no specialist (nor what it was fine-tuned from) trained on, chosen "
        "before --limit: a fair comparison of weights trained on different photos",
    )
    p.add_argument("--grid-photos", type=int, default=3, help="grid rows per domain")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-classifier", action="store_true", help="skip the agreement metric")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name in ("limit", "batch_size", "threads", "size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.grid_photos < 0:
        raise UsageError("--grid-photos cannot be negative")


def prepare(args: argparse.Namespace) -> tuple[Colorizer, list[Item], list[str], str | None]:
    """Check the data and the weights before any photo is coloured (UsageError otherwise)."""
    check_args(args)
    items, split = find_items(args.data, args.split)
    try:
        colorizer = Colorizer.from_weights(
            args.weights, args.device, args.size, args.threshold, args.restraint, fast=args.fast
        )
    except WeightsError as exc:
        raise UsageError(str(exc)) from None
    if args.general not in colorizer.domains:
        raise UsageError(
            f"--general {args.general}: no such specialist (have {', '.join(colorizer.domains)})"
        )
    if args.unseen:
        items = leave_out_seen(items, locate_weights(args.weights).specialists)
        if not items:
            raise UsageError(f"{args.data}: every photo is a training photo of a specialist")
    chosen, skipped = select(items, colorizer.router.domains, args.limit)
    if not chosen:
        folders = sorted({item.domain for item in items})
        raise UsageError(
            f"{args.data}: no folder is one of the router's domains "
            f"({', '.join(colorizer.router.domains)}); found {', '.join(folders)}"
        )
    return colorizer, chosen, skipped, split


def leave_out_seen(items: list[Item], specialists: dict[str, Path]) -> list[Item]:
    """``items`` without the training photos of any specialist (says how many went)."""
    kept, untraced = unseen(specialists, [item.path for item in items])
    for problem in untraced:
        print(f"note: --unseen: not traced, so possibly seen: {problem}", file=sys.stderr)
    keep = set(kept)
    print(f"--unseen: {len(items) - len(keep)} of {len(items)} photos left out (trained on)")
    return [item for item in items if item.path in keep]


def write_outputs(report: dict, markdown: str, run: Run, args: argparse.Namespace) -> None:
    """JSON, markdown and grid where asked; OSError propagates to :func:`evaluate`."""
    json_path, md_path, grid_path = output_paths(args)
    if grid_path is not None and save_grid(run, args.general, grid_path):
        report["grid"] = str(grid_path)
    if md_path is not None:
        atomic_write_text(md_path, markdown + "\n")
        report["markdown"] = str(md_path)
    if json_path is not None:
        report["json"] = str(json_path)
        atomic_write_json(json_path, report)
    for key in ("markdown", "grid", "json"):
        if key in report:
            print(f"{key}: {report[key]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(lambda: evaluate(args))


def evaluate(args: argparse.Namespace) -> int:
    """Check everything, colour and measure every photo, write the report; the exit code
    (a problem the user must fix is a :class:`UsageError`)."""
    try:
        reference = json.loads(args.reference.read_text()) if args.reference else None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--reference {args.reference}: cannot read it ({exc})") from None
    colorizer, items, skipped, split = prepare(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    for warning in colorizer.warnings:
        print(f"note: {warning}", file=sys.stderr)
    classifier, note = (None, "classifier agreement skipped (--no-classifier)")
    if not args.no_classifier:
        classifier, note = load_classifier(colorizer.device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    sample = grid_sample(items, args.grid_photos)
    run = colour_all(colorizer, items, args.data, classifier, args.batch_size, sample)
    for bad in run.unreadable:
        print(f"unreadable: {bad['path']}: {bad['reason']}", file=sys.stderr)
    if not run.scored:
        print("error: no photo could be read, nothing to evaluate", file=sys.stderr)
        return EXIT_NOTHING
    report = build_report(run, colorizer, args.general, args.data, reference)
    weights = args.weights if args.weights is not None else default_weights_dir()
    report.update(
        split=split,
        weights=str(weights),
        skipped=skipped,
        unseen=args.unseen,
        classifier={"name": CLASSIFIER, "available": classifier is not None, "note": note},
        notes=[*colorizer.warnings, *([note] if note else [])],
        seen_in_training=seen_in_training(
            locate_weights(weights).specialists, [args.data / p.path for p in run.scored]
        ),
    )
    markdown = to_markdown(report)
    print(markdown)
    try:
        write_outputs(report, markdown, run, args)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
