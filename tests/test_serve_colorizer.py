"""The Colorizer: routing, the judged fallback, full-resolution output, awkward photos."""

from collections import Counter

import numpy as np
import pytest
from PIL import Image
from skimage import color

from common.images import from_pil
from discriminators.scoring import Judge
from serve import FORCED, JUDGE, ROUTER, Colorizer
from serve.transfer import full_lightness, model_input, rejoin
from specialists.output import predict_ab
from tests.serve_support import (
    COLOURS,
    DOMAINS,
    colour_photo,
    constant_generator,
    count_calls,
    grey_photo,
    make_weights,
    monotone_discriminator,
    tiny_router,
)


@pytest.fixture(scope="module")
def colorizer(weights):
    return Colorizer.from_weights(weights)


def _mean_ab(image):
    lab = color.rgb2lab(np.asarray(image.convert("RGB")) / 255.0)
    return lab[..., 1].mean(), lab[..., 2].mean()


def test_loads_every_piece_with_the_training_size(colorizer):
    assert sorted(colorizer.domains) == list(DOMAINS)
    assert colorizer.size == 64 and colorizer.stride == 32
    assert colorizer.threshold == pytest.approx(0.5)  # the router's own
    assert colorizer.judge is not None and not colorizer.judge.calibrated
    assert any("judge.json" in w for w in colorizer.warnings)


def test_confident_photos_use_the_routed_specialist_only(weights):
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    photos = [grey_photo(96, 64, seed=s) for s in range(3)]
    calls, handles = count_calls(colorizer)
    results = colorizer.colorize_batch(photos)
    for h in handles:
        h.remove()
    decisions = colorizer.route([from_pil(p) for p in photos])
    for result, decision in zip(results, decisions):
        assert result.strategy == ROUTER and result.scores == {}
        assert result.domain == decision.domain
        assert result.probs == pytest.approx(decision.probs)
        assert result.confidence == pytest.approx(decision.confidence)
    assert set(calls) == {d.domain for d in decisions}  # no other specialist ran
    assert sum(calls.values()) == len(set(calls))  # one batched pass per routed domain
    # the routed specialist's colour is the one on the photo
    a, b = _mean_ab(results[0].image)
    assert np.sign(a) == np.sign(COLOURS[results[0].domain][0])


@pytest.mark.parametrize("sign, winner", [(1.0, "portrait"), (-1.0, "landscape")])
def test_fallback_runs_every_specialist_and_picks_by_score(tmp_path, sign, winner):
    # judges that prefer the reddest candidate (sign +1) or the greenest (-1)
    colorizer = Colorizer.from_weights(make_weights(tmp_path, judge_sign=sign), threshold=1.5)
    calls, handles = count_calls(colorizer)
    results = colorizer.colorize_batch([grey_photo(64, 64, seed=s) for s in range(3)])
    for h in handles:
        h.remove()
    assert calls == Counter({d: 1 for d in DOMAINS})  # every specialist, one batched pass
    for result in results:
        assert result.strategy == JUDGE
        assert set(result.scores) == set(DOMAINS)
        assert result.domain == max(result.scores, key=result.scores.get) == winner
        reddest_first = sorted(DOMAINS, key=lambda d: -COLOURS[d][0] * sign)
        assert sorted(result.scores, key=lambda d: -result.scores[d]) == reddest_first
        a, _ = _mean_ab(result.image)
        assert np.sign(a) == np.sign(COLOURS[winner][0])  # the winner's colour was used
    forced = colorizer.colorize(grey_photo(64, 64, seed=0), domain=winner)
    np.testing.assert_array_equal(np.asarray(results[0].image), np.asarray(forced.image))


@pytest.mark.parametrize("threshold", [0.0, 1.5])
def test_every_candidate_changes_no_choice(weights, threshold):
    """``predict(every=True)`` shows every specialist's colouring and the judge's scores of
    each, and still chooses what serving chooses, with the same colours."""
    colorizer = Colorizer.from_weights(weights, threshold=threshold)
    photos = [from_pil(grey_photo(96, 64, seed=s)) for s in range(4)]
    served = colorizer.predict(photos)
    every = colorizer.predict(photos, every=True)
    for plain, full in zip(served, every):
        assert (full.domain, full.strategy, full.decision) == (
            plain.domain, plain.strategy, plain.decision,
        )  # fmt: skip
        assert set(full.candidates) == set(full.scores) == set(DOMAINS)
        assert full.judge_pick == max(full.scores, key=full.scores.get)
        assert (full.domain == full.judge_pick) or full.strategy == ROUTER
        np.testing.assert_allclose(full.ab, plain.ab, atol=1e-6)
        if plain.strategy == ROUTER:  # the router was sure: one colouring, not judged
            assert list(plain.candidates) == [plain.domain] and plain.judge_pick is None
        else:  # what serving scored (the favourite may need no score) scores the same
            assert plain.scores == pytest.approx(
                {d: full.scores[d] for d in plain.scores}, abs=1e-6
            )
    assert {p.strategy for p in served} == {ROUTER if threshold == 0 else JUDGE}


@pytest.mark.parametrize("router_weight", [0.0, 1.0, 1000.0])
def test_the_judge_colours_only_the_candidates_that_could_win(weights, router_weight):
    """Served, a judged photo gets its router favourite and the contenders only; the pick,
    its colours and the scores of what was made are those of scoring every candidate. Where
    nothing could outvote the favourite even at the lowest realism, nothing is scored."""
    colorizer = Colorizer.from_weights(weights, threshold=1.5)
    colorizer.judge.router_weight = router_weight
    photos = [from_pil(grey_photo(96, 64, seed=s)) for s in range(6)]
    served = colorizer.predict(photos)
    every = colorizer.predict(photos, every=True)
    for plain, full in zip(served, every):
        assert plain.strategy == JUDGE and plain.domain == full.domain == full.judge_pick
        np.testing.assert_allclose(plain.ab, full.ab, atol=1e-6)
        assert plain.scores == pytest.approx({d: full.scores[d] for d in plain.scores}, abs=1e-6)
        favourite = max(plain.probs, key=plain.probs.get)
        belief = {d: router_weight * np.log(max(p, 1e-6)) for d, p in plain.probs.items()}
        floor = np.log(1e-6) + belief[favourite]  # the favourite at the lowest realism
        if all(belief[d] < floor for d in DOMAINS if d != favourite):
            assert plain.scores == {} and list(plain.candidates) == [favourite]
            assert plain.domain == favourite
            continue
        assert set(plain.candidates) == set(plain.scores) and plain.judge_pick == plain.domain
        bar = np.log(plain.scores[favourite]) + belief[favourite]
        assert set(plain.candidates) == {d for d in DOMAINS if belief[d] >= bar - 1e-5}
    if router_weight == 0:
        assert all(set(p.candidates) == set(DOMAINS) for p in served)
    if router_weight == 1000:  # one percent behind is a factor 1e-4 after the weight: unjudged
        assert all(p.scores == {} and len(p.candidates) == 1 for p in served)


def test_mixed_batch_gives_each_photo_its_own_colours_unchanged(weights):
    """A photo in a mixed batch gets exactly (byte for byte) what the plain recipe gives it
    alone: its shape (the one it had before buckets), a router pass, its specialist, the join.
    Batching shapes together and routing the whole batch in one pass change no colour."""
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    photos = [grey_photo(96, 64, seed=1), grey_photo(40, 80, seed=2), grey_photo(64, 64, seed=3),
              grey_photo(300, 40, seed=4), grey_photo(96, 64, seed=5)]  # fmt: skip
    results = colorizer.colorize_batch(photos)
    for photo, result, shape in zip(photos, results, [(64, 96), (128, 64), (64, 64)]):
        pixels = from_pil(photo).pixels
        l_norm = model_input(pixels, shape)
        decision = colorizer.router.route(colorizer.router.view(pixels))[0]
        ab = predict_ab(colorizer.generators[decision.domain], l_norm)[0]
        expected = rejoin(pixels, ab)
        assert result.model_size == (shape[1], shape[0]) and result.domain == decision.domain
        np.testing.assert_array_equal(np.asarray(result.image), expected)
    assert results[3].model_size == (256, 64)  # 7.5:1 squeezed to the 4:1 bucket
    assert results[3].image.size == (300, 40)


def test_forced_domain(colorizer):
    result = colorizer.colorize(grey_photo(50, 40), domain="landscape")
    assert (result.strategy, result.domain, result.probs, result.confidence) == (
        FORCED, "landscape", {}, None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="unknown domain"):
        colorizer.colorize(grey_photo(50, 40), domain="underwater")


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (2000, 5), (5, 1500), (333, 251), (64, 64)])
def test_output_has_the_input_size(colorizer, size):
    result = colorizer.colorize(grey_photo(*size))
    assert result.image.size == size and result.image.mode == "RGB"
    h, w = result.model_size[1], result.model_size[0]
    assert h % 32 == 0 and w % 32 == 0


def test_batch_groups_shapes_and_keeps_order(colorizer):
    photos = [grey_photo(64, 64), grey_photo(128, 64), grey_photo(64, 64, seed=2)]
    results = colorizer.colorize_batch(photos, domain="general")
    assert [r.image.size for r in results] == [(64, 64), (128, 64), (64, 64)]
    calls, handles = count_calls(colorizer)
    colorizer.colorize_batch(photos, domain="general")
    for h in handles:
        h.remove()
    assert calls == Counter({"general": 2})  # two shapes, two passes


def test_grey_photo_with_neutral_specialists_comes_back_unchanged():
    zero = {d: constant_generator((0.0, 0.0)) for d in DOMAINS}
    judge = Judge({d: monotone_discriminator() for d in DOMAINS})
    colorizer = Colorizer(tiny_router(), zero, judge, size=64)
    image = grey_photo(301, 177)
    result = colorizer.colorize(image)
    out = np.asarray(result.image)
    for channel in range(3):  # the photo's own full-resolution L, untouched
        np.testing.assert_array_equal(out[..., channel], np.asarray(image))


def test_full_resolution_detail_is_kept(colorizer):
    image = grey_photo(640, 480, seed=5)
    result = colorizer.colorize(image, domain="general")
    out_l = color.rgb2lab(np.asarray(result.image) / 255.0)[..., 0]
    in_l = full_lightness(np.asarray(image))[0].numpy()
    assert np.corrcoef(out_l.ravel(), in_l.ravel())[0, 1] > 0.995


def test_alpha_sixteen_bit_and_colour_inputs(colorizer):
    rgba = Image.merge("RGBA", [grey_photo(70, 30)] * 3 + [grey_photo(70, 30, seed=9)])
    result = colorizer.colorize(rgba)
    assert result.image.mode == "RGBA" and result.image.size == (70, 30)
    np.testing.assert_array_equal(
        np.asarray(result.image.getchannel("A")), np.asarray(rgba.getchannel("A"))
    )
    deep = Image.fromarray(np.asarray(grey_photo(40, 30), np.uint16) * 257)
    assert deep.mode == "I;16"
    assert colorizer.colorize(deep).image.size == (40, 30)

    source = colour_photo(80, 60)
    result = colorizer.colorize(source, domain="landscape")
    assert result.already_colour and result.image.size == (80, 60)
    in_l = color.rgb2lab(np.asarray(source) / 255.0)[..., 0]
    out_l = color.rgb2lab(np.asarray(result.image) / 255.0)[..., 0]
    assert np.abs(in_l - out_l).mean() < 1.5  # recoloured from its own luminance
    assert _mean_ab(result.image)[0] < 0  # landscape's green, not the source's red


def test_model_size_setting(weights):
    big = Colorizer.from_weights(weights, size=128)
    assert big.colorize(grey_photo(300, 200)).model_size == (192, 128)


def test_a_fallback_needs_a_judge():
    with pytest.raises(ValueError, match="needs a judge"):
        Colorizer(tiny_router(), {d: constant_generator(None) for d in DOMAINS}, None)
