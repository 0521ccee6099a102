"""Colour-quality metrics on RGB batches in [0, 1], shape (B, 3, H, W): training and serving.

No pretrained perceptual backbone is available offline, so colour is judged by PSNR, SSIM
and colourfulness (Hasler & Suesstrunk 2003) and its gap to the ground truth's.
"""

import numpy as np
import torch
from skimage.metrics import structural_similarity


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (peak 1.0)."""
    mse = ((pred - target) ** 2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


def colourfulness(rgb: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Per-image Hasler-Suesstrunk colourfulness on the 0..255 scale (0 for grey).

    ``eps`` > 0 under the square roots keeps the gradient finite on a grey image (training).
    """
    r, g, b = (rgb * 255.0).unbind(dim=1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False) + eps)
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2 + eps)
    return std + 0.3 * mean


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM over RGB (scikit-image, channel axis last)."""
    values = []
    for p, t in zip(pred.detach().cpu().numpy(), target.detach().cpu().numpy()):
        values.append(
            structural_similarity(
                np.moveaxis(p, 0, -1), np.moveaxis(t, 0, -1), channel_axis=-1, data_range=1.0
            )
        )
    return torch.tensor(values)
