"""Convolutions and the activation after them in one oneDNN call: the same outputs, one pass
over memory less.

A served model's ReLU6 after a convolution is a second pass over the convolution's whole
output; the biggest such maps (8 x 96 x 64 x 80 floats, 16 MB) are memory-bound, so the
clamp costs as much as the convolution. oneDNN applies it while writing the output instead
(``torch.ops.mkldnn._convolution_pointwise``, what ``torch.compile`` emits for the same
pattern on a CPU). Measured on a 2-core AVX2 CPU, a generator batch of 8 on one thread (as
each serving worker runs) got 2-3% faster and on two threads no faster
(``benchmarks/bench_runtimes.py``: ``served_fp32`` against ``unpadded_fp32``); the mixed
folder's outputs stayed within one level of 255 (README, "Two buckets at once").

Only dense convolutions (``groups == 1``) are fused: the depthwise ones ran slower fused.
Wrapped convolutions fuse through their own ``forward_fused`` (``common.same_padding``'s
symmetric padding; ``specialists.timm_unet.SplitConv2d``, whose sum of two convolutions
becomes oneDNN's binary post-op).
ReLU, ReLU6 / Hardtanh and LeakyReLU are fused (exact on either path); tanh is not (another
implementation, other rounding). Off the fast path (not a CPU, not float32, under autocast,
with gradients, or a torch without oneDNN) the layer runs as two modules, as before.
"""

import torch
from torch import nn

from .fold import AfterFoldedNorm


def _pointwise_op() -> object | None:
    """oneDNN's fused convolution, where this torch build has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


POINTWISE_OP = _pointwise_op()  # looked up once, not on every fused layer's call


def _attr(module: nn.Module) -> tuple[str, list[float]] | None:
    """oneDNN's name and scalars for an activation module; None when it is not fused."""
    if isinstance(module, nn.Sequential) and len(module) == 1:
        module = module[0]
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 included
        return "hardtanh", [float(module.min_val), float(module.max_val)]
    if isinstance(module, nn.ReLU):
        return "relu", []
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", [float(module.negative_slope)]
    return None


def conv_pointwise(
    conv: nn.Conv2d,
    x: torch.Tensor,
    attr: str,
    scalars: list[float],
    weight: torch.Tensor | None = None,
    padding: tuple[int, ...] | None = None,
    add: torch.Tensor | None = None,
) -> torch.Tensor:
    """``act(conv(x) [+ add])`` in one oneDNN call, with ``conv``'s settings (``weight`` and
    ``padding`` replace its own where given)."""
    op = POINTWISE_OP
    weight = conv.weight if weight is None else weight
    padding = conv.padding if padding is None else padding
    settings = (padding, conv.stride, conv.dilation, conv.groups)
    if add is None:
        return op(x, weight, conv.bias, *settings, attr, scalars, "")
    return op.binary(x, add, weight, conv.bias, *settings, "add", None, attr, scalars, "")


class ConvAct(nn.Module):
    """``act(conv(x))`` as one oneDNN call on the CPU in float32 (see the module)."""

    def __init__(self, conv: nn.Module, act: nn.Module) -> None:
        super().__init__()
        attr = _attr(act)
        if attr is None:
            raise ValueError(f"{act} is not an activation oneDNN fuses")
        self.conv, self.act = conv, act
        self.attr, self.scalars = attr

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        lead = x[0] if isinstance(x, tuple) else x
        fast = (
            POINTWISE_OP is not None
            and lead.device.type == "cpu"
            and lead.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not (torch.is_grad_enabled() and (lead.requires_grad or _trains(self.conv)))
        )
        out = None
        if fast and isinstance(self.conv, nn.Conv2d):
            out = conv_pointwise(self.conv, x, self.attr, self.scalars)
        elif fast:
            out = self.conv.forward_fused(x, self.attr, self.scalars)
        return self.act(self.conv(x)) if out is None else out


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _fusable_conv(module: nn.Module) -> bool:
    """A dense convolution oneDNN can run as is, or a wrapper that says it can fuse."""
    if hasattr(module, "forward_fused"):
        return bool(getattr(module, "fusable", False))
    return (
        type(module) is nn.Conv2d
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _next_module(parent: nn.Module, names: list[str], i: int) -> str | None:
    """The child that takes child ``i``'s output: the next one, past an ``nn.Sequential``'s
    identities (a plain norm folded away leaves one between a convolution and its ReLU)."""
    j = i + 1
    if isinstance(parent, nn.Sequential):
        while j < len(names) and isinstance(parent._modules[names[j]], nn.Identity):
            j += 1
    return names[j] if j < len(names) else None


def fuse_conv_activations(model: nn.Module) -> nn.Module:
    """``model`` with each dense convolution and the activation it feeds as one
    :class:`ConvAct`, in place, for inference (after ``common.fold.fold_batchnorm``); a
    second call changes nothing.

    A pair is fused only where the convolution surely feeds the activation: neighbours in an
    ``nn.Sequential``, or a convolution and what remains of the norm folded into it.
    """
    for parent in list(model.modules()):
        if isinstance(parent, ConvAct):
            continue  # already fused
        names = list(parent._modules)
        for i, first in enumerate(names):
            second = _next_module(parent, names, i)
            if second is None:
                continue
            conv, act = parent._modules[first], parent._modules[second]
            fed = isinstance(parent, nn.Sequential) or isinstance(act, AfterFoldedNorm)
            if fed and _fusable_conv(conv) and _attr(act) is not None:
                parent._modules[first] = ConvAct(conv, act)
                parent._modules[second] = nn.Identity()
    return model
