"""pix2pix weight initialisation: conv weights ~ normal(0, 0.02), norm scales ~ normal(1, 0.02)."""

import torch
from torch import nn
from torch.nn.utils import parametrize


def _raw_weight(module: nn.Module) -> torch.Tensor:
    """The stored weight: under spectral norm, the tensor the normalised weight is made from."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def init_normal_(model: nn.Module, gain: float = 0.02, skip: nn.Module | None = None) -> nn.Module:
    """Initialise ``model`` in place; modules inside ``skip`` (a pretrained encoder) are kept."""
    kept = {id(m) for m in skip.modules()} if skip is not None else set()
    for module in model.modules():
        if id(module) in kept:
            continue
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(_raw_weight(module), 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return model
