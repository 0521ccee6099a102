"""PSNR of scikit-image's colour sample photos (never in any training or held-out set),
turned gray and coloured by the weights with and without the per-photo restraint.

    python benchmarks/restraint_samples.py [--weights DIR]
"""

import argparse

import numpy as np
from PIL import Image
from skimage import data

from serve import Colorizer

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", help="weights folder (default: the shipped weights/)")
    args = parser.parse_args()
    served, full = (
        Colorizer.from_weights(args.weights),
        Colorizer.from_weights(args.weights, restraint=False),
    )
    print("| photo | domain | restraint | gray PSNR | full strength | restrained |")
    print("|---|---|---|---|---|---|")
    for name in SAMPLES:
        truth = getattr(data, name)()
        grey = Image.fromarray(truth).convert("L")
        result = served.colorize(grey)
        figures = [psnr(np.asarray(im.convert("RGB")), truth)
                   for im in (grey, full.colorize(grey).image, result.image)]  # fmt: skip
        print(f"| {name} | {result.domain} | {result.restraint:.1f} | "
              + " | ".join(f"{v:.2f}" for v in figures) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
