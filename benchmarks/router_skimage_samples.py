"""Photos from other sources for the router: scikit-image's (and matplotlib's) sample photos.

``python benchmarks/router_skimage_samples.py OUT_DIR`` writes them into domain folders
(labels are a person's judgement, written here) plus loose files that belong to no domain
(documents, astronomy, microscopy, textures: the router should fall back on those), then
``python -m router.evaluate OUT_DIR --weights ...`` measures the router on them.
"""

import sys
from pathlib import Path

import numpy as np
import skimage.data as data
from matplotlib import cbook
from PIL import Image


def grace_hopper() -> np.ndarray:
    """matplotlib's bundled portrait of Grace Hopper (512 x 600)."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return np.asarray(image.convert("RGB"))


LABELLED = {
    "portrait": {
        "astronaut_face": lambda: data.astronaut()[5:205, 120:320],  # tight face crop
        "astronaut": data.astronaut,  # upper body, studio portrait
        "grace_hopper_face": lambda: grace_hopper()[40:360, 90:410],
        "grace_hopper": grace_hopper,  # head and shoulders, uniform
    },
    "general": {
        "coffee": data.coffee,
        "chelsea_cat": data.chelsea,
        "rocket": data.rocket,
        "coins": data.coins,
        "clock": data.clock,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "cameraman": data.camera,  # a man with a camera on a lawn: a scene, not a face crop
    },
}
NO_DOMAIN = {
    "page": data.page,
    "text": data.text,
    "moon": data.moon,
    "hubble_deep_field": data.hubble_deep_field,
    "immunohistochemistry": data.immunohistochemistry,
    "retina": data.retina,
    "cell": data.cell,
    "grass": data.grass,
    "gravel": data.gravel,
    "brick": data.brick,
    "colorwheel": data.colorwheel,
}


def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/skimage-samples")
    for domain, photos in LABELLED.items():
        for name, load in photos.items():
            save(load(), out / domain / f"{name}.png")
    for name, load in NO_DOMAIN.items():
        save(load(), out / f"{name}.png")
    print(f"wrote {out}; now: python -m router.evaluate {out} --weights WEIGHTS/router")
    return 0


if __name__ == "__main__":
    sys.exit(main())
