"""Three specialists trained one after another versus at once (train_all): images/second.

    python benchmarks/bench_parallel.py [--steps 8] [--batch-size 8] [--size 128]

Both ways run the same commands, the same number of steps each: ``train_specialist`` three
times in a row with its default threads (or ``--sequential-threads``), then ``train_all``
(cores split between the three).
Data: a symlinked subset of ``../shared/data/colorize-v1`` (``--per-domain`` training photos
per domain, so the colour check of 4,000 photos per run is not what is timed), or, where that
folder is absent, generated photos. Writes benchmarks/results/parallel_training.{json,md}.

Two figures per way: end to end (wall clock from the first process start to the last exit,
so process start, data checks, the final evaluation and checkpoint are in it) and training
only (steps 2..N from the runs' metrics.csv time column; step 1 warms up).
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "colorize-v1"
DOMAINS = ("portrait", "landscape", "general")
RESULTS = ROOT / "benchmarks" / "results"


def real_subset(source: Path, dest: Path, per_domain: int, val: int) -> Path:
    """dest/{train,val}/<domain>/ with symlinks to the first photos of each domain."""
    for split, count in (("train", per_domain), ("val", val)):
        for domain in DOMAINS:
            folder = dest / split / domain
            folder.mkdir(parents=True)
            for photo in sorted((source / split / domain).iterdir())[:count]:
                (folder / photo.name).symlink_to(photo)
    return dest


def generated(dest: Path, per_domain: int, val: int) -> Path:
    """Textured colour photos, 160 px, a different hue per domain."""
    rng = np.random.default_rng(0)
    hues = {"portrait": (200, 140, 110), "landscape": (70, 150, 90), "general": (90, 100, 180)}
    yy, xx = np.mgrid[0:160, 0:160] / 160
    for split, count in (("train", per_domain), ("val", val)):
        for domain, rgb in hues.items():
            folder = dest / split / domain
            folder.mkdir(parents=True)
            for i in range(count):
                shade = 0.4 + 0.5 * (0.6 * xx + 0.4 * yy) + rng.normal(0, 0.05, xx.shape)
                pixels = np.clip(np.array(rgb) * shade[..., None], 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{domain}_{i:04d}.png")
    return dest


def train_flags(args: argparse.Namespace) -> list[str]:
    big = str(10 * args.steps)  # evaluate and checkpoint once, at the end, like a short run
    return [
        *("--size", str(args.size), "--batch-size", str(args.batch_size)),
        *("--steps", str(args.steps), "--log-every", "1", "--eval-every", big),
        *("--checkpoint-every", big, "--num-val", "8", "--no-pretrained"),
    ]


def spans(runs: Path) -> dict[str, tuple[float, float, int]]:
    """Per run: time of step 1, time of the last step, number of steps after step 1."""
    result = {}
    for domain in DOMAINS:
        with open(runs / domain / "metrics.csv", newline="") as handle:
            times = [float(row["time"]) for row in csv.DictReader(handle)]
        result[domain] = (times[0], times[-1], len(times) - 1)
    return result


def run(command: list[str], log: Path) -> None:
    with open(log, "ab") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{' '.join(command[:4])}... failed (exit {done.returncode}); see {log}")


def sequential(data: Path, runs: Path, flags: list[str], threads: int | None) -> float:
    flags = [*flags, "--threads", str(threads)] if threads else flags
    start = time.time()
    for domain in DOMAINS:
        out = runs / domain
        out.mkdir(parents=True)
        command = [sys.executable, "-m", "training.train_specialist", "--data", str(data)]
        run([*command, "--domain", domain, "--out", str(out), *flags], out / "train.log")
    return time.time() - start


def concurrent(data: Path, runs: Path, flags: list[str]) -> float:
    start = time.time()
    runs.mkdir(parents=True)
    command = [sys.executable, "-m", "training.train_all", "--data", str(data)]
    run([*command, "--out", str(runs), "--no-progress", *flags], runs / "train_all.log")
    return time.time() - start


def figures(wall: float, timeline: dict, batch: int, steps: int, serial: bool) -> dict:
    images = len(DOMAINS) * steps * batch
    trained = sum(n for _, _, n in timeline.values()) * batch
    if serial:  # the runs' training windows, one after another
        window = sum(end - begin for begin, end, _ in timeline.values())
    else:  # from the first run's first step to the last run's last step
        window = max(e for _, e, _ in timeline.values()) - min(b for b, _, _ in timeline.values())
    return {
        "wall_s": round(wall, 1),
        "images": images,
        "images_per_s_end_to_end": round(images / wall, 2),
        "training_window_s": round(window, 1),
        "images_per_s_training": round(trained / window, 2),
    }


def markdown(results: dict) -> str:
    seq, con = results["sequential"], results["concurrent"]
    lines = [
        "# Three specialists: one after another vs at once (train_all)",
        "",
        f"Machine: {results['machine']}; torch {results['torch']}. Data: {results['data']}.",
        f"Each run: {results['steps']} steps of batch {results['batch_size']} at "
        f"{results['size']} px, {results['arch']}, L1 + PatchGAN from step 1.",
        f"Threads: {results['threads_sequential']} per run one after another, "
        f"{results['threads_concurrent']} per run at once.",
        f"Load average (1 min) before / after: {results['load_average_before']:.2f} / "
        f"{results['load_average_after']:.2f}. {results['note']}",
        "",
        "| | wall clock (s) | images/s end to end | images/s training only |",
        "|---|---|---|---|",
        f"| one after another | {seq['wall_s']} | {seq['images_per_s_end_to_end']} "
        f"| {seq['images_per_s_training']} |",
        f"| at once (train_all) | {con['wall_s']} | {con['images_per_s_end_to_end']} "
        f"| {con['images_per_s_training']} |",
        "",
        "End to end includes starting Python and torch, checking the photos, the final",
        "evaluation and checkpoint of every run; training only is steps 2..N from metrics.csv.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--per-domain", type=int, default=200)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument(
        "--sequential-threads",
        type=int,
        help="threads of each run one after another "
        "(default: train_specialist's own default, all cores)",
    )
    parser.add_argument(
        "--note", default="", help="what else ran on the machine meanwhile (goes in the results)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel_training")
    args = parser.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_parallel_"))
    try:
        if args.data.is_dir():
            data = real_subset(args.data, work / "data", args.per_domain, 8)
            source = f"colorize-v1, first {args.per_domain} training photos per domain"
        else:
            data = generated(work / "data", args.per_domain, 8)
            source = f"generated, {args.per_domain} photos per domain (colorize-v1 absent)"
        flags = train_flags(args)
        load_before = os.getloadavg()[0]
        seq_wall = sequential(data, work / "sequential", flags, args.sequential_threads)
        con_wall = concurrent(data, work / "concurrent", flags)
        load_after = os.getloadavg()[0]
        seq = figures(seq_wall, spans(work / "sequential"), args.batch_size, args.steps, True)
        con = figures(con_wall, spans(work / "concurrent"), args.batch_size, args.steps, False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {cores} CPU cores, no GPU",
        "torch": torch.__version__,
        "data": source,
        "arch": "unet_effnet_lite0 (random init, same speed as pretrained)",
        "size": args.size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "threads_sequential": args.sequential_threads or torch.get_num_threads(),
        "threads_concurrent": max(1, cores // len(DOMAINS)),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "note": args.note,
        "sequential": seq,
        "concurrent": con,
        "speedup_end_to_end": round(seq_wall / con_wall, 2),
        "speedup_training": round(con["images_per_s_training"] / seq["images_per_s_training"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
