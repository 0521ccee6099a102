"""What a generator predicts, and the one conversion of its output to normalised ab.

Every generator maps normalised L (B, 1, H, W) to its output. Most predict ab/110 through a
tanh (``output_space = "ab"``, the default when a model declares nothing). The write-up's
Pix2Pix-in-RGB baseline predicts sRGB instead (``output_space = "rgb"``: 3 channels, tanh
mapped to [0, 1]). Zhang, Isola and Efros's classifier (ECCV 2016; ``output_space = "bins"``)
predicts one logit per quantised ab bin, no tanh, and carries its bins (:class:`AbBins`).
Losses, discriminators and serving all want normalised ab, so they call :func:`to_ab` and
never ask which architecture made the output.
"""

import torch
import torch.nn.functional as F
from torch import nn

from common.lab import normalize_ab, rgb_to_lab

OUTPUT_CHANNELS = {"ab": 2, "rgb": 3}  # "bins": one channel per bin, the model's num_bins
OUTPUT_SPACES = (*OUTPUT_CHANNELS, "bins")
TEMPERATURE = 0.38  # Zhang et al.'s annealed-mean temperature


class AbBins(nn.Module):
    """Quantised ab: the bin centres (Q, 2) in Lab ab units, each bin's rebalancing weight (Q,)
    and the decoding temperature.

    Centres and weights are buffers filled from training photos (``training.colour_bins``):
    a checkpoint carries them with the weights, so an exported specialist decodes by itself.
    """

    def __init__(self, num_bins: int, temperature: float = TEMPERATURE) -> None:
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {num_bins}")
        if not temperature > 0:
            raise ValueError(f"the decoding temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.register_buffer("centres", torch.zeros(num_bins, 2))
        self.register_buffer("weights", torch.ones(num_bins))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """The annealed mean (Zhang et al., sec. 2.3): softmax(logits / T) over the bins, then
        the expected centre, as normalised ab (B, 2, H, W); differentiable. T = 1 is the mean
        (brown, desaturated), T -> 0 the mode (vivid, patchy); 0.38 sits between."""
        p = torch.softmax(logits / self.temperature, dim=1)
        # the expectation as a 1x1 convolution: faster than an einsum on a CPU
        kernel = self.centres.to(p.dtype).t()[:, :, None, None]
        return normalize_ab(nn.functional.conv2d(p, kernel))


def attach_output(
    model: nn.Module, output_space: str = "ab", num_bins: int = 0, temperature: float = TEMPERATURE
) -> int:
    """Declare what ``model`` predicts (``num_bins > 0``: bins, with their :class:`AbBins`);
    returns the channel count its last layer needs."""
    if num_bins:
        model.output_space = "bins"
        model.bins = AbBins(num_bins, temperature)
        return num_bins
    model.output_space = output_space
    return OUTPUT_CHANNELS[output_space]


def output_space(model: nn.Module) -> str:
    """``"ab"``, ``"rgb"`` or ``"bins"``; looks through a DistributedDataParallel wrapper."""
    model = getattr(model, "module", model)
    space = getattr(model, "output_space", "ab")
    if space not in OUTPUT_SPACES:
        raise ValueError(f"unknown output space {space!r}: use one of {list(OUTPUT_SPACES)}")
    return space


def to_ab(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """``model``'s output as normalised ab (B, 2, H, W), differentiable.

    ab models: the output itself. Bin models: the annealed mean of their logits. RGB models:
    tanh [-1, 1] -> sRGB [0, 1] -> Lab, keeping a and b. The L of that Lab is the model's own
    guess at the lightness; it is discarded, and callers join the ab with the photo's
    original L, so an RGB model cannot blur or shift the lightness of what is served, only
    its colours.
    """
    space = output_space(model)
    if space == "ab":
        return output
    if space == "bins":
        return getattr(model, "module", model).bins.decode(output)
    rgb = (output + 1.0) / 2.0
    return normalize_ab(rgb_to_lab(rgb)[..., 1:, :, :])


def chroma_gain(model: nn.Module) -> float:
    """The saturation gain a served model applies (1.0 unless ``training.ship.fit_chroma``
    set one)."""
    return float(getattr(getattr(model, "module", model), "chroma_gain", 1.0))


def predict_ab(model: nn.Module, l_norm: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on normalised L and return normalised ab, whatever it predicts, at the
    input's size (a fast-mode model's half-size ab stretched back bilinearly) and scaled by
    the model's chroma gain (an L1-trained model is paler than life; see
    training.ship.fit_chroma)."""
    ab = stretched_back(to_ab(model, model(l_norm)), l_norm.shape[-2:])
    gain = chroma_gain(model)
    return ab if gain == 1.0 else (ab * gain).clamp(-1.0, 1.0)


def stretched_back(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ab (B, C, h, w) at ``size`` (H, W): a fast-mode model's half-size colour stretched back
    bilinearly; ab already at that size as it is."""
    if ab.shape[-2:] == size:
        return ab
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)
