"""A router training run's settings: each declared once, with the help its option shows
(``python -m training.train_router`` builds its command line from them)."""

from dataclasses import dataclass

from common.cli import option
from router.net import ROUTERS

CALIBRATION_SPLITS = ("holdout", "val")


@dataclass
class RouterTrainConfig:
    data: str = option(
        help="photo folder: DIR/<domain>/, or DIR/train/<domain>/ + DIR/val/<domain>/ "
        "(at least two domains)"
    )
    out: str = option(help="run folder (rerun on it to resume)")
    arch: str = option(
        "effnet_lite0_router",
        choices=ROUTERS.names,
        metavar="ARCH",
        help="router network, one of those listed below",
    )
    backbone: str | None = option(None, help="timm backbone name, for --arch timm_router")
    pretrained: bool = option(True, help="random init instead of ImageNet weights (tests)")
    size: int = option(
        128, help="router input: the centre square of the photo's lightness, in pixels"
    )
    train_blocks: int = option(
        1,
        help="backbone blocks trained (the rest stay frozen and are cached); 0 trains only "
        "the head",
    )
    views: int = option(
        3,
        help="views per training photo: the centre square plus VIEWS - 1 random crops with "
        "flips and tone changes",
    )
    epochs: int = option(6, help="passes over the cached training photos")
    batch_size: int = option(64, help="photos per step (and per trunk-caching batch)")
    lr: float = option(1e-3, help="AdamW learning rate of the head (cosine schedule)")
    backbone_lr_scale: float = option(
        0.3, help="the trained backbone blocks' learning rate, as a fraction of --lr"
    )
    weight_decay: float = option(0.02, help="AdamW weight decay")
    label_smoothing: float = option(0.0, help="cross-entropy label smoothing")
    seed: int = option(0, help="seed of the views, the order and the network's init")
    max_per_domain: int | None = option(
        None, help="use at most N training photos per domain (default: all)"
    )
    k: int = option(10, help="neighbours in the kNN vote and the out-of-distribution distance")
    index_dim: int = option(128, help="dimensions the kNN index's PCA keeps of each embedding")
    ood_alpha: float = option(
        0.01,
        help="typicality: photos farther from their neighbours than all but this share of "
        "the calibration photos lose confidence",
    )
    target_accuracy: float = option(
        0.995,
        help="the threshold is the lowest confidence at which the calibration photos routed "
        "alone are right this often",
    )
    calibrate_on: str = option(
        "holdout",
        choices=CALIBRATION_SPLITS,
        help="fit calibration and threshold on the held-out part of train (it is not "
        "trained on) or on val (for DIR/<domain>/ folders, whose held-out part is val)",
    )
    device: str = option("auto", help="cpu, cuda, cuda:N or auto (cuda when there is a GPU)")
    threads: int | None = option(None, help="CPU threads for torch (default: all cores)")
    workers: int = option(1, help="image-decoding processes beside the network")


# What a resumed run must share with the run it continues: the network and the data it sees
# (the rest, such as --epochs or --lr, may change between reruns).
RESUME_FIELDS = (
    "arch",
    "backbone",
    "size",
    "train_blocks",
    "views",
    "seed",
    "max_per_domain",
    "calibrate_on",
)
