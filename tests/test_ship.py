"""training.ship assembles a servable half-precision weights folder; model_cards describe it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import discriminators
import specialists
from serve import Colorizer
from tests.conftest import make_split_folder
from tests.serve_support import save_specialist, tiny_router
from tests.test_router_data import _photo
from training.data import find_images, is_held_out
from training.ship.cli import main as ship_main
from training.ship.model_cards import data_terms
from training.ship.model_cards import main as cards_main
from training.train_specialist import TrainConfig, train


def _run(data, out, domain):
    train(
        TrainConfig(
            data=str(data), out=str(out), domain=domain, arch="unet", size=32, batch_size=4,
            arch_args={"ngf": 8, "num_downs": 5}, steps=2, progress=False, num_val=2, threads=1,
        )
    )  # fmt: skip
    return out


def test_ship_then_cards_give_a_folder_serving_loads(tmp_path, capsys):
    # 40 training photos per domain: the hold-out rule keeps warm_026 and cool_036 out
    data = make_split_folder(tmp_path / "data", per_domain=(40, 2), size=32)
    tiny_router(("cool", "warm")).save(tmp_path / "router")
    runs = [f"{d}={_run(data, tmp_path / d, d)}" for d in ("cool", "warm")]
    out = tmp_path / "weights"
    args = ["--data", str(data), "--out", str(out), "--router", str(tmp_path / "router")]
    assert ship_main([*args, *(f"--specialist={r}" for r in runs), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "chroma gain" in printed
    # the restraint is fitted and said so (its list of skipped photos once read as "not fitted")
    assert "colour restraint fitted on" in printed and (out / "restraint.safetensors").is_file()
    router_tensors = (out / "router" / "router.safetensors").read_bytes()
    assert b'"dtype":"F16"' in router_tensors and b'"dtype":"F32"' not in router_tensors
    for domain in ("cool", "warm"):
        config = json.loads((out / "specialists" / f"{domain}.json").read_text())
        assert config["dtype"] == "float16" and config["serve"]["chroma_fit"]["photos"] == 1
    judge = json.loads((out / "judge.json").read_text())
    assert judge["split"] == "holdout" and judge["selection"]["photos"] == 2

    colorizer = Colorizer.from_weights(out)
    assert colorizer.warnings == []  # the judge was calibrated after the chroma gains
    grey = Image.new("L", (40, 30), 128)
    assert colorizer.colorize(grey).image.size == (40, 30)

    assert cards_main(["--weights", str(out)]) == 0
    card = (out / "specialists" / "warm.md").read_text()
    assert "chroma gain" in card and "2 steps" in card
    assert f"photos in `{data}`" in card and "state them here" in card  # unknown data's terms
    assert "Not evaluated yet" in card
    router_card = (out / "router" / "MODEL_CARD.md").read_text()
    assert "state them here" in router_card and "held out of train" in router_card


def test_ship_fits_the_restraint_on_every_held_out_photo(tmp_path, capsys):
    # --per-domain caps the chroma and judge photos; the restraint's neighbour table takes all
    data = make_split_folder(tmp_path / "data", per_domain=(80, 1), size=32)
    held = [p for d in ("cool", "warm") for p in find_images(data, "holdout", d)]
    assert len(held) > 2
    tiny_router(("cool", "warm")).save(tmp_path / "router")
    runs = [f"--specialist={d}={_run(data, tmp_path / d, d)}" for d in ("cool", "warm")]
    args = ["--data", str(data), "--out", str(tmp_path / "w"), "--router", str(tmp_path / "router")]
    assert ship_main([*args, *runs, "--per-domain", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "(1 held-out photos)" in printed
    assert f"colour restraint fitted on {len(held)} held-out photos" in printed


def test_cards_name_the_known_collections_and_their_terms():
    v1 = data_terms("/somewhere/colorize-v1")
    v2 = data_terms("../shared/data/colorize-v2")
    assert "**colorize-v1**" in v1 and "UTKFace" in v1 and "research only" in v1
    assert "**colorize-v2**" in v2 and "Stanford Cars" in v2 and "UTKFace" in v2
    assert "research only" in v2 and "state them" not in v2


def test_ship_names_what_is_missing(tmp_path, capsys):
    data = make_split_folder(tmp_path / "data", per_domain=(2, 1), size=16)
    args = ["--data", str(data), "--out", str(tmp_path / "w"), "--router", str(tmp_path / "no")]
    assert ship_main([*args, "--specialist", f"cool={tmp_path}"]) == 2
    assert "no such router folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship_main([*args, "--specialist", "cool"])
    assert "DOMAIN=RUN_DIR" in capsys.readouterr().err
    assert cards_main(["--weights", str(tmp_path / "none")]) == 2
    assert "error:" in capsys.readouterr().err


def _colour_photo(domain, rng, size):
    """test_router_data's picture of ``domain`` (its grey structure tells the domain), in
    real colour: red on the left to blue on the right (one tint would be a toned photo)."""
    grey = _photo(domain, rng, size).mean(axis=2) / 255.0
    right = np.linspace(0.0, 1.0, grey.shape[1])[None, :]
    rgb = np.stack([grey * (1.0 - 0.5 * right), grey * 0.75, grey * (0.5 + 0.5 * right)], axis=2)
    return (rgb * 255).astype(np.uint8)


def _domain_folders(root, per_domain=(14, 2)):
    """root/<domain>/*.png for sky, zebra and a new domain, document: ``per_domain`` photos
    trained on and held out (the fixed 5% hold-out, by name) in each."""
    rng = np.random.default_rng(0)
    for domain in ("document", "sky", "zebra"):
        (root / domain).mkdir(parents=True)
        counts, i = [0, 0], 0
        while counts[0] < per_domain[0] or counts[1] < per_domain[1]:
            name = f"{domain}_{i:04d}.png"
            i += 1
            held = int(is_held_out(Path(name)))
            if counts[held] < per_domain[held]:
                counts[held] += 1
                Image.fromarray(_colour_photo(domain, rng, (40, 48))).save(root / domain / name)
    return root


def _shipped(folder, domains):
    """A weights folder with tiny (random) specialists for ``domains``, as if shipped."""
    for domain in domains:
        torch.manual_seed(0)
        generator = specialists.create_model("unet", ngf=8, num_downs=5)
        disc = discriminators.create_model("patchgan", ndf=8, n_layers=1)
        save_specialist(
            folder / "specialists" / f"{domain}.safetensors", domain, generator, disc, 32
        )
    return folder


TINY_ROUTER = (
    "--arch timm_router --backbone mobilenetv2_035 --no-pretrained --size 32 --train-blocks 0 "
    "--views 1 --batch-size 16 --lr 1e-2 --workers 0 --index-dim 8 --k 3 --epochs 20"
)
TINY_SPECIALIST = [
    "--arch", "unet", "--arch-arg", "ngf=8", "--arch-arg", "num_downs=5", "--size", "32",
    "--batch-size", "4", "--steps", "2", "--num-val", "2",
]  # fmt: skip


def test_one_command_adds_a_domain_from_a_folder_of_domain_folders(tmp_path, capsys):
    data = _domain_folders(tmp_path / "photos")
    (data / "sky").rename(tmp_path / "sky")
    (data / "sky").symlink_to(tmp_path / "sky")  # the README's recipe links existing folders in
    shipped = _shipped(tmp_path / "shipped", ("sky", "zebra"))
    out, runs = tmp_path / "weights", tmp_path / "runs"
    argv = ["--data", str(data), "--out", str(out), "--keep", str(shipped), "--runs", str(runs)]
    argv += ["--router-args", TINY_ROUTER, "--threads", "1", "--no-progress", *TINY_SPECIALIST]
    assert ship_main(argv) == 0
    printed = capsys.readouterr().out
    assert f"sky: keeping {shipped / 'specialists' / 'sky.safetensors'}" in printed
    assert f"document: training in {runs / 'document'}" in printed
    assert f"next: python -m serve.colorize --weights {out}" in printed
    assert sorted(p.name for p in runs.iterdir()) == ["document", "router"]  # only what's new
    assert sorted(p.stem for p in (out / "specialists").glob("*.safetensors")) == [
        "document", "sky", "zebra",
    ]  # fmt: skip
    assert json.loads((out / "router" / "router.json").read_text())["domains"] == [
        "document", "sky", "zebra",
    ]  # fmt: skip

    colorizer = Colorizer.from_weights(out, threshold=0.0)
    assert colorizer.warnings == []
    page = Image.fromarray(_colour_photo("document", np.random.default_rng(7), (60, 80)))
    page = page.convert("L")
    result = colorizer.colorize(page)
    assert result.domain == "document" and result.strategy == "router"
    assert result.probs["document"] == max(result.probs.values())
    assert result.image.size == page.size


def test_ship_refuses_before_training_what_it_cannot_finish(tmp_path, capsys):
    data = _domain_folders(tmp_path / "photos", per_domain=(2, 1))
    shipped = _shipped(tmp_path / "shipped", ("sky",))
    args = ["--data", str(data), "--runs", str(tmp_path / "runs")]
    assert ship_main([*args, "--out", str(shipped), "--keep", str(shipped)]) == 2
    assert "write to a new folder" in capsys.readouterr().err
    assert ship_main([*args, "--out", str(tmp_path / "w"), "--specialist", f"cat={tmp_path}"]) == 2
    assert "not a domain of" in capsys.readouterr().err
    assert ship_main([*args, "--out", str(tmp_path / "w"), "--router-args", "--views x"]) == 2
    assert "train_router flags" in capsys.readouterr().err
    assert ship_main([*args, "--out", str(tmp_path / "w"), "--router-args", "'--epochs"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --router-args "\'--epochs": No closing quotation\n'
    assert ship_main([*args, "--out", str(tmp_path / "w"), "--bogus"]) == 2
    assert "train_specialist flags" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cards_say_what_a_fine_tune_s_start_learnt_from_and_when_fit_photos_were_seen(tmp_path):
    from training.ship.model_cards import _fit_seen, _start

    data = {"learnt_from": [{"root": "v1", "domain": "portrait"}]}
    started = _start({"init_from": "weights/specialists/portrait.safetensors"}, data)
    assert "(fine-tuned), which had learnt from `v1` (portrait)" in started
    assert _start({}, data) == ""
    (tmp_path / "v1" / "train").mkdir(parents=True)  # holdout is a slice of train: seen
    (tmp_path / "v2" / "holdout").mkdir(parents=True)  # a holdout folder: not trained on
    assert "trained on" in _fit_seen(str(tmp_path / "v1"))
    assert _fit_seen(str(tmp_path / "v2")) == ""
