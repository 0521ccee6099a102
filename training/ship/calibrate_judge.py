"""Fit the fallback judge's calibration on held-out colour photos.

    python -m training.ship.calibrate_judge --data ../shared/data/colorize-v1 --weights weights

It fits on the ``holdout`` split (a fixed part of train, see ``training.data``), so the
validation photos stay untouched for reporting. They are in colour, so the truth is known.
Each photo goes through the served pipeline (routed on its own pixels, every specialist
colouring its L at its model shape); every discriminator scores the real colouring and all
the specialists' ones; one Platt scaling per discriminator (real = 1, generated = 0)
is fitted and written to ``WEIGHTS/judge.json`` with the SHA-256 of each checkpoint, so
serving can tell when the calibration is stale. Why a calibrated panel: see
``discriminators.scoring``.

It also measures whether the judge helps: the PSNR of the candidate it picks against the
photo's own-domain specialist (what a perfect router would pick), the best candidate (an
oracle), and two other judges (the same panel uncalibrated; each candidate judged only by
its own discriminator).
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.cli import run_command
from common.images import ImageReadError, read_image
from common.lab import join_lab, split_lab
from discriminators.scoring import (
    PlattScaling,
    beliefs,
    fingerprint,
    fit_platt,
    pick_scores,
    realism_logits,
    roc_auc,
    save_calibration,
)
from serve.colorizer import Colorizer
from serve.transfer import model_pixels
from serve.weights import JUDGE_FILE, WeightsError, locate_weights
from specialists.metrics import psnr
from training.data import HOLDOUT, evenly_spaced, find_images, list_domains, scan_images

ROUTER_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # tried for the router's belief
UNSURE_FRACTION = 0.25  # the router weight is fitted on the least sure quarter of photos


def _pick_psnr(scores: torch.Tensor, quality: torch.Tensor) -> float:
    """Mean PSNR of the candidates that ``scores`` (N, K) pick."""
    return float(quality.gather(1, scores.argmax(1, keepdim=True)).mean())


def _fit_router_weight(
    realism: torch.Tensor, beliefs: torch.Tensor, quality: torch.Tensor, fraction: float
) -> dict:
    """The weight of the router's belief in the judge's pick (see ``discriminators.scoring``):
    the one whose picks have the best mean PSNR on the ``fraction`` of photos the router is
    least sure of, the regime in which the judge is asked."""
    confidence = beliefs.max(dim=1).values
    count = max(1, round(fraction * len(confidence)))
    unsure = confidence.argsort()[:count]
    by_weight = {
        w: _pick_psnr(pick_scores(realism[unsure], beliefs[unsure], w), quality[unsure])
        for w in ROUTER_WEIGHTS
    }
    best = max(by_weight, key=lambda w: (round(by_weight[w], 6), -w))
    return {
        "router_weight": best,
        "photos": count,
        "max_confidence": float(confidence[unsure].max()),
        "psnr_by_weight": {str(w): v for w, v in by_weight.items()},
        "psnr_router_argmax": _pick_psnr(beliefs[unsure], quality[unsure]),
    }


def calibrate(
    data: Path,
    weights: Path,
    split: str = HOLDOUT,
    per_domain: int = 64,
    size: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = True,
    unsure_fraction: float = UNSURE_FRACTION,
) -> dict:
    """Fit and write ``weights/judge.json``; returns what was written.

    The photos go through the served pipeline (``Colorizer.predict(every=True)``: the
    router's decision on the photo's own pixels, every specialist's colouring at the photo's
    model shape), so the judge is fitted on the candidates and beliefs it is served.
    """
    colorizer = Colorizer.from_weights(weights, device, size, restraint=False)
    names = colorizer.domains
    discs = colorizer.judge.discriminators
    paths, labels = [], []
    for domain in list_domains(data):
        found = scan_images(
            evenly_spaced(find_images(data, split, domain), per_domain), progress=False
        )
        paths += found.usable
        labels += [domain] * len(found.usable)
    if not paths:
        raise FileNotFoundError(f"{data}: no colour photos in its {split!r} split")

    order = []  # photo indices in the order they were scored (grouped by model shape)
    belief = []  # (N, K) the router's probabilities of the K candidates' domains
    real = {j: [] for j in names}  # judge -> raw scores of real colourings
    fake = {j: [] for j in names}  # judge -> (N, K) raw scores of the K candidates
    quality = []  # (N, K) PSNR of each candidate
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(paths), batch_size), desc="scoring", unit="batch", disable=not progress
        ):
            photos = [read_image(path) for path in paths[start : start + batch_size]]
            groups = defaultdict(list)
            for i, pick in enumerate(colorizer.predict(photos, every=True)):
                groups[colorizer.input_shape(photos[i])].append((start + i, photos[i], pick))
            for shape, members in groups.items():
                order += [i for i, _, _ in members]
                small = [model_pixels(photo.pixels, shape) for _, photo, _ in members]
                rgb = torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float() / 255.0
                rgb = rgb.to(colorizer.device)
                l_norm, ab = split_lab(rgb)
                l_norm = l_norm.clamp(-1.0, 1.0)  # exactly the models' input
                candidates = [torch.stack([p.candidates[k] for _, _, p in members]) for k in names]
                belief.append(beliefs([p.decision for _, _, p in members], names))
                psnrs = [psnr(join_lab(l_norm, c), rgb).cpu() for c in candidates]
                quality.append(torch.stack(psnrs, 1))
                for j, disc in discs.items():
                    real[j].append(realism_logits(disc, l_norm, ab).cpu())
                    fake[j].append(
                        torch.stack([realism_logits(disc, l_norm, c) for c in candidates], 1).cpu()
                    )
    labels = [labels[i] for i in order]
    quality_all = torch.cat(quality)
    real_all = {j: torch.cat(v) for j, v in real.items()}
    fake_all = {j: torch.cat(v) for j, v in fake.items()}

    scalings = {j: fit_platt(real_all[j], fake_all[j]) for j in names}
    calibrated = torch.stack([scalings[j](fake_all[j]) for j in names]).mean(0)
    uncalibrated = torch.stack([PlattScaling()(fake_all[j]) for j in names]).mean(0)
    own_judge = torch.stack([fake_all[k][:, i] for i, k in enumerate(names)], 1)
    prior = _fit_router_weight(calibrated, torch.cat(belief), quality_all, unsure_fraction)
    own_domain = torch.tensor([names.index(d) if d in names else -1 for d in labels])
    known = own_domain >= 0
    selection = {
        "photos": len(paths),
        "psnr_judge_pick": _pick_psnr(calibrated, quality_all),
        "psnr_uncalibrated_panel_pick": _pick_psnr(uncalibrated, quality_all),
        "psnr_own_judge_pick": _pick_psnr(own_judge, quality_all),
        "psnr_own_domain_specialist": float(
            quality_all[known].gather(1, own_domain[known].unsqueeze(1)).mean()
        )
        if known.any()
        else None,
        "psnr_oracle": float(quality_all.max(1).values.mean()),
        "psnr_candidate_mean": float(quality_all.mean()),
        "judge_picks_best": float((calibrated.argmax(1) == quality_all.argmax(1)).float().mean()),
        "judge_picks_own_domain": float(
            (calibrated.argmax(1)[known] == own_domain[known]).float().mean()
        )
        if known.any()
        else None,
    }
    judges = {
        j: {
            "auc": roc_auc(real_all[j], fake_all[j]),
            "n_real": int(real_all[j].numel()),
            "n_fake": int(fake_all[j].numel()),
        }
        for j in names
    }
    info = {
        "router_weight": prior["router_weight"],
        "router_weight_fit": prior,
        "judges": judges,
        "checkpoints": {d: fingerprint(f) for d, f in locate_weights(weights).specialists.items()},
        "data": str(data),
        "split": split,
        "size": colorizer.size,
        "selection": selection,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    save_calibration(weights / JUDGE_FILE, scalings, info)
    return info | {"scalings": {j: vars(s) for j, s in scalings.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship.calibrate_judge", description=__doc__
    )
    parser.add_argument("--data", required=True, type=Path, help="data folder (colorize-v1 layout)")
    parser.add_argument("--weights", required=True, type=Path, help="weights folder to calibrate")
    parser.add_argument("--split", default=HOLDOUT, help="split to fit on (default holdout)")
    parser.add_argument("--per-domain", type=int, default=64, help="photos per domain")
    parser.add_argument("--size", type=int, help="resolution (default: the training size)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    def run() -> None:
        info = calibrate(
            args.data,
            args.weights,
            args.split,
            args.per_domain,
            args.size,
            args.batch_size,
            args.device,
            args.progress,
        )
        for name, judge in info["judges"].items():
            scaling = info["scalings"][name]
            print(
                f"{name:>10}: AUC {judge['auc']:.3f} real vs generated; "
                f"p(real) = sigmoid({scaling['slope']:.3g} * logit + {scaling['intercept']:.3g})"
            )
        sel = info["selection"]
        own = sel["psnr_own_domain_specialist"]
        print(
            f"on {sel['photos']} {args.split} photos, PSNR of the judge's pick "
            f"{sel['psnr_judge_pick']:.2f} dB "
            f"(uncalibrated panel {sel['psnr_uncalibrated_panel_pick']:.2f}, own judges "
            f"{sel['psnr_own_judge_pick']:.2f}, own-domain specialist "
            f"{'n/a' if own is None else f'{own:.2f}'}, oracle {sel['psnr_oracle']:.2f}, "
            f"candidate mean {sel['psnr_candidate_mean']:.2f})"
        )
        fit = info["router_weight_fit"]
        if "psnr_by_weight" in fit:
            print(
                f"router weight {info['router_weight']:g}, fitted on the {fit['photos']} "
                f"photos the router is least sure of: pick PSNR "
                f"{fit['psnr_by_weight'][str(info['router_weight'])]:.2f} dB (judge alone "
                f"{fit['psnr_by_weight']['0.0']:.2f}, "
                f"router argmax {fit['psnr_router_argmax']:.2f})"
            )
        print(f"wrote {args.weights / JUDGE_FILE}")
        print(f"next: python -m serve.colorize --weights {args.weights} PHOTO.jpg")

    return run_command(run, errors=(WeightsError, ImageReadError))


if __name__ == "__main__":
    sys.exit(main())
