"""Colorization generators (L in, ab out) and safetensors checkpoints (Lab maths: common.lab)."""

from pathlib import Path

from torch import nn

from .checkpoint import build_from_checkpoint, load_checkpoint
from .models import GENERATORS, create_model, list_models


def load_generator(path: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild the generator stored in a checkpoint from its config alone (no pickle), with
    the chroma gain its config asks serving to apply (``serve.chroma_gain``, default 1)."""
    tensors, config = load_checkpoint(path)
    model = build_from_checkpoint(tensors, config, "generator", create_model).to(device).eval()
    model.chroma_gain = float(config.get("serve", {}).get("chroma_gain", 1.0))
    return model


__all__ = ["GENERATORS", "create_model", "list_models", "load_generator"]
