"""python -m training.evaluate on a tiny labelled set with small, real weights."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from serve import Colorizer, read_image
from serve.restraint import RESTRAINT_FILE, Restraint, save_restraint
from serve.weights import locate_weights, weights_fingerprints
from specialists.backbones import offline_weights_available
from specialists.metrics import psnr
from tests.conftest import make_split_folder
from tests.serve_support import make_weights
from training.evaluate import agreement, cli, scoring, targets
from training.evaluate import photos as evaluation_photos

DOMAINS = ("cool", "warm")  # make_split_folder's domains, so the router's too
# constant colours per specialist; the judge (falling with 'a') prefers cool's. The tiny
# random router sends these photos to warm, so the judge and argmax disagree, as they must
# for the tests to tell the two apart.
COLOURS = {"cool": (-0.2, -0.3), "warm": (0.4, 0.3)}
PER_DOMAIN = 4


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:  # overrides conftest's: these photos' domains
    return make_weights(tmp_path_factory.mktemp("weights"), DOMAINS, COLOURS, judge_sign=-1.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_split_folder(tmp_path_factory.mktemp("data"), per_domain=(1, PER_DOMAIN))


def run_cli(data: Path, weights: Path, out: Path, *extra: str) -> tuple[int, dict | None]:
    argv = [str(data), "--weights", str(weights), "--general", "cool", "--out", str(out)]
    code = cli.main([*argv, "--no-classifier", *extra])
    report = out / "evaluation.json"
    return code, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture(scope="module")
def report(data, weights, tmp_path_factory) -> dict:
    code, result = run_cli(data, weights, tmp_path_factory.mktemp("out"))
    assert code == 0
    return result


def test_report_has_every_system_domain_and_section(report):
    systems = {"grayscale", "general_only", "specialist:cool", "specialist:warm"}
    systems |= {"argmax", "fallback", "oracle"}
    assert set(report["systems"]) == systems
    for by_domain in report["systems"].values():
        assert set(by_domain) == {"cool", "warm", "overall"}
        assert by_domain["overall"]["photos"] == 2 * PER_DOMAIN
        assert {"psnr", "ssim", "colourfulness_gap_pct", "agreement"} <= set(by_domain["cool"])
    cross = report["cross_domain"]
    assert cross["specialists"] == ["cool", "warm"] and cross["domains"] == ["cool", "warm"]
    assert np.asarray(cross["psnr"]).shape == (2, 2)
    assert np.asarray(cross["colourfulness_gap"]).shape == (2, 2)
    assert report["photos"] == 2 * PER_DOMAIN and report["split"] == "val"
    assert report["size"] == 64 and report["general"] == "cool"
    assert {"routing", "below_threshold", "targets", "weights", "per_photo"} <= set(report)
    assert len(report["routing"]["confusion"]["matrix"]) == 2


def test_each_specialist_wins_on_its_own_domain(report):
    """The cross-domain matrix is laid out specialist x domain: the diagonal is best here."""
    psnr_ = np.asarray(report["cross_domain"]["psnr"])
    assert psnr_[0, 0] > psnr_[1, 0] and psnr_[1, 1] > psnr_[0, 1]


def test_grayscale_baseline_has_no_colour(report):
    for stats in report["systems"]["grayscale"].values():
        assert stats["colourfulness"] < 0.5
        assert stats["colourfulness_gap"] == pytest.approx(-stats["colourfulness_true"], abs=0.5)
        assert stats["colourfulness_true"] > 20


def test_oracle_is_each_specialist_on_its_own_domain(report):
    systems = report["systems"]
    for domain in DOMAINS:
        assert systems["oracle"][domain] == systems[f"specialist:{domain}"][domain]
    assert systems["general_only"] == systems["specialist:cool"]


def test_threshold_zero_never_falls_back(data, weights, tmp_path):
    code, result = run_cli(data, weights, tmp_path, "--threshold", "0")
    assert code == 0
    assert result["systems"]["fallback"] == result["systems"]["argmax"]
    assert result["below_threshold"]["photos"] == 0
    assert result["routing"]["fallback_fraction"] == 0
    assert result["targets"][-1]["status"] == "not applicable"


def test_threshold_above_one_lets_the_judge_pick_every_photo(data, weights, tmp_path):
    code, result = run_cli(data, weights, tmp_path, "--threshold", "1.5")
    assert code == 0
    assert result["below_threshold"]["photos"] == 2 * PER_DOMAIN
    assert all(p["fell_back"] and p["served"] == p["judge_pick"] for p in result["per_photo"])
    # the monotone judge prefers the least red candidate: cool's, for every photo
    assert {p["judge_pick"] for p in result["per_photo"]} == {"cool"}
    assert {p["routed"] for p in result["per_photo"]} == {"warm"}
    assert result["systems"]["fallback"] == result["systems"]["specialist:cool"]
    assert result["below_threshold"]["fallback"] == result["systems"]["fallback"]["overall"]


def test_served_choice_and_colours_match_the_colorizer(data, weights):
    """The evaluation's 'fallback' is exactly what serve.Colorizer gives users."""
    items, _ = evaluation_photos.find_items(data, None)
    probe = Colorizer.from_weights(weights)
    photos = [read_image(i.path) for i in items]
    confidences = [d.confidence for d in probe.route(photos)]
    threshold = float(np.median(confidences))  # some photos route, some fall back
    colorizer = Colorizer.from_weights(weights, threshold=threshold)
    run = scoring.colour_all(colorizer, items, data, batch_size=3)
    served = colorizer.colorize_batch(photos)
    assert {p.fell_back for p in run.scored} == {True, False}
    assert {p.served for p in run.scored} == {"cool", "warm"}
    for scored, result, photo in zip(run.scored, served, photos):
        assert scored.served == result.domain
        assert scored.fell_back == (result.strategy == "discriminator")
        truth = scoring.truth_rgb(photo)
        image = scoring.as_tensor(np.array(result.image)).unsqueeze(0)
        served_psnr = scored.metrics[scored.served]["psnr"]
        assert psnr(image, truth).item() == pytest.approx(served_psnr, abs=1e-4)


def test_served_psnr_is_measured_with_the_photos_restraint(data, weights, tmp_path):
    """With a restraint table the served colours are scaled, and so is what is measured."""
    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    ladder = np.round(np.arange(11) / 10, 1)
    hashes = {"checkpoints": weights_fingerprints(locate_weights(folder))}
    gains = np.tile(-np.abs(ladder - 0.5), (2, 1))  # every photo: best at 0.5
    items, _ = evaluation_photos.find_items(data, None)
    photos = [read_image(i.path) for i in items]
    width = len(Colorizer.from_weights(folder).route(photos[:1])[0].embedding)
    save_restraint(
        folder / RESTRAINT_FILE, Restraint(np.ones((2, width)), gains, ladder, 1, hashes)
    )
    colorizer = Colorizer.from_weights(folder)
    assert colorizer.restraint is not None
    run = scoring.colour_all(colorizer, items, data, batch_size=3)
    for scored, result, photo in zip(run.scored, colorizer.colorize_batch(photos), photos):
        assert scored.restraint == result.restraint == pytest.approx(0.5)
        image = scoring.as_tensor(np.array(result.image)).unsqueeze(0)
        measured = scored.metrics[scored.served]["psnr"]
        assert psnr(image, scoring.truth_rgb(photo)).item() == pytest.approx(measured, abs=1e-4)
    code, unrestrained = run_cli(data, folder, tmp_path / "full", "--no-restraint")
    assert code == 0 and unrestrained["restraint"] is False
    assert {p["restraint"] for p in unrestrained["per_photo"]} == {1.0}


def test_markdown_and_grid_are_written(report):
    markdown = Path(report["markdown"]).read_text()
    assert "## Targets" in markdown and "| fallback | warm |" in markdown
    assert "not applicable" in markdown  # no portrait domain here
    assert Path(report["grid"]).stat().st_size > 0
    assert Path(report["json"]).name == "evaluation.json"


def test_limit_and_unreadable_files(data, weights, tmp_path):
    copy = shutil.copytree(data, tmp_path / "data")
    (copy / "val" / "warm" / "warm_000.png").write_bytes(b"not a png")
    code, result = run_cli(copy, weights, tmp_path / "out", "--limit", "2")
    assert code == 0
    assert result["photos_per_domain"] == {"cool": 2, "warm": 1}
    assert result["unreadable"][0]["path"] == "val/warm/warm_000.png"


def test_agreement_is_null_with_a_note_without_classifier_weights(
    data, weights, tmp_path, monkeypatch
):
    monkeypatch.setattr(agreement, "offline_weights_available", lambda name: False)
    argv = [str(data), "--weights", str(weights), "--general", "cool", "--limit", "1"]
    assert cli.main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["classifier"]["available"] is False
    assert "not installed" in result["classifier"]["note"]
    assert result["systems"]["oracle"]["overall"]["agreement"] is None
    assert (tmp_path / "r.md").exists() and (tmp_path / "r_grid.png").exists()


@pytest.mark.skipif(
    not offline_weights_available("mobilenetv2_100"), reason="offline MobileNetV2 weights absent"
)
def test_agreement_with_the_imagenet_classifier(data, weights, tmp_path):
    argv = [str(data), "--weights", str(weights), "--general", "cool", "--limit", "1"]
    assert cli.main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["classifier"]["available"] is True
    for by_domain in result["systems"].values():
        assert all(0.0 <= s["agreement"] <= 1.0 for s in by_domain.values())


def _summary(psnr_: float, frechet: float | None = None, pct: float = 0.0) -> dict:
    return {
        "photos": 60,
        "psnr": psnr_,
        "frechet": frechet,
        "colourfulness_gap_pct": pct,
        "brown_share": 0.4,
        "brown_share_true": 0.35,
    }


def _report(routed_psnr: float, source_psnr: float, people: float) -> dict:
    routed = {"portrait": _summary(routed_psnr, 10.0), "overall": _summary(routed_psnr, 10.0)}
    grey = {"portrait": _summary(20.0, 30.0), "overall": _summary(20.0, 30.0)}
    general = {"portrait": _summary(21.0, 12.0), "overall": _summary(21.0, 12.0)}
    return {
        "systems": {"fallback": routed, "general_only": general, "grayscale": grey},
        "below_threshold": {"photos": 0, "fallback": {"psnr": None}, "argmax": {"psnr": None}},
        "sources": {
            "portrait/s40": {
                "fallback": _summary(source_psnr),
                "grayscale": _summary(20.0),
                "general_only": _summary(20.0),
            }
        },
        "people_to_portrait": {"photos": 60, "to_portrait": people},
        "routing": {"accuracy": 0.98},
    }


def test_targets_report_met_and_missed():
    status = {
        t["target"]: t["status"]
        for t in targets.check_targets(_report(23.0, 21.0, 0.96), ["portrait"])
    }
    assert list(status.values())[:3] == ["met", "met", "met"]
    assert list(status.values())[3] == "not applicable"  # no reference report
    assert all(v != "missed" for v in status.values())

    worse = targets.check_targets(
        _report(21.5, 19.5, 0.5),
        ["portrait"],
        {"systems": {"fallback": {"overall": {"frechet": 5.0}}}},
    )
    assert worse[0]["status"] == "missed"  # portrait +1.5 dB < +2 dB
    assert worse[1]["status"] == "missed"  # a source below grayscale
    assert worse[3]["status"] == "missed"  # Frechet 10 is not below the reference's 5
    assert worse[6]["status"] == "missed"  # half the people photos went elsewhere


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, w: [str(d / "nowhere"), "--weights", str(w)], "no such data folder"),
        (lambda d, w: [str(d), "--weights", str(d / "none")], "no such weights folder"),
        (lambda d, w: [str(d), "--weights", str(w)], "--general general: no such specialist"),
        (lambda d, w: [str(d / "val" / "cool"), "--weights", str(w)], "no <domain>/ subfolders"),
        (lambda d, w: [str(d), "--weights", str(w), "--limit", "0"], "--limit must be at least"),
        (
            lambda d, w: [str(d), "--weights", str(w), "--general", "cool", "--reference", "no"],
            "--reference no: cannot read it",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_message(data, weights, capsys, make_args, message):
    assert cli.main(make_args(data, weights)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_ctrl_c_is_exit_130_without_a_traceback(data, weights, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "colour_all", interrupted)
    code, report = run_cli(data, weights, tmp_path / "out")
    assert code == 130 and report is None and "Traceback" not in capsys.readouterr().err


def test_a_limit_spreads_over_every_source():
    items = [
        evaluation_photos.Item(Path(f"{tag}_{i}.jpg"), "portrait")
        for tag in "abc"
        for i in range(10)
    ]
    chosen, skipped = evaluation_photos.select(items, ["portrait"], 6)
    assert {item.path.name[0] for item in chosen} == {"a", "b", "c"} and not skipped
    assert len(chosen) == 6
