"""A specialist training run's settings: each declared once, with the help its option shows.

``python -m training.train_specialist`` and ``python -m training.compare`` build their
command lines from these fields (``common.cli.add_options``).
"""

from dataclasses import dataclass

import discriminators
import specialists
from common.cli import option
from common.splits import HOLDOUT
from specialists.output import TEMPERATURE
from training.colour_bins import PRIOR_PHOTOS


@dataclass
class TrainConfig:
    data: str = option(help="photo folder: DIR/<domain>/, DIR/train/<domain>/, or plain")
    out: str = option(help="run folder (a rerun on it resumes from its checkpoint)")
    domain: str | None = option(
        None,
        help="the domain to train: its folder's name, or the name to give a plain folder's "
        "photos (default: every photo under --data, named after the exported file)",
    )
    size: int = option(128, help="training crop size in pixels")
    batch_size: int = option(16, help="photos per optimizer step")
    steps: int | None = option(
        None, help="total optimizer steps (overrides --epochs; default: from it)"
    )
    epochs: float = option(10.0, help="passes over the training photos")
    arch: str = option(
        "unet_effnet_lite0",
        choices=specialists.list_models,
        metavar="ARCH",
        help="generator architecture, one of those listed below",
    )
    arch_args: dict = option(
        {},
        flag="--arch-arg",
        help="generator setting, e.g. ngf=32 (base width) or num_downs=6 (halvings); "
        "repeatable; values are JSON",
    )
    pretrained: bool = option(True, help="random-init encoder instead of ImageNet weights")
    init_from: str | None = option(
        None,
        metavar="SPECIALIST",
        help="fine-tune: start from this exported specialist, checkpoint or run folder (its "
        "architecture, generator and discriminator weights; fresh optimizer, step 0)",
    )
    disc: str = option(
        "patchgan",
        choices=discriminators.list_models,
        metavar="DISC",
        help="discriminator architecture, one of those listed below",
    )
    disc_args: dict = option(
        {},
        flag="--disc-arg",
        help="discriminator setting, e.g. ndf=32 (base width) or n_layers=4 (depth); "
        "repeatable; values are JSON",
    )
    spectral_norm: bool = option(
        False, help="spectral normalisation in the discriminator (steadier GAN training)"
    )
    lr: float = option(2e-4, help="Adam learning rate")
    beta1: float = option(0.5, help="Adam's first-moment decay")
    beta2: float = option(0.999, help="Adam's second-moment decay")
    lr_decay_from: float = option(
        0.5, help="fraction of the run after which the learning rate decays linearly to 0"
    )
    output_space: str = option(
        "ab",
        choices=("ab", "bins"),
        help="what the generator predicts: ab (L1 loss) or bins, Zhang et al.'s classes over "
        "ab quantised by 10, fitted on the training photos (rebalanced cross-entropy instead "
        "of L1, annealed-mean decoding); with --init-from, every weight but the head is kept",
    )
    bins_temperature: float = option(
        TEMPERATURE, help="bins: the annealed mean's softmax temperature (1: mean, ->0: mode)"
    )
    bins_head: str = option(
        "prior",
        choices=("prior", "ab"),
        help="bins, with --init-from an ab specialist: start the new head at the prior "
        "(bias = log prior: a grey first colouring) or from the start's ab head (a Gaussian "
        "around the colours it predicted: the run starts at its colours)",
    )
    bins_photos: int = option(
        PRIOR_PHOTOS, help="bins: training photos whose 64 px crops give the bins and the prior"
    )
    l1_weight: float = option(100.0, help="weight of the L1 distance to the true colours")
    colourfulness_weight: float = option(
        0.0,
        help="weight of relu(colourfulness(truth) - colourfulness(colouring)) per photo "
        "(Hasler-Suesstrunk, 0..255 scale; 0: off)",
    )
    gan_weight: float = option(1.0, help="weight of the adversarial loss")
    feature_matching: float = option(
        0.0,
        metavar="WEIGHT",
        help="pix2pixHD feature-matching L1 on the discriminator's activations (0: off)",
    )
    gan_mode: str = option(
        "vanilla",
        choices=("vanilla", "lsgan"),
        help="adversarial loss: vanilla (cross-entropy, pix2pix) or lsgan (least squares)",
    )
    warmup_steps: int = option(
        0, help="steps without the adversarial loss (L1 or bins alone) before it starts"
    )
    freeze_encoder_steps: int = option(
        0, help="keep a pretrained encoder frozen for this many steps"
    )
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto (cuda when there is a GPU)")
    seed: int = option(0, help="seed of the crops, order and init")
    workers: int = option(0, help="data loader processes")
    threads: int = option(0, help="torch CPU threads (0: all cores)")
    log_every: int = option(50, help="steps between metrics.csv rows")
    eval_every: int = option(500, help="steps between validations and sample grids")
    checkpoint_every: int = option(200, help="steps between checkpoints")
    num_val: int = option(200, help="validation photos per evaluation")
    val_split: str = option(
        "val",
        choices=("val", HOLDOUT),
        help="the split the run validates on (holdout where val is kept for reporting only)",
    )
    num_samples: int = option(8, help="photos in each sample grid (train and val)")
    stop_at: int | None = option(None, help="stop (with a checkpoint) at this step; resume later")
    progress: bool = option(True, help="no progress bar")


# What a resumed run must share with the run it continues: the model and the data it sees
# (the rest, such as --steps or --lr, may change between reruns).
ARCHITECTURE = ("arch", "arch_args", "disc", "disc_args", "spectral_norm")
RESUME_FIELDS = (
    *ARCHITECTURE,
    *("output_space", "bins_temperature", "bins_photos", "bins_head"),
    *("init_from", "size", "domain", "seed", "batch_size"),
)


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Constant, then linear decay to zero over the last part of the run (pix2pix)."""
    start = int(total * config.lr_decay_from)
    if step < start or total <= start:
        return config.lr
    return config.lr * max(0.0, 1.0 - (step - start) / (total - start))
