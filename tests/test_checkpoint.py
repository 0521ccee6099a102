import pickle

import pytest
import torch

import discriminators
import specialists
from specialists.checkpoint import (
    CheckpointError,
    read_config,
    save_checkpoint,
    save_model,
    with_prefix,
)


def _forbid_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint must load without unpickling")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_generator_round_trips_without_pickle(tmp_path, monkeypatch):
    model = specialists.create_model("unet", ngf=8, num_downs=5).eval()
    path = tmp_path / "g.safetensors"
    save_model(path, model, "generator", {"domain": "portrait"})
    _forbid_pickle(monkeypatch)
    loaded = specialists.load_generator(path)
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert read_config(path)["domain"] == "portrait"
    assert (tmp_path / "g.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]


def test_generator_and_discriminator_share_a_file(tmp_path):
    g = specialists.create_model("unet_effnet_lite0", pretrained=False).eval()
    d = discriminators.create_model("patchgan", spectral_norm=True).eval()
    tensors = with_prefix(g.state_dict(), "generator") | with_prefix(
        d.state_dict(), "discriminator"
    )
    config = {"models": {"generator": g.spec, "discriminator": d.spec}}
    save_checkpoint(tmp_path / "both.safetensors", tensors, config)
    d2 = discriminators.load_discriminator(tmp_path / "both.safetensors")
    g2 = specialists.load_generator(tmp_path / "both.safetensors")
    l_norm, ab = torch.rand(1, 1, 64, 64), torch.rand(1, 2, 64, 64)
    torch.testing.assert_close(d2(l_norm, ab), d(l_norm, ab))
    torch.testing.assert_close(g2(l_norm), g(l_norm))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_broken_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        specialists.load_generator(path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        specialists.load_generator(tmp_path / "nope.safetensors")
