"""Train one domain's Pix2Pix specialist: L1 (x100) + conditional PatchGAN, resumable.

    python -m training.train_specialist --data DIR --domain portrait --out runs/portrait

Read it top to bottom: config, data, models, resume, then the loop (step, log, evaluate,
checkpoint). Running the same command on the same run folder resumes from its checkpoint.
Under ``torchrun`` each process trains on its share of every batch (DistributedDataParallel).
"""

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

import discriminators
import specialists
from common.files import atomic_write_json, remove_stale_temps
from specialists.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    load_checkpoint,
    model_spec,
    read_config,
    save_checkpoint,
    with_prefix,
)
from specialists.cli import HelpFormatter, catalogue
from specialists.lab import join_lab, split_lab
from specialists.metrics import colourfulness, psnr
from specialists.output import predict_ab, to_ab
from training.data import (
    PLAIN_VAL_PERCENT,
    ColourPhotos,
    find_images,
    has_splits,
    images_under,
    list_domains,
    scan_images,
)
from training.losses import gan_loss, halves, matched_features
from training.monitor import MetricsLog, plot_losses, save_sample_grid
from training.optim_state import optimizer_from_tensors, optimizer_to_tensors

CHECKPOINT = "checkpoint.safetensors"
PROGRESS = "progress.json"  # step/total for watchers such as training.train_all
PROGRESS_EVERY_S = 1.0
# settings a resumed run takes from its checkpoint, whatever the command line says
ARCHITECTURE_FIELDS = (
    "arch",
    "arch_args",
    "disc",
    "spectral_norm",
    "size",
    "domain",
    "seed",
    "batch_size",
)


@dataclass
class TrainConfig:
    data: str
    out: str
    domain: str | None = None
    size: int = 128
    batch_size: int = 16
    steps: int | None = None
    epochs: float = 10.0
    arch: str = "unet_effnet_lite0"
    arch_args: dict = field(default_factory=dict)
    pretrained: bool = True
    init_from: str | None = None
    disc: str = "patchgan"
    disc_args: dict = field(default_factory=dict)
    spectral_norm: bool = False
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_from: float = 0.5
    l1_weight: float = 100.0
    gan_weight: float = 1.0
    feature_matching: float = 0.0
    gan_mode: str = "vanilla"
    warmup_steps: int = 0
    freeze_encoder_steps: int = 0
    device: str = "cpu"
    seed: int = 0
    workers: int = 0
    threads: int = 0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 200
    num_val: int = 200
    num_samples: int = 8
    stop_at: int | None = None
    progress: bool = True


class UsageError(Exception):
    """A problem with the command line or the data that the user must fix."""


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """This epoch's shuffled, full batches (the same every time for the same seed/epoch)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return [order[i : i + batch_size].tolist() for i in range(0, n - batch_size + 1, batch_size)]


def rank_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's disjoint share of every global batch of the epoch (a distributed sampler).

    Every rank draws the same shuffled global batches and keeps its own contiguous slice, so
    the ranks' slices together are exactly the one-process batch: with gradients averaged,
    N processes take the same steps as one, whatever N is (and a resumed run can change N).
    """
    share = batch_size // world
    return [
        batch[rank * share : (rank + 1) * share]
        for batch in epoch_batches(n, batch_size, seed, epoch)
    ]


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Constant, then linear decay to zero over the last part of the run (pix2pix)."""
    start = int(total * config.lr_decay_from)
    if step < start or total <= start:
        return config.lr
    return config.lr * max(0.0, 1.0 - (step - start) / (total - start))


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


class Distributed:
    """Rank and world size; under torchrun, the process group too (NCCL on GPUs, else gloo)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            cuda = device.startswith("cuda") and torch.cuda.is_available()
            if cuda and device == "cuda":
                torch.cuda.set_device(self.local_rank)  # NCCL must know each rank's own GPU
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged over ranks) if needed.

        DDP reduces the parameters that need gradients when it is built: build it again
        whenever that set changes (a frozen encoder thawing), or it waits forever for them.
        """
        if self.world == 1:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _tensor(self, values: list[float], dtype: torch.dtype) -> torch.Tensor:
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        return torch.tensor(values, dtype=dtype, device=device)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average logged numbers over ranks (each saw only its share of the batch)."""
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        total = self._tensor([values[k] for k in keys], torch.float64)
        dist.all_reduce(total)
        return {k: v / self.world for k, v in zip(keys, total.tolist())}

    def agree(self, values: dict[str, int]) -> None:
        """Stop unless every process sees the same numbers (checkpoint step, photos).

        Each process reads the checkpoint and the photos itself: on several machines, one
        that sees other files would take other steps and leave the rest waiting forever.
        """
        if self.world == 1:
            return
        high = self._tensor(list(values.values()), torch.int64)
        low = -high
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MAX)
        differ = [
            f"{name} ({-lo} to {hi})"
            for name, hi, lo in zip(values, high.tolist(), low.tolist())
            if hi != -lo
        ]
        if differ:
            raise UsageError(
                f"the {self.world} processes see different {', '.join(differ)}: every machine "
                "needs the same --data, and --out on storage they all share"
            )

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda asked for, but no CUDA GPU is available")
        return torch.device("cuda", local_rank if requested == "cuda" else int(requested[5:]))
    return torch.device(requested)


LAYOUTS = (
    "expected DIR/<domain>/*.jpg, DIR/train/<domain>/ + DIR/val/<domain>/, "
    "or a plain folder of photos"
)


def domain_folder(data: str | Path, domain: str | None) -> str | None:
    """The subfolder ``find_images`` should read for ``domain``: the domain itself when the
    data has such a folder, None (every photo) for a plain folder of one domain's photos."""
    if domain is None:
        return None
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"{root}: no such data folder")
    found = list_domains(root)
    if domain in found:
        return domain
    if has_splits(root) or any(images_under(root / name) for name in found):
        raise UsageError(
            f"{root}: no {domain!r} domain folder (it has {', '.join(found) or 'none'}); " + LAYOUTS
        )
    print(f"{root}: no domain folders; training the {domain!r} specialist on all its photos")
    return None


def load_data(config: TrainConfig) -> tuple[ColourPhotos, ColourPhotos, dict]:
    folder = domain_folder(config.data, config.domain)
    train_paths = find_images(config.data, "train", folder)
    val_paths = find_images(config.data, "val", folder)
    if not train_paths:
        where = f"{config.data} (domain {config.domain})" if config.domain else config.data
        raise UsageError(f"{where}: no training images found; {LAYOUTS}")
    train_scan = scan_images(train_paths, progress=config.progress)
    val_scan = scan_images(val_paths, progress=config.progress)
    if len(train_scan.usable) < config.batch_size:
        raise UsageError(
            f"{config.data}: {train_scan.summary()}; need at least --batch-size "
            f"({config.batch_size}) colour photos to train"
        )
    print(f"train: {train_scan.summary()}", flush=True)
    print(f"val: {val_scan.summary()}", flush=True)
    if not val_scan.usable:
        print(f"warning: {no_validation(config.data, len(train_paths))}", flush=True)
    info = {
        "root": str(config.data),
        "domain": config.domain,
        "train_images": len(train_scan.usable),
        "val_images": len(val_scan.usable),
        "skipped_grayscale": len(train_scan.grayscale) + len(val_scan.grayscale),
        "skipped_unreadable": len(train_scan.unreadable) + len(val_scan.unreadable),
    }
    train = ColourPhotos(train_scan.usable, config.size, train=True, seed=config.seed)
    val = ColourPhotos(val_scan.usable[: config.num_val], config.size, train=False)
    return train, val, info


def no_validation(data: str | Path, photos: int) -> str:
    """Why a run has no validation photos, and what to do about it."""
    if has_splits(data):
        how = "put some photos in its val/<domain>/ folder"
    else:
        how = (
            f"a fixed {PLAIN_VAL_PERCENT}% of a folder's photos, chosen by file name, is held "
            f"out and none of these {photos} was; add photos, or put some in "
            "DIR/val/<domain>/ (and the rest in DIR/train/<domain>/)"
        )
    return f"{data}: no validation photos, so no validation metrics or samples ({how})"


def fixed_samples(dataset: ColourPhotos, count: int) -> torch.Tensor:
    """Centre crops of evenly spaced photos: the same ones at every evaluation."""
    if len(dataset) == 0:
        return torch.empty(0)
    view = ColourPhotos(dataset.paths, dataset.size, train=False)
    picks = torch.linspace(0, len(view) - 1, min(count, len(view))).round().long().tolist()
    return torch.stack([view[i] for i in picks])


@torch.no_grad()
def colourize(generator: nn.Module, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey, colourized) RGB for a batch of true-colour RGB."""
    l_norm, _ = split_lab(rgb)
    pred = join_lab(l_norm, predict_ab(generator, l_norm))
    grey = join_lab(l_norm, torch.zeros_like(l_norm).expand(-1, 2, -1, -1))
    return grey, pred


@torch.no_grad()
def evaluate(
    generator: nn.Module, val: ColourPhotos, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Validation PSNR and colourfulness against the grayscale baseline (a = b = 0)."""
    if len(val) == 0:
        return {}
    was_training = generator.training
    generator.eval()
    # its own generator: an evaluation must not move the global RNG (dropout) of a resumable run
    loader = DataLoader(
        val, batch_size=config.batch_size, num_workers=config.workers, generator=torch.Generator()
    )
    sums: dict[str, float] = defaultdict(float)
    for rgb in tqdm(loader, desc="validating", leave=False, disable=not config.progress):
        rgb = rgb.to(device)
        grey, pred = colourize(generator, rgb)
        sums["val_psnr"] += psnr(pred, rgb).sum().item()
        sums["val_psnr_gray"] += psnr(grey, rgb).sum().item()
        sums["val_colourfulness"] += colourfulness(pred).sum().item()
        sums["val_colourfulness_true"] += colourfulness(rgb).sum().item()
    generator.train(was_training)
    return {k: v / len(val) for k, v in sums.items()}


def write_samples(
    generator: nn.Module, samples: dict[str, torch.Tensor], out: Path, step: int
) -> None:
    was_training = generator.training
    generator.eval()
    for name, rgb in samples.items():
        if len(rgb):
            grey, pred = colourize(generator, rgb)
            save_sample_grid(grey, pred, rgb, out / "samples" / f"{name}_{step:07d}.png")
    generator.train(was_training)


def build_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """Fresh generator (ImageNet encoder where it has one) and discriminator, or, with
    ``init_from``, both rebuilt from a trained specialist to fine-tune (architecture included)."""
    if config.init_from:
        return warm_start(config)
    kwargs = dict(config.arch_args)
    if specialists.GENERATORS.accepts(config.arch, "pretrained"):
        kwargs["pretrained"] = config.pretrained
    generator = specialists.create_model(config.arch, **kwargs)
    discriminator = discriminators.create_model(
        config.disc, **{"spectral_norm": config.spectral_norm, **config.disc_args}
    )
    return generator, discriminator


def warm_start(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator of an exported specialist or a training checkpoint; the
    run takes their architecture (a fine-tune keeps the shape it starts from)."""
    try:
        tensors, saved = load_checkpoint(config.init_from)
        generator = build_from_checkpoint(tensors, saved, "generator", specialists.create_model)
        discriminator = build_from_checkpoint(
            tensors, saved, "discriminator", discriminators.create_model
        )
    except (CheckpointError, RuntimeError, KeyError, TypeError) as exc:
        raise UsageError(f"--init-from {config.init_from}: cannot start from it ({exc})") from exc
    g_spec, d_spec = generator.spec, discriminator.spec
    config.arch, config.disc = g_spec["name"], d_spec["name"]
    config.arch_args = {k: v for k, v in g_spec["kwargs"].items() if k != "pretrained"}
    d_args = dict(d_spec["kwargs"])
    config.spectral_norm = bool(d_args.pop("spectral_norm", config.spectral_norm))
    config.disc_args = d_args
    return generator, discriminator


def train(config: TrainConfig) -> dict:
    """Train (or resume) a specialist; returns the final checkpoint's config."""
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT
    resume = ckpt_path.exists()
    if resume:
        saved = read_config(ckpt_path)
        for name in ARCHITECTURE_FIELDS:
            setattr(config, name, saved["train"].get(name, getattr(config, name)))
    ddp = Distributed(config.device)
    device = resolve_device(config.device, ddp.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.batch_size % ddp.world:
        raise UsageError(f"--batch-size {config.batch_size} must divide by {ddp.world} processes")
    if not ddp.main:
        config.progress = False  # one progress bar per run, not one per rank
    torch.manual_seed(config.seed)

    train_set, val_set, data_info = load_data(config)
    batches_per_epoch = len(train_set) // config.batch_size
    total = config.steps or max(1, math.ceil(config.epochs * batches_per_epoch))
    stop = min(total, config.stop_at) if config.stop_at else total

    step = 0
    if resume:
        tensors, saved = load_checkpoint(ckpt_path)
        generator = build_from_checkpoint(tensors, saved, "generator", specialists.create_model)
        discriminator = build_from_checkpoint(
            tensors, saved, "discriminator", discriminators.create_model
        )
        step = saved["step"]
    else:
        generator, discriminator = build_models(config)
    ddp.agree({"checkpoint steps": step, "numbers of training photos": len(train_set)})
    stride = getattr(generator, "stride", 1)
    if config.size % stride:
        raise UsageError(f"--size {config.size} must be a multiple of {config.arch}'s {stride}")
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), config.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), config.lr, betas=betas)
    if resume:
        optimizer_from_tensors(opt_g, tensors, saved["optimizers"]["g"], "optimizer_g")
        optimizer_from_tensors(opt_d, tensors, saved["optimizers"]["d"], "optimizer_d")
        torch.set_rng_state(tensors["rng.torch"])
        if ddp.main:
            print(f"resuming from {ckpt_path} at step {step} of {total}", flush=True)
    generator.to(device).train()
    discriminator.to(device).train()
    encoder = getattr(generator, "encoder", None)
    encoder_trainable = step >= config.freeze_encoder_steps
    if encoder is not None:
        set_requires_grad(encoder, encoder_trainable)
    g_model, d_model = ddp.wrap(generator, device), ddp.wrap(discriminator, device)

    out.mkdir(parents=True, exist_ok=True)
    if ddp.main:  # temporary files of a killed run's writes (never a live writer's)
        for folder in (out, out / "samples"):
            remove_stale_temps(folder)
    log = MetricsLog(out / "metrics.csv", step) if ddp.main else None
    samples = {
        "train": fixed_samples(train_set, config.num_samples).to(device),
        "val": fixed_samples(val_set, config.num_samples).to(device),
    }
    progress_at = 0.0

    def report_progress(step: int, force: bool = False) -> None:
        """Write RUN/progress.json (about once a second): what a watcher needs to draw a bar."""
        nonlocal progress_at
        if ddp.main and (force or time.time() - progress_at >= PROGRESS_EVERY_S):
            progress_at = time.time()
            state = {"step": step, "stop": stop, "total": total, "time": progress_at}
            atomic_write_json(out / PROGRESS, state | {"metrics": last_row})

    def save(step: int, metrics: dict[str, float]) -> None:
        if not ddp.main:
            return
        tensors = with_prefix(generator.state_dict(), "generator")
        tensors |= with_prefix(discriminator.state_dict(), "discriminator")
        g_tensors, g_meta = optimizer_to_tensors(opt_g, "optimizer_g")
        d_tensors, d_meta = optimizer_to_tensors(opt_d, "optimizer_d")
        tensors |= g_tensors | d_tensors | {"rng.torch": torch.get_rng_state()}
        meta = {
            "format": "routed-colorizer/checkpoint-1",
            "models": {
                "generator": model_spec(generator),
                "discriminator": model_spec(discriminator),
            },
            "optimizers": {"g": g_meta, "d": d_meta},
            "train": asdict(config),
            "domain": config.domain,
            "size": config.size,
            "step": step,
            "total_steps": total,
            "data": data_info,
            "metrics": metrics,
            "hardware": str(device)
            + ("" if device.type != "cpu" else f" ({os.cpu_count()} cores)"),
            "processes": ddp.world,
        }
        save_checkpoint(ckpt_path, tensors, meta)

    running: dict[str, float] = defaultdict(float)
    count = 0
    last_metrics: dict[str, float] = {}
    last_row: dict[str, float] = {}
    report_progress(step, force=True)
    tick = time.time()
    bar = tqdm(
        total=stop,
        initial=step,
        desc=f"train {config.domain or 'all'}",
        disable=not (config.progress and ddp.main),
        dynamic_ncols=True,
    )
    try:
        while step < stop:
            epoch, offset = divmod(step, batches_per_epoch)
            train_set.set_epoch(epoch)
            batches = rank_batches(
                len(train_set), config.batch_size, config.seed, epoch, ddp.rank, ddp.world
            )[offset:]
            loader = DataLoader(
                train_set,
                batch_sampler=batches,
                num_workers=config.workers,
                generator=torch.Generator(),  # keeps the global RNG (dropout) resumable
            )
            for rgb in loader:
                lr = lr_at(config, step, total)
                for group in (*opt_g.param_groups, *opt_d.param_groups):
                    group["lr"] = lr
                if encoder is not None and encoder_trainable != (
                    step >= config.freeze_encoder_steps
                ):
                    encoder_trainable = not encoder_trainable
                    set_requires_grad(encoder, encoder_trainable)
                    g_model = ddp.wrap(generator, device)
                l_norm, ab = split_lab(rgb.to(device))
                fake = to_ab(generator, g_model(l_norm))  # RGB generators too
                adversarial = step >= config.warmup_steps
                if adversarial:
                    # real and fake in one forward: one set of batch statistics, one DDP pass
                    set_requires_grad(discriminator, True)
                    logits = d_model(torch.cat((l_norm, l_norm)), torch.cat((fake.detach(), ab)))
                    fake_logits, real_logits = halves(logits)  # per scale if multi-scale
                    loss_d = 0.5 * (
                        gan_loss(fake_logits, False, config.gan_mode)
                        + gan_loss(real_logits, True, config.gan_mode)
                    )
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                    set_requires_grad(discriminator, False)
                    running["loss_d"] += loss_d.item()
                loss_l1 = F.l1_loss(fake, ab)
                loss_g = config.l1_weight * loss_l1
                if adversarial:
                    # the frozen D needs no gradient sync: call the bare module
                    if config.feature_matching:
                        fake_logits, loss_fm = matched_features(discriminator, l_norm, fake, ab)
                        loss_g = loss_g + config.feature_matching * loss_fm
                        running["loss_g_fm"] += loss_fm.item()
                    else:
                        fake_logits = discriminator(l_norm, fake)
                    loss_gan = gan_loss(fake_logits, True, config.gan_mode)
                    loss_g = loss_g + config.gan_weight * loss_gan
                    running["loss_g_gan"] += loss_gan.item()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                running["loss_l1"] += loss_l1.item()
                count += 1
                step += 1
                bar.update(1)
                report_progress(step, force=step == stop)

                evaluating = step % config.eval_every == 0 or step == stop
                if step % config.log_every == 0 or evaluating:
                    now = time.time()
                    row = ddp.mean({k: v / count for k, v in running.items()})
                    row |= {"step": step, "time": now, "epoch": epoch, "lr": lr}
                    row["images_per_s"] = count * config.batch_size / max(now - tick, 1e-9)
                    if evaluating and ddp.main:
                        last_metrics = evaluate(generator, val_set, config, device)
                        write_samples(generator, samples, out, step)
                        row |= last_metrics
                    if log is not None:
                        log.append(row)
                    last_row = {k: row[k] for k in ("loss_l1", "images_per_s")}
                    bar.set_postfix(
                        l1=f"{row['loss_l1']:.4f}",
                        psnr=f"{last_metrics.get('val_psnr', float('nan')):.2f}",
                    )
                    running.clear()
                    count = 0
                    tick = time.time()
                    if evaluating and ddp.main:
                        plot_losses(out / "metrics.csv", out / "losses.png")
                if step % config.checkpoint_every == 0 or step == stop:
                    save(step, last_metrics)
                    ddp.barrier()
                if step >= stop:
                    break
    except KeyboardInterrupt:
        save(step, last_metrics)
        bar.close()
        print(f"\ninterrupted: checkpoint saved at step {step}; run the same command to resume")
        ddp.close()
        raise
    bar.close()
    ddp.close()
    return read_config(ckpt_path) if ddp.main else {}


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


DESCRIPTION = """\
Train (or resume) one domain's colorization specialist: a generator that predicts a photo's
colours (Lab a, b) from its lightness L, trained with L1 x --l1-weight plus a conditional
PatchGAN discriminator (pix2pix) after --warmup-steps L1-only steps.

Data (--data): DIR/<domain>/*.jpg (a fixed 5% of each folder, chosen by file name, is held
out for validation), DIR/train/<domain>/ + DIR/val/<domain>/ (like colorize-v1), or a plain
folder of photos (then --domain names the specialist trained on all of them).
Running the same command on the same --out resumes from its checkpoint.

examples:
  python -m training.train_specialist --data photos/ --domain portrait --out runs/portrait
  python -m training.train_specialist --data ../shared/data/colorize-v1 --domain portrait \\
      --out runs/portrait --size 128 --steps 3000 --warmup-steps 1200
then: python -m training.export RUN --out WEIGHTS/specialists/DOMAIN.safetensors --half
(python -m training.ship does every step, for a folder of domain folders)"""


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig(data="", out="")
    parser = argparse.ArgumentParser(
        prog="python -m training.train_specialist",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
        epilog=catalogue(specialists.GENERATORS, "generators (--arch)")
        + "\n\n"
        + catalogue(discriminators.DISCRIMINATORS, "discriminators (--disc)"),
    )
    parser.add_argument(
        "--data", required=True, help="photo folder: DIR/<domain>/, DIR/train/<domain>/, or plain"
    )
    parser.add_argument(
        "--out", required=True, help="run folder (a rerun on it resumes from its checkpoint)"
    )
    parser.add_argument(
        "--domain",
        help="the domain to train: its folder's name, or the name to give a plain folder's "
        "photos (default: every photo under --data, named after the exported file)",
    )
    parser.add_argument(
        "--size", type=int, default=defaults.size, help="training crop size in pixels"
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="photos per optimizer step"
    )
    parser.add_argument(
        "--steps", type=int, help="total optimizer steps (overrides --epochs; default: from it)"
    )
    parser.add_argument(
        "--epochs", type=float, default=defaults.epochs, help="passes over the training photos"
    )
    parser.add_argument(
        "--arch",
        default=defaults.arch,
        choices=specialists.list_models(),
        metavar="ARCH",
        help="generator architecture, one of those listed below",
    )
    parser.add_argument(
        "--arch-arg",
        dest="arch_args",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="generator setting, e.g. ngf=32 (base width) or num_downs=6 (halvings); "
        "repeatable; values are JSON",
    )
    parser.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        help="random-init encoder instead of ImageNet weights",
    )
    parser.add_argument(
        "--init-from",
        metavar="SPECIALIST",
        help="fine-tune: start from this exported specialist or checkpoint (its architecture, "
        "generator and discriminator weights; fresh optimizer, step 0)",
    )
    parser.add_argument(
        "--disc",
        default=defaults.disc,
        choices=discriminators.list_models(),
        metavar="DISC",
        help="discriminator architecture, one of those listed below",
    )
    parser.add_argument(
        "--disc-arg",
        dest="disc_args",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="discriminator setting, e.g. ndf=32 (base width) or n_layers=4 (depth); "
        "repeatable; values are JSON",
    )
    parser.add_argument(
        "--spectral-norm",
        action="store_true",
        help="spectral normalisation in the discriminator (steadier GAN training)",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    parser.add_argument(
        "--beta1", type=float, default=defaults.beta1, help="Adam's first-moment decay"
    )
    parser.add_argument(
        "--lr-decay-from",
        type=float,
        default=defaults.lr_decay_from,
        help="fraction of the run after which the learning rate decays linearly to 0",
    )
    parser.add_argument(
        "--l1-weight",
        type=float,
        default=defaults.l1_weight,
        help="weight of the L1 distance to the true colours",
    )
    parser.add_argument(
        "--gan-weight",
        type=float,
        default=defaults.gan_weight,
        help="weight of the adversarial loss",
    )
    parser.add_argument(
        "--feature-matching",
        type=float,
        default=defaults.feature_matching,
        metavar="WEIGHT",
        help="pix2pixHD feature-matching L1 on the discriminator's activations (0: off)",
    )
    parser.add_argument(
        "--gan-mode",
        default=defaults.gan_mode,
        choices=["vanilla", "lsgan"],
        help="adversarial loss: vanilla (cross-entropy, pix2pix) or lsgan (least squares)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=defaults.warmup_steps,
        help="L1-only steps before the adversarial phase",
    )
    parser.add_argument(
        "--freeze-encoder-steps",
        type=int,
        default=defaults.freeze_encoder_steps,
        help="keep a pretrained encoder frozen for this many steps",
    )
    parser.add_argument("--device", default=defaults.device, help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the crops, order and init"
    )
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="data loader processes"
    )
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help="torch CPU threads (0: all cores)"
    )
    parser.add_argument(
        "--log-every", type=int, default=defaults.log_every, help="steps between metrics.csv rows"
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=defaults.eval_every,
        help="steps between validations and sample grids",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_every,
        help="steps between checkpoints",
    )
    parser.add_argument(
        "--num-val", type=int, default=defaults.num_val, help="validation photos per evaluation"
    )
    parser.add_argument(
        "--stop-at", type=int, help="stop (with a checkpoint) at this step; resume later"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    args = parser.parse_args(argv)
    args.arch_args = dict(args.arch_args)
    args.disc_args = dict(args.disc_args)
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def next_step(config: TrainConfig, result: dict) -> str:
    """What to run after this command: resume it, or export the run."""
    step, total = result.get("step"), result.get("total_steps")
    if step is not None and total is not None and step < total:
        return f"stopped at step {step} of {total}: run the same command to continue"
    domain = result.get("domain") or "DOMAIN"
    return (
        f"next: python -m training.export {config.out} --out "
        f"WEIGHTS/specialists/{domain}.safetensors --half\n"
        "(or python -m training.ship, which trains, exports and fits every domain of a "
        "folder of domain folders: README, Add your own domain)"
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        result = train(config)
    except (UsageError, CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if result:
        print(next_step(config, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
