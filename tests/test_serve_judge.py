"""The fallback judge: Platt scaling, the calibrated panel, calibrate_judge, weights checks."""

import json
import shutil

import pytest
import torch

import discriminators
from discriminators.scoring import (
    Judge,
    PlattScaling,
    contenders,
    fit_platt,
    load_calibration,
    realism_logits,
    roc_auc,
    save_calibration,
)
from serve import Colorizer, WeightsError, locate_weights
from serve.weights import default_weights_dir
from specialists.checkpoint import save_model
from tests.serve_support import (
    constant_generator,
    make_weights,
    monotone_discriminator,
    save_specialist,
)
from training.ship.calibrate_judge import ROUTER_WEIGHTS
from training.ship.calibrate_judge import main as calibrate_main


def test_platt_recovers_a_known_logistic():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(40000, generator=gen, dtype=torch.float64) * 3
    truth = torch.sigmoid(0.8 * scores - 1.2)
    labels = torch.rand(40000, generator=gen, dtype=torch.float64) < truth
    real, fake = scores[labels], scores[~labels]
    fitted = fit_platt(real, fake)
    # the fit balances the classes: undo that prior shift to compare with the truth
    prior = torch.log(torch.tensor(len(real) / len(fake))).item()
    assert fitted.slope == pytest.approx(0.8, rel=0.05)
    assert fitted.intercept + prior == pytest.approx(-1.2, abs=0.08)


def test_platt_stays_finite_when_classes_separate():
    fitted = fit_platt(torch.tensor([5.0, 6.0, 7.0]), torch.tensor([-3.0, -2.0, -1.0]))
    assert 0 < fitted.slope < 50 and abs(fitted.intercept) < 200
    assert fitted(torch.tensor([6.0])) > 0.7 and fitted(torch.tensor([-2.0])) < 0.3
    with pytest.raises(ValueError):
        fit_platt(torch.tensor([1.0]), torch.tensor([]))


def test_roc_auc():
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    assert roc_auc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5


def test_calibration_makes_loud_and_quiet_judges_comparable():
    """A judge with 20x larger logits decides alone until calibration puts it on scale."""
    loud, quiet = monotone_discriminator(+1.0, scale=20.0), monotone_discriminator(-1.0)
    l_norm = torch.zeros(1, 1, 32, 32)
    reddish = torch.tensor([0.3, 0.0]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    greenish = torch.tensor([-0.1, 0.0]).view(1, 2, 1, 1).expand(1, 2, 32, 32)
    raw = Judge({"loud": loud, "quiet": quiet})
    assert not raw.calibrated
    assert raw.score(l_norm, [reddish, greenish]).argmax().item() == 0  # loud wins
    calibration = {"loud": PlattScaling(1 / 20.0, 0.0), "quiet": PlattScaling(3.0, 0.0)}
    fair = Judge({"loud": loud, "quiet": quiet}, calibration)
    assert fair.calibrated
    scores = fair.score(l_norm, [reddish, greenish])
    assert scores.shape == (1, 2) and ((scores >= 0) & (scores <= 1)).all()
    assert scores.argmax().item() == 1  # now the quiet judge's strong opinion counts


def test_the_pick_weighs_realism_with_the_routers_belief():
    judge = Judge({"a": monotone_discriminator()})
    realism = torch.tensor([[0.6, 0.5], [0.6, 0.5]])  # candidate 0 looks a bit more real
    beliefs = torch.tensor([[0.3, 0.7], [0.5, 0.5]])  # the router leans to 1 on the first photo
    assert judge.pick(realism, beliefs).tolist() == [0, 0]  # weight 0: realism alone
    judge.router_weight = 1.0
    assert judge.pick(realism, beliefs).tolist() == [1, 0]  # a tie of beliefs leaves realism


def test_an_unscored_candidate_is_never_picked():
    judge = Judge({"a": monotone_discriminator()})
    realism = torch.tensor([[0.2, float("nan"), 0.1]])
    assert judge.pick(realism, torch.tensor([[0.2, 0.7, 0.1]])).tolist() == [0]


def test_contenders_are_the_candidates_that_could_still_win():
    """Realism is at most 1: with the favourite's realism r, candidate k can win only if
    weight * log(p_fav / p_k) <= -log r; at weight 0 every candidate can."""
    beliefs = torch.tensor([[0.50, 0.45, 0.05], [0.9, 0.05, 0.05]])
    favourite = torch.tensor([0, 0])
    realism = torch.tensor([0.5, 0.5])  # -log 0.5 = 0.69
    # weight 4: log(0.50/0.45) * 4 = 0.42 (can win), log(10) * 4 = 9.2 (cannot)
    assert contenders(realism, beliefs, favourite, 4.0).tolist() == [
        [True, True, False],
        [True, False, False],
    ]
    assert contenders(realism, beliefs, favourite, 0.0).all()
    assert contenders(torch.tensor([1.0, 1.0]), beliefs, favourite, 4.0).sum() == 2  # only a tie
    # what is pruned cannot be picked, whatever realism it would have had
    for other in torch.linspace(0.0, 1.0, 11):
        full = torch.tensor([[0.5, 0.5, float(other)], [0.5, float(other), float(other)]])
        judge = Judge({"a": monotone_discriminator()}, router_weight=4.0)
        assert judge.pick(full, beliefs)[1] == 0 and judge.pick(full, beliefs)[0] != 2


def test_a_photo_with_nothing_scored_gets_the_routers_favourite():
    """Serving scores nothing where no candidate could outvote the favourite: the pick is then
    the favourite, not the first column; scored rows are picked as before."""
    judge = Judge({"a": monotone_discriminator()}, router_weight=4.0)
    beliefs = torch.tensor([[0.1, 0.2, 0.7], [0.45, 0.1, 0.45]])
    nan = float("nan")
    realism = torch.tensor([[nan, nan, nan], [0.9, nan, 0.01]])
    assert judge.pick(realism, beliefs).tolist() == [2, 0]


def test_multiscale_discriminators_can_judge():
    multi = discriminators.create_model("multiscale_patchgan", num_scales=2, ndf=8, n_layers=2)
    raw = realism_logits(multi.eval(), torch.zeros(3, 1, 64, 64), torch.zeros(3, 2, 64, 64))
    assert raw.shape == (3,) and torch.isfinite(raw).all()
    judge = Judge({"multi": multi, "single": monotone_discriminator()})
    assert judge.score(torch.zeros(2, 1, 64, 64), [torch.zeros(2, 2, 64, 64)] * 3).shape == (2, 3)


def test_calibration_file_round_trip(tmp_path):
    save_calibration(
        tmp_path / "j.json", {"a": PlattScaling(2.0, -1.0)}, {"judges": {"a": {"auc": 0.9}}}
    )
    scalings, info = load_calibration(tmp_path / "j.json")
    assert scalings == {"a": PlattScaling(2.0, -1.0)} and info["judges"]["a"]["auc"] == 0.9
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a judge calibration"):
        load_calibration(tmp_path / "bad.json")


def test_calibrate_judge_writes_what_serving_trusts(tmp_path, photo_folder, capsys):
    domains = ("cool", "warm")
    colours = {"cool": (-0.2, -0.3), "warm": (0.3, 0.3)}
    weights = make_weights(tmp_path / "w", domains, colours)
    code = calibrate_main(
        ["--data", str(photo_folder), "--weights", str(weights), "--per-domain", "3",
         "--split", "val", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "PSNR of the judge's pick" in out
    data = json.loads((weights / "judge.json").read_text())
    assert set(data["judges"]) == set(domains) and data["selection"]["photos"] == 6
    fit = data["router_weight_fit"]  # fitted on the quarter of photos the router is least sure of
    assert data["router_weight"] in ROUTER_WEIGHTS and fit["photos"] == 2
    best = max(fit["psnr_by_weight"].values())
    assert fit["psnr_by_weight"][str(data["router_weight"])] == best
    for entry in data["judges"].values():
        assert {"slope", "intercept", "auc", "n_real", "n_fake"} <= set(entry)
        assert entry["n_real"] == 6 and entry["n_fake"] == 12
    sel = data["selection"]
    assert sel["psnr_oracle"] >= max(sel["psnr_judge_pick"], sel["psnr_own_domain_specialist"])
    colorizer = Colorizer.from_weights(weights)
    assert colorizer.judge.calibrated and colorizer.warnings == []
    # a specialist retrained after calibration makes it stale, and serving says so
    save_specialist(
        weights / "specialists" / "warm.safetensors", "warm", constant_generator((0.1, 0.1)),
        monotone_discriminator(),
    )  # fmt: skip
    assert any("fitted on other weights" in w for w in Colorizer.from_weights(weights).warnings)


def test_weights_folder_problems_are_named(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="no such weights folder"):
        locate_weights(tmp_path / "nope")
    (tmp_path / "w" / "specialists").mkdir(parents=True)
    with pytest.raises(WeightsError, match=r"missing router/ and specialists/\*\.safetensors"):
        locate_weights(tmp_path / "w")
    (tmp_path / "w" / "router").mkdir()
    save_model(
        tmp_path / "w" / "specialists" / "portrait.safetensors",
        constant_generator(None),
        "generator",
        {"domain": "portrait"},
    )
    with pytest.raises(WeightsError, match="portrait.safetensors: checkpoint has no discriminator"):
        locate_weights(tmp_path / "w")
    save_specialist(
        tmp_path / "w" / "specialists" / "portrait.safetensors", "landscape",
        constant_generator(None), monotone_discriminator(),
    )  # fmt: skip
    with pytest.raises(WeightsError, match="holds the 'landscape' specialist"):
        locate_weights(tmp_path / "w")
    monkeypatch.setenv("COLORIZER_WEIGHTS", str(tmp_path / "w"))
    assert default_weights_dir() == tmp_path / "w"


def test_broken_router_or_missing_specialist_is_a_weights_error(tmp_path):
    weights = make_weights(tmp_path / "w")
    (weights / "router" / "router.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="router.safetensors"):
        Colorizer.from_weights(weights)
    weights = make_weights(tmp_path / "v")
    (weights / "specialists" / "portrait.safetensors").unlink()
    with pytest.raises(WeightsError, match="specialists/portrait.safetensors is missing"):
        Colorizer.from_weights(weights)


def test_calibrate_judge_fits_on_what_serving_colours(tmp_path, photo_folder, monkeypatch):
    """The judge is fitted on the served pipeline's candidates and router beliefs
    (``Colorizer.predict`` with every specialist), not on a copy of it."""
    weights = make_weights(
        tmp_path / "w", ("cool", "warm"), {"cool": (-0.2, -0.3), "warm": (0.3, 0.3)}
    )
    served, predict = [], Colorizer.predict

    def spy(self, photos, domain=None, every=False):
        out = predict(self, photos, domain, every)
        served.extend(out if every else [])
        return out

    monkeypatch.setattr(Colorizer, "predict", spy)
    args = ["--data", str(photo_folder), "--weights", str(weights), "--per-domain", "2"]
    assert calibrate_main([*args, "--split", "val", "--no-progress"]) == 0
    assert len(served) == 4  # two photos per domain, each coloured as served
    assert all(set(p.candidates) == {"cool", "warm"} and p.decision for p in served)


def test_calibrate_judge_without_a_router_says_so(tmp_path, photo_folder, capsys):
    """The judge weighs the router's belief, so it is fitted after the router, as served."""
    weights = make_weights(
        tmp_path / "w", ("cool", "warm"), {"cool": (-0.2, -0.3), "warm": (0.3, 0.3)}
    )
    shutil.rmtree(weights / "router")
    args = ["--data", str(photo_folder), "--weights", str(weights), "--per-domain", "2"]
    assert calibrate_main([*args, "--split", "val", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "router" in err and "Traceback" not in err
    assert not (weights / "judge.json").exists()
