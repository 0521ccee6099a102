"""Turn a training run into serving weights: generator + discriminator, no optimizer state.

    python -m training.ship.export runs/portrait \
        --out weights/specialists/portrait.safetensors --half

Half precision halves the file; the loaders cast back to float32. The specialist's domain is
the run's --domain, or the output file's name for a run without one.
"""

import argparse
import csv
import sys
from pathlib import Path

import torch

from common.cli import HelpFormatter, plain, run_command
from specialists.checkpoint import CheckpointError, load_checkpoint, read_config, save_checkpoint
from training.lineage import LEARNT_FROM, lineage, start_file
from training.run_files import CHECKPOINT

KEPT_ROLES = ("generator", "discriminator")
KEPT_CONFIG = ("models", "domain", "size", "step", "total_steps", "data", "metrics", "train")
PAUSE_S = 600  # a longer gap between two log rows is a pause (a session ending), not training


def _log_rows(run_dir: Path) -> list[dict]:
    try:
        with open(Path(run_dir) / "metrics.csv", newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def training_seconds(rows: list[dict]) -> float | None:
    """Time spent training, from a run's metrics.csv rows, leaving out pauses between resumes."""
    try:
        times = [float(row["time"]) for row in rows if row.get("time")]
    except ValueError:
        return None
    gaps = [b - a for a, b in zip(times, times[1:])]
    return sum(g for g in gaps if 0 < g <= PAUSE_S) if gaps else None


def adversarial_steps(rows: list[dict]) -> list[int] | None:
    """[first, last] logged step with a GAN loss: a resumed run can change its warm-up, so the
    final config alone cannot say when the adversarial phase ran."""
    steps = [int(row["step"]) for row in rows if row.get("loss_g_gan")]
    return [steps[0], steps[-1]] if steps else None


def record_lineage(config: dict) -> None:
    """Write into ``config["data"]`` the data its ``--init-from`` start learnt from, for runs
    begun before fine-tunes recorded it themselves (while the start's file can be read), so
    the exported specialist keeps its lineage once the start is gone or overwritten."""
    data = config.get("data")
    start = (config.get("train") or {}).get("init_from")
    if not start or not isinstance(data, dict) or LEARNT_FROM in data:
        return
    try:
        before, missing = lineage(read_config(start_file(start)))
    except CheckpointError as exc:
        print(f"note: {start}: cannot record what it learnt from ({exc})")
        return
    if missing:
        print(f"note: {start}: its lineage is incomplete ({'; '.join(missing)})")
    data[LEARNT_FROM] = before


def export_run(run_dir: Path, out: Path, half: bool = False) -> dict:
    """Write ``out`` (+ .json) from ``run_dir``'s checkpoint; returns the exported config."""
    tensors, config = load_checkpoint(Path(run_dir) / CHECKPOINT)
    kept = {k: v for k, v in tensors.items() if k.split(".", 1)[0] in KEPT_ROLES}
    if half:
        kept = {k: v.half() if v.is_floating_point() else v for k, v in kept.items()}
    exported = {k: config[k] for k in KEPT_CONFIG if k in config}
    record_lineage(exported)
    # a run on a plain folder without --domain: the specialist is the one the file is named for
    exported["domain"] = config.get("domain") or Path(out).stem
    exported["hardware"] = config.get("hardware")
    log = _log_rows(run_dir)
    exported["training_seconds"] = training_seconds(log)
    exported["adversarial_steps"] = adversarial_steps(log)
    exported["exported_from"] = str(run_dir)
    exported["dtype"] = "float16" if half else "float32"
    if Path(out).resolve() == (Path(run_dir) / CHECKPOINT).resolve():
        raise CheckpointError(f"{out}: refusing to overwrite the run's own checkpoint")
    save_checkpoint(out, kept, exported)
    return exported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship.export",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a train_specialist run folder")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    parser.add_argument("--half", action="store_true", help="store weights in float16")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error(f"{args.out}: the output must end in .safetensors")

    def run() -> None:
        config = export_run(args.run_dir, args.out, args.half)
        size = args.out.stat().st_size / 2**20
        step = config.get("step")
        print(
            f"wrote {args.out} ({size:.1f} MiB): the {config['domain']} specialist at step {step}"
        )
        weights = args.out.parent.parent
        print(
            f"next: python -m training.ship.fit_chroma --data DATA --weights {weights}, then "
            f"python -m training.ship.calibrate_judge --data DATA --weights {weights} "
            f"(a weights folder also needs router/: python -m training.train_router)"
        )

    return run_command(run, errors=(CheckpointError,))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
