"""The discriminator registry: ``create_model(name, **cfg)``."""

from torch import nn

from specialists.registry import Registry

from .patchgan import PatchDiscriminator

DISCRIMINATORS = Registry("discriminator")


@DISCRIMINATORS.register
def patchgan(ndf: int = 64, n_layers: int = 3, spectral_norm: bool = False) -> nn.Module:
    """Conditional 70x70 PatchGAN over (L, ab)."""
    return PatchDiscriminator(ndf=ndf, n_layers=n_layers, spectral_norm=spectral_norm)


def create_model(name: str, **kwargs: object) -> nn.Module:
    return DISCRIMINATORS.create(name, **kwargs)


def list_models() -> list[str]:
    return DISCRIMINATORS.names()
