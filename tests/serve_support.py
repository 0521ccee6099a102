"""Tiny weights folders and photos for the serving tests (real models, random or set weights).

Generators are the real ``unet_effnet_lite0`` (random init, 64 px); their output head can be
set to a constant colour so a test knows which specialist coloured a photo. Discriminators
can be made monotone in the 'a' channel so a test knows which candidate a judge prefers.
The router is the real ``router.Router`` on a tiny timm backbone.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import discriminators
import specialists
from router import Calibration, NeighbourIndex, Router, create_router_net
from specialists.checkpoint import save_checkpoint, with_prefix

DOMAINS = ("general", "landscape", "portrait")
# constant normalised (a, b) per specialist: portrait reddest, landscape greenest
COLOURS = {"general": (0.1, 0.05), "landscape": (-0.4, 0.3), "portrait": (0.4, 0.2)}


def constant_generator(ab: tuple[float, float] | None) -> nn.Module:
    """The real generator; with ``ab`` its head ignores the photo and outputs exactly ``ab``."""
    torch.manual_seed(0)
    generator = specialists.create_model("unet_effnet_lite0", pretrained=False)
    if ab is not None:
        with torch.no_grad():
            generator.head.weight.zero_()
            generator.head.bias.copy_(torch.atanh(torch.tensor(ab)))
    return generator


def monotone_discriminator(sign: float = 1.0, scale: float = 1.0) -> nn.Module:
    """A real PatchGAN whose every patch logit rises (sign +1) or falls with the 'a' channel."""
    disc = discriminators.create_model("patchgan", ndf=8, n_layers=1)
    first = True
    with torch.no_grad():
        for module in disc.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.fill_(scale / fan_in)
                if first:  # input channels (L, a, b): look at a only
                    module.weight[:, 0].zero_()
                    module.weight[:, 2].zero_()
                    module.weight[:, 1] *= 3.0 * sign
                    first = False
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.weight.fill_(1.0)
                module.bias.zero_()
    return disc


def save_specialist(
    path: Path, domain: str, generator: nn.Module, disc: nn.Module, size: int = 64
) -> Path:
    config = {
        "models": {"generator": generator.spec, "discriminator": disc.spec},
        "domain": domain,
        "size": size,
    }
    tensors = {**with_prefix(generator.state_dict(), "generator")}
    tensors.update(with_prefix(disc.state_dict(), "discriminator"))
    save_checkpoint(path, tensors, config)
    return path


def tiny_router(domains: tuple[str, ...] = DOMAINS, threshold: float = 0.5) -> Router:
    """The real Router on a tiny timm backbone with a kNN index over random photos."""
    torch.manual_seed(0)
    net = create_router_net(
        "timm_router", backbone="tinynet_e", num_domains=len(domains), pretrained=False,
        input_size=64,
    )  # fmt: skip
    net.eval()
    with torch.no_grad():
        embeddings = net.embed(torch.rand(12, 1, 64, 64) * 2 - 1).numpy()
    labels = np.arange(12) % len(domains)
    paths = [f"train/{domains[i]}/{n}.jpg" for n, i in enumerate(labels)]
    index = NeighbourIndex.build(embeddings, paths, labels, list(domains), dim=8)
    return Router(net, index, Calibration(k=3), list(domains), threshold)


def make_weights(
    root: Path,
    domains: tuple[str, ...] = DOMAINS,
    colours: dict[str, tuple[float, float]] | None = COLOURS,
    judge_sign: float = 1.0,
    size: int = 64,
) -> Path:
    """A complete weights folder: router/ and specialists/<domain>.safetensors."""
    for domain in domains:
        generator = constant_generator(colours[domain] if colours else None)
        save_specialist(
            root / "specialists" / f"{domain}.safetensors",
            domain,
            generator,
            monotone_discriminator(judge_sign),
            size,
        )
    tiny_router(domains).save(root / "router")
    return root


def grey_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A grey photo with detail: a gradient plus fine texture."""
    rng = np.random.default_rng(seed)
    xx = np.linspace(0, 1, width)[None, :]
    yy = np.linspace(0, 1, height)[:, None]
    pixels = 40 + 150 * (0.6 * xx + 0.4 * yy) + rng.normal(0, 20, (height, width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def colour_photo(width: int, height: int) -> Image.Image:
    xx = np.linspace(0, 1, width)[None, :, None]
    base = np.array([200, 90, 60])[None, None, :] * (0.5 + 0.5 * xx)
    return Image.fromarray(np.broadcast_to(base, (height, width, 3)).astype(np.uint8), "RGB")


def count_calls(colorizer) -> tuple[Counter, list]:
    """Count forward passes per specialist; remove the returned hooks when done."""
    calls: Counter = Counter()
    handles = [
        g.register_forward_hook(lambda *_, name=name: calls.update([name]))
        for name, g in colorizer.generators.items()
    ]
    return calls, handles
