"""training.ship assembles a servable half-precision weights folder; model_cards describe it."""

import json

import pytest
from PIL import Image

from serve import Colorizer
from tests.conftest import make_split_folder
from tests.serve_support import tiny_router
from training.model_cards import main as cards_main
from training.ship import main as ship_main
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
    assert "chroma gain" in capsys.readouterr().out
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
    assert "research only" in card and "chroma gain" in card and "2 steps" in card
    assert "Not evaluated yet" in card
    router_card = (out / "router" / "MODEL_CARD.md").read_text()
    assert "research only" in router_card and "held out of train" in router_card


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
