"""The colour recipes: Zhang et al.'s ab bins, the colourfulness term, and the
comparison that trains today's recipe and both alternatives side by side."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import specialists
from common.lab import denormalize_ab, join_lab, rgb_to_lab, split_lab
from specialists.checkpoint import read_config
from specialists.output import output_space, predict_ab, to_ab
from training.colour_bins import CELLS, GRID, ab_histogram, fit_bins, head_from_ab, soft_encode
from training.compare import RECIPES, SYSTEMS, chosen_systems, compare, parse_args
from training.losses import colourfulness_shortfall, rebalanced_cross_entropy
from training.ship.export import export_run
from training.ship.model_cards import specialist_card
from training.specialist_state import build_models, load_matching
from training.train_specialist import TrainConfig, UsageError, train

TINY = {"arch": "unet", "arch_args": {"ngf": 8, "num_downs": 5}, "size": 32, "batch_size": 4}


def _config(data, out, **overrides) -> TrainConfig:
    settings = dict(TINY, data=str(data), out=str(out), domain="warm", progress=False)
    settings |= dict(log_every=1, eval_every=4, checkpoint_every=2, num_val=4, threads=1)
    return TrainConfig(**(settings | overrides))


def _colourful_photos(count: int = 4, size: int = 32) -> torch.Tensor:
    """Smooth photos of many hues and saturations (every corner of the ab plane)."""
    torch.manual_seed(0)
    coarse = torch.rand(count, 3, 4, 4)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")


def _bin_model(rgb: torch.Tensor, **kwargs) -> torch.nn.Module:
    bins = fit_bins(ab_histogram(rgb), len(rgb))
    model = specialists.create_model("unet", ngf=8, num_downs=5, num_bins=len(bins.centres))
    model.bins.centres.copy_(bins.centres)
    model.bins.weights.copy_(bins.weights)
    return model


def test_a_bin_model_declares_its_output_and_decodes_to_normalised_ab():
    rgb = _colourful_photos()
    model = _bin_model(rgb)
    assert output_space(model) == "bins"
    with torch.no_grad():
        logits = model(split_lab(rgb)[0])
    assert logits.shape[1] == len(model.bins.centres)  # one logit per bin, no tanh
    assert float(logits.abs().max()) > 0 and not torch.equal(logits, logits.tanh())
    ab = to_ab(model, logits)
    assert ab.shape == (4, 2, 32, 32) and float(ab.abs().max()) <= 1.0


def test_soft_encoding_then_annealed_mean_gives_back_the_colours():
    rgb = _colourful_photos()
    _, ab = split_lab(rgb)
    model = _bin_model(rgb)
    index, weight = soft_encode(ab, model.bins.centres)
    assert index.shape == weight.shape == (4, 5, 32, 32)
    torch.testing.assert_close(weight.sum(dim=1), torch.ones(4, 32, 32))
    # logits whose softmax is the soft encoding, decoded at a low temperature: the nearest bin
    target = torch.zeros(4, len(model.bins.centres), 32, 32).scatter(1, index, weight)
    logits = target.clamp_min(1e-12).log()
    errors = {}
    for temperature in (1.0, 0.38, 0.05):
        model.bins.temperature = temperature
        decoded = to_ab(model, logits)
        errors[temperature] = (denormalize_ab(decoded - ab)).norm(dim=1)
    assert float(errors[1.0].mean()) < 3.0  # the soft encoding's mean is close to the truth
    assert float(errors[0.05].max()) <= GRID / 2**0.5 + 0.01  # the nearest bin: within half a cell
    assert float(errors[0.38].mean()) < 4.0


def test_the_prior_and_the_rebalancing_weights():
    rgb = _colourful_photos()
    counts = ab_histogram(rgb)
    assert counts.shape == (CELLS * CELLS,) and counts.sum() == rgb[:, 0].numel()
    bins = fit_bins(counts, len(rgb))
    assert len(bins.centres) == int((counts > 0).sum())  # bins only where the photos have pixels
    assert torch.equal(bins.centres, (bins.centres / GRID).round() * GRID)  # a grid of 10
    lab = rgb_to_lab(rgb)
    assert float(bins.centres.abs().max()) <= float(lab[:, 1:].abs().max()) + GRID
    assert float(bins.prior.sum()) == pytest.approx(1.0)
    assert float((bins.prior * bins.weights).sum()) == pytest.approx(1.0)  # E_p[w] = 1
    # w ~ 1 / (0.5 p + 0.5 / Q): rarer bins weigh more, and no weight above 2 Q times the least
    order = bins.prior.argsort()
    assert torch.all(bins.weights[order][1:] <= bins.weights[order][:-1] + 1e-6)
    q = len(bins.centres)
    expected = 1.0 / (0.5 * bins.prior + 0.5 / q)
    torch.testing.assert_close(bins.weights, expected / (bins.prior * expected).sum())


def test_the_rebalanced_cross_entropy_falls_over_a_few_steps():
    rgb = _colourful_photos()
    l_norm, ab = split_lab(rgb)
    model = _bin_model(rgb)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(20):
        loss = rebalanced_cross_entropy(model(l_norm), ab, model.bins)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    # the decoding is differentiable: an ab loss (the GAN term's path) reaches the weights
    model.zero_grad()
    to_ab(model, model(l_norm)).abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_a_bin_run_saves_exports_loads_and_resumes_exactly(photo_folder, tmp_path, capsys):
    common = dict(steps=4, warmup_steps=1, output_space="bins", bins_temperature=0.3)
    train(_config(photo_folder, tmp_path / "straight", **common))
    assert "ab bins hold the pixels of 16 training crops" in capsys.readouterr().out
    train(_config(photo_folder, tmp_path / "resumed", stop_at=2, **common))
    train(_config(photo_folder, tmp_path / "resumed", **common))
    a = load_file(tmp_path / "straight" / "checkpoint.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and "generator.bins.centres" in a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    config = json.loads((tmp_path / "straight" / "checkpoint.json").read_text())
    assert config["data"]["colour_bins"]["photos"] == 16
    assert "loss_cls" in (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[0]

    exported = tmp_path / "warm.safetensors"
    export_run(tmp_path / "straight", exported)
    run_model = specialists.load_generator(tmp_path / "straight" / "checkpoint.safetensors")
    served = specialists.load_generator(exported)
    assert output_space(served) == "bins" and served.bins.temperature == 0.3
    assert torch.equal(served.bins.centres, a["generator.bins.centres"])
    assert torch.equal(served.bins.weights, a["generator.bins.weights"])
    l_norm = split_lab(_colourful_photos())[0]
    with torch.no_grad():
        torch.testing.assert_close(
            predict_ab(served, l_norm), predict_ab(run_model, l_norm), rtol=0, atol=0
        )
    card = specialist_card(exported, None)  # the model card says what it is and how it learnt
    assert "one logit per ab bin out" in card and "annealed mean at T 0.3" in card
    assert "rebalanced cross-entropy" in card and "L1 x" not in card


def test_a_changed_bin_setting_is_refused_on_resume(photo_folder, tmp_path):
    run = tmp_path / "run"
    train(_config(photo_folder, run, steps=1, output_space="bins"))
    with pytest.raises(UsageError, match="--bins-temperature 0.38 -> 0.5"):
        train(_config(photo_folder, run, steps=2, output_space="bins", bins_temperature=0.5))
    with pytest.raises(UsageError, match="--output-space bins -> ab"):
        train(_config(photo_folder, run, steps=2))


def test_warm_start_of_a_bin_model_skips_only_the_head(photo_folder, capsys):
    start = "weights/specialists/general.safetensors"
    config = _config(photo_folder, "", arch="unet_effnet_lite0", arch_args={})
    config.init_from, config.output_space, config.bins_photos = start, "bins", 8
    photos = sorted((photo_folder / "train" / "warm").iterdir())
    generator, discriminator, made = build_models(config, photos)
    out = capsys.readouterr().out
    assert "but head.weight [2, 24, 3, 3] -> [" in out and ", head.bias [2] -> [" in out
    assert "new: bins.centres, bins.weights" in out
    assert made["colour_bins"]["photos"] == 8
    source = specialists.load_generator(start)
    kept = source.state_dict()
    own = generator.state_dict()
    differ = sorted(k for k in own if k not in kept or not torch.equal(own[k], kept[k]))
    assert differ == ["bins.centres", "bins.weights", "head.bias", "head.weight"]
    assert own["head.weight"].shape[0] == len(generator.bins.centres) == made["colour_bins"]["bins"]
    # the new head starts from the log prior (the prior's colours), not from zero (every bin's)
    assert float(own["head.bias"].exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert config.arch == "unet_effnet_lite0" and output_space(generator) == "bins"


def test_an_architecture_that_cannot_predict_bins_is_a_usage_error(photo_folder, tmp_path):
    config = _config(photo_folder, tmp_path / "run", steps=1, output_space="bins", arch="beta")
    with pytest.raises(UsageError, match="beta cannot predict bins; use one of .*unet_effnet"):
        train(config)


def test_the_colourfulness_term_is_zero_on_the_truth_and_positive_on_grey():
    rgb = _colourful_photos()
    l_norm, ab = split_lab(rgb)
    truth = join_lab(l_norm, ab)
    assert float(colourfulness_shortfall(truth, truth)) == 0.0
    more = join_lab(l_norm, (ab * 1.5).clamp(-1, 1))
    assert float(colourfulness_shortfall(more, truth)) == 0.0  # more colourful: no penalty
    grey_ab = (ab * 0.01).requires_grad_(True)
    shortfall = colourfulness_shortfall(join_lab(l_norm, grey_ab), truth)
    assert shortfall.item() > 10.0
    shortfall.backward()
    assert bool(torch.isfinite(grey_ab.grad).all()) and float(grey_ab.grad.abs().sum()) > 0
    exactly_grey = join_lab(l_norm, torch.zeros_like(ab))
    assert float(colourfulness_shortfall(exactly_grey, truth)) > 10.0


def test_the_colourfulness_weight_trains_and_logs_its_term(photo_folder, tmp_path):
    run = tmp_path / "run"
    train(_config(photo_folder, run, steps=2, colourfulness_weight=0.2))
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("loss_g_colour")
    assert all(float(row.split(",")[column]) >= 0 for row in rows) and len(rows) == 2


def test_compare_trains_the_three_recipes_from_one_start_and_scores_holdout(photo_folder, tmp_path):
    start = tmp_path / "start"
    train(_config(photo_folder, start, steps=1))
    holdout = photo_folder / "holdout" / "warm"
    holdout.mkdir(parents=True)
    for path in sorted((photo_folder / "val" / "warm").iterdir())[:3]:
        shutil.copy(path, holdout / path.name)
    base = _config(
        photo_folder,
        "",
        steps=2,
        warmup_steps=1,
        val_split="holdout",
        init_from=str(start / "checkpoint.safetensors"),
        bins_photos=8,
    )
    systems = {name: SYSTEMS[name] for name in RECIPES}
    report = tmp_path / "report"
    rows = compare(
        systems, base, tmp_path / "runs", report, num_val=10, grid_photos=2, temperatures=[1.0]
    )
    names = ["grayscale input", "l1gan", "zhang", "zhang T 1", "zhang_abhead"]
    names += ["zhang_abhead T 1", "colourful"]
    assert [r["system"] for r in rows] == names
    assert rows[3]["psnr"] != rows[2]["psnr"]  # another decoding of the same model
    for row in rows:
        assert row["images"] == 3 if row["system"] != "grayscale input" else True
        assert row["psnr"] > 0 and row["brown_share_true"] is not None
        assert row["psnr_gray"] == pytest.approx(rows[0]["psnr"])
    assert rows[0]["brown_share"] is None  # grey has no visible chroma
    assert all(0.0 <= r["brown_share"] <= 1.0 for r in rows[1:] if r["brown_share"] is not None)
    zhang = load_file(tmp_path / "runs" / "zhang" / "checkpoint.safetensors")
    assert "generator.bins.centres" in zhang
    settings = {
        n: json.loads((tmp_path / "runs" / n / "checkpoint.json").read_text())["train"]
        for n in RECIPES
    }
    assert {s["output_space"] for s in settings.values()} == {"ab", "bins"}
    assert (
        settings["zhang_abhead"]["bins_head"] == "ab" and settings["zhang"]["bins_head"] == "prior"
    )
    assert settings["colourful"]["colourfulness_weight"] > 0
    assert all(s["arch_args"] == {"ngf": 8, "num_downs": 5} for s in settings.values())
    assert all(s["val_split"] == "holdout" for s in settings.values())
    table = (report / "table.md").read_text()
    assert "brown share" in table and "gray PSNR" in table and "zhang" in table
    # a bigger budget resumes the warm-started bin run (its architecture is the start's)
    compare({"zhang": SYSTEMS["zhang"]}, replace(base, steps=3), tmp_path / "runs", report)
    assert read_config(tmp_path / "runs" / "zhang" / "checkpoint.safetensors")["step"] == 3


def test_the_recipes_run_only_when_named():
    assert not set(RECIPES) & set(chosen_systems(None)) and "effnet_unet" in chosen_systems(None)
    assert list(chosen_systems("l1gan, zhang,colourful")) == ["l1gan", "zhang", "colourful"]


def test_bin_temperatures_parse_and_bad_ones_are_refused(tmp_path, capsys):
    argv = ["--data", str(tmp_path), "--out", str(tmp_path), "--steps", "1"]
    assert parse_args([*argv, "--bins-temperatures", "0.2,0.6"]).bins_temperatures == (0.2, 0.6)
    assert parse_args(argv).bins_temperatures == ()
    with pytest.raises(SystemExit):
        parse_args([*argv, "--bins-temperatures", "0,1"])
    assert "temperatures must be positive" in capsys.readouterr().err


def test_a_bin_head_made_from_an_ab_head_starts_at_its_colours():
    torch.manual_seed(0)
    ab_model = specialists.create_model("unet", ngf=8, num_downs=5).eval()
    with torch.no_grad():
        ab_model.output_layer.weight.mul_(50.0)  # colours well away from grey
    axis = torch.arange(-11, 12, dtype=torch.float32) * GRID
    centres = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).view(-1, 2)
    bin_model = specialists.create_model("unet", ngf=8, num_downs=5, num_bins=len(centres))
    skipped, fresh = load_matching(bin_model, ab_model.state_dict())
    assert [s.split()[0] for s in skipped] == ["model.model.3.weight", "model.model.3.bias"]
    assert fresh == ["bins.centres", "bins.weights"]
    bin_model.bins.centres.copy_(centres)
    head_from_ab(bin_model.output_layer, ab_model.output_layer, centres)
    bin_model.eval()
    l_norm = split_lab(_colourful_photos())[0]
    with torch.no_grad():
        want, got = denormalize_ab(ab_model(l_norm)), denormalize_ab(predict_ab(bin_model, l_norm))
    assert float(want.norm(dim=1).mean()) > 10.0  # the test is not about grey
    assert float((got - want).norm(dim=1).mean()) < 1.5
