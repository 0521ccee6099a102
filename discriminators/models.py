"""The discriminator registry: ``create_model(name, **cfg)``."""

from torch import nn

from specialists.registry import Registry

from .multiscale import MultiScaleDiscriminator
from .patchgan import PatchDiscriminator

DISCRIMINATORS = Registry("discriminator")


@DISCRIMINATORS.register
def patchgan(
    ndf: int = 64, n_layers: int = 3, spectral_norm: bool = False, attention: bool = False
) -> nn.Module:
    """Conditional 70x70 PatchGAN over (L, ab); ``attention`` adds SAGAN self-attention."""
    return PatchDiscriminator(
        ndf=ndf, n_layers=n_layers, spectral_norm=spectral_norm, attention=attention
    )


@DISCRIMINATORS.register
def multiscale_patchgan(
    num_scales: int = 3,
    ndf: int = 64,
    n_layers: int = 3,
    spectral_norm: bool = False,
    attention: bool = False,
) -> nn.Module:
    """pix2pixHD's multi-scale PatchGAN: a list of patch logits, one entry per image scale."""
    return MultiScaleDiscriminator(
        num_scales=num_scales,
        ndf=ndf,
        n_layers=n_layers,
        spectral_norm=spectral_norm,
        attention=attention,
    )


def create_model(name: str, **kwargs: object) -> nn.Module:
    return DISCRIMINATORS.create(name, **kwargs)


def list_models() -> list[str]:
    return DISCRIMINATORS.names()
