import torch

import discriminators
import specialists
from specialists.checkpoint import load_checkpoint, read_config, save_checkpoint
from training.ship.export import main
from training.train_specialist import TrainConfig, train


def test_export_keeps_models_and_drops_training_state(photo_folder, tmp_path, capsys):
    run = tmp_path / "run"
    config = TrainConfig(
        data=str(photo_folder), out=str(run), domain="cool", arch="unet", size=32, batch_size=4,
        arch_args={"ngf": 8, "num_downs": 5}, steps=2, progress=False, num_val=4, threads=1,
    )  # fmt: skip
    train(config)
    out = tmp_path / "weights" / "cool.safetensors"
    assert main([str(run), "--out", str(out), "--half"]) == 0
    assert "the cool specialist at step 2" in capsys.readouterr().out
    g_run = specialists.load_generator(run / "checkpoint.safetensors")
    g_out = specialists.load_generator(out)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(g_out(x), g_run(x), atol=2e-2, rtol=0)
    d_run = discriminators.load_discriminator(run / "checkpoint.safetensors")
    d_out = discriminators.load_discriminator(out)
    ab = torch.rand(1, 2, 32, 32) * 2 - 1
    assert isinstance(d_out, type(d_run))
    torch.testing.assert_close(d_out(x, ab), d_run(x, ab), atol=2e-2, rtol=1e-2)
    assert out.stat().st_size < 0.6 * (run / "checkpoint.safetensors").stat().st_size


def test_export_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_export_records_the_lineage_of_a_run_begun_before_runs_recorded_it(photo_folder, tmp_path):
    settings = dict(
        data=str(photo_folder), domain="cool", arch="unet", size=32, batch_size=4,
        arch_args={"ngf": 8, "num_downs": 5}, steps=1, progress=False, num_val=4, threads=1,
    )  # fmt: skip
    train(TrainConfig(out=str(tmp_path / "start"), **settings))
    start = tmp_path / "start" / "checkpoint.safetensors"
    train(TrainConfig(out=str(tmp_path / "tuned"), init_from=str(start), **settings))
    checkpoint = tmp_path / "tuned" / "checkpoint.safetensors"
    tensors, config = load_checkpoint(checkpoint)
    del config["data"]["learnt_from"]  # as a run begun before fine-tunes recorded it
    save_checkpoint(checkpoint, tensors, config)
    out = tmp_path / "cool.safetensors"
    assert main([str(tmp_path / "tuned"), "--out", str(out)]) == 0
    expected = [{"root": str(photo_folder), "domain": "cool"}]
    assert read_config(out)["data"]["learnt_from"] == expected
