"""Fit each specialist's chroma gain on held-out photos, so served colour is as vivid as life.

    python -m training.ship.fit_chroma --data ../shared/data/colorize-v1 --weights weights

An L1-trained colorizer hedges towards grey where it is unsure, so its photos come out paler
than the truth (a portrait specialist at ~84% of the truth's colourfulness). Multiplying its
ab by one gain per specialist restores saturation at a cost in PSNR (every wrong hue gets
stronger too), so the gain is the smallest that brings the mean colourfulness to ``--target``
(default 90%) of the truth's, but never one that costs more than ``--max-psnr-cost`` (default
0.5 dB) of mean PSNR against the best gain tried: vivid where the model knows, not a
saturated guess where it does not (on photos unlike its training photos a high gain made
colour further from the truth than the gray photo). It is fitted on the ``holdout`` split
(see ``training.data``), never on val, and stored in the specialist's own config
(``serve.chroma_gain``), which :func:`specialists.load_generator` applies. Run it before
``training.ship.calibrate_judge``: changing a specialist changes its hash.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import specialists
from common.cli import run_command
from common.lab import join_lab, split_lab
from specialists.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from specialists.metrics import colourfulness, psnr
from specialists.output import to_ab
from training.data import HOLDOUT, ColourPhotos, evenly_spaced, find_images, scan_images

GAINS = tuple(round(1.0 + 0.025 * i, 3) for i in range(25))  # 1.0 .. 1.6
TARGET = 0.9  # of the truth's colourfulness: inside a 10% band, with a margin
MAX_PSNR_COST_DB = 0.5  # the most mean held-out PSNR a gain may cost against the best gain


def measure_gains(
    generator: torch.nn.Module,
    paths: list[Path],
    size: int,
    gains: tuple[float, ...] = GAINS,
    batch_size: int = 16,
    progress: bool = True,
) -> dict:
    """Mean PSNR and colourfulness of ``generator``'s colourings at each gain (applied to its
    raw prediction, whatever gain it already has), and the truth's."""
    loader = DataLoader(ColourPhotos(paths, size, train=False), batch_size=batch_size)
    sums = {g: [0.0, 0.0] for g in gains}
    truth_colour, count = 0.0, 0
    with torch.inference_mode():
        for rgb in tqdm(loader, desc="colouring", unit="batch", disable=not progress):
            l_norm, _ = split_lab(rgb)
            ab = to_ab(generator, generator(l_norm))
            truth_colour += float(colourfulness(rgb).sum())
            count += len(rgb)
            for g in gains:
                pred = join_lab(l_norm, (ab * g).clamp(-1.0, 1.0))
                sums[g][0] += float(psnr(pred, rgb).sum())
                sums[g][1] += float(colourfulness(pred).sum())
    truth = truth_colour / max(count, 1)
    return {
        "photos": count,
        "truth_colourfulness": truth,
        "gains": {
            str(g): {"psnr": p / max(count, 1), "colourfulness": c / max(count, 1)}
            for g, (p, c) in sums.items()
        },
    }


def choose_gain(
    measured: dict, target: float = TARGET, max_psnr_cost: float = MAX_PSNR_COST_DB
) -> float:
    """The smallest gain whose mean colourfulness reaches ``target`` x the truth's (else the
    largest gain tried), capped at the largest gain within ``max_psnr_cost`` dB of the best
    gain's PSNR."""
    wanted = target * measured["truth_colourfulness"]
    rows = sorted(measured["gains"].items(), key=lambda row: float(row[0]))
    reaching = [float(g) for g, row in rows if row["colourfulness"] >= wanted]
    vivid = reaching[0] if reaching else float(rows[-1][0])
    best = max(row["psnr"] for _, row in rows)
    affordable = [float(g) for g, row in rows if row["psnr"] >= best - max_psnr_cost]
    return min(vivid, max(affordable))


def fit(
    data: Path,
    weights: Path,
    per_domain: int = 200,
    size: int | None = None,
    split: str = HOLDOUT,
    target: float = TARGET,
    progress: bool = True,
    max_psnr_cost: float = MAX_PSNR_COST_DB,
) -> dict[str, dict]:
    """Fit and store the gain of every ``weights/specialists/<domain>.safetensors``."""
    files = sorted((weights / "specialists").glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{weights}/specialists: no *.safetensors specialists to fit")
    results = {}
    for file in files:
        domain = file.stem
        found = scan_images(
            evenly_spaced(find_images(data, split, domain), per_domain), progress=False
        )
        if not found.usable:
            raise FileNotFoundError(
                f"{data}: no colour photos of {domain!r} in its {split!r} split"
            )
        tensors, config = load_checkpoint(file)
        generator = specialists.load_generator(file)
        px = size or int(config.get("size", 128))
        stride = int(getattr(generator, "stride", 1))
        px = max(stride, round(px / stride) * stride)
        measured = measure_gains(generator, found.usable, px, progress=progress)
        gain = choose_gain(measured, target, max_psnr_cost)
        config["serve"] = dict(config.get("serve", {})) | {
            "chroma_gain": gain,
            "chroma_fit": {
                "split": split,
                "photos": measured["photos"],
                "size": px,
                "target": target,
                "max_psnr_cost_db": max_psnr_cost,
                "truth_colourfulness": measured["truth_colourfulness"],
                "by_gain": measured["gains"],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        }
        save_checkpoint(file, tensors, config)
        results[domain] = measured | {"gain": gain}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ship.fit_chroma", description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="data folder (colorize-v1 layout)")
    parser.add_argument("--weights", required=True, type=Path, help="weights folder to update")
    parser.add_argument("--per-domain", type=int, default=200, help="photos per specialist")
    parser.add_argument("--size", type=int, help="resolution (default: the training size)")
    parser.add_argument("--split", default=HOLDOUT, help="split to fit on (default holdout)")
    parser.add_argument(
        "--target", type=float, default=TARGET, help="wanted fraction of the truth's colourfulness"
    )
    parser.add_argument(
        "--max-psnr-cost",
        type=float,
        default=MAX_PSNR_COST_DB,
        help="most held-out PSNR (dB) a gain may cost against the best gain",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    def run() -> None:
        results = fit(
            args.data,
            args.weights,
            args.per_domain,
            args.size,
            split=args.split,
            target=args.target,
            progress=args.progress,
            max_psnr_cost=args.max_psnr_cost,
        )
        for domain, r in results.items():
            base, chosen = r["gains"]["1.0"], r["gains"][str(r["gain"])]
            print(
                f"{domain:>10}: gain {r['gain']:.2f} on {r['photos']} {args.split} photos; "
                f"colourfulness {base['colourfulness']:.1f} -> {chosen['colourfulness']:.1f} "
                f"(truth {r['truth_colourfulness']:.1f}), PSNR {base['psnr']:.2f} -> "
                f"{chosen['psnr']:.2f} dB"
            )
        print(
            f"updated {args.weights / 'specialists'}; next: python -m "
            f"training.ship.calibrate_judge --data {args.data} --weights {args.weights}"
        )

    return run_command(run, errors=(CheckpointError,))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
