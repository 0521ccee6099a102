"""Colorization generators (L in, ab out), Lab maths and safetensors checkpoints."""

from pathlib import Path

from torch import nn

from .checkpoint import build_from_checkpoint, load_checkpoint
from .models import GENERATORS, create_model, list_models


def load_generator(path: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild the generator stored in a checkpoint from its config alone (no pickle)."""
    tensors, config = load_checkpoint(path)
    return build_from_checkpoint(tensors, config, "generator", create_model).to(device).eval()


__all__ = ["GENERATORS", "create_model", "list_models", "load_generator"]
