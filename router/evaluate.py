"""Measure a router on labelled photos: ``python -m router.evaluate DATA_DIR [--weights DIR]``.

DATA_DIR holds one folder of photos per domain, or ``val/<domain>`` and ``test/<domain>``
splits. Photos are decoded and reduced to the router's grayscale input exactly as serving
does (``common.images.read_image`` and ``router.preprocess.router_view``), so the figures are
those of what is served. Photos loose in DATA_DIR, or in a folder that is not one of the
router's domains, are routed and listed but not scored. Unreadable files are reported and
skipped.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.cli import HelpFormatter, UsageError, choose_device, plain, run_command
from common.files import atomic_write_json
from common.images import ImageReadError, image_files, is_image_file, read_image
from common.splits import SPLITS, present_splits

from .calibration import expected_calibration_error, reliability
from .errors import RouterError
from .metrics import (
    DEFAULT_THRESHOLDS,
    accuracy_by_threshold,
    confusion_matrix,
    format_table,
    per_domain_scores,
    plot_confusion,
)
from .preprocess import router_view
from .router import Router, load_router

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "router"


@dataclass
class Photo:
    path: Path
    folder: str  # the domain folder it sits in ("" when loose)


@dataclass
class Collection:
    """The photos to evaluate and where they came from."""

    photos: list[Photo] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)


def collect(root: Path, splits: list[str] | None) -> Collection:
    """Photos under ``root``: split folders (val and test by default) or domain folders."""
    if not root.is_dir():
        raise UsageError(f"{root}: no such data folder")
    present = present_splits(root)
    if present:
        wanted = splits or [s for s in ("val", "test") if s in present] or present
        missing = [s for s in wanted if s not in present]
        if missing:
            raise UsageError(f"{root}: no {', '.join(missing)} folder (has {', '.join(present)})")
        bases = [root / s for s in wanted]
    else:
        if splits:
            raise UsageError(f"{root}: has no split folders, so --split does not apply")
        wanted, bases = [], [root]
    photos = []
    for base in bases:
        photos += [Photo(p, "") for p in sorted(base.iterdir()) if is_image_file(p)]
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            photos += [Photo(p, sub.name) for p in image_files(sub)]
    if not photos:
        raise UsageError(f"{root}: no image files found")
    return Collection(photos, wanted)


class _Inputs(Dataset):
    """The router's square grayscale input for each photo, or the reason it cannot be read."""

    def __init__(self, photos: list[Photo], size: int) -> None:
        self.photos, self.size = photos, size

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            pixels = read_image(self.photos[i].path, classify=False).pixels
            return i, router_view(pixels, self.size)[0], ""
        except ImageReadError as exc:
            return i, None, exc.reason


def _collate(items: list) -> list:
    return items


def evaluate(
    router: Router,
    data: Collection,
    root: Path,
    batch_size: int = 32,
    workers: int = 1,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
) -> dict:
    """Route every photo and measure the routing against the folder labels."""
    domains = router.domains
    loader = DataLoader(
        _Inputs(data.photos, router.input_size),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
    )
    rows: list[dict] = []
    unreadable = []
    for batch in tqdm(loader, desc="routing", unit="batch"):
        good = [(i, x) for i, x, _ in batch if x is not None]
        for i, _, reason in batch:
            if reason:
                path = relative_name(data.photos[i].path, root)
                unreadable.append({"path": path, "reason": reason})
        if not good:
            continue
        decisions = router.route(torch.stack([x for _, x in good]))
        for (i, _), decision in zip(good, decisions):
            photo = data.photos[i]
            rows.append(
                {
                    "path": relative_name(photo.path, root),
                    "folder": photo.folder,
                    "routed": decision.domain,
                    "confidence": decision.confidence,
                    "confident": decision.confident(),
                    "probs": decision.probs,
                    "knn_votes": decision.knn_votes,
                    "ood_distance": decision.ood_distance,
                    "nearest": [n.path for n in decision.neighbours[:3]],
                }
            )
    labelled = [r for r in rows if r["folder"] in domains]
    report: dict = {
        "data": str(root),
        "splits": data.splits,
        "domains": domains,
        "threshold": router.threshold,
        "photos": len(data.photos),
        "scored": len(labelled),
        "unreadable": unreadable,
        "unlabelled": [r for r in rows if r["folder"] not in domains],
    }
    if not labelled:
        report.update(accuracy=None, misrouted=[])
        return report
    y = np.array([domains.index(r["folder"]) for r in labelled])
    pred = np.array([domains.index(r["routed"]) for r in labelled])
    conf = np.array([r["confidence"] for r in labelled])
    top = np.array([max(r["probs"].values()) for r in labelled])
    correct = y == pred
    cm = confusion_matrix(y, pred, len(domains))
    routed = conf >= router.threshold
    report.update(
        accuracy=float(correct.mean()),
        correct=int(correct.sum()),
        per_domain=per_domain_scores(cm, domains),
        confusion={"labels": domains, "matrix": cm.tolist()},
        ece=expected_calibration_error(top, correct),
        ece_confidence=expected_calibration_error(conf, correct),
        fallback_fraction=float((~routed).mean()),
        routed_accuracy=float(correct[routed].mean()) if routed.any() else None,
        accuracy_by_threshold=accuracy_by_threshold(conf, correct, (*thresholds, router.threshold)),
        reliability=reliability(top, correct),
        misrouted=[
            {k: r[k] for k in ("path", "folder", "routed", "confidence", "probs", "nearest")}
            for r, ok in zip(labelled, correct)
            if not ok
        ],
    )
    return report


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies below it, else as given (for reports)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def print_report(report: dict) -> None:
    """The human-readable version of the report."""
    domains = report["domains"]
    print(f"\n{report['photos']} photos in {report['data']}", end="")
    print(f" (splits: {', '.join(report['splits'])})" if report["splits"] else "")
    if report["accuracy"] is not None:
        print(f"accuracy {report['accuracy']:.4f} ({report['correct']}/{report['scored']})\n")
        rows = [
            [d, s["precision"], s["recall"], s["f1"], s["support"]]
            for d, s in report["per_domain"].items()
        ]
        print(format_table(["domain", "precision", "recall", "F1", "photos"], rows))
        print("\nconfusion matrix (rows: true domain, columns: routed to)")
        matrix = report["confusion"]["matrix"]
        print(
            format_table(["true \\ routed", *domains], [[d, *m] for d, m in zip(domains, matrix)])
        )
        print(
            f"\ncalibration error (ECE, 15 bins): probabilities {report['ece']:.4f}, "
            f"confidence {report['ece_confidence']:.4f}"
        )
        print("\naccuracy by confidence threshold (photos below it fall back to all specialists)")
        rows = [
            [
                f"{r['threshold']:.4f}" + (" *" if r["threshold"] == report["threshold"] else ""),
                r["routed"],
                r["fallback"],
                r["fallback_fraction"],
                r["routed_accuracy"],
            ]
            for r in report["accuracy_by_threshold"]
        ]
        print(
            format_table(
                ["threshold", "routed", "fall back", "fall-back share", "routed acc"], rows
            )
        )
        print(f"(* = the router's threshold {report['threshold']:.4f})")
        print(f"\nmisrouted: {len(report['misrouted'])}")
        for r in report["misrouted"]:
            print(
                f"  {r['path']}: {r['folder']} -> {r['routed']} (confidence {r['confidence']:.3f})"
            )
    if report["unlabelled"]:
        print(f"\nnot scored (loose or not a router domain): {len(report['unlabelled'])}")
        for r in report["unlabelled"]:
            probs = ", ".join(f"{d} {p:.3f}" for d, p in r["probs"].items())
            flag = "routed" if r["confident"] else "falls back"
            print(
                f"  {r['path']}: {r['routed']} ({flag}; confidence {r['confidence']:.3f}; {probs})"
            )
    if report["unreadable"]:
        print(f"\nunreadable: {len(report['unreadable'])}")
        for r in report["unreadable"]:
            print(f"  {r['path']}: {r['reason']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m router.evaluate",
        description=plain(__doc__)
        + """
It prints accuracy, per-domain precision, recall and F1, the confusion matrix (also as a PNG),
the calibration error, how many photos fall back to the judge at each threshold, and the
misrouted files.

examples:
  python -m router.evaluate ../shared/data/colorize-v1
  python -m router.evaluate photos/ --weights my-weights/router --json runs/router-eval.json""",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "data", type=Path, help="folder of domain folders (or val/ and test/ split folders)"
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=DEFAULT_WEIGHTS,
        help="router folder (WEIGHTS/router, or a training run's RUN_DIR/router)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.add_argument(
        "--png", type=Path, default=None, help="confusion matrix PNG (default: beside --json)"
    )
    p.add_argument(
        "--split",
        action="append",
        choices=SPLITS,
        help="split folder to evaluate, repeatable (default: val and test, where present)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="photos per forward pass of the router"
    )
    p.add_argument("--workers", type=int, default=1, help="image-decoding processes")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    return p.parse_args(argv)


def write_report(path: Path, report: dict) -> None:
    """Write ``report`` as JSON (atomically) and say where (a :class:`UsageError` when it
    cannot be written)."""
    try:
        atomic_write_json(path, report)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"report: {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run_command(lambda: report_routing(args), errors=(RouterError,))


def report_routing(args: argparse.Namespace) -> None:
    """Route every photo, print the report, write the JSON and the confusion matrix."""
    data = collect(args.data, args.split)
    router = load_router(args.weights, device=str(choose_device(args.device)))
    print(f"router {args.weights}: domains {router.domains}, threshold {router.threshold:.4f}")
    report = evaluate(router, data, args.data, args.batch_size, args.workers)
    report["weights"] = str(args.weights)
    print_report(report)
    png = args.png or (
        args.json.with_name(args.json.stem + "_confusion.png") if args.json else None
    )
    if png is not None and report["accuracy"] is not None:
        try:
            plot_confusion(np.asarray(report["confusion"]["matrix"]), router.domains, png)
            report["confusion_png"] = str(png)
            print(f"\nconfusion matrix PNG: {png}")
        except OSError as exc:
            raise UsageError(f"cannot write {png}: {exc.strerror or exc}") from None
    if args.json is not None:
        write_report(args.json, report)


if __name__ == "__main__":
    sys.exit(main())
