"""Train the router: ``python -m training.train_router --data DIR --out RUN_DIR``.

1. The frozen trunk of an ImageNet backbone runs once over every photo (the centre view and
   ``--views - 1`` augmented views of each training photo, the centre view of each validation
   photo) and its output is cached in ``RUN_DIR/cache``.
2. The last ``--train-blocks`` blocks and the domain head train on that cache; a checkpoint
   is written after every epoch, and rerunning on the same RUN_DIR resumes from it.
3. The training photos' embeddings go into a faiss index; temperature, kNN weight,
   out-of-distribution reference and fallback threshold are fitted on the held-out part of
   train, which stage 2 never trains on (``--calibrate-on val`` fits them on validation
   instead); the metrics are measured on validation; ``RUN_DIR/router/`` is written, ready
   to copy to ``WEIGHTS/router``.
"""

import argparse
import csv
import io
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.files import atomic_write, atomic_write_json, atomic_write_text, remove_stale_temps
from router.net import ROUTERS
from router.router import Router
from specialists.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    strip_prefix,
    with_prefix,
)
from specialists.cli import HelpFormatter, catalogue, plain
from training.data import HOLDOUT, PLAIN_VAL_PERCENT, has_holdout_folder, has_splits, in_holdout
from training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from training.router_data import Labelled, domains_of, gather, trunk_outputs
from training.router_export import Outputs, calibrate, measure, write_reports

CHECKPOINT = "checkpoint.safetensors"
# Settings that must match to resume a run (the rest may change between reruns).
RESUME_KEYS = (
    "arch",
    "backbone",
    "size",
    "train_blocks",
    "views",
    "seed",
    "max_per_domain",
    "calibrate_on",
)
CALIBRATION_SPLITS = ("holdout", "val")


@dataclass
class RouterTrainConfig:
    data: str
    out: str
    arch: str = "effnet_lite0_router"
    backbone: str | None = None
    pretrained: bool = True
    size: int = 128
    train_blocks: int = 1
    views: int = 3
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr_scale: float = 0.3
    weight_decay: float = 0.02
    label_smoothing: float = 0.0
    seed: int = 0
    max_per_domain: int | None = None
    k: int = 10
    index_dim: int = 128
    ood_alpha: float = 0.01
    target_accuracy: float = 0.995
    calibrate_on: str = "holdout"
    device: str = "cpu"
    threads: int | None = None
    workers: int = 1  # image decoding runs beside the network in one worker process


class UsageError(Exception):
    """A problem with the command line or the data the user pointed at."""


HELP = {
    "size": "router input: the centre square of the photo's lightness, in pixels",
    "train_blocks": "backbone blocks trained (the rest stay frozen and are cached); 0 trains "
    "only the head",
    "views": "views per training photo: the centre square plus VIEWS - 1 random crops with "
    "flips and tone changes",
    "epochs": "passes over the cached training photos",
    "batch_size": "photos per step (and per trunk-caching batch)",
    "seed": "seed of the views, the order and the network's init",
    "k": "neighbours in the kNN vote and the out-of-distribution distance",
    "index_dim": "dimensions the kNN index's PCA keeps of each embedding",
    "workers": "image-decoding processes beside the network",
    "lr": "AdamW learning rate of the head (cosine schedule)",
    "backbone_lr_scale": "the trained backbone blocks' learning rate, as a fraction of --lr",
    "weight_decay": "AdamW weight decay",
    "label_smoothing": "cross-entropy label smoothing",
    "ood_alpha": "typicality: photos farther from their neighbours than all but this share of "
    "the calibration photos lose confidence",
    "target_accuracy": "the threshold is the lowest confidence at which the calibration "
    "photos routed alone are right this often",
}


def parse_args(argv: list[str] | None = None) -> RouterTrainConfig:
    defaults = RouterTrainConfig(data="", out="")
    p = argparse.ArgumentParser(
        prog="python -m training.train_router",
        description=plain(__doc__)
        + """
examples:
  python -m training.train_router --data ../shared/data/colorize-v1 --out runs/router
  python -m training.train_router --data photos/ --out runs/router --calibrate-on val
then: cp -r RUN_DIR/router WEIGHTS/router (python -m training.ship does every step)""",
        formatter_class=HelpFormatter,
        epilog=catalogue(ROUTERS, "router networks (--arch)"),
    )
    p.add_argument(
        "--data",
        required=True,
        help="photo folder: DIR/<domain>/, or DIR/train/<domain>/ + DIR/val/<domain>/ "
        "(at least two domains)",
    )
    p.add_argument("--out", required=True, help="run folder (rerun on it to resume)")
    p.add_argument(
        "--arch",
        default=defaults.arch,
        choices=ROUTERS.names(),
        metavar="ARCH",
        help="router network, one of those listed below",
    )
    p.add_argument("--backbone", default=None, help="timm backbone name, for --arch timm_router")
    p.add_argument(
        "--no-pretrained",
        dest="pretrained",
        action="store_false",
        help="random init instead of ImageNet weights (tests)",
    )
    for name, kind in (
        ("size", int),
        ("train_blocks", int),
        ("views", int),
        ("epochs", int),
        ("batch_size", int),
        ("lr", float),
        ("backbone_lr_scale", float),
        ("weight_decay", float),
        ("label_smoothing", float),
        ("seed", int),
        ("k", int),
        ("index_dim", int),
        ("ood_alpha", float),
        ("target_accuracy", float),
        ("workers", int),
    ):
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=getattr(defaults, name),
            help=HELP[name],
        )
    p.add_argument(
        "--max-per-domain",
        type=int,
        default=None,
        help="use at most N training photos per domain (default: all)",
    )
    p.add_argument(
        "--calibrate-on",
        choices=CALIBRATION_SPLITS,
        default=defaults.calibrate_on,
        help="fit calibration and threshold on the held-out part of train (it is not "
        "trained on) or on val (for DIR/<domain>/ folders, whose held-out part is val)",
    )
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    return RouterTrainConfig(**vars(p.parse_args(argv)))


def _net_kwargs(cfg: RouterTrainConfig, num_domains: int) -> dict:
    kwargs: dict = {
        "num_domains": num_domains,
        "pretrained": cfg.pretrained,
        "input_size": cfg.size,
    }
    if cfg.backbone:
        kwargs["backbone"] = cfg.backbone
    return kwargs


def _check_data(cfg: RouterTrainConfig) -> tuple[Path, list[str], Labelled, Labelled]:
    root = Path(cfg.data)
    if not root.is_dir():
        raise UsageError(f"{root}: no such data folder")
    domains = domains_of(root)
    if len(domains) < 2:
        raise UsageError(f"{root}: need at least two domain folders, found {domains}")
    train = gather(root, "train", domains, cfg.max_per_domain)
    if cfg.calibrate_on == HOLDOUT and has_holdout_folder(root):
        # the data's own holdout split rides along with train (same views and cache) and is
        # masked out of training by _calibration_rows
        holdout = gather(root, HOLDOUT, domains)
        train = Labelled(train.paths + holdout.paths, train.labels + holdout.labels)
    val = gather(root, "val", domains)
    for split, data in (("train", train), ("val", val)):
        counts = np.bincount(np.asarray(data.labels, dtype=np.int64), minlength=len(domains))
        empty = [d for d, c in zip(domains, counts) if c == 0]
        if empty:
            layout = (
                ""
                if has_splits(root)
                else f" (DIR/<domain>/ folders keep a fixed {PLAIN_VAL_PERCENT}% of their photos, "
                "chosen by file name, for validation: add photos, or put them in "
                "DIR/train/<domain>/ and DIR/val/<domain>/)"
            )
            raise UsageError(f"{root}: no {split} photos for domain(s) {', '.join(empty)}{layout}")
    return root, domains, train, val


def _calibration_rows(
    cfg: RouterTrainConfig, root: Path, domains: list[str], train_set: Labelled
) -> torch.Tensor:
    """Mask of the training photos kept out of training to calibrate on (none with val)."""
    if cfg.calibrate_on == "val":
        return torch.zeros(len(train_set.paths), dtype=torch.bool)
    held = torch.tensor([in_holdout(root, p) for p in train_set.paths], dtype=torch.bool)
    labels = torch.tensor(train_set.labels)
    missing = [d for i, d in enumerate(domains) if not bool(held[labels == i].any())]
    if missing or held.all():
        raise UsageError(
            f"{root}: no training photos held out for {', '.join(missing) or 'training'}; "
            "use --calibrate-on val"
        )
    return held


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _tail_outputs(
    net: nn.Module, trunk: torch.Tensor, train_blocks: int, batch: int, device: str
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, embeddings) from cached trunk outputs, in eval mode."""
    net.eval()
    logits, embeds = [], []
    with torch.inference_mode():
        for start in range(0, len(trunk), batch):
            emb = net.tail(trunk[start : start + batch].to(device).float(), train_blocks)
            logits.append(net.head(emb).float().cpu())
            embeds.append(emb.float().cpu())
    return torch.cat(logits).numpy(), torch.cat(embeds).numpy()


class History:
    """metrics.csv (one row per epoch) and its plot."""

    COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")

    def __init__(self, folder: Path, rows: list[dict]) -> None:
        self.csv, self.png, self.rows = folder / "metrics.csv", folder / "metrics.png", list(rows)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv, text.getvalue())
        self._plot()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.rows]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for key in ("train_loss", "val_loss"):
            axes[0].plot(epochs, [r[key] for r in self.rows], marker="o", label=key)
        for key in ("train_acc", "val_acc"):
            axes[1].plot(epochs, [r[key] for r in self.rows], marker="o", label=key)
        for ax, title in zip(axes, ("cross-entropy", "accuracy")):
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        atomic_write(self.png, lambda handle: fig.savefig(handle, format="png", dpi=90))
        plt.close(fig)


def train(cfg: RouterTrainConfig) -> dict:
    """Run (or resume) all three stages; returns the validation metrics."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.train_blocks < 0 or cfg.views < 1 or cfg.epochs < 0:
        raise UsageError("--train-blocks and --epochs must be >= 0, --views >= 1")
    root, domains, train_set, val_set = _check_data(cfg)
    if cfg.calibrate_on == "holdout" and not has_splits(root):
        print(
            f"{root} has no train/ and val/ splits: its held-out photos are val; calibrating on val"
        )
        cfg.calibrate_on = "val"
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "router", out / "reports"):  # a killed run's temporary files
        remove_stale_temps(folder)
    torch.manual_seed(cfg.seed)

    from router.net import create_router_net

    try:
        net = create_router_net(cfg.arch, **_net_kwargs(cfg, len(domains))).to(cfg.device)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise UsageError(f"cannot build router network {cfg.arch!r}: {exc}") from exc
    if cfg.train_blocks > net.num_blocks:
        raise UsageError(
            f"--train-blocks {cfg.train_blocks}: the backbone has {net.num_blocks} blocks"
        )
    print(
        f"router: {len(domains)} domains {domains}; "
        f"{len(train_set)} train / {len(val_set)} val photos; {cfg.arch} at {cfg.size} px, "
        f"training its last {cfg.train_blocks} block(s) + head"
    )

    # Stage 1: frozen trunk, cached.
    cache = out / "cache"
    common = {
        "folder": cache,
        "size": cfg.size,
        "train_blocks": cfg.train_blocks,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "device": cfg.device,
        "workers": cfg.workers,
    }
    train_views, ok_train = [], None
    for v in range(cfg.views):
        trunk, ok = trunk_outputs(net, train_set.paths, name="train", view_id=v, **common)
        train_views.append(trunk)
        ok_train = ok if ok_train is None else ok_train & ok
    val_trunk, ok_val = trunk_outputs(net, val_set.paths, name="val", view_id=0, **common)
    for split, data, ok in (("train", train_set, ok_train), ("val", val_set, ok_val)):
        for path in (p for p, good in zip(data.paths, ok.tolist()) if not good):
            print(f"warning: {path}: unreadable image, skipped ({split})", file=sys.stderr)
    y_train = torch.tensor(train_set.labels)
    y_val = torch.tensor(val_set.labels)
    held = _calibration_rows(cfg, root, domains, train_set)
    usable = torch.nonzero(ok_train & ~held).flatten()

    # Stage 2: train the tail and head, resumably.
    tail_params = net.tail_parameters(cfg.train_blocks)
    optimizer = torch.optim.AdamW(
        [
            {"params": list(net.head.parameters()), "lr": cfg.lr},
            {"params": tail_params, "lr": cfg.lr * cfg.backbone_lr_scale},
        ],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    start_epoch, rows = _resume(out / CHECKPOINT, cfg, domains, net, optimizer)
    history = History(out, rows)
    steps_per_epoch = math.ceil(len(usable) / cfg.batch_size)
    total, warmup = steps_per_epoch * cfg.epochs, min(steps_per_epoch, 50)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for epoch in range(start_epoch, cfg.epochs):
        began = time.time()
        net.eval()
        net.head.train()
        for module in (
            net.backbone.blocks[net.num_blocks - cfg.train_blocks :] if cfg.train_blocks else []
        ):
            module.train()
        if cfg.train_blocks:
            net.backbone.bn2.train()
        rng = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        order = usable[torch.randperm(len(usable), generator=rng)]
        chosen_view = torch.randint(cfg.views, (len(order),), generator=rng)
        seen, loss_sum, hits = 0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for step in bar:
            global_step = epoch * steps_per_epoch + step
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * _lr_factor(global_step, total, warmup)
            rows_ = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            views_ = chosen_view[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = torch.stack([train_views[v][i] for v, i in zip(views_.tolist(), rows_.tolist())])
            y = y_train[rows_].to(cfg.device)
            logits = net.head(net.tail(x.to(cfg.device).float(), cfg.train_blocks))
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            hits += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{hits / seen:.4f}")
        bar.close()
        val_logits, _ = _tail_outputs(net, val_trunk[ok_val], cfg.train_blocks, 256, cfg.device)
        val_y = y_val[ok_val]
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(val_logits), val_y))
        val_acc = float((torch.from_numpy(val_logits).argmax(1) == val_y).float().mean())
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / seen,
            "train_acc": hits / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": round(time.time() - began, 1),
        }
        history.append(row)
        _save(out / CHECKPOINT, cfg, domains, net, optimizer, epoch + 1, history.rows)
        print(
            f"epoch {epoch + 1}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}; "
            f"val loss {val_loss:.4f} acc {val_acc:.4f}"
        )

    # Stage 3: index, calibration, threshold, router folder.
    rel = [str(p.relative_to(root)) for p in train_set.paths]

    def outputs(trunk: torch.Tensor, labels: torch.Tensor, paths: list[str]) -> Outputs:
        logits, emb = _tail_outputs(net, trunk, cfg.train_blocks, 256, cfg.device)
        return Outputs(logits, emb, labels.numpy(), paths)

    train_out = outputs(train_views[0][usable], y_train[usable], [rel[i] for i in usable.tolist()])
    val_paths = [
        str(p.relative_to(root)) for p, good in zip(val_set.paths, ok_val.tolist()) if good
    ]
    val_out = outputs(val_trunk[ok_val], y_val[ok_val], val_paths)
    if cfg.calibrate_on == "val":
        fit_out = val_out
    else:
        rows = torch.nonzero(ok_train & held).flatten()
        fit_out = outputs(train_views[0][rows], y_train[rows], [rel[i] for i in rows.tolist()])
    print(
        f"building the kNN index; calibrating on {len(fit_out.labels)} {cfg.calibrate_on} "
        f"photos; measuring on {len(val_out.labels)} val photos"
    )
    fitted = calibrate(
        train_out,
        fit_out,
        domains,
        str(root),
        index_dim=cfg.index_dim,
        k=cfg.k,
        ood_alpha=cfg.ood_alpha,
        target=cfg.target_accuracy,
    )
    metrics = measure(val_out, train_out, fitted, domains, cfg.target_accuracy)
    index, calibration, threshold = fitted.index, fitted.calibration, fitted.threshold
    config = {
        "data": {
            "root": str(root),
            "train_photos": len(train_out.labels),
            "calibration_photos": len(fit_out.labels),
            "calibrated_on": cfg.calibrate_on,
            "val_photos": len(val_out.labels),
            "note": f"trained on {root.name} photos: research-only terms apply (see its README)",
        },
        "training": asdict(cfg) | {"epochs_done": len(history.rows), "history": history.rows},
        "metrics": {k: v for k, v in metrics.items() if k != "reliability"},
    }
    router = Router(net.cpu(), index, calibration, domains, threshold, config)
    router.save(out / "router")
    reports = out / "reports"
    write_reports(metrics, domains, reports)
    atomic_write_json(reports / "metrics.json", metrics)
    _summary(metrics, domains, out)
    return metrics


def _save(
    path: Path,
    cfg: RouterTrainConfig,
    domains: list[str],
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    rows: list[dict],
) -> None:
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer, "optimizer")
    config = {
        "models": {"router": net.spec},
        "domains": domains,
        "epoch": epoch,
        "history": rows,
        "train_config": asdict(cfg),
        "optimizer": opt_meta,
    }
    save_checkpoint(path, with_prefix(net.state_dict(), "router") | opt_tensors, config)


def _resume(
    path: Path,
    cfg: RouterTrainConfig,
    domains: list[str],
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[int, list[dict]]:
    """(first epoch to run, history so far), loading the checkpoint when there is one."""
    if not path.exists():
        return 0, []
    try:
        tensors, config = load_checkpoint(path)
    except CheckpointError as exc:
        raise UsageError(f"{exc}; delete it or choose another --out") from exc
    before = config.get("train_config", {})
    changed = [k for k in RESUME_KEYS if before.get(k) != getattr(cfg, k)]
    if config.get("domains") != domains:
        changed.append(f"domains {config.get('domains')} -> {domains}")
    if changed:
        raise UsageError(
            f"{path}: this run was started with different settings ({', '.join(changed)}); "
            "use another --out"
        )
    net.load_state_dict(strip_prefix(tensors, "router"))
    optimizer_from_tensors(optimizer, tensors, config["optimizer"], "optimizer")
    epoch = int(config["epoch"])
    print(f"resuming from {path} (epoch {epoch} of {cfg.epochs} done)")
    return epoch, list(config.get("history", []))


def _summary(metrics: dict, domains: list[str], out: Path) -> None:
    print(
        f"\nvalidation accuracy {metrics['accuracy']:.4f} "
        f"(classifier alone {metrics['accuracy_classifier_only']:.4f}, "
        f"kNN alone {metrics['accuracy_knn_only']:.4f})"
    )
    for d in domains:
        s = {k: "n/a" if v is None else f"{v:.4f}" for k, v in metrics["per_domain"][d].items()}
        # None: nothing was routed to the domain, or nothing belongs to it
        print(f"  {d:>12}: precision {s['precision']} recall {s['recall']} F1 {s['f1']}")
    print(
        f"ECE on val before calibration {metrics['ece_before']:.4f}, "
        f"after {metrics['ece_after']:.4f}"
    )
    print(
        f"threshold {metrics['threshold']:.4f}: "
        f"{100 * metrics['fallback_fraction']:.1f}% of val photos fall back, "
        f"the rest are routed with accuracy {metrics['routed_accuracy']:.4f}"
    )
    print(f"router folder: {out / 'router'}")
    print(
        f"next: cp -r {out / 'router'} WEIGHTS/router, then python -m training.calibrate_judge "
        "--data DATA --weights WEIGHTS (or let python -m training.ship do every step)"
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        train(cfg)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a full disk
        print(f"error: {exc.filename or cfg.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: rerun the same command to resume from {Path(cfg.out) / CHECKPOINT}",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
