import pytest
import torch

import discriminators
import specialists
from router import create_router_net
from specialists.output import OUTPUT_CHANNELS, output_space, to_ab


def _generator(name: str) -> torch.nn.Module:
    if specialists.GENERATORS.accepts(name, "pretrained"):
        return specialists.create_model(name, pretrained=False)
    return specialists.create_model(name)


@pytest.mark.parametrize("name", specialists.list_models())
def test_generator_maps_l_to_ab(name):
    model = _generator(name).eval()
    size = model.stride
    with torch.no_grad():
        out = model(torch.rand(2, 1, size, size) * 2 - 1)
    # ab (2 channels) for most, sRGB (3) for an RGB baseline; to_ab gives ab for both
    assert out.shape == (2, OUTPUT_CHANNELS[output_space(model)], size, size)
    assert out.abs().max() <= 1.0
    assert to_ab(model, out).shape == (2, 2, size, size)
    assert model.spec["name"] == name


@pytest.mark.parametrize("name", discriminators.list_models())
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_gives_patch_logits(name, spectral_norm):
    model = discriminators.create_model(name, spectral_norm=spectral_norm).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 128, 128), torch.zeros(2, 2, 128, 128))
    # the 70x70 PatchGAN: three stride-2 convs and two stride-1 convs; a multi-scale one
    # gives a list, one such map per scale, each scale seeing the image at half the size
    scales = out if isinstance(out, list) else [out]
    assert scales[0].shape == (2, 1, 14, 14)
    assert [tuple(s.shape) for s in scales[1:]] == [(2, 1, 6, 6), (2, 1, 2, 2)][: len(scales) - 1]


def test_unet_depth_and_width_are_configurable():
    model = specialists.create_model("unet", ngf=8, num_downs=5)
    assert model.stride == 32
    assert model(torch.zeros(1, 1, 64, 96)).shape == (1, 2, 64, 96)
    wider = specialists.create_model("unet", ngf=16, num_downs=5)
    deeper = specialists.create_model("unet", ngf=8, num_downs=6)
    count = sum(p.numel() for p in model.parameters())
    assert 3.5 * count < sum(p.numel() for p in wider.parameters()) < 4.5 * count
    assert deeper.stride == 64 and sum(p.numel() for p in deeper.parameters()) > count


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="unet_effnet_lite0"):
        specialists.create_model("no_such_model")


def test_pretrained_encoder_is_imagenet_weights():
    from specialists.backbones import offline_weights_available

    if not offline_weights_available("tf_efficientnet_lite0"):
        pytest.skip("offline EfficientNet-Lite0 weights not installed")
    a = specialists.create_model("unet_effnet_lite0", pretrained=True)
    b = specialists.create_model("unet_effnet_lite0", pretrained=True)
    c = specialists.create_model("unet_effnet_lite0", pretrained=False)
    stem = "encoder.conv_stem.weight"
    torch.testing.assert_close(a.state_dict()[stem], b.state_dict()[stem])
    assert not torch.equal(a.state_dict()[stem], c.state_dict()[stem])


def test_spectral_norm_weights_get_the_pix2pix_init():
    torch.manual_seed(0)
    model = discriminators.create_model("patchgan", spectral_norm=True)
    first = model.model[0].parametrizations.weight.original
    assert abs(first.std().item() - 0.02) < 0.004


@pytest.mark.parametrize(
    "build, part, mean",
    [
        (lambda: _generator("unet_effnet_lite0"), "encoder", 0.5),  # EfficientNet-Lite: 0.5
        (lambda: _generator("unet_mobilenetv2"), "encoder", 0.485),
        (lambda: _generator("gamma"), "classifier", 0.485),
        (lambda: create_router_net("effnet_lite0_router", num_domains=3, pretrained=False),
         "backbone", 0.5),
    ],
)  # fmt: skip
def test_input_normalisation_is_the_backbones_own_and_not_saved(build, part, mean):
    """A model on a timm backbone normalises with that backbone's ImageNet mean and std,
    kept out of checkpoints."""
    model = build()
    cfg = getattr(model, part).pretrained_cfg
    assert model.mean.flatten().tolist() == pytest.approx(list(cfg["mean"]))
    assert model.std.flatten().tolist() == pytest.approx(list(cfg["std"]))
    assert model.mean.flatten()[0].item() == pytest.approx(mean)
    assert "mean" not in model.state_dict() and "std" not in model.state_dict()
