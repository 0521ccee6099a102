"""Folding batch norms into convolutions (common.fold) keeps every served model's output."""

import pytest
import torch
from torch import nn

import discriminators
import specialists
from common.fold import fold_batchnorm
from router.net import create_router_net


def randomise_norms(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, as training leaves them."""
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def flat(out: torch.Tensor | tuple | list) -> list[torch.Tensor]:
    return [out] if isinstance(out, torch.Tensor) else [t for o in out for t in flat(o)]


def check_folded(model: nn.Module, *x: torch.Tensor, complete: bool = True) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    with torch.no_grad():
        want, got = model(*x), folded(*x)
    for w, g in zip(flat(want), flat(got), strict=True):
        assert torch.allclose(w, g, atol=1e-4, rtol=1e-4), (w - g).abs().max()
    assert norms(folded) < norms(model)
    if complete:  # the served architectures: every norm follows a Conv2d
        assert norms(folded) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


@pytest.mark.parametrize("arch", ["unet_effnet_lite0", "unet_mobilenetv2"])
def test_served_generators_keep_their_output(arch: str) -> None:
    torch.manual_seed(0)
    model = randomise_norms(specialists.create_model(arch, pretrained=False))
    check_folded(model, torch.rand(2, 1, 64, 64) * 2 - 1)


def test_the_write_ups_unet_keeps_its_output() -> None:
    """Its transposed convolutions' norms stay (only Conv2d is folded); the rest fold."""
    torch.manual_seed(0)
    model = randomise_norms(specialists.create_model("unet", ngf=8, num_downs=5))
    check_folded(model, torch.rand(2, 1, 64, 64) * 2 - 1, complete=False)


@pytest.mark.parametrize("arch", ["patchgan", "multiscale_patchgan"])
def test_discriminators_keep_their_output(arch: str) -> None:
    torch.manual_seed(0)
    model = randomise_norms(discriminators.create_model(arch, ndf=8))
    l_norm, ab_norm = torch.rand(2, 1, 128, 128) * 2 - 1, torch.rand(2, 2, 128, 128) * 2 - 1
    check_folded(model, l_norm, ab_norm)


def test_router_keeps_its_logits_and_embedding() -> None:
    torch.manual_seed(0)
    net = create_router_net(
        "timm_router", backbone="tinynet_e", num_domains=3, pretrained=False, input_size=64
    )
    check_folded(randomise_norms(net), torch.rand(2, 1, 64, 64) * 2 - 1)


def test_a_norm_that_does_not_follow_a_convolution_stays() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
    randomise_norms(model)
    folded = fold_batchnorm(model)
    assert norms(folded) == 2  # neither norm sits right after a convolution
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(model(x), folded(x))


def test_training_mode_is_not_silently_folded_into_wrong_maths() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4)).train()
    randomise_norms(model)
    model.train()
    folded = fold_batchnorm(model)  # folding is an eval-mode operation: the copy is in eval
    assert not folded.training
    with torch.no_grad():
        assert torch.allclose(
            model.eval()(torch.ones(1, 3, 5, 5)), folded(torch.ones(1, 3, 5, 5)), atol=1e-5
        )


def test_in_place_folding_returns_the_model_itself_with_the_same_output() -> None:
    torch.manual_seed(0)
    model = randomise_norms(discriminators.create_model("patchgan", ndf=8))
    l_norm, ab_norm = torch.rand(1, 1, 64, 64) * 2 - 1, torch.rand(1, 2, 64, 64) * 2 - 1
    with torch.no_grad():
        want = model(l_norm, ab_norm)
        assert fold_batchnorm(model, inplace=True) is model and norms(model) == 0
        assert torch.allclose(model(l_norm, ab_norm), want, atol=1e-4, rtol=1e-4)
