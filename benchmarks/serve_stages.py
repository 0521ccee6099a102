"""Where a mixed folder's serving time goes, stage by stage (issue 16: what to speed up next).

    python benchmarks/serve_stages.py FOLDER [--weights weights] [--out OUT.json]

One process, stages run one after another (no overlap, unlike ``python -m serve.colorize``):
decode, router, generator passes, judge scoring, full-resolution join and PNG encoding,
each in milliseconds per photo. FOLDER is any folder of photos, e.g. the mixed folder
``benchmarks/bench_serve.py --mixed-data`` builds (its ``mixed_folder``).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as serve does (serve._threads):
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before torch and numpy load

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import serve.colorizer as colorizer_module  # noqa: E402
from common.images import MAX_SIDE, read_image, save_image  # noqa: E402
from serve.colorizer import Colorizer  # noqa: E402
from serve.precision import cpu_name  # noqa: E402


def timed(seconds: dict, name: str, function):  # noqa: ANN001, ANN201 - a thin wrapper
    """``function`` with its wall time added to ``seconds[name]``."""

    def wrapper(*args):  # noqa: ANN002, ANN202
        start = time.perf_counter()
        out = function(*args)
        seconds[name] += time.perf_counter() - start
        return out

    return wrapper


def stages(folder: Path, weights: Path, batch: int, threads: int) -> dict:
    """Seconds per stage over every photo of ``folder``, in batches of one model-input shape."""
    torch.set_num_threads(threads)
    seconds: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    colorizer = Colorizer.from_weights(weights)
    load = time.perf_counter() - start
    colorizer.route = timed(seconds, "router", colorizer.route)
    colorizer_module.predict_ab = timed(seconds, "generators", colorizer_module.predict_ab)
    colorizer.judge.score = timed(seconds, "judge_scoring", colorizer.judge.score)
    start = time.perf_counter()
    photos = [read_image(path, MAX_SIDE, 64_000_000) for path in sorted(folder.iterdir())]
    seconds["decode"] = time.perf_counter() - start
    buckets = defaultdict(list)
    for photo in photos:
        buckets[colorizer.input_shape(photo)].append(photo)
    batches = [
        group[i : i + batch] for group in buckets.values() for i in range(0, len(group), batch)
    ]
    start = time.perf_counter()
    predicted = [(p, pred) for b in batches for p, pred in zip(b, colorizer.predict(b))]
    seconds["models_total"] = time.perf_counter() - start
    start = time.perf_counter()
    results = [colorizer.finish(photo, prediction) for photo, prediction in predicted]
    seconds["full_resolution_join"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i, result in enumerate(results):
            save_image(result.image, Path(tmp) / f"{i}.png", "png")
        seconds["png_encode_write"] = time.perf_counter() - start
    count = len(photos)
    return {
        "machine": {"cpu": cpu_name(), "threads": threads, "torch": torch.__version__},
        "generator_dtype": str(colorizer.dtype),
        "photos": count,
        "batches": len(batches),
        "model_input_shapes": len(buckets),
        "to_the_judge": sum(1 for r in results if r.strategy == "discriminator"),
        "models_loaded_s": round(load, 2),
        "ms_per_photo": {name: round(1000 * s / count, 2) for name, s in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = stages(args.folder, args.weights, args.batch, args.threads)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
