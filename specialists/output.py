"""What a generator predicts, and the one conversion of its output to normalised ab.

Every generator maps normalised L (B, 1, H, W) to a tanh output in [-1, 1]. Most predict
ab/110 (``output_space = "ab"``, the default when a model declares nothing). The write-up's
Pix2Pix-in-RGB baseline predicts sRGB instead (``output_space = "rgb"``: 3 channels, tanh
mapped to [0, 1]). Losses, discriminators and serving all want normalised ab, so they call
:func:`to_ab` and never ask which architecture made the output.
"""

import torch
from torch import nn

from common.lab import normalize_ab, rgb_to_lab

OUTPUT_CHANNELS = {"ab": 2, "rgb": 3}


def output_space(model: nn.Module) -> str:
    """``"ab"`` or ``"rgb"``; looks through a DistributedDataParallel wrapper."""
    model = getattr(model, "module", model)
    space = getattr(model, "output_space", "ab")
    if space not in OUTPUT_CHANNELS:
        raise ValueError(f"unknown output space {space!r}: use one of {list(OUTPUT_CHANNELS)}")
    return space


def to_ab(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """``model``'s output as normalised ab (B, 2, H, W), differentiable.

    ab models: the output itself. RGB models: tanh [-1, 1] -> sRGB [0, 1] -> Lab, keeping a
    and b. The L of that Lab is the model's own guess at the lightness; it is discarded, and
    callers join the ab with the photo's original L, so an RGB model cannot blur or shift
    the lightness of what is served, only its colours.
    """
    if output_space(model) == "ab":
        return output
    rgb = (output + 1.0) / 2.0
    return normalize_ab(rgb_to_lab(rgb)[..., 1:, :, :])


def chroma_gain(model: nn.Module) -> float:
    """The saturation gain a served model applies (1.0 unless ``training.ship.fit_chroma``
    set one)."""
    return float(getattr(getattr(model, "module", model), "chroma_gain", 1.0))


def predict_ab(model: nn.Module, l_norm: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on normalised L and return normalised ab, whatever it predicts, scaled by
    the model's chroma gain (an L1-trained model is paler than life; see
    training.ship.fit_chroma)."""
    ab = to_ab(model, model(l_norm))
    gain = chroma_gain(model)
    return ab if gain == 1.0 else (ab * gain).clamp(-1.0, 1.0)
