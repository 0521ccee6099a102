"""The router's network: a timm ImageNet backbone on grayscale input, plus a domain head.

The backbone is used as a chain of stages (stem, its blocks, the final 1x1 conv, pooling) so
that training can freeze a prefix, compute its output once and train only the rest: the
cheap way to fine-tune on a CPU. Any timm model of the EfficientNet family works
(``tf_efficientnet_lite0``, ``mobilenetv2_*``, ``efficientnet_b0`` ...).
"""

import torch
from torch import nn

from common.lab import denormalize_l, lab_to_rgb
from specialists.backbones import create_backbone, register_input_norm
from specialists.registry import Registry

ROUTERS = Registry("router")


class RouterNet(nn.Module):
    """Normalised lightness (B, 1, S, S) -> (domain logits, pooled embedding)."""

    def __init__(
        self,
        backbone: str,
        num_domains: int,
        pretrained: bool = True,
        input_size: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        from timm.models.efficientnet import EfficientNet  # timm loads with the first model

        self.backbone = create_backbone(backbone, pretrained=pretrained, num_classes=0)
        if not isinstance(self.backbone, EfficientNet):
            raise ValueError(f"{backbone}: router needs a timm EfficientNet-family model")
        self.input_size = input_size
        register_input_norm(self, self.backbone)
        self.embed_dim = self.backbone.num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, num_domains))
        # Depthwise convolutions run several times faster in channels-last layout on CPUs.
        self.to(memory_format=torch.channels_last)

    @property
    def num_blocks(self) -> int:
        return len(self.backbone.blocks)

    def to_backbone_input(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Lightness -> the neutral-gray sRGB photo it stands for, ImageNet-normalised."""
        lightness = denormalize_l(l_norm)
        neutral = torch.zeros_like(lightness).expand(-1, 2, -1, -1)
        gray = lab_to_rgb(torch.cat((lightness, neutral), dim=1))
        return (gray.mean(dim=1, keepdim=True) - self.mean) / self.std

    def trunk(self, l_norm: torch.Tensor, train_blocks: int) -> torch.Tensor:
        """The frozen prefix: everything except the last ``train_blocks`` blocks and the top.

        With ``train_blocks == 0`` the whole backbone is frozen and this returns the pooled
        embedding.
        """
        bb = self.backbone
        x = bb.bn1(bb.conv_stem(self.to_backbone_input(l_norm)))
        x = bb.blocks[: self.num_blocks - train_blocks](x)
        return self._top(x) if train_blocks == 0 else x

    def tail(self, trunk_out: torch.Tensor, train_blocks: int) -> torch.Tensor:
        """The trainable rest of the backbone: trunk output -> pooled embedding."""
        if train_blocks == 0:
            return trunk_out
        return self._top(self.backbone.blocks[self.num_blocks - train_blocks :](trunk_out))

    def _top(self, x: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        return bb.global_pool(bb.bn2(bb.conv_head(x))).flatten(1)

    def tail_parameters(self, train_blocks: int) -> list[nn.Parameter]:
        """Backbone parameters that training with ``train_blocks`` updates."""
        if train_blocks == 0:
            return []
        bb = self.backbone
        modules = [*bb.blocks[self.num_blocks - train_blocks :], bb.conv_head, bb.bn2]
        return [p for m in modules for p in m.parameters()]

    def embed(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features: what the kNN index holds."""
        return self.trunk(l_norm, 0)

    def forward(self, l_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(l_norm)
        return self.head(embedding), embedding


@ROUTERS.register
def effnet_lite0_router(
    num_domains: int, pretrained: bool = True, input_size: int = 128
) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet, 3.4M parameters): the default router."""
    return RouterNet("tf_efficientnet_lite0", num_domains, pretrained, input_size)


@ROUTERS.register
def mobilenetv2_router(
    num_domains: int, pretrained: bool = True, input_size: int = 128
) -> nn.Module:
    """MobileNetV2 1.0 (ImageNet, 2.2M parameters)."""
    return RouterNet("mobilenetv2_100", num_domains, pretrained, input_size)


@ROUTERS.register
def timm_router(
    backbone: str, num_domains: int, pretrained: bool = True, input_size: int = 128
) -> nn.Module:
    """Any timm EfficientNet-family backbone (tiny ones keep the tests fast)."""
    return RouterNet(backbone, num_domains, pretrained, input_size)


def create_router_net(name: str, **kwargs: object) -> nn.Module:
    """Build the router network registered as ``name``."""
    return ROUTERS.create(name, **kwargs)
