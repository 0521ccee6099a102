"""The conditional N-layer PatchGAN (70x70 receptive field at 3 layers).

It sees L and ab together (3 channels), so it judges whether these colours fit this
photo, and outputs one realism logit per overlapping patch. ``attention`` adds SAGAN
self-attention after the second downsampling block, so each patch's verdict can take the
rest of the photo into account.
"""

import torch
from torch import nn

from specialists.attention import SelfAttention2d
from specialists.init import init_normal_


def _conv(
    in_channels: int, out_channels: int, stride: int, spectral: bool, bias: bool
) -> nn.Module:
    conv = nn.Conv2d(in_channels, out_channels, 4, stride=stride, padding=1, bias=bias)
    return nn.utils.parametrizations.spectral_norm(conv) if spectral else conv


class PatchDiscriminator(nn.Module):
    """pix2pix NLayerDiscriminator; ``spectral_norm`` swaps batch norm for spectral norm."""

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        spectral_norm: bool = False,
        attention: bool = False,
    ) -> None:
        super().__init__()
        use_bn = not spectral_norm
        layers: list[nn.Module] = [
            _conv(in_channels, ndf, 2, spectral_norm, True),
            nn.LeakyReLU(0.2, True),
        ]
        channels = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers.append(_conv(channels, out, stride, spectral_norm, not use_bn))
            if use_bn:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, True))
            if attention and i == min(2, n_layers):
                layers.append(SelfAttention2d(out, spectral_norm=spectral_norm))
            channels = out
        layers.append(_conv(channels, 1, 1, spectral_norm, True))
        self.model = nn.Sequential(*layers)
        init_normal_(self)

    def forward(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        """Patch logits for normalised L (B,1,H,W) and ab (B,2,H,W)."""
        return self.model(torch.cat((l_norm, ab_norm), dim=1))

    def features(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every block's output, the patch logits last, as one scale (for feature matching)."""
        x = torch.cat((l_norm, ab_norm), dim=1)
        outputs = []
        for index, layer in enumerate(self.model):
            if index and isinstance(layer, nn.Conv2d):  # a block ends where a conv begins
                outputs.append(x)
            x = layer(x)
        return [[*outputs, x]]
