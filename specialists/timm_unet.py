"""U-Net whose encoder is an ImageNet-pretrained timm backbone (``features_only``).

A pretrained encoder already knows faces, skies and grass, so the decoder learns colour
from a few thousand photos on a CPU. The grey L channel is fed to all three input
channels with the backbone's own normalisation (kept as data in its ``pretrained_cfg``).
"""

import torch
import torch.nn.functional as F
from torch import nn

from common.conv_act import conv_pointwise

from .attention import SelfAttention2d
from .backbones import create_backbone, register_input_norm
from .init import init_normal_
from .output import TEMPERATURE, attach_output


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SplitConv2d(nn.Module):
    """A convolution of the concatenation ``(x, skip)`` computed as one convolution per part,
    summed: the same output to float32 rounding, without building the concatenation.

    At serving, channels-last concatenation is a strided copy of every pixel: dropping it
    made a CPU forward pass 4-23% faster (``benchmarks/bench_runtimes.py``, batch 8).
    """

    def __init__(self, conv: nn.Conv2d, first_channels: int) -> None:
        super().__init__()
        if conv.groups != 1 or not 0 < first_channels < conv.in_channels:
            raise ValueError(f"cannot split {conv} after {first_channels} input channels")
        out, k = conv.out_channels, conv.kernel_size
        options = {
            "padding": conv.padding,
            "padding_mode": conv.padding_mode,
            "stride": conv.stride,
            "dilation": conv.dilation,
        }
        self.first = nn.Conv2d(first_channels, out, k, bias=conv.bias is not None, **options)
        self.second = nn.Conv2d(conv.in_channels - first_channels, out, k, bias=False, **options)
        with torch.no_grad():
            self.first.weight.copy_(conv.weight[:, :first_channels])
            self.second.weight.copy_(conv.weight[:, first_channels:])
            if conv.bias is not None:
                self.first.bias.copy_(conv.bias)
        self.requires_grad_(False)

    fusable = True  # common.conv_act: the sum and the activation in the first's call

    def forward(self, parts: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, skip = parts
        return self.first(x).add_(self.second(skip))

    def forward_fused(
        self, parts: tuple[torch.Tensor, torch.Tensor], attr: str, scalars: list[float]
    ) -> torch.Tensor:
        """``act(self(parts))``: the first convolution, the sum and the activation in one
        oneDNN call (``common.conv_act``)."""
        x, skip = parts
        return conv_pointwise(self.first, x, attr, scalars, add=self.second(skip))


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip features, two 3x3 convs (+ optional self-attention)."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, attention: bool = False
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.convs = nn.Sequential(
            conv_bn_relu(in_channels + skip_channels, out_channels),
            conv_bn_relu(out_channels, out_channels),
        )
        self.attention = SelfAttention2d(out_channels) if attention else nn.Identity()
        self.split = False  # the first convolution takes (x, skip): see split_concat

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != skip.shape[-2:]:  # (equal: the block runs at its input's size)
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        joined = (x, skip) if self.split else torch.cat((x, skip), dim=1)
        return self.attention(self.convs(joined))

    def split_concat(self) -> None:
        """Serve without the skip concatenation (:class:`SplitConv2d`), for inference only:
        call it after ``common.fold.fold_batchnorm``, which expects the plain layout."""
        if not self.split:
            first = self.convs[0]
            first[0] = SplitConv2d(first[0], self.in_channels)
            self.split = True


def split_concats(model: nn.Module) -> nn.Module:
    """``model`` with every decoder block's skip concatenation split (in place), for serving."""
    for block in [m for m in model.modules() if isinstance(m, DecoderBlock)]:
        block.split_concat()
    return model


class TimmUNet(nn.Module):
    """timm encoder (strides 2..32) + U-Net decoder back to full resolution; ab out, tanh.

    ``attention`` adds self-attention after the decoder block at 1/8 of the input size.
    ``num_bins`` > 0: one logit per ab bin instead (no tanh), from a 1x1 head as in Zhang et
    al. (a 3x3 one to hundreds of channels at full size would cost more than the encoder).
    """

    def __init__(
        self,
        encoder: str = "tf_efficientnet_lite0",
        pretrained: bool = True,
        decoder_channels: tuple[int, ...] = (192, 96, 64, 32, 24),
        attention: bool = False,
        num_bins: int = 0,
        temperature: float = TEMPERATURE,
    ) -> None:
        super().__init__()
        self.encoder = create_backbone(encoder, pretrained=pretrained, features_only=True)
        skips = self.encoder.feature_info.channels()
        if len(decoder_channels) != len(skips):
            raise ValueError(f"decoder_channels needs {len(skips)} entries for {encoder}")
        self.stride = self.encoder.feature_info.reduction()[-1]
        register_input_norm(self, self.encoder)
        # from the deepest features up: skip i-1 joins at each level, the input L at the top
        ins = [skips[-1], *decoder_channels[:-1]]
        skip_ins = [*reversed(skips[:-1]), 1]
        reductions = [*reversed(self.encoder.feature_info.reduction()[:-1]), 1]
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o, attention=attention and r == 8)
            for i, s, o, r in zip(ins, skip_ins, decoder_channels, reductions)
        )
        out_channels = attach_output(self, "ab", num_bins, temperature)
        kernel = 1 if num_bins else 3
        self.head = nn.Conv2d(decoder_channels[-1], out_channels, kernel, padding=kernel // 2)
        init_normal_(self, skip=self.encoder)

    # Serving's fast mode (``specialists.serving.half_res_top``): the top decoder block and
    # the head run at half the input's size, on the lightness averaged 2 x 2, and the output
    # is that size (``specialists.output.predict_ab`` stretches the ab back). The top block
    # is a third of a forward pass at full size; trained models are never changed by it.
    half_res_top = False

    @property
    def output_layer(self) -> nn.Module:
        """The last convolution: the one whose outputs are ab or the bins' logits."""
        return self.head

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        grey = ((lightness + 1.0) / 2.0).expand(-1, 3, -1, -1)
        features = self.encoder((grey - self.mean) / self.std)
        x = features[-1]
        top = F.avg_pool2d(lightness, 2) if self.half_res_top else lightness
        for block, skip in zip(self.decoder, [*reversed(features[:-1]), top]):
            x = block(x, skip)
        out = self.head(x)
        return out if self.output_space == "bins" else torch.tanh(out)
