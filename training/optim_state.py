"""Optimizer state as flat tensors + JSON, so it fits in a safetensors checkpoint."""

from typing import Any

import torch

from specialists.checkpoint import strip_prefix


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``prefix.<param>.<name>``) and JSON."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{name}": value
        for index, entries in state["state"].items()
        for name, value in entries.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    prefix: str,
) -> None:
    """Inverse of :func:`optimizer_to_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in strip_prefix(tensors, prefix).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
