"""What a run leaves to watch a GAN train: metrics.csv, a loss plot and sample grids."""

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from common.files import atomic_write, atomic_write_text  # noqa: E402

COLUMNS = [
    "step",
    "time",
    "epoch",
    "lr",
    "images_per_s",
    "loss_l1",
    "loss_g_gan",
    "loss_g_fm",
    "loss_d",
    "val_psnr",
    "val_psnr_gray",
    "val_colourfulness",
    "val_colourfulness_true",
]


class MetricsLog:
    """CSV of training metrics, rewritten atomically per row (a kill never leaves half a
    file); on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = Path(path)
        rows = self.read() if self.path.exists() else []
        self.rows = [r for r in rows if int(r["step"]) <= resume_step]
        self._write()

    def read(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: Mapping[str, float | int | str]) -> None:
        self.rows.append({k: _fmt(k, row.get(k, "")) for k in COLUMNS})
        self._write()

    def _write(self) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())


def _fmt(key: str, value: float | int | str) -> str:
    if key == "time":
        return f"{value:.3f}"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def plot_losses(csv_path: Path, png_path: Path) -> None:
    """Loss curves (and validation PSNR when measured) against the step."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss_l1", "loss_g_gan", "loss_g_fm", "loss_d"):
        points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if points:
            axes[0].plot(*zip(*points), label=key)
    axes[0].set_xlabel("step")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("training losses")
    for key in ("val_psnr", "val_psnr_gray"):
        points = [(int(r["step"]), float(r[key])) for r in rows if r[key]]
        if points:
            axes[1].plot(*zip(*points), marker="o", label=key)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("dB")
    if axes[1].lines:
        axes[1].legend()
    axes[1].set_title("validation PSNR" if axes[1].lines else "validation PSNR: no val photos")
    fig.tight_layout()
    atomic_write(png_path, lambda handle: fig.savefig(handle, format="png", dpi=90))
    plt.close(fig)


def save_sample_grid(
    gray: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor, path: Path
) -> None:
    """One row per image: grayscale input | prediction | ground truth."""
    rows = torch.stack((gray.expand_as(truth), pred, truth), dim=1).flatten(0, 1)
    atomic_write(
        path, lambda handle: save_image(rows.cpu(), handle, nrow=3, padding=2, format="png")
    )
