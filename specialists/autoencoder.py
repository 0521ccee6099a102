"""The write-up's baseline autoencoders: beta (plain) and gamma (fused with a classifier).

Both are the same convolutional encoder-decoder with no skip connections: strided convs
down to a bottleneck at 1/``stride`` of the input, a 1x1 fusion conv, transposed convs back
up, tanh ab out. Without skips every colour has to pass through the bottleneck, which is
why the write-up's beta averaged uncertain colours into brown.

gamma adds global context the way Iizuka et al. (2016) and "Deep Koalarization" (Baldassarre
et al. 2017) do: a frozen ImageNet classifier looks at the whole grey photo, its pooled
feature vector is projected, repeated over the bottleneck grid and concatenated there, so
the fusion conv can colour "a beach" differently from "a face" before decoding.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import create_backbone, register_input_norm
from .init import init_normal_
from .unet import norm_layer


def conv_block(
    in_channels: int, out_channels: int, norm: str, kernel: int = 3, stride: int = 1
) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=norm != "batch")
    return nn.Sequential(conv, norm_layer(norm, out_channels), nn.ReLU(inplace=True))


def up_block(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    """Transposed conv x2, then a 3x3 conv."""
    up = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=norm != "batch")
    return nn.Sequential(
        up,
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
        conv_block(out_channels, out_channels, norm),
    )


def conv_encoder(ngf: int, num_downs: int, norm: str) -> tuple[nn.Sequential, int]:
    """L -> features at 1/2**num_downs: per level a stride-2 conv and a 3x3 conv."""
    layers = [conv_block(1, ngf, norm)]
    channels = ngf
    for i in range(num_downs):
        out = ngf * min(2 ** (i + 1), 8)
        layers += [conv_block(channels, out, norm, stride=2), conv_block(out, out, norm)]
        channels = out
    layers.append(conv_block(channels, channels, norm))  # the bottleneck conv
    return nn.Sequential(*layers), channels


def conv_decoder(channels: int, num_ups: int, norm: str) -> nn.Sequential:
    """Bottleneck -> ab: halve the channels at each x2 step, 3x3 conv to 2 channels, tanh."""
    layers: list[nn.Module] = []
    for _ in range(num_ups):
        layers.append(up_block(channels, channels // 2, norm))
        channels //= 2
    layers += [nn.Conv2d(channels, 2, 3, padding=1), nn.Tanh()]
    return nn.Sequential(*layers)


class EncoderDecoder(nn.Module):
    """beta: conv encoder -> 1x1 fusion conv -> transposed-conv decoder, no skips."""

    def __init__(
        self,
        ngf: int = 64,
        num_downs: int = 3,
        norm: str = "batch",
        fusion_channels: int = 256,
        global_channels: int = 0,
    ) -> None:
        super().__init__()
        self.stride = 2**num_downs
        self.down, channels = conv_encoder(ngf, num_downs, norm)
        self.fuse = conv_block(channels + global_channels, fusion_channels, norm, kernel=1)
        self.up = conv_decoder(fusion_channels, num_downs, norm)
        init_normal_(self)

    def decode(self, bottleneck: torch.Tensor) -> torch.Tensor:
        return self.up(self.fuse(bottleneck))

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.decode(self.down(lightness))


class FusionEncoderDecoder(EncoderDecoder):
    """gamma: beta whose bottleneck also gets a frozen classifier's global features.

    ``forward(l_norm, fusion_features=None)``: pass ``fusion_features`` (B, ``feature_dim``)
    to override what the classifier says (tests, or features computed once elsewhere).
    """

    def __init__(
        self,
        classifier: str = "mobilenetv2_100",
        pretrained: bool = True,
        classifier_size: int = 224,
        ngf: int = 64,
        num_downs: int = 3,
        norm: str = "batch",
        fusion_channels: int = 256,
        global_channels: int = 256,
    ) -> None:
        super().__init__(ngf, num_downs, norm, fusion_channels, global_channels)
        self.classifier = create_backbone(classifier, pretrained=pretrained, num_classes=0)
        self.classifier.requires_grad_(False)
        self.classifier.eval()
        self.classifier_size = classifier_size
        self.feature_dim = self.classifier.num_features
        register_input_norm(self, self.classifier)
        self.project = nn.Sequential(
            nn.Linear(self.feature_dim, global_channels), nn.ReLU(inplace=True)
        )
        init_normal_(self.project)

    def train(self, mode: bool = True) -> "FusionEncoderDecoder":
        """Train the rest; the frozen classifier stays in eval mode (its BatchNorm statistics)."""
        super().train(mode)
        self.classifier.eval()
        return self

    @torch.no_grad()
    def global_features(self, lightness: torch.Tensor) -> torch.Tensor:
        """The classifier's pooled features (B, feature_dim) of the grey photo."""
        size = (self.classifier_size, self.classifier_size)
        grey = F.interpolate(lightness, size=size, mode="bilinear", align_corners=False)
        grey = ((grey + 1.0) / 2.0).expand(-1, 3, -1, -1)
        return self.classifier((grey - self.mean) / self.std)

    def forward(
        self, lightness: torch.Tensor, fusion_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        if fusion_features is None:
            fusion_features = self.global_features(lightness)
        x = self.down(lightness)
        tiled = self.project(fusion_features)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.decode(torch.cat((x, tiled), dim=1))
