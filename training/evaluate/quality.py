"""Measure a trained generator on validation photos: colour quality, speed and size.

Small functions that the reports and the training monitor reuse (``training.compare``,
``training.evaluate``, ``training.monitor``):
every generator is run through ``specialists.output``, so ab and RGB generators are
measured the same way, on the photo's own L.
"""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import nn

from common.files import atomic_write
from common.lab import join_lab, split_lab
from specialists.metrics import colourfulness, psnr, ssim
from specialists.output import predict_ab


def count_parameters(model: nn.Module) -> dict[str, int]:
    """All parameters, and those training updates (a frozen classifier is not trainable)."""
    params = list(model.parameters())
    return {
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
    }


@torch.no_grad()
def colourize_rgb(generator: nn.Module, rgb: torch.Tensor) -> torch.Tensor:
    """The generator's colouring of true-colour ``rgb`` (B, 3, H, W): its ab on their L."""
    l_norm, _ = split_lab(rgb)
    return join_lab(l_norm, predict_ab(generator, l_norm))


@torch.no_grad()
def grey_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """What the black-and-white photo looks like (a = b = 0): the baseline to beat."""
    l_norm, _ = split_lab(rgb)
    return join_lab(l_norm, torch.zeros_like(l_norm).expand(-1, 2, -1, -1))


def image_metrics(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM and colourfulness (B,) of ``pred`` and ``truth`` (RGB in [0, 1]).

    Per image, so a report can average them over any subset (a domain, the photos a router
    was unsure of) without colouring anything twice.
    """
    return {
        "psnr": psnr(pred, truth),
        "ssim": ssim(pred, truth),
        "colourfulness": colourfulness(pred),
        "colourfulness_true": colourfulness(truth),
    }


def colour_metrics(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Mean PSNR, SSIM and colourfulness of ``pred`` against ``truth`` (RGB in [0, 1]).

    ``colourfulness_gap`` is signed, predicted minus true: negative means washed out (the
    brown, grey-ish average an uncertain model falls back on), positive means garish.
    """
    means = {name: values.mean().item() for name, values in image_metrics(pred, truth).items()}
    means["colourfulness_gap"] = means["colourfulness"] - means["colourfulness_true"]
    return means


@torch.no_grad()
def seconds_per_image(generator: nn.Module, rgb: torch.Tensor, repeats: int = 3) -> float:
    """Inference time per photo at batch size 1 (L in, ab out), after one warm-up run.

    The best of ``repeats`` passes over the photos: other work on the machine only ever
    adds time, so the fastest pass is the closest to the model's own cost.
    """
    l_norm, _ = split_lab(rgb)
    predict_ab(generator, l_norm[:1])
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for index in range(len(l_norm)):
            predict_ab(generator, l_norm[index : index + 1])
        passes.append((time.perf_counter() - start) / len(l_norm))
    return min(passes)


@torch.no_grad()
def evaluate_generator(
    generator: nn.Module, photos: torch.Tensor, batch_size: int = 16, timing_images: int = 16
) -> dict[str, float]:
    """Quality metrics over ``photos`` (B, 3, H, W) and seconds per image on the first few."""
    was_training = generator.training
    generator.eval()
    pred = torch.cat([colourize_rgb(generator, b) for b in photos.split(batch_size)])
    result = colour_metrics(pred, photos)
    result["psnr_gray"] = psnr(grey_rgb(photos), photos).mean().item()
    result["seconds_per_image"] = seconds_per_image(generator, photos[:timing_images])
    result["images"] = len(photos)
    generator.train(was_training)
    return result


def save_comparison_grid(columns: Mapping[str, torch.Tensor], path: Path) -> None:
    """One row per photo, one labelled column per entry of ``columns`` (RGB batches)."""
    from torchvision.utils import make_grid  # here: importing torchvision takes 2 s

    names = list(columns)
    images = torch.stack([columns[n].cpu() for n in names], dim=1).flatten(0, 1)
    grid = make_grid(images.clamp(0, 1), nrow=len(names), padding=2, pad_value=1.0)
    body = Image.fromarray((grid.permute(1, 2, 0) * 255).round().byte().numpy())
    cell = body.width / len(names)
    header = 14
    canvas = Image.new("RGB", (body.width, body.height + header), "white")
    canvas.paste(body, (0, header))
    draw = ImageDraw.Draw(canvas)
    width = max(1, int(cell / 6))  # about 6 px per character of the default font
    for index, name in enumerate(names):
        draw.text((index * cell + 3, 1), name[:width], fill="black")
    path = Path(path)
    fmt = Image.registered_extensions()[path.suffix.lower()]
    atomic_write(path, lambda handle: canvas.save(handle, format=fmt))


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Mapping[str, str]) -> str:
    """A GitHub table of ``rows``; ``columns`` maps row keys to headers. Floats to 3 figures."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key, "")) for key in columns) + " |")
    return "\n".join(lines) + "\n"
