"""Discriminators that score how realistic a colouring (L + ab) looks."""

from pathlib import Path

from torch import nn

from specialists.checkpoint import build_from_checkpoint, load_checkpoint

from .models import DISCRIMINATORS, create_model, list_models


def load_discriminator(path: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild the discriminator stored in a checkpoint from its config alone."""
    tensors, config = load_checkpoint(path)
    return build_from_checkpoint(tensors, config, "discriminator", create_model).to(device).eval()


__all__ = ["DISCRIMINATORS", "create_model", "list_models", "load_discriminator"]
