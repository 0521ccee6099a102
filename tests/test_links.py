from PIL import Image

from common.links import follow_link_file


def test_a_link_placeholder_is_followed(tmp_path):
    (tmp_path / "v1" / "train").mkdir(parents=True)
    photo = tmp_path / "v1" / "train" / "a.jpg"
    Image.new("RGB", (64, 64), (200, 80, 20)).save(photo)
    (tmp_path / "v2").mkdir()
    placeholder = tmp_path / "v2" / "a.jpg"
    placeholder.write_text("../v1/train/a.jpg")
    assert follow_link_file(placeholder) == tmp_path / "v2" / "../v1/train/a.jpg"
    with Image.open(follow_link_file(placeholder)) as image:
        assert image.size == (64, 64)


def test_anything_else_is_left_alone(tmp_path):
    photo = tmp_path / "b.png"
    Image.new("RGB", (64, 64)).save(photo)
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not a path to anything")
    absolute = tmp_path / "abs.jpg"
    absolute.write_text(str(photo))  # absolute targets are not followed
    loop = tmp_path / "loop.jpg"
    loop.write_text("loop.jpg")  # names itself: a placeholder, not an image
    for path in (photo, text, absolute, loop, tmp_path / "missing.jpg"):
        assert follow_link_file(path) == path


def test_training_routing_and_serving_decoders_follow_placeholders(tmp_path):
    import numpy as np

    from common.images import read_image
    from router.preprocess import load_l_norm
    from training.data import load_rgb

    rng = np.random.default_rng(0)
    (tmp_path / "real").mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "real/a.png")
    placeholder = tmp_path / "a.png"
    placeholder.write_text("real/a.png")
    assert load_rgb(placeholder).size == (48, 40)
    assert tuple(load_l_norm(placeholder).shape) == (1, 1, 40, 48)
    assert read_image(placeholder).size == (48, 40)
