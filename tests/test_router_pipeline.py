"""End to end on a tiny generated set: train a router, load it, route, evaluate, resume.

A 0.4M-parameter MobileNetV2 (random init, 32 px) keeps this to seconds; the point is the
plumbing (folders -> domains, index on disk, calibration, CLI contracts), not the accuracy
of the real router, which is measured on colorize-v1 and reported in the README.
"""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color
from test_router_data import DOMAINS, make_dataset

from router import Neighbour, RouteDecision, RouterError, load_router
from router.evaluate import main as evaluate_main
from router.preprocess import load_l_norm
from training.train_router import main as train_main

TINY = [
    "--arch", "timm_router", "--backbone", "mobilenetv2_035", "--no-pretrained",
    "--size", "32", "--train-blocks", "0", "--views", "2", "--batch-size", "16",
    "--lr", "1e-2", "--workers", "0", "--threads", "1", "--index-dim", "16", "--k", "5",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("router")
    # 26 photos per domain: the fixed hold-out rule keeps 1-2 of each out of training.
    data = make_dataset(base / "data", train=26, val=8)
    run = base / "run"
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "30", *TINY]) == 0
    return data, run


HELD_OUT = {"document_000.png", "document_003.png", "sky_025.png", "zebra_017.png"}
SMALL = [*TINY, "--calibrate-on", "val"]  # too few photos to hold any out


def _val_batch(data):
    paths = sorted((data / "val").rglob("*.png"))
    return paths, [load_l_norm(p) for p in paths]


def test_training_writes_a_folder_that_can_be_copied_as_is(trained, tmp_path):
    data, run = trained
    folder = tmp_path / "weights" / "router"
    shutil.copytree(run / "router", folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["router.faiss", "router.json", "router.safetensors", "router_index.json"]
    config = json.loads((folder / "router.json").read_text())
    assert config["domains"] == sorted(DOMAINS)  # read from the folders
    assert 0.0 < config["threshold"] <= 1.0
    meta = json.loads((folder / "router_index.json").read_text())
    assert len(meta["paths"]) == 74 and all(not p.startswith("/") for p in meta["paths"])
    assert all((data / p).is_file() for p in meta["paths"])
    # the held-out photos calibrate the router; they are neither trained on nor in the index
    assert not HELD_OUT & {p.rsplit("/", 1)[-1] for p in meta["paths"]}
    assert config["data"]["calibrated_on"] == "holdout"
    assert config["data"]["calibration_photos"] == len(HELD_OUT)
    router = load_router(folder)
    assert router.domains == sorted(DOMAINS) and len(router.index) == 74
    assert (run / "metrics.csv").is_file() and (run / "reports" / "reliability_val.png").is_file()


def test_routes_the_tiny_set(trained):
    data, run = trained
    router = load_router(run / "router")
    paths, images = _val_batch(data)
    decisions = [router.route(x)[0] for x in images]  # each at its own size
    truth = [p.parent.name for p in paths]
    accuracy = np.mean([d.domain == t for d, t in zip(decisions, truth)])
    assert accuracy >= 0.85  # chance is 1/3
    for d in decisions:
        assert isinstance(d, RouteDecision) and d.domain in router.domains
        assert set(d.probs) == set(router.domains) and sum(d.probs.values()) == pytest.approx(1.0)
        assert d.domain == max(d.probs, key=d.probs.get)
        assert 0.0 <= d.confidence <= max(d.probs.values()) + 1e-9
        assert sum(d.knn_votes.values()) == pytest.approx(1.0)
        assert d.ood_distance >= -1e-6
        assert len(d.neighbours) == 5 and all(isinstance(n, Neighbour) for n in d.neighbours)
        assert all(n.domain in router.domains for n in d.neighbours)
        assert [n.distance for n in d.neighbours] == sorted(n.distance for n in d.neighbours)
        assert d.confident() == (d.confidence >= router.threshold)
        assert d.confident(threshold=0.0) and not d.confident(threshold=1.01)


def test_route_takes_batches_of_any_size_and_rejects_bad_shapes(trained):
    router = load_router(trained[1])  # a run folder is accepted too
    assert len(router.route(torch.rand(3, 1, 37, 91) * 2 - 1)) == 3
    assert router.route(torch.zeros(0, 1, 8, 8)) == []
    with pytest.raises(ValueError, match="B, 1, H, W"):
        router.route(torch.zeros(1, 3, 32, 32))


def test_colour_photo_routes_like_its_black_and_white_version(trained, tmp_path):
    data, run = trained
    router = load_router(run / "router")
    for path in sorted((data / "val").rglob("*.png"))[::6]:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB")) / 255.0
        lightness = color.rgb2lab(rgb)[..., 0]
        zeros = np.zeros_like(lightness)
        bw = color.lab2rgb(np.stack([lightness, zeros, zeros], -1))[..., 0]
        bw_path = tmp_path / path.name
        Image.fromarray((bw * 255).round().astype(np.uint8), mode="L").save(bw_path)
        a, b = router.route(load_l_norm(path))[0], router.route(load_l_norm(bw_path))[0]
        assert a.domain == b.domain
        assert max(abs(a.probs[d] - b.probs[d]) for d in a.probs) < 0.05


def test_load_router_errors_name_the_file(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_router(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(trained[1] / "router", broken)
    (broken / "router.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RouterError, match="router.safetensors"):
        load_router(broken)
    (broken / "router.safetensors").unlink()
    with pytest.raises(RouterError, match="missing"):
        load_router(broken)
    shutil.copy(trained[1] / "router" / "router.safetensors", broken)
    (broken / "router.faiss").unlink()
    with pytest.raises(RouterError, match="router.faiss"):
        load_router(broken)


def test_evaluate_writes_the_json_report(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "report.json"
    rc = evaluate_main(
        [str(data), "--weights", str(run / "router"), "--json", str(out), "--workers", "0"]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert 0.85 <= report["accuracy"] <= 1.0 and report["scored"] == 24
    assert report["splits"] == ["val"] and report["domains"] == sorted(DOMAINS)
    for domain in DOMAINS:
        assert set(report["per_domain"][domain]) == {"precision", "recall", "f1", "support"}
        assert report["per_domain"][domain]["support"] == 8
    matrix = np.asarray(report["confusion"]["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 24
    assert np.trace(matrix) == round(report["accuracy"] * 24)
    assert 0.0 <= report["ece"] <= 1.0 and 0.0 <= report["ece_confidence"] <= 1.0
    rows = report["accuracy_by_threshold"]
    assert any(r["threshold"] == report["threshold"] for r in rows)
    assert all(r["routed"] + r["fallback"] == 24 for r in rows)
    assert len(report["misrouted"]) == 24 - np.trace(matrix)
    assert report["unreadable"] == [] and report["unlabelled"] == []
    assert (tmp_path / "report_confusion.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "confusion matrix" in printed and "misrouted" in printed


def test_evaluate_carries_on_past_bad_files_and_plain_folders(trained, tmp_path):
    data, run = trained
    plain = tmp_path / "plain"
    for domain in ("sky", "zebra"):
        shutil.copytree(data / "val" / domain, plain / domain)
    (plain / "sky" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    shutil.copytree(data / "val" / "document", plain / "cat")  # not a router domain
    out = tmp_path / "r.json"
    args = [str(plain), "--weights", str(run), "--json", str(out), "--workers", "0"]
    assert evaluate_main(args) == 0
    report = json.loads(out.read_text())
    assert report["scored"] == 16 and report["splits"] == []
    assert [r["path"] for r in report["unreadable"]] == ["sky/broken.jpg"]
    assert len(report["unlabelled"]) == 8 and report["unlabelled"][0]["folder"] == "cat"


def test_evaluate_usage_errors_exit_2_without_traceback(trained, tmp_path, capsys):
    data, run = trained
    assert evaluate_main([str(tmp_path / "missing"), "--weights", str(run)]) == 2
    err = capsys.readouterr().err
    assert "missing: no such data folder" in err and "Traceback" not in err
    assert evaluate_main([str(data), "--weights", str(tmp_path / "no-router")]) == 2
    assert "no-router" in capsys.readouterr().err
    (tmp_path / "taken").write_text("a file, not a folder")
    args = [str(data), "--weights", str(run), "--json", str(tmp_path / "taken" / "r.json")]
    assert evaluate_main([*args, "--workers", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: cannot write") and "taken" in err[-1]
    with pytest.raises(SystemExit) as info:
        evaluate_main([])
    assert info.value.code == 2


def test_training_resumes_and_refuses_changed_settings(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", train=6, val=3)
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "2", *SMALL]) == 0
    capsys.readouterr()
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "3", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "epoch 2 of 3 done" in out
    assert "epoch 3:" in out and "epoch 1:" not in out and "epoch 2:" not in out
    assert len(json.loads((run / "router" / "router.json").read_text())["training"]["history"]) == 3
    changed = [a if a != "32" else "48" for a in SMALL]
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "3", *changed]) == 2
    err = capsys.readouterr().err
    assert "different settings (--size 32 -> 48)" in err and "another --out" in err
    with open(run / "metrics.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2", "3"]
    assert (run / "metrics.png").is_file()


def test_training_usage_errors(tmp_path, capsys):
    assert train_main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), *SMALL]) == 2
    assert "no such data folder" in capsys.readouterr().err
    (tmp_path / "one" / "train" / "only").mkdir(parents=True)
    assert train_main(["--data", str(tmp_path / "one"), "--out", str(tmp_path / "r"), *SMALL]) == 2
    assert "at least two domain" in capsys.readouterr().err
    data = make_dataset(tmp_path / "data", train=2, val=1)
    (tmp_path / "file").write_text("")
    assert train_main(["--data", str(data), "--out", str(tmp_path / "file" / "run"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "file" in err and "Traceback" not in err


def test_holding_out_needs_photos_of_every_domain(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", train=16, val=2)  # no sky photo is held out
    assert train_main(["--data", str(data), "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "sky" in err and "--calibrate-on val" in err and "Traceback" not in err
