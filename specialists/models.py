"""The generator registry: ``create_model(name, **cfg)`` builds any colorization generator."""

from torch import nn

from .registry import Registry
from .timm_unet import TimmUNet
from .unet import UNetGenerator

GENERATORS = Registry("generator")


@GENERATORS.register
def unet_256(ngf: int = 64, norm: str = "batch", dropout: bool = True) -> nn.Module:
    """The write-up's pix2pix U-Net-256 (8 halvings, 54M parameters at ngf 64)."""
    return UNetGenerator(ngf=ngf, num_downs=8, norm=norm, dropout=dropout)


@GENERATORS.register
def unet(ngf: int = 64, num_downs: int = 7, norm: str = "batch", dropout: bool = True) -> nn.Module:
    """pix2pix U-Net of any width and depth (7 halvings suit 128 px training from scratch)."""
    return UNetGenerator(ngf=ngf, num_downs=num_downs, norm=norm, dropout=dropout)


@GENERATORS.register
def unet_effnet_lite0(pretrained: bool = True) -> nn.Module:
    """U-Net on an ImageNet EfficientNet-Lite0 encoder: the default specialist."""
    return TimmUNet("tf_efficientnet_lite0", pretrained=pretrained)


@GENERATORS.register
def unet_mobilenetv2(pretrained: bool = True) -> nn.Module:
    """U-Net on an ImageNet MobileNetV2 encoder."""
    return TimmUNet("mobilenetv2_100", pretrained=pretrained)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the generator registered as ``name`` (see :func:`list_models`)."""
    return GENERATORS.create(name, **kwargs)


def list_models() -> list[str]:
    return GENERATORS.names()
