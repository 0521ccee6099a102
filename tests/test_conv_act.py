"""Convolutions fused with their activation (common.conv_act) keep every served model's output."""

import copy

import pytest
import torch
from torch import nn

import discriminators
import specialists
from common.conv_act import ConvAct, fuse_conv_activations
from common.fold import fold_batchnorm
from common.same_padding import SymmetricSameConv2d, unpad_same_convs
from router.net import create_router_net
from specialists.serving import for_inference
from specialists.timm_unet import SplitConv2d
from tests.test_fold import flat, randomise_norms

needs_onednn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN: nothing fuses"
)


def fused_count(model: nn.Module) -> int:
    return sum(isinstance(m, ConvAct) for m in model.modules())


def check_fused(model: nn.Module, *x: torch.Tensor) -> nn.Module:
    """Served without and with the fusion: the same outputs (to float32 rounding)."""
    unfused = unpad_same_convs(fold_batchnorm(copy.deepcopy(model)))
    fused = for_inference(for_inference(model))  # a second call changes nothing
    with torch.inference_mode():
        for w, g in zip(flat(unfused(*x)), flat(fused(*x)), strict=True):
            assert torch.allclose(w, g, atol=1e-5, rtol=1e-5), (w - g).abs().max()
    assert fused_count(fused) > 0
    assert not any(isinstance(m.conv, ConvAct) for m in fused.modules() if isinstance(m, ConvAct))
    return fused


@needs_onednn
def test_the_router_generator_and_discriminator_keep_their_outputs() -> None:
    torch.manual_seed(0)
    generator = randomise_norms(specialists.create_model("unet_effnet_lite0", pretrained=False))
    served = check_fused(generator, torch.rand(2, 1, 64, 80) * 2 - 1)
    wrapped = {type(m.conv) for m in served.modules() if isinstance(m, ConvAct)}
    assert wrapped == {nn.Conv2d, SplitConv2d, SymmetricSameConv2d}  # each kind fuses
    router = create_router_net("effnet_lite0_router", num_domains=3, pretrained=False)
    router = randomise_norms(router)
    check_fused(router, torch.rand(2, 1, 128, 128) * 2 - 1)
    judge = randomise_norms(discriminators.create_model("patchgan", ndf=8))
    check_fused(judge, torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 2, 64, 64) * 2 - 1)


@needs_onednn
def test_only_dense_convolutions_that_feed_the_activation_are_fused() -> None:
    """Depthwise convolutions stay apart (slower fused); so does an activation that is a
    conv's neighbour outside a Sequential but not fed by it; a second call changes nothing."""

    class Apart(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.act(x))  # the activation comes first

    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU6(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.LeakyReLU(0.2),
        Apart(),
        nn.Conv2d(4, 4, 1),
        nn.Tanh(),
    ).eval()
    x = torch.randn(2, 2, 16, 16)
    with torch.inference_mode():
        want = model(x)
        fused = fuse_conv_activations(copy.deepcopy(model))
        assert fused_count(fused) == 1 and isinstance(fused[0], ConvAct)
        assert isinstance(fused[4].conv, nn.Conv2d) and isinstance(fused[6], nn.Tanh)
        assert torch.equal(fused(x), want)
        assert fused_count(fuse_conv_activations(fused)) == 1


def test_off_the_fast_path_it_runs_as_two_modules() -> None:
    """Under bfloat16 autocast (served generators on AMX CPUs) and with gradients the fused
    layer computes exactly what its two modules do."""
    torch.manual_seed(0)
    layer = ConvAct(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6()).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", torch.bfloat16), torch.inference_mode():
        got, want = layer(x), layer.act(layer.conv(x))
        assert got.dtype == torch.bfloat16 and torch.equal(got, want)
    out = layer(x.requires_grad_())
    out.sum().backward()
    assert x.grad is not None and torch.equal(out, layer.act(layer.conv(x)))
    with pytest.raises(ValueError, match="not an activation"):
        ConvAct(nn.Conv2d(3, 8, 3), nn.Tanh())
