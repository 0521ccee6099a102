"""Safetensors checkpoints with a JSON config: no pickle, written atomically.

A checkpoint is one ``.safetensors`` file whose tensors are grouped by prefix
(``generator.``, ``discriminator.``, ``optimizer_g.`` ...) and whose metadata holds the
JSON config (how to rebuild each model, data, steps, metrics). The same JSON is written
beside it (``.json``) for people and tools; the embedded copy is the authority, so a kill
between the two writes never pairs weights with the wrong config.
"""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from torch import nn

from common.files import atomic_write_bytes, atomic_write_json

CONFIG_KEY = "config"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not describe the wanted model."""


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], config: dict) -> None:
    """Save ``tensors`` and ``config`` to ``path`` (+ ``.json`` beside it), atomically."""
    path = Path(path)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {CONFIG_KEY: json.dumps(config, sort_keys=True)}
    atomic_write_bytes(path, save(flat, metadata=metadata))
    atomic_write_json(path.with_suffix(".json"), config)


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
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: embedded config is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: embedded config is not a JSON object")
    return config


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Load (tensors, config) from a checkpoint written by :func:`save_checkpoint`.

    Refuses NaN or infinite weights: a checkpoint of a diverged run would colour every photo
    black without a word.
    """
    config = read_config(path)
    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc})") from exc
    broken = [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        raise CheckpointError(
            f"{path}: {len(broken)} of {len(tensors)} tensors hold NaN or infinite values "
            f"(first: {broken[0]}); the run that made it diverged or the file is damaged"
        )
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
    models = config.get("models")
    spec = models.get(role) if isinstance(models, dict) else None
    if spec is None:
        have = list(models) if isinstance(models, dict) else []
        raise CheckpointError(f"checkpoint has no {role!r} model (has {have})")
    try:
        kwargs = dict(spec["kwargs"])
        if "pretrained" in kwargs:
            kwargs["pretrained"] = False
        model = create(spec["name"], **kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the {role!r} model's spec cannot be built ({exc!r})") from None
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in strip_prefix(tensors, role).items()
    }
    _check_fit(model, state, role, spec["name"])
    model.load_state_dict(state)
    model.spec = spec
    return model


def _check_fit(model: nn.Module, state: Mapping[str, torch.Tensor], role: str, name: str) -> None:
    """One short message when the tensors do not fit the architecture (not torch's key dump)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} of the wrong shape (first: {k} is {list(state[k].shape)}, "
            f"the architecture wants {list(expected[k].shape)})"
        )
    if problems:
        raise CheckpointError(
            f"the {role!r} tensors do not fit its architecture {name}: " + "; ".join(problems)
        )


def save_model(path: str | Path, model: nn.Module, role: str, config: dict | None = None) -> None:
    """Save one model (its weights and spec) as a standalone checkpoint."""
    config = dict(config or {})
    config.setdefault("models", {})[role] = model_spec(model)
    save_checkpoint(path, with_prefix(model.state_dict(), role), config)
