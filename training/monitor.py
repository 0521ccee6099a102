"""What a run leaves to watch it train: metrics.csv and its plot (every trainer), and a
specialist's validation metrics and sample grids (the seed's way of watching a GAN)."""

import csv
import io
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.files import atomic_write, atomic_write_json, atomic_write_text  # noqa: E402
from specialists.metrics import colourfulness, psnr  # noqa: E402
from training.evaluate.quality import colourize_rgb, grey_rgb  # noqa: E402

SPECIALIST_COLUMNS = (
    "step",
    "time",
    "epoch",
    "lr",
    "images_per_s",
    "loss_l1",
    "loss_cls",
    "loss_g_colour",
    "loss_g_gan",
    "loss_g_fm",
    "loss_d",
    "val_psnr",
    "val_psnr_gray",
    "val_colourfulness",
    "val_colourfulness_true",
)
ROUTER_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


@dataclass(frozen=True)
class Panel:
    """One plot of a metrics log: these columns against its x column."""

    title: str
    keys: tuple[str, ...]
    ylabel: str = ""
    log_scale: bool = False
    markers: bool = False
    empty_title: str | None = None  # the title when none of the columns has a value yet


SPECIALIST_PANELS = (
    Panel(
        "training losses",
        ("loss_l1", "loss_cls", "loss_g_colour", "loss_g_gan", "loss_g_fm", "loss_d"),
        log_scale=True,
    ),
    Panel(
        "validation PSNR",
        ("val_psnr", "val_psnr_gray"),
        ylabel="dB",
        markers=True,
        empty_title="validation PSNR: no val photos",
    ),
)
ROUTER_PANELS = (
    Panel("cross-entropy", ("train_loss", "val_loss"), markers=True),
    Panel("accuracy", ("train_acc", "val_acc"), markers=True),
)


class MetricsLog:
    """A run's metrics.csv, one row per step (or epoch: ``x``), rewritten atomically per row
    (a kill never leaves half a file); on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, columns: Sequence[str], resume_at: int, x: str = "step") -> None:
        self.path, self.columns, self.x = Path(path), tuple(columns), x
        rows = self.read() if self.path.exists() else []
        self.rows = [r for r in rows if int(r[x]) <= resume_at]
        self._write()

    def read(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: Mapping[str, float | int | str]) -> None:
        self.rows.append({k: _fmt(k, row.get(k, "")) for k in self.columns})
        self._write()

    def _write(self) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())

    def plot(self, png_path: Path, panels: Sequence[Panel]) -> None:
        """The logged columns against ``x``, one subplot per panel."""
        if not self.rows:
            return
        fig, axes = plt.subplots(1, len(panels), figsize=(11, 4))
        for ax, panel in zip(axes, panels):
            for key in panel.keys:
                points = [(int(r[self.x]), float(r[key])) for r in self.rows if r.get(key)]
                if points:
                    ax.plot(*zip(*points), marker="o" if panel.markers else None, label=key)
            ax.set_xlabel(self.x)
            ax.set_ylabel(panel.ylabel)
            if panel.log_scale:
                ax.set_yscale("log")
            if ax.lines:
                ax.legend()
            ax.set_title(panel.title if ax.lines or not panel.empty_title else panel.empty_title)
        fig.tight_layout()
        atomic_write(png_path, lambda handle: fig.savefig(handle, format="png", dpi=90))
        plt.close(fig)


def _fmt(key: str, value: float | int | str) -> str:
    if key == "time":
        return f"{value:.3f}"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


@torch.no_grad()
def validate(
    generator: nn.Module, val: Dataset, batch_size: int, workers: int, progress: bool
) -> dict[str, float]:
    """Validation PSNR and colourfulness against the grayscale baseline (a = b = 0)."""
    if len(val) == 0:
        return {}
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    # its own generator: an evaluation must not move the global RNG (dropout) of a resumable run
    loader = DataLoader(
        val, batch_size=batch_size, num_workers=workers, generator=torch.Generator()
    )
    sums: dict[str, float] = defaultdict(float)
    for rgb in tqdm(loader, desc="validating", leave=False, disable=not progress):
        rgb = rgb.to(device)
        grey, pred = grey_rgb(rgb), colourize_rgb(generator, rgb)
        sums["val_psnr"] += psnr(pred, rgb).sum().item()
        sums["val_psnr_gray"] += psnr(grey, rgb).sum().item()
        sums["val_colourfulness"] += colourfulness(pred).sum().item()
        sums["val_colourfulness_true"] += colourfulness(rgb).sum().item()
    generator.train(was_training)
    return {k: v / len(val) for k, v in sums.items()}


def write_samples(
    generator: nn.Module, samples: Mapping[str, torch.Tensor], folder: Path, step: int
) -> None:
    """``folder/<name>_<step>.png`` for each set of fixed sample photos (train, val)."""
    was_training = generator.training
    generator.eval()
    for name, rgb in samples.items():
        if len(rgb):
            grey, pred = grey_rgb(rgb), colourize_rgb(generator, rgb)
            save_sample_grid(grey, pred, rgb, folder / f"{name}_{step:07d}.png")
    generator.train(was_training)


def save_sample_grid(
    gray: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor, path: Path
) -> None:
    """One row per image: grayscale input | prediction | ground truth."""
    from torchvision.utils import save_image  # here: importing torchvision takes 2 s

    rows = torch.stack((gray.expand_as(truth), pred, truth), dim=1).flatten(0, 1)
    atomic_write(
        path, lambda handle: save_image(rows.cpu(), handle, nrow=3, padding=2, format="png")
    )


class ProgressFile:
    """``progress.json`` (step, stop, total, latest metrics), rewritten about once a second:
    what a watcher such as ``training.train_all`` needs to draw a bar."""

    EVERY_S = 1.0

    def __init__(self, path: Path, stop: int, total: int, enabled: bool = True) -> None:
        self.path, self.stop, self.total, self.enabled = Path(path), stop, total, enabled
        self.written_at = 0.0

    def write(self, step: int, metrics: Mapping[str, float], force: bool = False) -> None:
        if self.enabled and (force or time.time() - self.written_at >= self.EVERY_S):
            self.written_at = time.time()
            state = {"step": step, "stop": self.stop, "total": self.total}
            atomic_write_json(self.path, state | {"time": self.written_at, "metrics": metrics})
