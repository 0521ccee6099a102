"""Train the write-up's systems and the proposed improvements side by side, then compare.

    python -m training.compare --data ../shared/data/colorize-v1 --domain portrait \\
        --size 128 --batch-size 16 --steps 1000 --warmup-steps 400 \\
        --runs runs/compare --out benchmarks/results/compare_systems

Every system is a generator and a discriminator from the registries (plus, for feature
matching, one training setting); all get the same data, crops, image budget and loss, via
``training.train_specialist.train``, each in ``RUNS/<system>/``. Running the command again
resumes unfinished systems and skips finished ones. Then each generator colours the same
validation photos and ``OUT/`` gets ``results.json``, ``table.md`` and ``grid.png``
(grey | each system | truth, one row per photo).
"""

import argparse
import csv
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

import discriminators
import specialists
from common.files import atomic_write_json, atomic_write_text
from specialists.checkpoint import CheckpointError, read_config
from training.data import ColourPhotos, find_images, scan_images
from training.quality import (
    colour_metrics,
    colourize_rgb,
    count_parameters,
    evaluate_generator,
    grey_rgb,
    markdown_table,
    save_comparison_grid,
)
from training.train_specialist import CHECKPOINT, TrainConfig, UsageError, train


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
}

TABLE_COLUMNS = {
    "system": "system",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "colourfulness": "colourfulness",
    "colourfulness_gap": "gap to truth",
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


def validation_photos(data: str, domain: str | None, size: int, count: int) -> torch.Tensor:
    """The first ``count`` usable validation photos, centre-cropped: the same for every system."""
    paths = scan_images(find_images(data, "val", domain), progress=False).usable[:count]
    if not paths:
        raise UsageError(f"{data}: no validation photos (domain {domain})")
    photos = ColourPhotos(paths, size, train=False)
    return torch.stack([photos[i] for i in range(len(photos))])


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M"


def describe_size(sizes: dict[str, int]) -> str:
    """Trainable parameters, and the frozen ones (gamma's classifier) when there are any."""
    frozen = sizes["parameters"] - sizes["trainable_parameters"]
    text = _millions(sizes["trainable_parameters"])
    return f"{text} + {_millions(frozen)} frozen" if frozen else text


def compare(
    systems: dict[str, System],
    base: TrainConfig,
    runs: Path,
    out: Path,
    num_val: int = 200,
    grid_photos: int = 6,
) -> list[dict]:
    """Train every system, evaluate each on the same validation photos, write the report."""
    if not base.steps:
        raise UsageError("a comparison needs --steps: the same image budget for every system")
    photos = validation_photos(base.data, base.domain, base.size, num_val)
    picks = torch.linspace(0, len(photos) - 1, min(grid_photos, len(photos))).round().long()
    grid = {"grey": grey_rgb(photos[picks])}
    gray = colour_metrics(grey_rgb(photos), photos)
    rows = [{"system": "grayscale input", "about": "a = b = 0: the baseline to beat"} | gray]
    for name, system in systems.items():
        run = train_system(name, system, base, runs)
        generator = specialists.load_generator(run / CHECKPOINT, base.device)
        disc = discriminators.load_discriminator(run / CHECKPOINT, base.device)
        metrics = evaluate_generator(generator, photos.to(base.device), base.batch_size)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig(data="", out="")
    parser = argparse.ArgumentParser(
        prog="python -m training.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", required=True, help="data folder (train/<domain>, val/...)")
    parser.add_argument("--domain", default="portrait", help="domain to train and evaluate on")
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"), help="run folders")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of: {', '.join(SYSTEMS)}",
    )
    parser.add_argument("--size", type=int, default=defaults.size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps per system")
    parser.add_argument("--warmup-steps", type=int, default=0, help="L1-only steps first")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--num-val", type=int, default=200, help="validation photos to score")
    parser.add_argument("--grid-photos", type=int, default=6, help="rows of the PNG grid")
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        print(f"error: unknown systems {unknown}; known: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    base = TrainConfig(
        data=args.data,
        out="",
        domain=args.domain,
        size=args.size,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        lr=args.lr,
        eval_every=args.eval_every,
        num_val=args.num_val,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        progress=args.progress,
    )
    try:
        compare(
            {n: SYSTEMS[n] for n in names},
            base,
            args.runs,
            args.out,
            args.num_val,
            args.grid_photos,
        )
    except (UsageError, CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
