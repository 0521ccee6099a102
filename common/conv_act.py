"""Convolutions and the activation after them in one oneDNN call: the same outputs, one pass
over memory less.

A served model's ReLU6 after a convolution is a second pass over the convolution's whole
output; the biggest such maps (8 x 96 x 64 x 80 floats, 16 MB) are memory-bound, so the
clamp costs as much as the convolution. oneDNN applies it while writing the output instead
(``torch.ops.mkldnn._convolution_pointwise``, what ``torch.compile`` emits for the same
pattern on a CPU). Measured on 2 cores, batch 8, one thread: a generator pass 580-730 ->
513-520 ms, the router 134-137 -> 121 ms, the generator's output bit-identical
(README, "Two buckets at once").

Only dense convolutions (``groups == 1``) are fused: the depthwise ones ran slower fused.
ReLU, ReLU6 / Hardtanh and LeakyReLU are fused (exact on either path); tanh is not (another
implementation, other rounding). Off the fast path (not a CPU, not float32, under autocast,
with gradients, or a torch without oneDNN) the layer runs as two modules, as before.
"""

import torch
from torch import nn

from .fold import AfterFoldedNorm
from .same_padding import SymmetricSameConv2d


def _pointwise_op() -> object | None:
    """oneDNN's fused convolution, where this torch build has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


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


class ConvAct(nn.Module):
    """``act(conv(x))`` as one oneDNN call on the CPU in float32 (see the module)."""

    def __init__(self, conv: nn.Module, act: nn.Module) -> None:
        super().__init__()
        attr = _attr(act)
        if attr is None:
            raise ValueError(f"{act} is not an activation oneDNN fuses")
        self.conv, self.act = conv, act
        self.attr, self.scalars = attr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = _pointwise_op()
        fast = (
            op is not None
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not (torch.is_grad_enabled() and (x.requires_grad or _trains(self.conv)))
        )
        if not fast:
            return self.act(self.conv(x))
        conv = self.conv.conv if isinstance(self.conv, SymmetricSameConv2d) else self.conv
        weight, padding = conv.weight, conv.padding
        if isinstance(self.conv, SymmetricSameConv2d):
            weight, padding = self.conv.weight_and_padding(x)
            if padding is None:
                return self.act(self.conv(x))
        bias = conv.bias
        return op(
            x, weight, bias, padding, conv.stride, conv.dilation, conv.groups,
            self.attr, self.scalars, "",
        )  # fmt: skip


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _fusable_conv(module: nn.Module) -> bool:
    conv = module.conv if isinstance(module, SymmetricSameConv2d) else module
    return (
        type(conv) is nn.Conv2d
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


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
        for first, second in zip(names, names[1:]):
            conv, act = parent._modules[first], parent._modules[second]
            fed = isinstance(parent, nn.Sequential) or isinstance(act, AfterFoldedNorm)
            if fed and _fusable_conv(conv) and _attr(act) is not None:
                parent._modules[first] = ConvAct(conv, act)
                parent._modules[second] = nn.Identity()
    return model
