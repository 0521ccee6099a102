"""A specialist run's networks and optimizers: built fresh, warm-started from a trained
specialist, or restored exactly from the run's checkpoint (the one resume rule applied)."""

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import discriminators
import specialists
from common.cli import UsageError, changed_settings, refuse_changes
from specialists.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    load_checkpoint,
    model_spec,
    read_config,
    save_checkpoint,
    with_prefix,
)
from specialists.output import output_space
from training.colour_bins import ColourBins, bins_from_photos, head_from_ab
from training.lineage import LEARNT_FROM, lineage, start_file
from training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from training.specialist_config import ARCHITECTURE, RESUME_FIELDS, TrainConfig

OUTPUT_ARGS = ("num_bins", "temperature")  # set from --output-space, not the architecture


def resume_settings(path: Path, config: TrainConfig) -> dict | None:
    """The saved config of the run in ``path`` (None for a new run), after refusing a changed
    setting that would change the model or the data. With ``--init-from`` the architecture is
    the starting specialist's, whatever the command line says: the run keeps the saved one."""
    if not path.exists():
        return None
    saved = read_config(path)
    before = saved.get("train", {})
    checked = [name for name in RESUME_FIELDS if not (config.init_from and name in ARCHITECTURE)]
    refuse_changes(str(path), changed_settings(before, config, checked))
    if config.init_from:
        for name in ARCHITECTURE:
            setattr(config, name, before.get(name, getattr(config, name)))
    return saved


def build_models(
    config: TrainConfig, photos: Sequence[Path] = ()
) -> tuple[nn.Module, nn.Module, dict]:
    """(generator, discriminator, what to record about the bins): fresh (ImageNet encoder
    where it has one), or, with ``init_from``, rebuilt from a trained specialist to fine-tune
    (architecture included). A start whose output space is not ``config.output_space`` gives
    a new generator every fitting weight of it (bins are fitted on ``photos``)."""
    made: dict = {}
    if config.init_from:
        start, discriminator, before = warm_start(config)
        made[LEARNT_FROM] = before
        if (output_space(start) == "bins") == (config.output_space == "bins"):
            return start, discriminator, made
    else:
        start = None
        discriminator = discriminators.create_model(
            config.disc, **{"spectral_norm": config.spectral_norm, **config.disc_args}
        )
    kwargs = dict(config.arch_args)
    if specialists.GENERATORS.accepts(config.arch, "pretrained"):
        kwargs["pretrained"] = config.pretrained and start is None  # a start brings its own
    bins = fit_bins_for(config, photos) if config.output_space == "bins" else None
    if bins is not None:
        kwargs |= {"num_bins": len(bins.centres), "temperature": config.bins_temperature}
    generator = specialists.create_model(config.arch, **kwargs)
    if bins is not None:
        generator.bins.centres.copy_(bins.centres)
        generator.bins.weights.copy_(bins.weights)
        # the first colouring is the prior's annealed mean (near grey), not the mean of every
        # bin (a pink wash) that a zero bias gives: a fresh head learns slowly at a low lr
        with torch.no_grad():
            generator.output_layer.bias.copy_(bins.prior.log())
    if start is not None:
        skipped, fresh = load_matching(generator, start.state_dict())
        print(
            f"--init-from {config.init_from}: every weight kept"
            + (f" but {', '.join(skipped)}" if skipped else "")
            + (f"; new: {', '.join(fresh)}" if fresh else ""),
            flush=True,
        )
        if bins is not None and config.bins_head == "ab":  # an ab start: rgb cannot be bins
            head_from_ab(generator.output_layer, start.output_layer, bins.centres)
            print("the bin head starts from the ab head: at the start's colours", flush=True)
    if bins is not None:
        made["colour_bins"] = bins.describe()
    return generator, discriminator, made


def fit_bins_for(config: TrainConfig, photos: Sequence[Path]) -> ColourBins:
    """The ab bins and weights of ``config``'s run, from its training ``photos``."""
    able = [n for n in specialists.list_models() if specialists.GENERATORS.accepts(n, "num_bins")]
    if config.arch not in able:
        raise UsageError(
            f"--output-space bins: {config.arch} cannot predict bins; use one of {', '.join(able)}"
        )
    bins = bins_from_photos(photos, config.bins_photos, config.progress)
    low, high = bins.describe()["weight_range"]
    print(
        f"colour bins: {len(bins.centres)} ab bins hold the pixels of {bins.photos} training "
        f"crops; rebalancing weights {low:.2f} to {high:.2f}; the output bias starts at their "
        "log prior",
        flush=True,
    )
    return bins


def load_matching(
    model: nn.Module, state: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    """Load the tensors of ``state`` that ``model`` has with the same shape. Returns (what of
    ``state`` was left out, as ``name [its shape] -> [the model's]``: the output head; the
    model's tensors that ``state`` lacks: a bin model's bins, set from data)."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    skipped = [
        f"{k} {list(v.shape)} -> {list(own[k].shape)}" if k in own else f"{k} (not in the model)"
        for k, v in state.items()
        if k not in fits
    ]
    return skipped, [k for k in own if k not in state]


def warm_start(config: TrainConfig) -> tuple[nn.Module, nn.Module, list[dict]]:
    """Generator and discriminator of an exported specialist or a training checkpoint, and
    the data behind them (``training.lineage``); the run takes their architecture (a
    fine-tune keeps the shape it starts from). A run folder stands for its checkpoint, as it
    does for ``training.ship --specialist``."""
    source = start_file(config.init_from)
    try:
        tensors, saved = load_checkpoint(source)
        generator = build_from_checkpoint(tensors, saved, "generator", specialists.create_model)
        discriminator = build_from_checkpoint(
            tensors, saved, "discriminator", discriminators.create_model
        )
    except (CheckpointError, RuntimeError, KeyError, TypeError) as exc:
        raise UsageError(f"--init-from {config.init_from}: cannot start from it ({exc})") from exc
    g_spec, d_spec = generator.spec, discriminator.spec
    config.arch, config.disc = g_spec["name"], d_spec["name"]
    ignored = ("pretrained", *OUTPUT_ARGS)
    config.arch_args = {k: v for k, v in g_spec["kwargs"].items() if k not in ignored}
    d_args = dict(d_spec["kwargs"])
    config.spectral_norm = bool(d_args.pop("spectral_norm", config.spectral_norm))
    config.disc_args = d_args
    return generator, discriminator, lineage(saved)[0]


@dataclass
class Nets:
    """The generator, the discriminator and their optimizers: what a checkpoint holds."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    def set_lr(self, lr: float) -> None:
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr


def create_nets(
    config: TrainConfig, resume: bool, path: Path, photos: Sequence[Path] = ()
) -> tuple[Nets, int, dict]:
    """(networks, first step, what to record about how they were made): fresh (or
    warm-started) at step 0, or, with ``resume``, the checkpoint's networks, optimizer states
    and RNG state, exactly as they were saved. ``photos``: the training photos bins fit on."""
    made: dict = {}
    if resume:
        tensors, saved = load_checkpoint(path)
        kept = ("colour_bins", LEARNT_FROM)
        made = {k: v for k, v in saved.get("data", {}).items() if k in kept}
        generator = build_from_checkpoint(tensors, saved, "generator", specialists.create_model)
        discriminator = build_from_checkpoint(
            tensors, saved, "discriminator", discriminators.create_model
        )
    else:
        generator, discriminator, made = build_models(config, photos)
    stride = getattr(generator, "stride", 1)
    if config.size % stride:
        raise UsageError(f"--size {config.size} must be a multiple of {config.arch}'s {stride}")
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), config.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), config.lr, betas=betas)
    if not resume:
        return Nets(generator, discriminator, opt_g, opt_d), 0, made
    optimizer_from_tensors(opt_g, tensors, saved["optimizers"]["g"], "optimizer_g")
    optimizer_from_tensors(opt_d, tensors, saved["optimizers"]["d"], "optimizer_d")
    torch.set_rng_state(tensors["rng.torch"])
    return Nets(generator, discriminator, opt_g, opt_d), saved["step"], made


def save_run(path: Path, nets: Nets, config: TrainConfig, step: int, record: dict) -> None:
    """The checkpoint of ``step``: weights, optimizer and RNG states, settings and ``record``
    (total steps, data, metrics, hardware), everything an exact resume and an export need."""
    tensors = with_prefix(nets.generator.state_dict(), "generator")
    tensors |= with_prefix(nets.discriminator.state_dict(), "discriminator")
    g_tensors, g_meta = optimizer_to_tensors(nets.opt_g, "optimizer_g")
    d_tensors, d_meta = optimizer_to_tensors(nets.opt_d, "optimizer_d")
    tensors |= g_tensors | d_tensors | {"rng.torch": torch.get_rng_state()}
    meta = {
        "format": "routed-colorizer/checkpoint-1",
        "models": {
            "generator": model_spec(nets.generator),
            "discriminator": model_spec(nets.discriminator),
        },
        "optimizers": {"g": g_meta, "d": d_meta},
        "train": asdict(config),
        "domain": config.domain,
        "size": config.size,
        "step": step,
    }
    save_checkpoint(path, tensors, meta | record)


def hardware(device: torch.device) -> str:
    """The device a checkpoint was trained on, with the core count on a CPU."""
    return str(device) + ("" if device.type != "cpu" else f" ({os.cpu_count()} cores)")
