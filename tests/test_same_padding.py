"""TensorFlow-"same" convolutions served without a padded copy (common.same_padding) keep
the router's and the generators' outputs."""

import pytest
import torch
from timm.layers import Conv2dSame
from torch import nn

import specialists
from common.fold import fold_batchnorm
from common.same_padding import SymmetricSameConv2d, unpad_same_convs
from router.net import create_router_net
from tests.test_fold import randomise_norms


@pytest.mark.parametrize("kernel, stride", [(3, 2), (5, 2), (3, 1), (4, 1), (1, 2)])
@pytest.mark.parametrize("size", [(16, 20), (15, 21), (16, 17)])
def test_the_same_sums_at_every_size_parity(kernel, stride, size):
    torch.manual_seed(0)
    same = Conv2dSame(6, 6, kernel, stride=stride, groups=3).eval()
    x = torch.randn(2, 6, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = same(x), SymmetricSameConv2d(same)(x)
    assert want.shape == got.shape
    assert torch.allclose(want, got, atol=1e-5), (want - got).abs().max()


def test_a_convolution_with_its_own_padding_is_refused():
    with pytest.raises(ValueError, match="not a TensorFlow-'same' convolution"):
        SymmetricSameConv2d(nn.Conv2d(2, 2, 3, padding=1))


@pytest.mark.parametrize("build", ["router", "generator"])
def test_served_models_lose_every_padded_copy_and_keep_their_outputs(build):
    torch.manual_seed(0)
    if build == "router":
        model = create_router_net("effnet_lite0_router", num_domains=3, pretrained=False)
        x = torch.rand(2, 1, 64, 64) * 2 - 1
    else:
        model = specialists.create_model("unet_effnet_lite0", pretrained=False)
        x = torch.rand(2, 1, 64, 96) * 2 - 1
    model = randomise_norms(model)
    served = unpad_same_convs(unpad_same_convs(fold_batchnorm(model)))  # twice: no change
    wrapped = [m.conv for m in served.modules() if isinstance(m, SymmetricSameConv2d)]
    every = [m for m in served.modules() if isinstance(m, Conv2dSame)]
    assert len(wrapped) == len(every) == 5  # the stem and four stride-2 depthwise convs
    with torch.no_grad():
        want, got = model(x), served(x)
    for w, g in zip(*[(o,) if isinstance(o, torch.Tensor) else o for o in (want, got)]):
        assert torch.allclose(w, g, atol=1e-4), (w - g).abs().max()
