"""router.evaluate measures what is served: same decode, same resize, same router input."""

import numpy as np
import pytest
from PIL import Image

from common.images import read_image
from router import load_router
from router.evaluate import collect, evaluate
from serve import Colorizer
from tests.serve_support import colour_photo, grey_photo


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Awkward files: sizes the model shape rounds or squeezes, EXIF, 16 bits, alpha, palette."""
    root = tmp_path_factory.mktemp("parity")
    grey_photo(150, 97, seed=1).save(root / "grey.jpg", quality=90)
    turned = Image.merge("RGB", [grey_photo(120, 80, seed=s) for s in (2, 3, 4)])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    turned.save(root / "exif.jpg", exif=exif, quality=90)
    colour_photo(333, 251).save(root / "colour.png")
    Image.merge("RGB", [grey_photo(900, 70, seed=s) for s in (5, 6, 7)]).save(root / "wide.png")
    deep = np.asarray(grey_photo(77, 130, seed=8), np.uint16) * 257 + 100
    Image.fromarray(deep).save(root / "deep.png")
    rgba = Image.merge("RGBA", [grey_photo(64, 90, seed=s) for s in (9, 10, 11, 12)])
    rgba.save(root / "alpha.png")
    colour_photo(80, 60).quantize(16).save(root / "palette.png")
    return root


def test_evaluation_and_serving_decode_and_route_alike(weights, photos):
    router = load_router(weights / "router")
    report = evaluate(router, collect(photos, None), photos, batch_size=3)
    evaluated = {row["path"]: row for row in report["unlabelled"]}
    assert len(evaluated) == 7 and not report["unreadable"]
    colorizer = Colorizer.from_weights(weights, threshold=0.0)
    for name, row in sorted(evaluated.items()):
        photo = read_image(photos / name)
        served = colorizer.colorize(photo)
        assert served.domain == row["routed"], name
        assert served.probs == pytest.approx(row["probs"], abs=1e-6), name
        assert served.confidence == pytest.approx(row["confidence"], abs=1e-6), name


def test_routing_does_not_depend_on_the_model_size(weights, photos):
    """The router sees the photo's own pixels, not the specialists' (rounded) input."""
    photo = read_image(photos / "wide.png")
    small = Colorizer.from_weights(weights, size=64).colorize(photo)
    large = Colorizer.from_weights(weights, size=160).colorize(photo)
    assert small.model_size != large.model_size
    assert small.probs == pytest.approx(large.probs, abs=1e-6)
