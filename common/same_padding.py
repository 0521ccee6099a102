"""TensorFlow-"same" convolutions that do not pad a copy of their input: for serving.

timm's ``tf_`` models (the router's and the specialists' EfficientNet-Lite0) pad each
stride-2 input one more on the bottom and right than on the top and left (``Conv2dSame``),
which copies the whole activation and on a CPU costs more than the depthwise convolution
after it. A kernel with a zero row (or column) put in front, padded symmetrically, takes the
same sums: the zero taps add nothing. On a 2-core AVX2 CPU a generator pass got 2-2.5%
faster (``benchmarks/bench_runtimes.py``: ``served_fp32`` against ``split_fp32``) and the
mixed folder's outputs stayed byte-identical.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conv_act import conv_pointwise


class SymmetricSameConv2d(nn.Module):
    """A TensorFlow-"same" convolution computed without padding its input (see the module)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.padding != (0, 0) or conv.padding_mode != "zeros":
            raise ValueError(f"{conv} is not a TensorFlow-'same' convolution")
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        weight, padding = self.weight_and_padding(x)
        if padding is None:
            return conv(x)
        return F.conv2d(x, weight, conv.bias, conv.stride, padding, conv.dilation, conv.groups)

    @property
    def fusable(self) -> bool:
        """Whether ``common.conv_act`` fuses it with its activation (dense ones only)."""
        return self.conv.groups == 1

    def forward_fused(
        self, x: torch.Tensor, attr: str, scalars: list[float]
    ) -> torch.Tensor | None:
        """``act(self(x))`` in one oneDNN call (``common.conv_act``); None: not here."""
        weight, padding = self.weight_and_padding(x)
        if padding is None:
            return None
        return conv_pointwise(self.conv, x, attr, scalars, weight, padding)

    def weight_and_padding(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...] | None]:
        """The kernel (a zero tap in front where the padding is lopsided) and the symmetric
        padding that give the same-padded sums on ``x``; padding None: no such pair
        (a dilated kernel), use the padding convolution."""
        conv, weight, padding = self.conv, self.conv.weight, []
        for axis, size in enumerate(x.shape[-2:]):
            k, s, d = conv.kernel_size[axis], conv.stride[axis], conv.dilation[axis]
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            before, after = total // 2, total - total // 2
            if after != before:  # one zero tap in front makes it symmetric
                if d != 1:
                    return weight, None
                weight = F.pad(weight, (1, 0, 0, 0) if axis else (0, 0, 1, 0))
            padding.append(after)
        return weight, tuple(padding)


def unpad_same_convs(model: nn.Module) -> nn.Module:
    """``model`` with every timm ``Conv2dSame`` wrapped in :class:`SymmetricSameConv2d`, in
    place, for inference (call it after ``common.fold.fold_batchnorm``); a second call
    changes nothing."""
    from timm.layers import Conv2dSame  # only models that hold one need timm

    for parent in list(model.modules()):
        if isinstance(parent, SymmetricSameConv2d):
            continue  # already wrapped
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv2dSame):
                setattr(parent, name, SymmetricSameConv2d(child))
    return model
