"""training.evaluate.seen: which evaluated photos a specialist (or its start) trained on."""

from pathlib import Path

from specialists.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import make_split_folder
from tests.serve_support import make_weights
from tests.test_evaluate import COLOURS, DOMAINS, run_cli
from training.data import find_images
from training.evaluate.seen import seen_by
from training.lineage import lineage


def _config(root: Path, domain: str, start: Path | None = None) -> dict:
    return {
        "data": {"root": str(root), "domain": domain},
        "train": {"init_from": start and str(start)},
    }


def test_photos_of_the_training_split_are_seen_through_links_and_fine_tunes(tmp_path):
    first = make_split_folder(tmp_path / "v1", per_domain=(3, 2), size=16)
    second = make_split_folder(tmp_path / "v2", per_domain=(2, 2), size=16)
    # a v2-style holdout photo: a link placeholder naming one of v1's training photos
    held = tmp_path / "v2" / "holdout" / "warm"
    held.mkdir(parents=True)
    (held / "warm_000.png").write_text("../../../v1/train/warm/warm_000.png")
    v1_val = find_images(first, "val", "warm")
    photos = [held / "warm_000.png", *v1_val, *find_images(second, "train", "warm")]

    start = tmp_path / "start.safetensors"  # what the fine-tune started from: trained on v1
    save_checkpoint(start, {}, _config(first, "warm"))
    tuned = _config(second, "warm", start)
    runs, missing = lineage(tuned)
    assert [r["root"] for r in runs] == [str(second), str(first)] and missing == []
    found = seen_by(tuned, photos)
    assert found["photos"] == 3 and found["by_source"] == {"warm": 3}  # link + v2's 2 train
    alone = seen_by(_config(second, "warm"), photos)  # without the start: only v2's own
    assert alone["photos"] == 2 and alone["untraced"] == []


def test_a_recorded_lineage_wins_and_an_overwritten_start_is_said(tmp_path):
    recorded = _config(tmp_path / "v2", "warm", tmp_path / "gone.safetensors")
    recorded["data"]["learnt_from"] = [{"root": "v1", "domain": "warm"}]
    assert lineage(recorded) == (
        [{"root": str(tmp_path / "v2"), "domain": "warm"}, {"root": "v1", "domain": "warm"}],
        [],
    )
    # a start file replaced by its own fine-tune (weights/ overwritten): a loop, said so
    looped = tmp_path / "model.safetensors"
    save_checkpoint(looped, {}, _config(tmp_path / "v2", "warm", looped))
    runs, missing = lineage(_config(tmp_path / "v2", "warm", looped))
    assert len(runs) == 2 and "overwritten" in missing[0]


def test_a_start_that_is_gone_or_data_not_found_is_said(tmp_path):
    gone = _config(tmp_path / "nowhere", "warm", tmp_path / "deleted.safetensors")
    found = seen_by(gone, [])
    assert found["photos"] == 0
    assert any("deleted.safetensors" in m for m in found["untraced"])
    assert any("nowhere" in m and "not found" in m for m in found["untraced"])


def test_evaluate_reports_the_photos_a_specialist_trained_on(tmp_path):
    data = make_split_folder(tmp_path / "data", per_domain=(2, 1), size=32)
    folder = make_weights(tmp_path / "weights", DOMAINS, COLOURS, judge_sign=-1.0)
    path = folder / "specialists" / "cool.safetensors"
    tensors, config = load_checkpoint(path)
    save_checkpoint(path, tensors, {**config, "data": {"root": str(data), "domain": "cool"}})
    code, report = run_cli(data, folder, tmp_path / "out", "--split", "train")
    assert code == 0
    seen = report["seen_in_training"]
    assert seen["cool"]["photos"] == 2 and seen["warm"]["photos"] == 0
    markdown = Path(report["markdown"]).read_text()
    assert f"**2 of these {2 * len(DOMAINS)} photos** (cool 2)" in markdown
    assert "- warm: none of these" in markdown


def test_unseen_leaves_the_training_photos_out(tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", per_domain=(2, 1), size=32)
    folder = make_weights(tmp_path / "weights", DOMAINS, COLOURS, judge_sign=-1.0)
    path = folder / "specialists" / "cool.safetensors"
    tensors, config = load_checkpoint(path)
    save_checkpoint(path, tensors, {**config, "data": {"root": str(data), "domain": "cool"}})
    code, report = run_cli(data, folder, tmp_path / "out", "--split", "train", "--unseen")
    assert code == 0 and report["unseen"] is True
    assert report["photos_per_domain"] == {"warm": 2}  # cool's own training photos are out
    assert "2 of 4 photos left out" in capsys.readouterr().out
    assert "(`--unseen`)" in Path(report["markdown"]).read_text()
    path = folder / "specialists" / "warm.safetensors"
    tensors, config = load_checkpoint(path)
    save_checkpoint(path, tensors, {**config, "data": {"root": str(data), "domain": "warm"}})
    code, _ = run_cli(data, folder, tmp_path / "none", "--split", "train", "--unseen")
    assert code == 2 and "every photo is a training photo" in capsys.readouterr().err
