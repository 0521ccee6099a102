"""Router building blocks: calibration maths, metrics, grayscale input, the kNN index on disk."""

import numpy as np
import pytest
import torch
from PIL import Image

from router.calibration import (
    Calibration,
    choose_threshold,
    combine,
    expected_calibration_error,
    fit_calibration,
    reliability,
    typicality,
)
from router.errors import RouterError, RouterNotFoundError
from router.index import INDEX_FILE, META_FILE, NeighbourIndex
from router.metrics import accuracy_by_threshold, confusion_matrix, per_domain_scores
from router.net import create_router_net
from router.preprocess import fit_square, load_l_norm

# --- calibration -----------------------------------------------------------------------------


def _sample(rng, logits, temperature):
    p = np.exp(logits / temperature)
    p /= p.sum(1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def test_temperature_scaling_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (4000, 3))
    labels = _sample(rng, logits, 2.5)
    t, w = fit_calibration(logits, np.full((4000, 3), 1 / 3), labels, k=10, use_knn=False)
    assert t == pytest.approx(2.5, rel=0.1)
    assert w == 0.0


def test_knn_weight_follows_how_informative_the_votes_are():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 3000)
    logits = rng.normal(0, 1, (3000, 3))  # a useless classifier
    good = np.eye(3)[np.where(rng.random(3000) < 0.9, labels, rng.integers(0, 3, 3000))]
    noise = np.eye(3)[rng.integers(0, 3, 3000)]
    _, w_good = fit_calibration(logits, good, labels, k=10)
    _, w_noise = fit_calibration(logits, noise, labels, k=10)
    assert w_good > 0.5 > w_noise
    probs = combine(logits, good, 1.0, w_good, 10)
    assert np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == labels).mean() > 0.85


def test_temperature_stays_bounded_on_separable_data():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 10)
    t, _ = fit_calibration(logits, np.full((20, 2), 0.5), np.array([0, 1] * 10), k=10)
    assert np.exp(-3.0) - 1e-9 <= t < 1.0  # sharpened, but never to 0


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.4, 1.0, 20000)
    assert expected_calibration_error(conf, rng.random(20000) < conf) < 0.02
    over = np.full(1000, 0.99)
    correct = np.arange(1000) < 700
    assert expected_calibration_error(over, correct) == pytest.approx(0.29, abs=1e-6)
    assert sum(b["count"] for b in reliability(conf, conf > 0.5)) == 20000


def test_typicality_drops_only_for_unusually_far_photos():
    reference = np.linspace(0.1, 0.3, 1000)
    t = typicality(np.array([0.05, 0.2, 0.299, 0.5]), reference, alpha=0.01)
    assert t[0] == 1.0 and t[1] == 1.0
    assert t[2] == pytest.approx(((reference >= 0.299).sum() + 1) / 1001 / 0.01)
    assert t[2] < 1.0
    assert t[3] == pytest.approx(1 / 1001 / 0.01)
    assert np.all(typicality(np.array([9.0]), [], 0.01) == 1.0)


def test_threshold_is_the_lowest_that_meets_the_target():
    conf = np.array([0.99, 0.98, 0.97, 0.9, 0.8, 0.7, 0.6, 0.55])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 1], dtype=bool)
    t = choose_threshold(conf, correct, target=0.95)
    assert t == 0.9  # routing 0.8 too would give 4/5 right
    assert choose_threshold(conf, correct, target=0.5) == 0.55
    assert choose_threshold(conf, np.ones(8, dtype=bool), 0.99, floor=0.7) == 0.7
    assert choose_threshold(conf, np.zeros(8, dtype=bool), 0.99) >= 0.5


def test_calibration_round_trips_through_a_dict():
    c = Calibration(1.7, 0.4, 7, 0.02, [0.1, 0.2])
    assert Calibration.from_dict(c.to_dict() | {"unknown": 1}) == c


# --- metrics ---------------------------------------------------------------------------------


def test_confusion_and_per_domain_scores():
    cm = confusion_matrix(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 0, 1]), 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    scores = per_domain_scores(cm, ["a", "b", "c"])
    assert scores["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["b"]["precision"] == 0.5 and scores["b"]["recall"] == pytest.approx(2 / 3)
    assert scores["c"]["precision"] is None and scores["c"]["recall"] == 0.0
    rows = accuracy_by_threshold(np.array([0.9, 0.6, 0.3]), np.array([1, 0, 1]), [0.5, 0.0])
    assert rows[0] == {
        "threshold": 0.0,
        "routed": 3,
        "fallback": 0,
        "fallback_fraction": 0.0,
        "routed_accuracy": pytest.approx(2 / 3),
    }
    assert rows[1]["fallback"] == 1 and rows[1]["routed_accuracy"] == 0.5


# --- grayscale input -------------------------------------------------------------------------


def test_colour_file_becomes_cie_lightness(tmp_path):
    from skimage import color

    rgb = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    l_norm = load_l_norm(tmp_path / "colour.png")
    expected = color.rgb2lab(rgb / 255.0)[..., 0] / 50.0 - 1.0
    assert l_norm.shape == (1, 1, 20, 30)
    assert np.abs(l_norm[0, 0].numpy() - expected).max() < 1e-3


def test_grayscale_file_and_its_colour_original_give_the_same_input(tmp_path):
    from skimage import color

    rgb = np.random.default_rng(4).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    lightness = color.rgb2lab(rgb / 255.0)[..., 0]
    gray = color.lab2rgb(
        np.stack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], -1)
    )
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    Image.fromarray((gray[..., 0] * 255).round().astype(np.uint8), mode="L").save(
        tmp_path / "bw.png"
    )
    diff = (load_l_norm(tmp_path / "colour.png") - load_l_norm(tmp_path / "bw.png")).abs()
    assert float(diff.max()) < 0.02  # 8-bit rounding of the gray file only


def test_network_sees_the_gray_photo_the_lightness_stands_for():
    net = create_router_net(
        "timm_router", backbone="mobilenetv2_035", num_domains=2, pretrained=False
    )
    values = torch.linspace(0.0, 1.0, 11)
    gray_rgb = values.view(1, 1, 1, 11).expand(1, 3, 1, 11)
    from router.preprocess import rgb_to_l_norm

    x = net.to_backbone_input(rgb_to_l_norm(gray_rgb))
    expected = (values.view(1, 1, 1, 11) - net.mean) / net.std
    assert torch.allclose(x, expected, atol=1e-4)


def test_fit_square_handles_any_size_and_rejects_wrong_shapes():
    for h, w in ((10, 10), (37, 91), (300, 120)):
        out = fit_square(torch.zeros(2, 1, h, w) + 0.25, 32)
        assert out.shape == (2, 1, 32, 32) and torch.allclose(out, torch.full_like(out, 0.25))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        fit_square(torch.zeros(3, 32, 32), 32)
    with pytest.raises(ValueError):
        fit_square(torch.zeros(1, 3, 32, 32), 32)


def test_trunk_and_tail_split_equals_the_whole_network():
    net = create_router_net(
        "timm_router", backbone="mobilenetv2_035", num_domains=3, pretrained=False
    )
    net.eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        _, whole = net(x)
        for k in (0, 1, 3, net.num_blocks):
            assert torch.allclose(net.tail(net.trunk(x, k), k), whole, atol=1e-5)
    assert not net.tail_parameters(0) and net.tail_parameters(2)


# --- the kNN index ---------------------------------------------------------------------------


def _index(n=120, d=48, dim=16, seed=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (3, d))
    labels = np.arange(n) % 3
    vectors = centres[labels] + 0.3 * rng.normal(0, 1, (n, d))
    paths = [f"train/{'abc'[y]}/{i}.jpg" for i, y in enumerate(labels)]
    return NeighbourIndex.build(vectors, paths, labels, ["a", "b", "c"], "/data", dim=dim), vectors


def test_index_finds_neighbours_and_votes():
    index, vectors = _index()
    sims, ids = index.search(vectors[:5], 4)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4] and np.allclose(sims[:, 0], 1.0, atol=1e-3)
    votes = index.votes(ids)
    assert np.allclose(votes.sum(1), 1.0) and (votes.argmax(1) == np.arange(5) % 3).all()
    self_sims, self_ids = index.search_self(2)
    assert (self_ids[:, 0] == np.arange(len(index))).all()


def test_index_round_trips_to_disk(tmp_path):
    index, vectors = _index()
    index.save(tmp_path)
    loaded = NeighbourIndex.load(tmp_path)
    assert loaded.paths == index.paths and loaded.domains == ["a", "b", "c"]
    assert loaded.data_root == "/data" and (loaded.labels == index.labels).all()
    assert loaded.dim == 48 and loaded.stored_dim == 16 and len(loaded) == 120
    a, b = index.search(vectors[7:20], 5), loaded.search(vectors[7:20], 5)
    assert (a[1] == b[1]).all() and np.allclose(a[0], b[0])
    # float16 vectors after a 48 -> 16 PCA: the file is small
    assert (tmp_path / INDEX_FILE).stat().st_size < 120 * 16 * 2 + 48 * 16 * 4 + 4096


def test_broken_or_missing_index_files_name_the_file(tmp_path):
    index, _ = _index()
    index.save(tmp_path)
    (tmp_path / INDEX_FILE).write_bytes(b"garbage")
    with pytest.raises(RouterError, match=INDEX_FILE):
        NeighbourIndex.load(tmp_path)
    (tmp_path / INDEX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=INDEX_FILE) as info:
        NeighbourIndex.load(tmp_path)
    assert isinstance(info.value, RouterNotFoundError)
    index.save(tmp_path)
    (tmp_path / META_FILE).write_text('{"paths": []}')
    with pytest.raises(RouterError, match=META_FILE):
        NeighbourIndex.load(tmp_path)
