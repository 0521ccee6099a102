"""The write-up's baselines (beta, gamma, Pix2Pix in RGB) and the proposed improvements
(self-attention, multi-scale PatchGAN, feature matching), beyond the registry shape tests
of test_models.py."""

import csv

import pytest
import torch
import torch.nn.functional as F

import discriminators
import specialists
from common.lab import join_lab, split_lab
from specialists.attention import SelfAttention2d
from specialists.autoencoder import FusionEncoderDecoder
from specialists.output import output_space, predict_ab, to_ab
from training.losses import gan_loss, halves, judged_beside_real, matched_features
from training.train_specialist import TrainConfig, train


def test_rgb_unet_output_converts_back_to_the_photo():
    model = specialists.create_model("unet_rgb", ngf=8, num_downs=5)
    assert output_space(model) == "rgb"
    rgb = torch.rand(2, 3, 32, 32) * 0.9 + 0.05
    perfect = rgb * 2 - 1  # what an RGB model that got the photo exactly right outputs
    l_norm, ab = split_lab(rgb)
    torch.testing.assert_close(to_ab(model, perfect), ab, atol=1e-5, rtol=0)
    torch.testing.assert_close(join_lab(l_norm, to_ab(model, perfect)), rgb, atol=1e-4, rtol=0)


def test_rgb_conversion_keeps_gradients_and_ab_outputs_pass_through():
    rgb_model = specialists.create_model("unet_rgb", ngf=8, num_downs=5)
    output = (torch.rand(1, 3, 8, 8) * 1.8 - 0.9).requires_grad_()
    to_ab(rgb_model, output).abs().sum().backward()
    assert torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0
    lab_model = specialists.create_model("unet", ngf=8, num_downs=5)
    ab = torch.rand(1, 2, 8, 8)
    assert to_ab(lab_model, ab) is ab


@pytest.fixture(scope="module")
def gamma():
    """The registered gamma's class, small and with a 64 px classifier input (fast)."""
    torch.manual_seed(0)
    return FusionEncoderDecoder(pretrained=False, ngf=8, classifier_size=64)


def test_gamma_output_depends_on_the_classifier_features(gamma):
    # train mode: fresh batch norms in eval mode pass on only a faint signal at init
    gamma.train()
    l_norm = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        features = gamma.global_features(l_norm)
        assert features.shape == (2, gamma.feature_dim) == (2, 1280)
        default = gamma(l_norm)
        torch.testing.assert_close(gamma(l_norm, fusion_features=features), default)
        swapped = gamma(l_norm, fusion_features=features.flip(0))
    assert (swapped - default).abs().max() > 1e-2


def test_gamma_classifier_is_frozen_and_its_features_are_what_is_fused(gamma):
    gamma.train()
    assert not gamma.classifier.training  # its batch-norm statistics are ImageNet's
    assert not any(p.requires_grad for p in gamma.classifier.parameters())
    assert all(p.requires_grad for p in gamma.project.parameters())
    l_norm = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        before = gamma(l_norm)
        saved = gamma.classifier.conv_stem.weight.clone()
        gamma.classifier.conv_stem.weight.mul_(-1.0)
        after = gamma(l_norm)
        gamma.classifier.conv_stem.weight.copy_(saved)
    assert (after - before).abs().max() > 1e-2


def test_beta_and_gamma_share_the_encoder_decoder_and_take_any_multiple_of_stride(gamma):
    beta = specialists.create_model("beta", ngf=8).eval()
    assert beta.stride == gamma.stride == 8
    assert beta(torch.zeros(1, 1, 16, 40)).shape == (1, 2, 16, 40)
    shared = {k: v.shape for k, v in beta.state_dict().items() if not k.startswith("fuse.")}
    own = gamma.state_dict()
    assert all(own[k].shape == shape for k, shape in shared.items())


def test_self_attention_starts_as_identity_and_sees_the_whole_map():
    torch.manual_seed(0)
    block = SelfAttention2d(16)
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block(x), x)  # gamma starts at 0
    with torch.no_grad():
        block.gamma.fill_(1.0)
    y = x.clone()
    y[..., 0, 0] += 1.0
    # one corner changed, the opposite corner's output moves: no convolution does that
    assert (block(y) - block(x))[..., 7, 7].abs().max() > 1e-4


def _attention_input_shape(model: torch.nn.Module, *inputs: torch.Tensor) -> tuple:
    shapes = []
    blocks = [m for m in model.modules() if isinstance(m, SelfAttention2d)]
    assert len(blocks) == 1
    handle = blocks[0].register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    with torch.no_grad():
        model.eval()(*inputs)
    handle.remove()
    return shapes[0]


def test_attention_flags_put_one_block_at_one_eighth_of_the_input():
    l_norm, ab = torch.zeros(1, 1, 64, 64), torch.zeros(1, 2, 64, 64)
    unet = specialists.create_model("unet", ngf=8, num_downs=5, attention=True)
    assert _attention_input_shape(unet, l_norm) == (1, 32, 8, 8)  # ngf * 4 channels
    effnet = specialists.create_model("unet_effnet_lite0", pretrained=False, attention=True)
    assert _attention_input_shape(effnet, l_norm) == (1, 96, 8, 8)
    patchgan = discriminators.create_model("patchgan", ndf=8, attention=True)
    assert _attention_input_shape(patchgan, l_norm, ab) == (1, 32, 8, 8)  # ndf * 4
    plain = [
        specialists.create_model("unet", ngf=8, num_downs=5),
        discriminators.create_model("patchgan", ndf=8),
        discriminators.create_model("multiscale_patchgan", ndf=8),
    ]
    assert not any(isinstance(m, SelfAttention2d) for p in plain for m in p.modules())


@pytest.mark.parametrize(
    "name, kwargs",
    [("unet", {"ngf": 8, "num_downs": 5}), ("unet_effnet_lite0", {"pretrained": False})],
)
def test_attention_generator_is_the_plain_one_until_it_learns_to_attend(name, kwargs):
    torch.manual_seed(0)
    plain = specialists.create_model(name, **kwargs).eval()
    with_sa = specialists.create_model(name, attention=True, **kwargs).eval()
    result = with_sa.load_state_dict(plain.state_dict(), strict=False)
    attention_keys = ("query.weight", "key.weight", "value.weight", "gamma")
    assert not result.unexpected_keys  # the plain model's weights all keep their names
    assert len(result.missing_keys) == 4
    assert all(k.endswith(attention_keys) for k in result.missing_keys)
    l_norm = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(with_sa(l_norm), plain(l_norm))


def test_multiscale_patchgan_judges_pooled_copies_with_its_own_weights():
    torch.manual_seed(0)
    d = discriminators.create_model("multiscale_patchgan", num_scales=3, ndf=8).eval()
    l_norm, ab = torch.randn(1, 1, 96, 96), torch.randn(1, 2, 96, 96)
    with torch.no_grad():
        out = d(l_norm, ab)
        assert [tuple(o.shape) for o in out] == [(1, 1, 10, 10), (1, 1, 4, 4), (1, 1, 1, 1)]

        def pool(x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)

        torch.testing.assert_close(out[1], d.scales[1](pool(l_norm), pool(ab)))
    first_convs = [s.model[0].weight for s in d.scales]
    assert not torch.equal(first_convs[0], first_convs[1])
    with pytest.raises(ValueError, match="num_scales"):
        d(torch.zeros(1, 1, 32, 32), torch.zeros(1, 2, 32, 32))


def test_gan_loss_averages_over_scales_and_halves_splits_each_scale():
    torch.manual_seed(0)
    logits = [torch.randn(4, 1, 6, 6), torch.randn(4, 1, 2, 2)]
    for mode in ("vanilla", "lsgan"):
        expected = (gan_loss(logits[0], True, mode) + gan_loss(logits[1], True, mode)) / 2
        torch.testing.assert_close(gan_loss(logits, True, mode), expected)
    fake, real = halves(logits)
    assert torch.equal(fake[1], logits[1][:2]) and torch.equal(real[0], logits[0][2:])
    single = torch.randn(4, 1, 3, 3)
    assert torch.equal(halves(single)[1], single[2:])


def test_a_batch_norm_discriminator_judges_fakes_differently_alone_and_beside_real_photos():
    torch.manual_seed(0)
    d = discriminators.create_model("patchgan", ndf=8).train()  # batch norm, as in training
    l_norm, real = torch.rand(4, 1, 64, 64) * 2 - 1, torch.rand(4, 2, 64, 64) - 0.5
    fake = 0.2 * real  # the pale L1 hedge
    beside = judged_beside_real(d, l_norm, fake, real)
    stacked = d(torch.cat((l_norm, l_norm)), torch.cat((fake, real)))
    torch.testing.assert_close(beside, halves(stacked)[0])
    assert (beside - d(l_norm, fake)).abs().mean() > 0.05  # alone: another discriminator


def test_every_discriminator_call_of_an_adversarial_step_sees_fakes_beside_real_photos():
    from training.specialist_config import TrainConfig
    from training.specialist_state import Nets
    from training.train_specialist import train_step

    torch.manual_seed(0)
    generator = specialists.create_model("unet", ngf=8, num_downs=5)
    d = discriminators.create_model("patchgan", ndf=8)
    nets = Nets(
        generator, d, torch.optim.Adam(generator.parameters()), torch.optim.Adam(d.parameters())
    )
    batches = []
    d.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    rgb = torch.rand(3, 3, 64, 64)
    losses = train_step(nets, generator, d, rgb, TrainConfig(data="x", out="y"), adversarial=True)
    assert batches == [6, 6] and {"loss_d", "loss_g_gan"} <= set(losses)


@pytest.mark.parametrize(
    "name, kwargs",
    [("patchgan", {"ndf": 8}), ("multiscale_patchgan", {"ndf": 8, "num_scales": 2})],
)
def test_feature_matching_is_zero_for_the_truth_and_pulls_a_fake_towards_it(name, kwargs):
    torch.manual_seed(0)
    d = discriminators.create_model(name, **kwargs).eval()
    l_norm, real = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 2, 64, 64) - 0.5
    _, same = matched_features(d, l_norm, real, real)
    assert same.item() == 0.0
    fake = (real + 0.3 * torch.randn_like(real)).requires_grad_()
    logits, loss = matched_features(d, l_norm, fake, real)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad.abs().sum() > 0
    own = d(l_norm, fake)
    for a, b in zip(logits, own if isinstance(own, list) else [own]):
        torch.testing.assert_close(a, b)


def test_training_loop_takes_an_rgb_generator_and_a_multiscale_discriminator(
    photo_folder, tmp_path
):
    run = tmp_path / "run"
    config = TrainConfig(
        data=str(photo_folder),
        out=str(run),
        domain="warm",
        size=32,
        batch_size=4,
        steps=3,
        warmup_steps=1,
        arch="unet_rgb",
        arch_args={"ngf": 8, "num_downs": 5},
        disc="multiscale_patchgan",
        disc_args={"ndf": 8, "num_scales": 2, "n_layers": 2},
        feature_matching=1.0,
        log_every=1,
        eval_every=3,
        num_val=4,
        threads=1,
        progress=False,
    )
    train(config)
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [bool(r["loss_g_fm"]) for r in rows] == [False, True, True]
    assert float(rows[-1]["loss_d"]) > 0 and float(rows[-1]["val_psnr"]) > 0
    generator = specialists.load_generator(run / "checkpoint.safetensors")
    assert output_space(generator) == "rgb"
    assert predict_ab(generator, torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
