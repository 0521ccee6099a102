"""Multi-scale PatchGAN (Wang et al. 2018, pix2pixHD): one PatchGAN per image scale.

A 70x70 PatchGAN at 128 px judges texture and local colour, never the photo as a whole:
two patches can each look real while the sky is blue on the left and green on the right.
The same discriminator run on 2x and 4x average-pooled copies sees the photo with a
receptive field two and four times wider, so the coarse scales judge global structure
while the full-size one keeps judging detail. Each scale has its own weights.
"""

import torch
from torch import nn

from .patchgan import PatchDiscriminator


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` conditional PatchGANs; forward returns their patch logits, finest first."""

    def __init__(
        self,
        num_scales: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        spectral_norm: bool = False,
        attention: bool = False,
    ) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError("num_scales must be at least 1")
        self.scales = nn.ModuleList(
            PatchDiscriminator(
                ndf=ndf, n_layers=n_layers, spectral_norm=spectral_norm, attention=attention
            )
            for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        # n_layers stride-2 convs, then two 4x4 stride-1 convs that each take a pixel off
        self.min_side = 3 * 2**n_layers

    def pyramid(
        self, l_norm: torch.Tensor, ab_norm: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(L, ab) at full size, then halved once per further scale."""
        levels = []
        for index in range(len(self.scales)):
            if index:
                l_norm, ab_norm = self.downsample(l_norm), self.downsample(ab_norm)
            if min(l_norm.shape[-2:]) < self.min_side:
                raise ValueError(
                    f"multi-scale PatchGAN: scale {index} sees {tuple(l_norm.shape[-2:])} px, "
                    f"below the {self.min_side} px its PatchGAN needs; use fewer scales "
                    "(num_scales) or larger images"
                )
            levels.append((l_norm, ab_norm))
        return levels

    def forward(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> list[torch.Tensor]:
        """Patch logits per scale for normalised L (B,1,H,W) and ab (B,2,H,W)."""
        levels = self.pyramid(l_norm, ab_norm)
        return [d(light, ab) for d, (light, ab) in zip(self.scales, levels)]

    def features(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per scale, every block's output with the patch logits last (feature matching)."""
        levels = self.pyramid(l_norm, ab_norm)
        return [d.features(light, ab)[0] for d, (light, ab) in zip(self.scales, levels)]
