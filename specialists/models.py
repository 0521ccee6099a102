"""The generator registry: ``create_model(name, **cfg)`` builds any colorization generator."""

from torch import nn

from .autoencoder import EncoderDecoder, FusionEncoderDecoder
from .output import TEMPERATURE
from .registry import Registry
from .timm_unet import TimmUNet
from .unet import UNetGenerator

GENERATORS = Registry("generator")


@GENERATORS.register
def unet_256(ngf: int = 64, norm: str = "batch", dropout: bool = True) -> nn.Module:
    """The write-up's pix2pix U-Net-256 (8 halvings, 54M parameters at ngf 64)."""
    return UNetGenerator(ngf=ngf, num_downs=8, norm=norm, dropout=dropout)


@GENERATORS.register
def unet(
    ngf: int = 64,
    num_downs: int = 7,
    norm: str = "batch",
    dropout: bool = True,
    attention: bool = False,
    num_bins: int = 0,
    temperature: float = TEMPERATURE,
) -> nn.Module:
    """pix2pix U-Net of any width and depth (7 halvings suit 128 px training from scratch).

    ``attention``: SAGAN self-attention in the decoder at 1/8 of the input size.
    ``num_bins``: classify over that many ab bins (``specialists.output``; set by training).
    """
    return UNetGenerator(
        ngf=ngf,
        num_downs=num_downs,
        norm=norm,
        dropout=dropout,
        attention=attention,
        num_bins=num_bins,
        temperature=temperature,
    )


@GENERATORS.register
def unet_rgb(
    ngf: int = 64, num_downs: int = 7, norm: str = "batch", dropout: bool = True
) -> nn.Module:
    """The write-up's Pix2Pix in RGB: ``unet`` predicting sRGB (3 channels) from L, a baseline."""
    return UNetGenerator(
        ngf=ngf, num_downs=num_downs, norm=norm, dropout=dropout, output_space="rgb"
    )


@GENERATORS.register
def unet_effnet_lite0(
    pretrained: bool = True,
    attention: bool = False,
    num_bins: int = 0,
    temperature: float = TEMPERATURE,
) -> nn.Module:
    """U-Net on an ImageNet EfficientNet-Lite0 encoder: the default specialist.

    ``num_bins``: classify over that many ab bins (``specialists.output``; set by training).
    """
    return TimmUNet(
        "tf_efficientnet_lite0",
        pretrained=pretrained,
        attention=attention,
        num_bins=num_bins,
        temperature=temperature,
    )


@GENERATORS.register
def unet_mobilenetv2(
    pretrained: bool = True, num_bins: int = 0, temperature: float = TEMPERATURE
) -> nn.Module:
    """U-Net on an ImageNet MobileNetV2 encoder (``num_bins``: as ``unet_effnet_lite0``)."""
    return TimmUNet(
        "mobilenetv2_100", pretrained=pretrained, num_bins=num_bins, temperature=temperature
    )


@GENERATORS.register
def beta(ngf: int = 64, num_downs: int = 3, norm: str = "batch") -> nn.Module:
    """The write-up's beta baseline: plain conv encoder-decoder, no skips (about 8M params)."""
    return EncoderDecoder(ngf=ngf, num_downs=num_downs, norm=norm)


@GENERATORS.register
def gamma(
    pretrained: bool = True, ngf: int = 64, num_downs: int = 3, norm: str = "batch"
) -> nn.Module:
    """The write-up's gamma baseline: beta fused with frozen ImageNet MobileNetV2 features."""
    return FusionEncoderDecoder(
        "mobilenetv2_100", pretrained=pretrained, ngf=ngf, num_downs=num_downs, norm=norm
    )


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the generator registered as ``name`` (see :func:`list_models`)."""
    return GENERATORS.create(name, **kwargs)


def list_models() -> list[str]:
    return GENERATORS.names()
