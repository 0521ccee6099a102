import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import make_split_folder
from tests.test_files import hanging_writer, temps
from training.data import find_images, list_domains, scan_images
from training.train_specialist import TrainConfig, UsageError, main, parse_args, train

TINY = {"arch": "unet", "arch_args": {"ngf": 8, "num_downs": 5}, "size": 32, "batch_size": 4}


def _config(data, out, **overrides) -> TrainConfig:
    settings = dict(TINY, data=str(data), out=str(out), domain="warm", progress=False)
    settings |= dict(log_every=1, eval_every=4, checkpoint_every=4, num_val=4, threads=1)
    return TrainConfig(**(settings | overrides))


def _rows(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_l1_falls_over_a_few_steps(photo_folder, tmp_path):
    run = tmp_path / "run"
    train(_config(photo_folder, run, steps=24, warmup_steps=24, lr=2e-3, lr_decay_from=1.0))
    l1 = [float(r["loss_l1"]) for r in _rows(run)]
    assert len(l1) == 24
    assert np.mean(l1[-4:]) < 0.6 * np.mean(l1[:4])


def test_resume_is_exact(photo_folder, tmp_path):
    """N steps, stop, resume to 2N == 2N straight (CPU, fixed seed), GAN phase included."""
    common = dict(steps=8, warmup_steps=3, checkpoint_every=2)
    train(_config(photo_folder, tmp_path / "straight", **common))
    train(_config(photo_folder, tmp_path / "resumed", stop_at=4, **common))
    assert [int(r["step"]) for r in _rows(tmp_path / "resumed")][-1] == 4
    train(_config(photo_folder, tmp_path / "resumed", **common))
    a = load_file(tmp_path / "straight" / "checkpoint.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    assert any(k.startswith("optimizer_d.") for k in a)  # the discriminator did train
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert [r["step"] for r in _rows(tmp_path / "resumed")] == [str(s) for s in range(1, 9)]


def test_run_folder_holds_everything_to_watch(photo_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*_argv(photo_folder, run), "--steps", "4", "--warmup-steps", "2"]) == 0
    names = {p.name for p in run.iterdir()}
    assert {"checkpoint.safetensors", "checkpoint.json", "metrics.csv", "losses.png"} <= names
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["train_0000004.png", "val_0000004.png"]
    last = _rows(run)[-1]
    assert float(last["val_psnr"]) > 0 and float(last["val_colourfulness_true"]) > 0
    assert float(last["time"]) > 1.7e9  # wall clock in epoch seconds
    for folder in (run, run / "samples"):  # a run killed with SIGKILL mid-write
        killed = hanging_writer(folder / "x.png")
        killed.kill()
        killed.wait()
        assert len(temps(folder)) == 1
    assert main([*_argv(photo_folder, run), "--steps", "6"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert temps(run) == temps(run / "samples") == []  # the resumed run removed them


def test_resume_refuses_a_changed_model_or_data_setting(photo_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*_argv(photo_folder, run), "--steps", "2"]) == 0
    capsys.readouterr()
    narrower = _argv(photo_folder, run)
    narrower[narrower.index("ngf=8")] = "ngf=4"
    for argv, change in (
        (narrower, '--arch-arg {"ngf": 8, "num_downs": 5} -> {"ngf": 4, "num_downs": 5}'),
        ([*_argv(photo_folder, run), "--seed", "1"], "--seed 0 -> 1"),
        ([*_argv(photo_folder, run), "--batch-size", "2"], "--batch-size 4 -> 2"),
    ):
        assert main([*argv, "--steps", "4"]) == 2
        err = capsys.readouterr().err
        assert f"this run was started with different settings ({change})" in err, err
        assert "give the values it started with" in err and "Traceback" not in err
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 2  # untouched
    assert main([*_argv(photo_folder, run), "--steps", "4", "--lr", "1e-3"]) == 0  # extends it
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 4


def _argv(data, run):
    return [
        *("--data", str(data), "--domain", "warm", "--out", str(run), "--size", "32"),
        *("--batch-size", "4", "--arch", "unet", "--arch-arg", "ngf=8", "--arch-arg"),
        *("num_downs=5", "--eval-every", "4", "--num-val", "4", "--no-progress"),
    ]


def test_grayscale_and_unreadable_files_are_skipped_and_counted(photo_folder):
    folder = photo_folder / "train" / "warm"
    Image.new("L", (40, 40), 128).save(folder / "grey.png")
    Image.new("RGB", (40, 40), (90, 90, 90)).save(folder / "grey_rgb.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    result = scan_images(find_images(photo_folder, "train", "warm"), progress=False)
    assert len(result.usable) == 16
    assert sorted(p.name for p in result.grayscale) == ["grey.png", "grey_rgb.jpg"]
    assert sorted(p.name for p in result.unreadable) == ["empty.jpg", "notes.png"]


def test_plain_folder_of_images_holds_out_a_validation_share(tmp_path):
    from tests.conftest import make_photo

    rng = np.random.default_rng(1)
    for i in range(60):
        make_photo(rng, (180, 120, 40)).save(tmp_path / f"photo_{i:03d}.jpg")
    train_files = find_images(tmp_path, "train")
    val_files = find_images(tmp_path, "val")
    assert len(train_files) + len(val_files) == 60
    assert not set(train_files) & set(val_files)
    assert list_domains(tmp_path) == []
    assert find_images(tmp_path, "holdout") == val_files  # the plain layout's held-out share


def test_holdout_is_a_fixed_part_of_train_kept_by_name(tmp_path):
    make_split_folder(tmp_path, per_domain=(40, 2), size=16)
    train = find_images(tmp_path, "train", "warm")
    held = find_images(tmp_path, "holdout", "warm")
    assert [p.name for p in held] == ["warm_026.png"]  # ~6% of names, fixed by their hash
    assert set(held) < set(train) and not set(held) & set(find_images(tmp_path, "val", "warm"))


def test_domains_come_from_the_folders(photo_folder):
    assert list_domains(photo_folder) == ["cool", "warm"]


def test_bad_data_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(UsageError, match="no training images"):
        train(_config(tmp_path, tmp_path / "run", steps=1))
    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "missing" in capsys.readouterr().err


def test_size_must_fit_the_generator(photo_folder, tmp_path):
    with pytest.raises(UsageError, match="multiple of"):
        train(_config(photo_folder, tmp_path / "run", steps=1, size=40))


def test_arch_args_parse_as_json():
    config = parse_args(
        ["--data", "d", "--out", "o", "--arch-arg", "ngf=16", "--arch-arg", "norm=instance"]
    )
    assert config.arch_args == {"ngf": 16, "norm": "instance"}


def _plain_photos(folder, count):
    from tests.conftest import make_photo

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for i in range(count):
        make_photo(rng, (180, 120, 40), size=40).save(folder / f"photo_{i:03d}.jpg")
    return folder


def test_a_plain_folder_trains_the_named_domain_and_says_what_comes_next(tmp_path, capsys):
    from training.data import is_held_out
    from training.ship.export import main as export_main

    photos = _plain_photos(tmp_path / "mine", 6)
    assert not any(is_held_out(p) for p in photos.iterdir())  # 5% of 6 photos: none held out
    run = tmp_path / "run"
    argv = _argv(photos, run)
    argv[argv.index("warm")] = "portrait"
    assert main([*argv, "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "training the 'portrait' specialist on all its photos" in out
    assert "warning:" in out and "no validation photos" in out and "none of these 6" in out
    assert f"next: python -m training.ship.export {run} --out" in out
    assert "specialists/portrait.safetensors" in out
    weights = tmp_path / "weights"
    assert (
        export_main([str(run), "--out", str(weights / "specialists" / "portrait.safetensors")]) == 0
    )
    out = capsys.readouterr().out
    assert (
        "the portrait specialist at step 2" in out
        and "next: python -m training.ship.fit_chroma" in out
    )
    assert "None" not in out


def test_a_run_without_a_domain_is_named_after_its_exported_file(tmp_path, capsys):
    from serve.weights import locate_weights
    from training.ship.export import main as export_main

    photos = _plain_photos(tmp_path / "mine", 8)
    run = tmp_path / "run"
    argv = _argv(photos, run)
    del argv[argv.index("--domain") : argv.index("--domain") + 2]
    assert main([*argv, "--steps", "1"]) == 0
    assert "specialists/DOMAIN.safetensors" in capsys.readouterr().out
    weights = tmp_path / "weights"
    target = weights / "specialists" / "family.safetensors"
    assert export_main([str(run), "--out", str(target)]) == 0
    assert "the family specialist at step 1" in capsys.readouterr().out
    (weights / "router").mkdir()
    assert locate_weights(weights).domains == ["family"]  # not "holds the None specialist"


def test_a_missing_domain_folder_names_the_layouts(photo_folder, tmp_path, capsys):
    plain = tmp_path / "plain"
    for domain in ("cool", "warm"):
        _plain_photos(plain / domain, 2)
    for data in (plain, photo_folder):
        argv = _argv(data, tmp_path / "run")
        argv[argv.index("warm")] = "portrait"
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no 'portrait' domain folder (it has cool, warm)" in err
        assert "expected DIR/<domain>/*.jpg, DIR/train/<domain>/ + DIR/val/<domain>/" in err


def test_init_from_fine_tunes_a_trained_specialist(photo_folder, tmp_path):
    first = tmp_path / "first"
    train(_config(photo_folder, first, steps=4, warmup_steps=4, lr=2e-3))
    # a different architecture on the command line: the run takes the one it starts from
    tuned = tmp_path / "tuned"
    start = str(first / "checkpoint.safetensors")
    train(_config(photo_folder, tuned, steps=1, lr=0.0, arch_args={"ngf": 4}, init_from=start))
    a = load_file(first / "checkpoint.safetensors")
    b = load_file(tuned / "checkpoint.safetensors")
    weights = [k for k in a if k.startswith("generator.") and "running_" not in k]
    weights = [k for k in weights if "num_batches" not in k]  # batch-norm statistics move
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)  # lr 0: unchanged
    assert json.loads((tuned / "checkpoint.json").read_text())["step"] == 1  # from step 0
    # the same command resumes the fine-tune (its architecture is the starting specialist's)
    train(_config(photo_folder, tuned, steps=2, lr=0.0, arch_args={"ngf": 4}, init_from=start))
    assert json.loads((tuned / "checkpoint.json").read_text())["step"] == 2


def test_init_from_a_run_folder_starts_from_its_checkpoint(photo_folder, tmp_path):
    first = tmp_path / "first"
    train(_config(photo_folder, first, steps=2, warmup_steps=2, lr=2e-3))
    tuned = tmp_path / "tuned"
    train(_config(photo_folder, tuned, steps=1, lr=0.0, init_from=str(first)))
    a = load_file(first / "checkpoint.safetensors")
    b = load_file(tuned / "checkpoint.safetensors")
    weights = [k for k in a if k.startswith("generator.") and k.endswith(".weight")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)
    # the start's data is recorded, so the lineage outlives the start's file (and a resume)
    recorded = json.loads((tuned / "checkpoint.json").read_text())["data"]["learnt_from"]
    assert recorded == [{"root": str(photo_folder), "domain": "warm"}]
    (first / "checkpoint.safetensors").unlink()
    train(_config(photo_folder, tuned, steps=2, lr=0.0, init_from=str(first)))
    saved = json.loads((tuned / "checkpoint.json").read_text())
    assert saved["step"] == 2 and saved["data"]["learnt_from"] == recorded


def test_init_from_a_missing_file_is_a_usage_error(photo_folder, tmp_path):
    config = _config(photo_folder, tmp_path / "run", steps=1, init_from=str(tmp_path / "no.st"))
    with pytest.raises(UsageError, match="--init-from"):
        train(config)
