"""The pix2pix U-Net generator (Isola et al.), built recursively from the middle out.

L (1 channel, normalised) in, ab (2 channels, tanh) out, or sRGB (3 channels) for the
write-up's RGB baseline (``output_space="rgb"``), or one logit per ab bin (``num_bins``, no
tanh; see ``specialists.output``). ``num_downs``
halvings: the input side must be a multiple of ``2 ** num_downs`` (``stride``).
"""

import torch
from torch import nn

from .attention import SelfAttention2d
from .init import init_normal_
from .output import TEMPERATURE, attach_output


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use batch, instance or none")


class UNetBlock(nn.Module):
    """One level: down-conv, the ``inner`` levels, up-conv, and the skip connection.

    ``attention`` adds self-attention on the up-conv's output, before the skip joins it.
    """

    def __init__(
        self,
        outer: int,
        inner: int,
        submodule: nn.Module | None = None,
        in_channels: int | None = None,
        out_channels: int | None = None,
        norm: str = "batch",
        dropout: bool = False,
        attention: bool = False,
        tanh: bool = True,
    ) -> None:
        super().__init__()
        self.outermost = out_channels is not None
        in_channels = in_channels if in_channels is not None else outer
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=norm != "batch")
        if self.outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, *([nn.Tanh()] if tanh else [])]
        elif submodule is None:  # innermost
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=norm != "batch")
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm_layer(norm, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=norm != "batch")
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(norm, inner), submodule]
            layers += [nn.ReLU(True), up, norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        if attention:
            if self.outermost:
                raise ValueError("self-attention belongs inside the U-Net, not on its output")
            layers.append(SelfAttention2d(outer))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat((x, self.model(x)), dim=1)


class UNetGenerator(nn.Module):
    """Configurable-width, configurable-depth pix2pix U-Net.

    ``attention`` puts SAGAN self-attention in the decoder at 1/8 of the input size (the
    ``ngf * 4`` level): coarse enough to be cheap, fine enough to relate image regions.
    ``num_bins`` > 0 makes it a classifier over that many ab bins (``output_space`` "bins").
    """

    def __init__(
        self,
        in_channels: int = 1,
        ngf: int = 64,
        num_downs: int = 8,
        norm: str = "batch",
        dropout: bool = True,
        attention: bool = False,
        output_space: str = "ab",
        num_bins: int = 0,
        temperature: float = TEMPERATURE,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError("num_downs must be at least 5")
        self.stride = 2**num_downs
        block = UNetBlock(ngf * 8, ngf * 8, norm=norm)
        for _ in range(num_downs - 5):
            block = UNetBlock(ngf * 8, ngf * 8, block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            sa = attention and mult == 4
            block = UNetBlock(ngf * mult, ngf * mult * 2, block, norm=norm, attention=sa)
        out_channels = attach_output(self, output_space, num_bins, temperature)
        self.model = UNetBlock(
            ngf, ngf, block, in_channels=in_channels, out_channels=out_channels, tanh=not num_bins
        )
        init_normal_(self)

    @property
    def output_layer(self) -> nn.Module:
        """The last convolution: the one whose outputs are ab, RGB or the bins' logits."""
        return self.model.model[3]

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.model(lightness)
