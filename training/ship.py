"""Assemble a serving weights folder from finished runs, in half precision, fitted and checked.

    python -m training.ship --data ../shared/data/colorize-v1 --out weights \\
        --router runs/router/router \\
        --specialist portrait=runs/portrait --specialist landscape=runs/landscape \\
        --specialist general=runs/general

In order: the router folder is copied with float16 weights; each run is exported with
float16 weights (``training.export``); each specialist's chroma gain is fitted on held-out
photos (``training.fit_chroma``); the fallback judge is calibrated on the same held-out photos
(``training.calibrate_judge``). Val is never looked at. The result is what
``Colorizer.from_weights`` and ``python -m serve.colorize --weights`` load; write the model
cards next with ``python -m training.model_cards``.
"""

import argparse
import sys
from pathlib import Path

import torch

from router import RouterError, load_router
from specialists.checkpoint import CheckpointError
from training import calibrate_judge, fit_chroma
from training.export import export_run


def ship_router(source: Path, out: Path) -> None:
    """Copy a router folder to ``out/router`` with its network stored in float16."""
    router = load_router(source)
    router.net.half()
    router.save(out / "router")


def ship(
    data: Path,
    out: Path,
    router: Path,
    runs: dict[str, Path],
    per_domain: int = 200,
    progress: bool = True,
) -> dict:
    """Build ``out``; returns the chroma fits and the judge's calibration summary."""
    if not runs:
        raise CheckpointError("give at least one --specialist DOMAIN=RUN_DIR")
    ship_router(router, out)
    for domain, run in runs.items():
        export_run(run, out / "specialists" / f"{domain}.safetensors", half=True)
    chroma = fit_chroma.fit(data, out, per_domain, progress=progress)
    judge = calibrate_judge.calibrate(data, out, per_domain=per_domain, progress=progress)
    return {"chroma": chroma, "judge": judge}


def _domain_run(text: str) -> tuple[str, Path]:
    domain, sep, run = text.partition("=")
    if not sep or not domain or not run:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DOMAIN=RUN_DIR")
    return domain, Path(run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="data folder (for the holdout)")
    parser.add_argument("--out", required=True, type=Path, help="weights folder to write")
    parser.add_argument("--router", required=True, type=Path, help="a trained router folder")
    parser.add_argument(
        "--specialist",
        action="append",
        type=_domain_run,
        default=[],
        metavar="DOMAIN=RUN_DIR",
        help="a finished train_specialist run (repeat per domain)",
    )
    parser.add_argument("--per-domain", type=int, default=200, help="held-out photos per domain")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    try:
        result = ship(
            args.data, args.out, args.router, dict(args.specialist), args.per_domain, args.progress
        )
    except (CheckpointError, RouterError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for domain, fit in result["chroma"].items():
        print(f"{domain:>10}: chroma gain {fit['gain']:.3f} ({fit['photos']} held-out photos)")
    sel = result["judge"]["selection"]
    print(f"judge calibrated on {sel['photos']} held-out photos")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {args.out} ({total:.1f} MiB); next: python -m training.model_cards")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
