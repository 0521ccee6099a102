"""Train the write-up's systems, the proposed improvements or the colour recipes side by
side, then compare.

    python -m training.compare --data ../shared/data/colorize-v1 --domain portrait \\
        --size 128 --batch-size 16 --steps 1000 --warmup-steps 400 \\
        --runs runs/compare --out benchmarks/results/compare_systems
    python -m training.compare --data ../shared/data/colorize-v2 --domain general \\
        --systems l1gan,zhang,colourful --init-from weights/specialists/general.safetensors \\
        --val-split holdout --steps 400 --batch-size 8 --runs runs/recipes --out OUT

Every system is a generator and a discriminator from the registries (plus, for feature
matching, one training setting); all get the same data, crops, image budget and loss, via
``training.train_specialist.train``, each in ``RUNS/<system>/``. Running the command again
resumes unfinished systems and skips finished ones. Then each generator colours the same
photos of ``--val-split`` (``holdout`` for choosing a recipe: val is for reporting only) and
``OUT/`` gets ``results.json``, ``table.md`` and ``grid.png`` (grey | each system | truth,
one row per photo). The recipes (``l1gan``, ``zhang``, ``colourful``) differ only in the loss
and the output, so ``--init-from`` a shipped specialist starts all three from it.
"""

import argparse
import csv
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

import discriminators
import specialists
from common.cli import HelpFormatter, UsageError, add_options, from_args, plain, run_command
from common.files import atomic_write_json, atomic_write_text
from specialists.checkpoint import CheckpointError, read_config
from specialists.output import output_space
from training.data import ColourPhotos, evenly_spaced, find_images, scan_images
from training.evaluate.quality import (
    colour_metrics,
    colourize_rgb,
    count_parameters,
    evaluate_generator,
    grey_rgb,
    markdown_table,
    save_comparison_grid,
)
from training.evaluate.realism import chroma_stats
from training.run_files import CHECKPOINT
from training.specialist_config import TrainConfig
from training.train_specialist import train


@dataclass(frozen=True)
class System:
    """One contender: registry names and arguments, plus training settings of its own."""

    arch: str
    disc: str = "patchgan"
    arch_args: dict = field(default_factory=dict)
    disc_args: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    about: str = ""


# the pix2pix U-Net at 128 px: 7 halvings (the write-up's U-Net-256 has 8)
UNET = {"ngf": 64, "num_downs": 7}
SYSTEMS: dict[str, System] = {
    "beta": System("beta", about="write-up: plain encoder-decoder, no skips"),
    "gamma": System(
        "gamma", about="write-up: beta + frozen MobileNetV2 features at the bottleneck"
    ),
    "unet_rgb": System("unet_rgb", arch_args=UNET, about="write-up: Pix2Pix U-Net predicting RGB"),
    "unet_lab": System("unet", arch_args=UNET, about="the same U-Net predicting ab (Lab)"),
    "unet_lab_sa": System(
        "unet",
        arch_args=UNET | {"attention": True},
        disc_args={"attention": True},
        about="+ self-attention in generator and discriminator",
    ),
    "unet_lab_msd": System(
        "unet", "multiscale_patchgan", UNET, about="+ 3-scale PatchGAN (pix2pixHD)"
    ),
    "unet_lab_msd_fm": System(
        "unet",
        "multiscale_patchgan",
        UNET,
        train={"feature_matching": 10.0},
        about="+ 3-scale PatchGAN and feature matching (weight 10)",
    ),
    "effnet_unet": System(
        "unet_effnet_lite0", about="the project's default: U-Net on ImageNet EfficientNet-Lite0"
    ),
    # the colour recipes: the default specialist, three ways of training its colour
    "l1gan": System("unet_effnet_lite0", about="recipe (a), today's: L1 x 100 + PatchGAN"),
    "zhang": System(
        "unet_effnet_lite0",
        train={"output_space": "bins"},
        about="recipe (b), Zhang et al. 2016: rebalanced cross-entropy over ab bins, "
        "annealed mean (T 0.38), + PatchGAN",
    ),
    "zhang_abhead": System(
        "unet_effnet_lite0",
        train={"output_space": "bins", "bins_head": "ab"},
        about="(b) with its bin head made from the start's ab head (a Gaussian, sigma 10, "
        "around the start's colours) instead of the prior",
    ),
    # 0.2: the shortfall's gradient on ab is about 4.5 times the L1 x 100 term's per unit of
    # weight (the shipped general specialist on 16 v2 train crops: 0.62 vs 0.14), so 0.2
    # pulls about as hard as the L1 term does
    "colourful": System(
        "unet_effnet_lite0",
        train={"colourfulness_weight": 0.2},
        about="recipe (c): (a) + 0.2 x colourfulness shortfall to the truth",
    ),
}

RECIPES = ("l1gan", "zhang", "zhang_abhead", "colourful")

TABLE_COLUMNS = {
    "system": "system",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "psnr_gray": "gray PSNR (dB)",
    "colourfulness": "colourfulness",
    "colourfulness_true": "truth's",
    "colourfulness_gap": "gap to truth",
    "brown_share": "brown share",
    "brown_share_true": "truth's",
    "seconds_per_image": "s / image",
    "generator_parameters": "G params",
    "discriminator_parameters": "D params",
    "train_images_per_s": "train images/s",
    "about": "what it is",
}


def finished(run: Path, steps: int) -> bool:
    """Whether the run folder holds a checkpoint that has taken ``steps`` steps already."""
    try:
        return read_config(run / CHECKPOINT)["step"] >= steps
    except CheckpointError:
        return False


def train_system(name: str, system: System, base: TrainConfig, runs: Path) -> Path:
    """Train (or resume) ``system`` with the shared settings of ``base``; returns its run."""
    run = runs / name
    config = replace(
        base,
        out=str(run),
        arch=system.arch,
        arch_args=dict(system.arch_args),
        disc=system.disc,
        disc_args=dict(system.disc_args),
        **system.train,
    )
    if finished(run, config.steps):
        print(f"{name}: finished run in {run}, not training again", flush=True)
    else:
        print(f"{name}: training {system.arch} + {system.disc} in {run}", flush=True)
        train(config)
    return run


def train_speed(run: Path) -> float | None:
    """Mean training images/s over the run's logged rows (from its metrics.csv)."""
    path = run / "metrics.csv"
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        speeds = [float(r["images_per_s"]) for r in csv.DictReader(handle) if r["images_per_s"]]
    return sum(speeds) / len(speeds) if speeds else None


def validation_photos(
    data: str, domain: str | None, size: int, count: int, split: str = "val"
) -> torch.Tensor:
    """``count`` usable photos of ``split`` spread over its sorted names (so over its source
    tags), centre-cropped: the same for every system."""
    usable = scan_images(find_images(data, split, domain), progress=False).usable
    paths = evenly_spaced(usable, count)
    if not paths:
        raise UsageError(f"{data}: no {split} photos (domain {domain})")
    photos = ColourPhotos(paths, size, train=False)
    return torch.stack([photos[i] for i in range(len(photos))])


def brown_shares(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float | None]:
    """Mean per photo of the brown/orange share of visible chroma, of ``pred`` and of
    ``truth`` (``training.evaluate.realism``); photos with no visible chroma do not count."""

    def mean(images: torch.Tensor) -> float | None:
        values = [chroma_stats(image)["brown_share"] for image in images]
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return {"brown_share": mean(pred), "brown_share_true": mean(truth)}


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M"


def describe_size(sizes: dict[str, int]) -> str:
    """Trainable parameters, and the frozen ones (gamma's classifier) when there are any."""
    frozen = sizes["parameters"] - sizes["trainable_parameters"]
    text = _millions(sizes["trainable_parameters"])
    return f"{text} + {_millions(frozen)} frozen" if frozen else text


def score(generator: torch.nn.Module, photos: torch.Tensor, base: TrainConfig) -> dict:
    """Quality, speed and brown share of ``generator`` on ``photos``."""
    metrics = evaluate_generator(generator, photos.to(base.device), base.batch_size)
    pred = [
        colourize_rgb(generator, b.to(base.device)).cpu() for b in photos.split(base.batch_size)
    ]
    return metrics | brown_shares(torch.cat(pred), photos)


def other_temperatures(
    name: str,
    generator: torch.nn.Module,
    photos: torch.Tensor,
    base: TrainConfig,
    temperatures: Sequence[float],
) -> list[dict]:
    """A bin system decoded at each of ``temperatures`` (no retraining: the annealed mean's
    temperature only changes the decoding), one row each; nothing for other systems."""
    if output_space(generator) != "bins":
        return []
    trained, rows = generator.bins.temperature, []
    for temperature in temperatures:
        generator.bins.temperature = temperature
        about = f"{name} decoded at T {temperature:g} instead of {trained:g} (not retrained)"
        rows.append({"system": f"{name} T {temperature:g}", "about": about})
        rows[-1] |= score(generator, photos, base)
    generator.bins.temperature = trained
    return rows


def compare(
    systems: dict[str, System],
    base: TrainConfig,
    runs: Path,
    out: Path,
    num_val: int = 200,
    grid_photos: int = 6,
    temperatures: Sequence[float] = (),
) -> list[dict]:
    """Train every system, evaluate each on the same validation photos, write the report;
    bin systems are also scored decoded at each of ``temperatures``."""
    if not base.steps:
        raise UsageError("a comparison needs --steps: the same image budget for every system")
    photos = validation_photos(base.data, base.domain, base.size, num_val, base.val_split)
    picks = torch.linspace(0, len(photos) - 1, min(grid_photos, len(photos))).round().long()
    grid = {"grey": grey_rgb(photos[picks])}
    gray = colour_metrics(grey_rgb(photos), photos)
    gray |= {"psnr_gray": gray["psnr"]} | brown_shares(grey_rgb(photos), photos)
    rows = [{"system": "grayscale input", "about": "a = b = 0: the baseline to beat"} | gray]
    for name, system in systems.items():
        run = train_system(name, system, base, runs)
        generator = specialists.load_generator(run / CHECKPOINT, base.device)
        disc = discriminators.load_discriminator(run / CHECKPOINT, base.device)
        metrics = score(generator, photos, base)
        grid[name] = colourize_rgb(generator.eval(), photos[picks].to(base.device)).cpu()
        sizes = count_parameters(generator)
        rows.append(
            {
                "system": name,
                "generator": {"name": system.arch, "kwargs": system.arch_args},
                "discriminator": {"name": system.disc, "kwargs": system.disc_args},
                "train_settings": system.train,
                "about": system.about,
                "run": str(run),
                "generator_parameters": describe_size(sizes),
                "generator_parameters_exact": sizes,
                "discriminator_parameters": _millions(count_parameters(disc)["parameters"]),
                "train_images_per_s": train_speed(run),
            }
            | metrics
        )
        print(f"{name}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}", flush=True)
        rows += other_temperatures(name, generator, photos, base, temperatures)
    grid["truth"] = photos[picks]
    own = {"out", "arch", "arch_args", "disc", "disc_args"}
    own |= {key for system in systems.values() for key in system.train}
    shared = {k: v for k, v in asdict(base).items() if k not in own}
    write_report(rows, shared, out, grid)
    return rows


def write_report(rows: list[dict], shared: dict, out: Path, grid: dict[str, torch.Tensor]) -> None:
    """``table.md``, ``results.json`` (rows, the shared training settings, the machine), grid."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows, TABLE_COLUMNS)
    atomic_write_text(out / "table.md", table)
    save_comparison_grid(grid, out / "grid.png")
    machine = {
        "device": shared["device"],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    report = {"command": sys.argv, "training": shared, "machine": machine, "rows": rows}
    atomic_write_json(out / "results.json", report)
    print(table)
    print(f"wrote {out / 'table.md'}, {out / 'results.json'} and {out / 'grid.png'}")


# the training settings a comparison shares between its systems (the rest are TrainConfig's
# defaults, or each system's own)
SHARED = (
    "data",
    "domain",
    "size",
    "batch_size",
    "steps",
    "warmup_steps",
    "lr",
    "eval_every",
    "num_val",
    "val_split",
    "init_from",
    "device",
    "threads",
    "seed",
    "progress",
)


def temperature_list(text: str) -> tuple[float, ...]:
    """``0.2,0.6`` -> (0.2, 0.6): positive temperatures."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0.2,0.6, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"temperatures must be positive, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare",
        description=plain(__doc__).replace("    python -m", "examples:\n  python -m", 1),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"), help="run folders")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument(
        "--systems",
        help=f"comma-separated subset of: {', '.join(SYSTEMS)} (default: all but the "
        f"recipes {', '.join(RECIPES)}, which want --init-from and --val-split holdout)",
    )
    parser.add_argument("--grid-photos", type=int, default=6, help="rows of the PNG grid")
    parser.add_argument(
        "--bins-temperatures",
        type=temperature_list,
        default=(),
        metavar="T,T,...",
        help="also score every bin system (zhang) decoded at these annealed-mean temperatures "
        "(a decoding setting: no retraining), one row each",
    )
    add_options(
        parser,
        TrainConfig,
        SHARED,
        defaults={"domain": "portrait"},
        required=["steps"],
        helps={
            "domain": "the domain to train and evaluate on",
            "steps": "optimizer steps per system (the same image budget for every one)",
            "num_val": "photos of --val-split each system is scored on (spread over the split)",
            "val_split": "the split every system is scored on (and validates on while it "
            "trains): holdout to choose between systems, val only to report",
            "init_from": "start every system from this specialist (its architecture; the "
            "recipes: l1gan, zhang, colourful)",
        },
    )
    return parser.parse_args(argv)


def chosen_systems(text: str | None) -> dict[str, System]:
    """The systems a ``--systems`` list names; none given: all but the recipes."""
    default = ",".join(n for n in SYSTEMS if n not in RECIPES)
    names = [n.strip() for n in (text or default).split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        raise UsageError(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    return {n: SYSTEMS[n] for n in names}


def run(args: argparse.Namespace) -> None:
    """Train and compare the systems ``args`` names, with the settings it gives them all."""
    systems = chosen_systems(args.systems)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = from_args(TrainConfig, args, out="")
    compare(
        systems, base, args.runs, args.out, args.num_val, args.grid_photos, args.bins_temperatures
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(lambda: run(args), errors=(CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())
