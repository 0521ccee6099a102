"""Serving speed and memory: what `python -m serve.colorize` costs on this machine.

    python benchmarks/bench_serve.py [--threads 2] [--photos 64] [--weights DIR]

Measured in one run, on one machine:
- throughput: images/second over a folder of 256 px grayscale JPEGs, end to end (decode,
  route, colour, full-resolution join, PNG encode, atomic write, report line), with
  confident routing (``--threshold 0``), per model size and batch size;
- the fallback path (every specialist + the judge panel): seconds per photo;
- peak memory (max RSS of the whole ``python -m serve.colorize`` process) and time for a
  24-megapixel scan (6000 x 4000), grey and colour, routed and fallback;
- the write-up's bare generator (pix2pix U-Net-256, ngf 64) forward pass per 256 px image,
  and the ratio of the routed pipeline's cost per image to it (goal: at most 1/3);
- seconds per photo by model size on a 1024 x 768 photo (what a larger ``--size`` costs);
- with ``--quality-checkpoint`` (a trained specialist) and ``--quality-data``: PSNR and
  colourfulness against the truth by model size, on the data's validation photos of that
  domain (~200 px) and on scikit-image's larger sample photos (300-741 px), coloured by
  the same transfer code the Colorizer uses (forced to that specialist).

With ``--mixed-data DIR`` (a folder holding colorize-v2 and colorize-v1): the real-folder
case, whole processes of ``python -m serve.colorize`` timed from the outside, process start
included: a folder of grayscale copies of every colorize-v2 val photo (every size and
orientation, as they come), the larger colorize-v1 photos (long side >= 400 px) and upright
and wide crops of them, its seconds per photo at each ``--precision`` (float32, bfloat16 and
auto, the served default; float32 with ``--workers 1``; auto with ``--fast``) against the
``unet_256`` forward timed in the same run (goal: at most 1/3); the start-up (one photo,
first photo done) and ``--help``.
``--only-mixed`` runs just that and the 24-megapixel scans; results go to
benchmarks/results/serve_mixed.json. With ``--device cuda`` (or any device, ``cpu`` too) the
mixed folder is also coloured on that device by the served default at model sizes 128 and
256, batch 64: photos per second end to end, process start included (issue 16's GPU figure).

Without ``--weights`` a weights folder with the real architectures at random init is built
(3 x unet_effnet_lite0 + 70x70 PatchGAN, the EfficientNet-Lite0 router with a 12,000-photo
index): speed and memory do not depend on what the weights learned. Writes
benchmarks/results/serve.json.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as serve does (serve._threads):
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before torch and numpy load

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import discriminators  # noqa: E402
import specialists  # noqa: E402
from common.links import follow_link_file  # noqa: E402
from router import Calibration, NeighbourIndex, Router, create_router_net  # noqa: E402
from serve.batch import run  # noqa: E402
from serve.colorizer import Colorizer  # noqa: E402
from serve.inputs import expand_inputs  # noqa: E402
from serve.options import PRECISIONS  # noqa: E402

ONE_WORKER = "float32_one_model_worker"  # the mixed folder as served before two workers
FAST = "auto_fast"  # the served default with --fast (the top decoder block at half size)
DEVICE_BATCH = 64  # --device: large batches keep an accelerator fed (README's cuda example)
from serve.precision import cpu_name  # noqa: E402
from serve.run_report import Report  # noqa: E402
from serve.transfer import model_input, model_shape, rejoin  # noqa: E402
from specialists.checkpoint import save_checkpoint, with_prefix  # noqa: E402
from specialists.metrics import colourfulness, psnr  # noqa: E402
from specialists.output import predict_ab  # noqa: E402
from training.data import evenly_spaced  # noqa: E402

DOMAINS = ("general", "landscape", "portrait")
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve.json"


def build_weights(root: Path, size: int = 128, index_photos: int = 12000) -> Path:
    """Real architectures, random weights; config ``size`` like the README's training."""
    for domain in DOMAINS:
        gen = specialists.create_model("unet_effnet_lite0", pretrained=False)
        disc = discriminators.create_model("patchgan")
        config = {"models": {"generator": gen.spec, "discriminator": disc.spec}}
        tensors = {**with_prefix(gen.state_dict(), "generator")}
        tensors.update(with_prefix(disc.state_dict(), "discriminator"))
        config.update(domain=domain, size=size)
        save_checkpoint(root / "specialists" / f"{domain}.safetensors", tensors, config)
    net = create_router_net("effnet_lite0_router", num_domains=3, pretrained=False)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(index_photos, net.embed_dim)).astype(np.float32)
    labels = np.arange(index_photos) % 3
    paths = [f"train/{DOMAINS[i]}/{n:05d}.jpg" for n, i in enumerate(labels)]
    index = NeighbourIndex.build(embeddings, paths, labels, list(DOMAINS), dim=128)
    Router(net, index, Calibration(k=10), list(DOMAINS), 0.9).save(root / "router")
    return root


def photo(width: int, height: int, seed: int, colour: bool = False) -> Image.Image:
    """Smooth shapes plus grain: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 110 + 60 * np.sin(xx / (width / 7 + 1) + seed) * np.cos(yy / (height / 5 + 1))
    grey = np.clip(base + rng.normal(0, 6, (height, width)), 0, 255).astype(np.uint8)
    if not colour:
        return Image.fromarray(grey, "L")
    tint = np.stack([grey, (grey * 0.8).astype(np.uint8), (grey * 0.6).astype(np.uint8)], -1)
    return Image.fromarray(tint, "RGB")


def throughput(colorizer: Colorizer, folder: Path, out: Path, batch: int) -> dict:
    jobs = expand_inputs([str(folder)], out, "png")
    run(colorizer, jobs[:batch], None, batch_size=batch, progress=False)  # warm-up
    report = Report(out.parent / f"report-{out.name}.jsonl")
    summary = run(colorizer, jobs, report, out_dir=out, batch_size=batch, progress=False)
    report.close()
    return {
        "photos": summary.done,
        "failed": summary.failed,
        "fallbacks": summary.fallbacks,
        "images_per_s": round(summary.done / summary.seconds, 2),
        "s_per_photo": round(summary.seconds / summary.done, 4),
    }


class UNet256:
    """The write-up's bare generator (pix2pix U-Net-256, ngf 64), timed at 256 px, batch 8.

    Timed right before each pipeline measurement: on a shared machine the load changes
    from minute to minute, and the ratio should compare like with like.
    """

    def __init__(self, batch: int = 8) -> None:
        self.model = specialists.create_model("unet_256").eval()
        self.x = torch.rand(batch, 1, 256, 256) * 2 - 1
        self.times: list[float] = []

    def seconds(self, repeats: int = 3) -> float:
        """Median forward seconds per image of ``repeats`` batches (after one warm-up)."""
        with torch.inference_mode():
            self.model(self.x)
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                self.model(self.x)
                runs.append((time.perf_counter() - start) / len(self.x))
        self.times += runs
        return statistics.median(runs)


# The child reports its own high-water mark: a forked child's ru_maxrss starts at the
# (large) benchmark parent's, so getrusage cannot see a small child's true peak.
_PEAK_WRAPPER = (
    "import sys; from serve.colorize import main; code = main(sys.argv[1:]); "
    "status = open('/proc/self/status').read(); "
    "print('VmHWM', status.split('VmHWM:')[1].split()[0], file=sys.stderr); sys.exit(code)"
)


def peak_memory(image: Path, weights: Path, out: Path, threads: int, *extra: str) -> dict:
    """Peak RSS (MiB, VmHWM) and wall time of a whole `python -m serve.colorize` process."""
    cmd = [sys.executable, "-c", _PEAK_WRAPPER, str(image), "-o", str(out), "--weights",
           str(weights), "--no-progress", "--threads", str(threads), *extra]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"colorize failed ({proc.returncode}): {proc.stderr}")
    peak_kib = int(proc.stderr.split("VmHWM")[-1].split()[0])
    return {"peak_rss_mib": round(peak_kib / 1024, 1), "wall_s": round(wall, 2)}


def mixed_folder(data: Path, folder: Path, limit: int | None = None) -> dict:
    """Grayscale JPEG copies of the real-folder mix (see the module docstring); its make-up."""
    folder.mkdir(parents=True)
    sources = sorted((data / "colorize-v2" / "val").glob("*/*.jpg"))
    sources = evenly_spaced(sources, limit) if limit else sources
    large = [
        path for path in sorted((data / "colorize-v1").glob("*/*/*.jpg")) if _long_side(path) >= 400
    ]
    count, shapes = 0, set()

    def add(image: Image.Image) -> None:
        nonlocal count
        image.convert("L").save(folder / f"{count:05d}.jpg", quality=90)
        shapes.add(image.size)
        count += 1

    unreadable = 0
    for path in sources + large:
        try:
            image = Image.open(follow_link_file(path))  # v2's v1 photos are placeholders
            image.load()
        except OSError:  # the data has a few broken files; the CLI would report them
            unreadable += 1
            continue
        add(image)
    for path in large[::4]:  # an upright strip and a wide strip of every 4th larger photo
        image = Image.open(path)
        w, h = image.size
        add(image.crop((0, 0, max(32, w // 3), h)))
        add(image.crop((0, 0, w, max(32, h // 3))))
    sizes = [max(s) for s in shapes]
    return {
        "photos": count,
        "colorize_v2_val": len(sources),
        "colorize_v1_large": len(large),
        "crops": 2 * len(large[::4]),
        "unreadable_skipped": unreadable,
        "distinct_sizes": len(shapes),
        "long_side_px": [min(sizes), max(sizes)],
        "portrait_orientation": sum(1 for p in folder.iterdir() if _upright(p)),
    }


def _long_side(path: Path) -> int:
    try:
        return max(Image.open(path).size)
    except OSError:
        return 0


def _upright(path: Path) -> bool:
    width, height = Image.open(path).size
    return height > width


def _process(args: list[str], out: Path | None = None) -> float:
    """Wall seconds of one ``python -m serve.colorize`` process (start-up included)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "serve.colorize", *args], cwd=REPO, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"colorize {args} failed ({proc.returncode}): {proc.stderr}")
    return wall


def mixed_case(data: Path, weights: Path, tmp: Path, threads: int, limit: int | None) -> dict:
    """The real-folder figures: whole processes, against unet_256 timed around them."""
    folder = tmp / "mixed"
    makeup = mixed_folder(data, folder, limit)
    common = ["--weights", str(weights), "--no-progress", "--threads", str(threads)]
    helps = [_process(["--help"]) for _ in range(3)]
    one = next(iter(sorted(folder.iterdir())))
    starts = [_process([str(one), "-o", str(tmp / f"one{i}"), *common]) for i in range(3)]
    unet = UNet256()
    before = unet.seconds()
    walls, records = {}, []
    # float32, bfloat16, float32 on one model worker (as before two), then auto (served),
    # and auto with --fast
    cases = {p: ["--precision", p] for p in PRECISIONS[1:]}
    cases[ONE_WORKER] = ["--precision", "float32", "--workers", "1"]
    cases[PRECISIONS[0]] = ["--precision", PRECISIONS[0]]
    cases[FAST] = ["--precision", PRECISIONS[0], "--fast"]
    for case, flags in cases.items():
        report = tmp / f"mixed-{case}.jsonl"
        out = tmp / f"mixed-out-{case}"
        args = [str(folder), "-o", str(out), "--report", str(report), *flags]
        walls[case] = _process([*args, *common])
        records = [json.loads(line) for line in report.read_text().splitlines()]
    after = unet.seconds()
    done = sum(1 for r in records if r["error"] is None)
    reference = statistics.median(unet.times)
    per_photo = {precision: wall / done for precision, wall in walls.items()}
    return {
        "folder": makeup,
        "done": done,
        "fallbacks": sum(1 for r in records if r["strategy"] == "discriminator"),
        "model_input_shapes": len({tuple(r["model_size"]) for r in records if r["model_size"]}),
        "process_wall_s": {precision: round(wall, 2) for precision, wall in walls.items()},
        "s_per_photo_end_to_end": {p: round(s, 4) for p, s in per_photo.items()},
        "unet_256_s_per_image": {
            "before": round(before, 4),
            "after": round(after, 4),
            "median": round(reference, 4),
        },  # fmt: skip
        "ratio_to_unet_256": {p: round(s / reference, 3) for p, s in per_photo.items()},
        "start_up_first_photo_done_s": {
            "median": round(statistics.median(starts), 2),
            "runs": [round(s, 2) for s in starts],
        },  # fmt: skip
        "help_s": {
            "median": round(statistics.median(helps), 3),
            "runs": [round(s, 3) for s in helps],
        },  # fmt: skip
    }


def device_case(folder: Path, weights: Path, tmp: Path, device: str) -> dict:
    """Photos/s of whole ``python -m serve.colorize --device DEVICE`` processes on ``folder``
    at model sizes 128 and 256, batch :data:`DEVICE_BATCH`."""
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu_name()
    out: dict = {"device": device, "name": name, "batch_size": DEVICE_BATCH}
    common = ["--weights", str(weights), "--no-progress", "--device", device]
    for size in (128, 256):
        report = tmp / f"device-{size}.jsonl"
        flags = ["--size", str(size), "--batch-size", str(DEVICE_BATCH), "--report", str(report)]
        wall = _process([str(folder), "-o", str(tmp / f"device-out-{size}"), *flags, *common])
        records = [json.loads(line) for line in report.read_text().splitlines()]
        done = sum(1 for r in records if r["error"] is None)
        out[f"size {size}"] = {
            "done": done,
            "process_wall_s": round(wall, 2),
            "photos_per_s_end_to_end": round(done / wall, 2),
        }
        print(f"{device} size {size}: {done / wall:.2f} photos/s end to end", flush=True)
    return out


def _sample_photos() -> list[np.ndarray]:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    return [*photos, data.stereo_motorcycle()[0]]


def quality_by_size(checkpoint: Path, data: Path | None, sizes: list[int], count: int) -> dict:
    """PSNR / colourfulness against the truth of a trained specialist, by model size."""
    generator = specialists.load_generator(checkpoint).to(memory_format=torch.channels_last)
    config = specialists.checkpoint.read_config(checkpoint)
    domain = config.get("domain")
    sets = {"scikit-image photos (300-741 px)": _sample_photos()}
    if data is not None and domain:
        files = sorted((data / "val" / domain).glob("*.jpg"))[:count]
        label = f"{data.name} val {domain} ({len(files)} photos, ~200 px)"
        sets[label] = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    out: dict = {
        "checkpoint": str(checkpoint),
        "domain": domain,
        "training_size": config.get("size"),
        "step": config.get("step"),
        "val_psnr_at_training": config.get("metrics", {}).get("val_psnr"),
    }
    for label, photos in sets.items():
        rows = {}
        truth_colour = float(np.mean([colourfulness(_tensor(p)).item() for p in photos]))
        for size in sizes:
            scores, colour = [], []
            with torch.inference_mode():
                for pixels in photos:
                    shape = model_shape(pixels.shape[1], pixels.shape[0], size, generator.stride)
                    ab = predict_ab(generator, model_input(pixels, shape))[0]
                    result = _tensor(rejoin(pixels, ab))
                    scores.append(psnr(result, _tensor(pixels)).item())
                    colour.append(colourfulness(result).item())
            rows[f"size {size}"] = {
                "psnr": round(float(np.mean(scores)), 2),
                "colourfulness": round(float(np.mean(colour)), 1),
            }
            print(f"quality {label:40s} size {size:4d} {rows[f'size {size}']}", flush=True)
        grey = [psnr(_tensor(rejoin(p, torch.zeros(2, 1, 1))), _tensor(p)).item() for p in photos]
        out[label] = {
            "by_size": rows,
            "psnr_grey": round(float(np.mean(grey)), 2),
            "colourfulness_truth": round(truth_colour, 1),
        }
    return out


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--weights", type=Path, help="trained weights (default: random init)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--skip-24mp", action="store_true")
    parser.add_argument("--quality-checkpoint", type=Path, help="a trained specialist")
    parser.add_argument("--quality-data", type=Path, help="data folder with val/<domain>/")
    parser.add_argument("--quality-count", type=int, default=100)
    parser.add_argument("--only-quality", action="store_true")
    parser.add_argument("--mixed-data", type=Path, help="folder with colorize-v2 and -v1")
    parser.add_argument("--mixed-limit", type=int, help="at most this many colorize-v2 photos")
    parser.add_argument("--only-mixed", action="store_true")
    parser.add_argument("--device", help="with --mixed-data: also time the folder on it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "threads": args.threads,
        "load_average_before": round(os.getloadavg()[0], 2),
        "weights": str(args.weights) if args.weights else "random init, real architectures",
    }
    if args.quality_checkpoint:
        results["quality_by_model_size"] = quality_by_size(
            args.quality_checkpoint,
            args.quality_data,
            sorted({*args.sizes, 192, 384, 512}),
            args.quality_count,
        )
    if args.only_quality:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        return
    if args.only_mixed and args.out == DEFAULT_OUT:
        args.out = DEFAULT_OUT.with_name("serve_mixed.json")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights = args.weights or build_weights(tmp / "weights")
        if args.mixed_data:
            res = mixed_case(args.mixed_data, weights, tmp, args.threads, args.mixed_limit)
            results["mixed_folder"] = res
            print(f"mixed folder {json.dumps(res)}", flush=True)
            if args.device:
                results["mixed_folder_on_device"] = device_case(
                    tmp / "mixed", weights, tmp, args.device
                )
        if args.only_mixed:
            _scans(results, weights, tmp, args.threads, args.skip_24mp)
            results["load_average_after"] = round(os.getloadavg()[0], 2)
            _write(results, args.out)
            return
        folder = tmp / "photos"
        folder.mkdir()
        for i in range(args.photos):
            photo(256, 256, i).save(folder / f"{i:04d}.jpg", quality=90)

        results["throughput_256px_confident"] = {}
        results["pipeline_over_unet_256"] = {}
        unet = UNet256()
        for size in args.sizes:
            colorizer = Colorizer.from_weights(weights, size=size, threshold=0.0)
            for batch in args.batch_sizes:
                key = f"size {size}, batch {batch}"
                reference = unet.seconds()
                res = throughput(colorizer, folder, tmp / f"out-{size}-{batch}", batch)
                res["unet_256_s_per_image_just_before"] = round(reference, 4)
                results["throughput_256px_confident"][key] = res
                ratio = round(res["s_per_photo"] / reference, 3)
                results["pipeline_over_unet_256"][key] = ratio
                print(
                    f"confident  {key:20s} {res['images_per_s']:6.2f} images/s; "
                    f"unet_256 {reference * 1000:.0f} ms/image; ratio {ratio:.3f}",
                    flush=True,
                )
        results["unet_256_forward_s_per_image"] = {
            "median": round(statistics.median(unet.times), 4),
            "min": round(min(unet.times), 4),
            "max": round(max(unet.times), 4),
        }

        results["fallback_256px"] = {}
        few = tmp / "few"
        few.mkdir()
        for i in range(max(8, args.photos // 4)):
            photo(256, 256, i).save(few / f"{i:04d}.jpg", quality=90)
        for size in args.sizes:
            colorizer = Colorizer.from_weights(weights, size=size, threshold=1.5)
            res = throughput(colorizer, few, tmp / f"fallback-{size}", 8)
            assert res["fallbacks"] == res["photos"]
            results["fallback_256px"][f"size {size}, batch 8"] = res
            print(f"fallback   size {size:<15d} {res['s_per_photo']:6.3f} s/photo", flush=True)

        results["by_model_size_1024x768"] = {}
        big = photo(1024, 768, 7)
        for size in sorted({*args.sizes, 384, 512}):
            colorizer = Colorizer.from_weights(weights, size=size, threshold=0.0)
            colorizer.colorize(big)
            start = time.perf_counter()
            for _ in range(3):
                result = colorizer.colorize(big)
            seconds = (time.perf_counter() - start) / 3
            results["by_model_size_1024x768"][f"size {size}"] = {
                "model_input": list(result.model_size),
                "s_per_photo": round(seconds, 3),
            }
            print(f"1024x768 at size {size}: model {result.model_size}, {seconds:.3f} s")

        _scans(results, weights, tmp, args.threads, args.skip_24mp)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    _write(results, args.out)


def _write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def _scans(results: dict, weights: Path, tmp: Path, threads: int, skip: bool) -> None:
    """Peak memory and wall time of whole processes colouring one 24-megapixel scan."""
    if skip:
        return
    results["scan_24mp"] = {}
    for label, colour in (("grey", False), ("colour", True)):
        scan = tmp / f"scan-{label}.jpg"
        photo(6000, 4000, 3, colour).save(scan, quality=92)
        for strategy, threshold in (("routed", "0"), ("fallback", "1.5")):
            res = peak_memory(scan, weights, tmp / "scan-out", threads, "--threshold", threshold)
            out = Image.open(tmp / "scan-out" / f"scan-{label}.png")
            assert out.size == (6000, 4000)
            results["scan_24mp"][f"{label}, {strategy}"] = res
            print(f"24 MP {label:6s} {strategy:8s} {res}", flush=True)


if __name__ == "__main__":
    main()
