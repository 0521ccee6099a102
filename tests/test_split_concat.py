"""Serving a U-Net decoder without its skip concatenations (specialists.timm_unet.SplitConv2d)
keeps the generator's output."""

import pytest
import torch
from torch import nn

import specialists
from common.fold import fold_batchnorm
from specialists.timm_unet import DecoderBlock, SplitConv2d, split_concats
from tests.test_fold import randomise_norms


def test_a_split_convolution_equals_the_convolution_of_the_concatenation() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(7, 5, 3, padding=1)
    x, skip = torch.randn(2, 4, 9, 11), torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        want = conv(torch.cat((x, skip), dim=1))
        got = SplitConv2d(conv, 4)((x, skip))
    assert torch.allclose(want, got, atol=1e-5)


@pytest.mark.parametrize("first", [0, 7])
def test_a_split_needs_channels_on_both_sides(first: int) -> None:
    with pytest.raises(ValueError, match="cannot split"):
        SplitConv2d(nn.Conv2d(7, 5, 3, padding=1), first)


@pytest.mark.parametrize("arch", ["unet_effnet_lite0", "unet_mobilenetv2"])
def test_a_folded_generator_split_for_serving_keeps_its_output(arch: str) -> None:
    torch.manual_seed(0)
    model = randomise_norms(specialists.create_model(arch, pretrained=False))
    served = fold_batchnorm(model)
    blocks = [m for m in served.modules() if isinstance(m, DecoderBlock)]
    split_concats(split_concats(served))  # a second call changes nothing
    served.to(memory_format=torch.channels_last)
    assert sum(isinstance(m, SplitConv2d) for m in served.modules()) == len(blocks) > 0
    x = (torch.rand(2, 1, 64, 96) * 2 - 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = model(x), served(x)
    assert torch.allclose(want, got, atol=1e-4), (want - got).abs().max()
