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
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.cli import (
    EXIT_INTERRUPTED,
    HelpFormatter,
    UsageError,
    add_options,
    changed_settings,
    choose_device,
    from_args,
    plain,
    refuse_changes,
    run_command,
)
from common.files import atomic_write_json, remove_stale_temps
from router.net import ROUTERS
from router.router import Router
from specialists.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    strip_prefix,
    with_prefix,
)
from specialists.cli import catalogue
from training.data import has_splits
from training.monitor import ROUTER_COLUMNS, ROUTER_PANELS, MetricsLog
from training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from training.router_config import RESUME_FIELDS, RouterTrainConfig
from training.router_data import calibration_rows, check_data, trunk_outputs
from training.run_files import CHECKPOINT
from training.ship.calibrate_router import Outputs, calibrate, measure, write_reports


def parse_args(argv: list[str] | None = None) -> RouterTrainConfig:
    parser = argparse.ArgumentParser(
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
    add_options(parser, RouterTrainConfig)
    return from_args(RouterTrainConfig, parser.parse_args(argv))


def _net_kwargs(cfg: RouterTrainConfig, num_domains: int) -> dict:
    kwargs: dict = {
        "num_domains": num_domains,
        "pretrained": cfg.pretrained,
        "input_size": cfg.size,
    }
    if cfg.backbone:
        kwargs["backbone"] = cfg.backbone
    return kwargs


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


def train(cfg: RouterTrainConfig) -> dict:
    """Run (or resume) all three stages; returns the validation metrics."""
    cfg.device = str(choose_device(cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.train_blocks < 0 or cfg.views < 1 or cfg.epochs < 0:
        raise UsageError("--train-blocks and --epochs must be >= 0, --views >= 1")
    root, domains, train_set, val_set = check_data(cfg)
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
    held = calibration_rows(cfg, root, domains, train_set)
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
    start_epoch, history = _resume(out / CHECKPOINT, cfg, domains, net, optimizer)
    log = MetricsLog(out / "metrics.csv", ROUTER_COLUMNS, start_epoch, x="epoch")
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
        log.append(row)
        log.plot(out / "metrics.png", ROUTER_PANELS)
        _save(out / CHECKPOINT, cfg, domains, net, optimizer, epoch + 1, history)
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
        "training": asdict(cfg) | {"epochs_done": len(history), "history": history},
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
    changed = changed_settings(config.get("train_config", {}), cfg, RESUME_FIELDS)
    if config.get("domains") != domains:
        changed.append(f"domains {config.get('domains')} -> {domains}")
    refuse_changes(str(path), changed)
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
        f"next: cp -r {out / 'router'} WEIGHTS/router, then "
        "python -m training.ship.calibrate_judge --data DATA --weights WEIGHTS "
        "(or let python -m training.ship do every step)"
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    code = run_command(lambda: train(cfg))
    if code == EXIT_INTERRUPTED:
        print(
            f"\ninterrupted: rerun the same command to resume from {Path(cfg.out) / CHECKPOINT}",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
