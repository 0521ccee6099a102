"""Safetensors checkpoints with a JSON config: no pickle, written atomically.

A checkpoint is one ``.safetensors`` file whose tensors are grouped by prefix
(``generator.``, ``discriminator.``, ``optimizer_g.`` ...) and whose metadata holds the
JSON config (how to rebuild each model, data, steps, metrics). The same JSON is written
beside it (``.json``) for people and tools; the embedded copy is the authority, so a kill
between the two writes never pairs weights with the wrong config.
"""

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

CONFIG_KEY = "config"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not describe the wanted model."""


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename)."""

    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    _atomic_write(Path(path), write)


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], config: dict) -> None:
    """Save ``tensors`` and ``config`` to ``path`` (+ ``.json`` beside it), atomically."""
    path = Path(path)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {CONFIG_KEY: json.dumps(config, sort_keys=True)}
    _atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=metadata))
    write_json(path.with_suffix(".json"), config)


def read_config(path: str | Path) -> dict:
    """The config embedded in a checkpoint, without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path}: safetensors file has no embedded config")
    return json.loads(metadata[CONFIG_KEY])


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Load (tensors, config) from a checkpoint written by :func:`save_checkpoint`."""
    config = read_config(path)
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc})") from exc
    return tensors, config


def with_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def strip_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    start = f"{prefix}."
    return {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}


def model_spec(model: nn.Module) -> dict:
    """How ``model`` was built (set by a registry's ``create``)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("model was not built through a registry; it has no spec to save")
    return spec


def build_from_checkpoint(
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    role: str,
    create: Callable[..., nn.Module],
) -> nn.Module:
    """Rebuild the model stored under ``role`` from its spec and load its weights.

    Pretrained-backbone downloads are switched off: the weights come from the checkpoint.
    """
    spec = config.get("models", {}).get(role)
    if spec is None:
        raise CheckpointError(
            f"checkpoint has no {role!r} model (has {list(config.get('models', {}))})"
        )
    kwargs = dict(spec["kwargs"])
    if "pretrained" in kwargs:
        kwargs["pretrained"] = False
    model = create(spec["name"], **kwargs)
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in strip_prefix(tensors, role).items()
    }
    model.load_state_dict(state)
    model.spec = spec
    return model


def save_model(path: str | Path, model: nn.Module, role: str, config: dict | None = None) -> None:
    """Save one model (its weights and spec) as a standalone checkpoint."""
    config = dict(config or {})
    config.setdefault("models", {})[role] = model_spec(model)
    save_checkpoint(path, with_prefix(model.state_dict(), role), config)
