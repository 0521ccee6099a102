"""Train one domain's Pix2Pix specialist: L1 (x100) + conditional PatchGAN, resumable;
or Zhang et al.'s rebalanced classification over ab bins instead of L1 (``--output-space
bins``), and a colourfulness term on top of either (``--colourfulness-weight``).

    python -m training.train_specialist --data DIR --domain portrait --out runs/portrait

Read ``train`` top to bottom: settings, data, networks (fresh or resumed), then the loop
(step, log, evaluate, checkpoint). Running the same command on the same run folder resumes
from its checkpoint; a changed setting that would change the model or the data is refused.
Under ``torchrun`` each process trains on its share of every batch (DistributedDataParallel).
"""

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

import discriminators
import specialists
from common.cli import (
    HelpFormatter,
    UsageError,
    add_options,
    choose_device,
    from_args,
    run_command,
)
from common.files import remove_stale_temps
from common.lab import join_lab, split_lab
from specialists.checkpoint import CheckpointError, read_config
from specialists.cli import catalogue
from specialists.output import output_space, to_ab
from training.distributed import Distributed, rank_batches
from training.losses import (
    colourfulness_shortfall,
    gan_loss,
    halves,
    judged_beside_real,
    matched_features,
    rebalanced_cross_entropy,
)
from training.monitor import (
    SPECIALIST_COLUMNS,
    SPECIALIST_PANELS,
    MetricsLog,
    ProgressFile,
    validate,
    write_samples,
)
from training.run_files import CHECKPOINT
from training.specialist_config import TrainConfig, lr_at
from training.specialist_data import fixed_samples, load_data
from training.specialist_state import (
    Nets,
    create_nets,
    hardware,
    resume_settings,
    save_run,
)

PROGRESS = "progress.json"  # step/total for watchers such as training.train_all


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def train_step(
    nets: Nets,
    g_model: nn.Module,
    d_model: nn.Module,
    rgb: torch.Tensor,
    config: TrainConfig,
    adversarial: bool,
) -> dict[str, float]:
    """One optimizer step of D (in the adversarial phase) and of G; returns the losses.

    ``g_model`` and ``d_model`` are the networks as trained (under DDP, its wrappers)."""
    generator, discriminator = nets.generator, nets.discriminator
    losses = {}
    l_norm, ab = split_lab(rgb)
    output = g_model(l_norm)
    fake = to_ab(generator, output)  # RGB and bin generators too
    if adversarial:
        # real and fake in one forward: one set of batch statistics, one DDP pass
        set_requires_grad(discriminator, True)
        logits = d_model(torch.cat((l_norm, l_norm)), torch.cat((fake.detach(), ab)))
        fake_logits, real_logits = halves(logits)  # per scale if multi-scale
        loss_d = 0.5 * (
            gan_loss(fake_logits, False, config.gan_mode)
            + gan_loss(real_logits, True, config.gan_mode)
        )
        nets.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        nets.opt_d.step()
        set_requires_grad(discriminator, False)
        losses["loss_d"] = loss_d.item()
    loss_l1 = F.l1_loss(fake, ab)
    if output_space(generator) == "bins":  # the classification replaces the L1 term
        loss_cls = rebalanced_cross_entropy(output, ab, generator.bins)
        loss_g = loss_cls
        losses["loss_cls"] = loss_cls.item()
    else:
        loss_g = config.l1_weight * loss_l1
    if config.colourfulness_weight:
        shortfall = colourfulness_shortfall(join_lab(l_norm, fake), join_lab(l_norm, ab))
        loss_g = loss_g + config.colourfulness_weight * shortfall
        losses["loss_g_colour"] = shortfall.item()
    if adversarial:
        # the frozen D needs no gradient sync: call the bare module
        if config.feature_matching:
            fake_logits, loss_fm = matched_features(discriminator, l_norm, fake, ab)
            loss_g = loss_g + config.feature_matching * loss_fm
            losses["loss_g_fm"] = loss_fm.item()
        else:
            fake_logits = judged_beside_real(discriminator, l_norm, fake, ab)
        loss_gan = gan_loss(fake_logits, True, config.gan_mode)
        loss_g = loss_g + config.gan_weight * loss_gan
        losses["loss_g_gan"] = loss_gan.item()
    nets.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    nets.opt_g.step()
    losses["loss_l1"] = loss_l1.item()
    return losses


def train(config: TrainConfig) -> dict:
    """Train (or resume) a specialist; returns the final checkpoint's config."""
    out = Path(config.out)
    ckpt_path = out / CHECKPOINT
    resume = resume_settings(ckpt_path, config) is not None  # refuses changed settings
    ddp = Distributed(config.device)
    device = choose_device(config.device, ddp.local_rank)
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

    nets, step, made = create_nets(config, resume, ckpt_path, train_set.paths)
    data_info |= made
    ddp.agree({"checkpoint steps": step, "numbers of training photos": len(train_set)})
    if resume and ddp.main:
        print(f"resuming from {ckpt_path} at step {step} of {total}", flush=True)
    generator, discriminator = nets.generator, nets.discriminator
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
    log = MetricsLog(out / "metrics.csv", SPECIALIST_COLUMNS, step) if ddp.main else None
    progress = ProgressFile(out / PROGRESS, stop, total, enabled=ddp.main)
    record = {"total_steps": total, "data": data_info, "metrics": {}}
    record |= {"hardware": hardware(device), "processes": ddp.world}
    samples = {
        "train": fixed_samples(train_set, config.num_samples).to(device),
        "val": fixed_samples(val_set, config.num_samples).to(device),
    }
    running: dict[str, float] = defaultdict(float)
    count, last_row, tick = 0, {}, time.time()
    progress.write(step, last_row, force=True)
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
                nets.set_lr(lr)
                if encoder is not None and encoder_trainable != (
                    step >= config.freeze_encoder_steps
                ):
                    encoder_trainable = not encoder_trainable
                    set_requires_grad(encoder, encoder_trainable)
                    g_model = ddp.wrap(generator, device)
                adversarial = step >= config.warmup_steps
                for key, value in train_step(
                    nets, g_model, d_model, rgb.to(device), config, adversarial
                ).items():
                    running[key] += value
                count += 1
                step += 1
                bar.update(1)
                progress.write(step, last_row, force=step == stop)

                evaluating = step % config.eval_every == 0 or step == stop
                if step % config.log_every == 0 or evaluating:
                    now = time.time()
                    row = ddp.mean({k: v / count for k, v in running.items()})
                    row |= {"step": step, "time": now, "epoch": epoch, "lr": lr}
                    row["images_per_s"] = count * config.batch_size / max(now - tick, 1e-9)
                    if evaluating and ddp.main:
                        record["metrics"] = validate(
                            generator, val_set, config.batch_size, config.workers, config.progress
                        )
                        write_samples(generator, samples, out / "samples", step)
                        row |= record["metrics"]
                    if log is not None:
                        log.append(row)
                        if evaluating:
                            log.plot(out / "losses.png", SPECIALIST_PANELS)
                    last_row = {k: row[k] for k in ("loss_l1", "images_per_s")}
                    psnr = record["metrics"].get("val_psnr", float("nan"))
                    bar.set_postfix(l1=f"{row['loss_l1']:.4f}", psnr=f"{psnr:.2f}")
                    running.clear()
                    count, tick = 0, time.time()
                if step % config.checkpoint_every == 0 or step == stop:
                    if ddp.main:
                        save_run(ckpt_path, nets, config, step, record)
                    ddp.barrier()
                if step >= stop:
                    break
    except KeyboardInterrupt:
        if ddp.main:
            save_run(ckpt_path, nets, config, step, record)
        bar.close()
        print(f"\ninterrupted: checkpoint saved at step {step}; run the same command to resume")
        ddp.close()
        raise
    bar.close()
    ddp.close()
    return read_config(ckpt_path) if ddp.main else {}


DESCRIPTION = """\
Train (or resume) one domain's colorization specialist: a generator that predicts a photo's
colours (Lab a, b) from its lightness L, trained with L1 x --l1-weight plus a conditional
PatchGAN discriminator (pix2pix) after --warmup-steps L1-only steps. --output-space bins
trains Zhang et al.'s classifier over quantised ab instead of the L1 regression;
--colourfulness-weight adds a penalty for colouring less vividly than the truth.

Data (--data): DIR/<domain>/*.jpg (a fixed 5% of each folder, chosen by file name, is held
out for validation), DIR/train/<domain>/ + DIR/val/<domain>/ (like colorize-v1), or a plain
folder of photos (then --domain names the specialist trained on all of them).
Running the same command on the same --out resumes from its checkpoint.

examples:
  python -m training.train_specialist --data photos/ --domain portrait --out runs/portrait
  python -m training.train_specialist --data ../shared/data/colorize-v1 --domain portrait \\
      --out runs/portrait --size 128 --steps 3000 --warmup-steps 1200
then: python -m training.ship.export RUN --out WEIGHTS/specialists/DOMAIN.safetensors --half
(python -m training.ship does every step, for a folder of domain folders)"""


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m training.train_specialist",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
        epilog=catalogue(specialists.GENERATORS, "generators (--arch)")
        + "\n\n"
        + catalogue(discriminators.DISCRIMINATORS, "discriminators (--disc)"),
    )
    add_options(parser, TrainConfig)
    return from_args(TrainConfig, parser.parse_args(argv))


def next_step(config: TrainConfig, result: dict) -> str:
    """What to run after this command: resume it, or export the run."""
    step, total = result.get("step"), result.get("total_steps")
    if step is not None and total is not None and step < total:
        return f"stopped at step {step} of {total}: run the same command to continue"
    domain = result.get("domain") or "DOMAIN"
    return (
        f"next: python -m training.ship.export {config.out} --out "
        f"WEIGHTS/specialists/{domain}.safetensors --half\n"
        "(or python -m training.ship, which trains, exports and fits every domain of a "
        "folder of domain folders: README, Add your own domain)"
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)

    def run() -> None:
        result = train(config)
        if result:
            print(next_step(config, result))

    return run_command(run, errors=(CheckpointError,))


if __name__ == "__main__":
    sys.exit(main())
