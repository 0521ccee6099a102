"""SAGAN self-attention (Zhang et al. 2019) for generators and discriminators alike.

A convolution only sees its neighbourhood, so a 70x70 patch judge cannot tell whether a
face's two cheeks got the same tint, nor can a decoder agree on one sky colour across a
wide photo. Self-attention lets every position look at every other one. Its output is
``x + gamma * attention(x)`` with ``gamma`` starting at 0: the block begins as the identity
and the network learns how much global context to mix in.

Discriminators import this module through ``specialists.attention``: it is the one shared
piece of model code between the two packages.
"""

import torch
from torch import nn


def _maybe_spectral(conv: nn.Conv2d, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv


class SelfAttention2d(nn.Module):
    """Softmax attention over all positions of a (B, C, H, W) map; 1x1 query/key/value convs."""

    def __init__(self, channels: int, reduction: int = 8, spectral_norm: bool = False) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = _maybe_spectral(nn.Conv2d(channels, inner, 1, bias=False), spectral_norm)
        self.key = _maybe_spectral(nn.Conv2d(channels, inner, 1, bias=False), spectral_norm)
        self.value = _maybe_spectral(nn.Conv2d(channels, channels, 1, bias=False), spectral_norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C')
        key = self.key(x).flatten(2)  # (B, C', N)
        value = self.value(x).flatten(2)  # (B, C, N)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # (B, N query, N key)
        out = torch.bmm(value, attention.transpose(1, 2)).view(b, c, h, w)
        return x + self.gamma * out
