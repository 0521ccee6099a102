"""CPU runtimes for the served generator: what each would buy, measured in one process.

    python benchmarks/bench_runtimes.py [--weights weights] [--threads 2] [--repeats 5]

For the shipped general specialist (``unet_effnet_lite0``) at batch 8 and the model shapes a
mixed folder fills most (128 x 128, 128 x 160, 128 x 192), seconds per batch (median of
``--repeats``, interleaved so that a busy machine slows every runtime alike) for:

- ``eager_fp32``: PyTorch, as trained (batch norms in place);
- ``folded_fp32``: PyTorch with the batch norms folded into the convolutions (common.fold);
- ``split_fp32``: folded, and each decoder block's skip concatenation split into one
  convolution per part (``specialists.timm_unet.SplitConv2d``);
- ``unpadded_fp32``: split, and the stride-2 convolutions padding no copy of their input
  (``common.same_padding``);
- ``served_fp32``: unpadded, and each dense convolution and its activation in one oneDNN
  call (``common.conv_act``): what serving runs (``specialists.serving.for_inference``);
- ``folded_bf16`` / ``served_bf16``: the same under CPU bfloat16 autocast (what
  ``--precision auto`` serves on a CPU with AMX or AVX-512 BF16);
- ``served_fast_fp32`` / ``served_fast_bf16``: served in fast mode (``--fast``: the top
  decoder block and head at half size, ``specialists.serving.half_res_top``), its ab
  stretched back as ``specialists.output.predict_ab`` does; its difference from eager is
  fast mode's own change of colour, not rounding;
- ``onnxruntime_fp32``: the folded model exported to ONNX (dynamic batch and size) and run by
  ONNX Runtime's CPU provider, when ``onnxruntime`` and ``onnx`` are importable (they are not
  dependencies of the project: ``pip install onnxruntime onnx`` to include them);
- ``compiled_fp32`` / ``compiled_bf16``: ``torch.compile`` of the folded model, with the
  compile time of the first shape (``--compile`` only: it takes minutes on 2 cores).

Also the largest difference of each runtime's output from ``eager_fp32``'s (tanh units).
Writes benchmarks/results/runtimes.json.
"""

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import specialists  # noqa: E402
from common.conv_act import fuse_conv_activations  # noqa: E402
from common.fold import fold_batchnorm  # noqa: E402
from common.same_padding import unpad_same_convs  # noqa: E402
from serve.precision import CpuAutocast, cpu_has_bf16, cpu_name  # noqa: E402
from specialists.output import stretched_back  # noqa: E402
from specialists.serving import half_res_top  # noqa: E402
from specialists.timm_unet import split_concats  # noqa: E402

SHAPES = ((128, 128), (128, 160), (128, 192))
BATCH = 8


def _onnxruntime(model: torch.nn.Module, threads: int, folder: Path) -> Callable | str:
    """An ONNX Runtime session's run function, or why there is none."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    path = folder / "generator.onnx"
    example = torch.zeros(BATCH, 1, *SHAPES[0])
    axes = {"l": {0: "batch", 2: "height", 3: "width"}, "ab": {0: "batch"}}
    try:
        torch.onnx.export(
            model, (example,), str(path), input_names=["l"], output_names=["ab"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any export failure is the answer itself
        return f"export failed: {exc}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"l": x.numpy()})[0])


def _stretched(model: Callable) -> Callable:
    """``model`` with its half-size ab stretched back to the input's size, as
    ``specialists.output.predict_ab`` serves a fast-mode model (after any autocast)."""
    return lambda x: stretched_back(model(x), x.shape[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/runtimes.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    path = args.weights / "specialists" / "general.safetensors"
    eager = specialists.load_generator(path).eval().to(memory_format=torch.channels_last)
    folded = fold_batchnorm(eager).to(memory_format=torch.channels_last)
    split = split_concats(copy.deepcopy(folded)).to(memory_format=torch.channels_last)
    unpadded = unpad_same_convs(copy.deepcopy(split)).to(memory_format=torch.channels_last)
    served = fuse_conv_activations(copy.deepcopy(unpadded))
    fast = copy.deepcopy(served)
    half_res_top(fast)
    runtimes: dict[str, Callable] = {
        "eager_fp32": eager,
        "folded_fp32": folded,
        "split_fp32": split,
        "unpadded_fp32": unpadded,
        "served_fp32": served,
        "folded_bf16": CpuAutocast(folded, torch.bfloat16),
        "served_bf16": CpuAutocast(served, torch.bfloat16),
        "served_fast_fp32": _stretched(fast),
        "served_fast_bf16": _stretched(CpuAutocast(fast, torch.bfloat16)),
    }
    skipped: dict[str, str] = {}
    compile_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ort_run = _onnxruntime(folded, args.threads, Path(tmp))
        if isinstance(ort_run, str):
            skipped["onnxruntime_fp32"] = ort_run
        else:
            runtimes["onnxruntime_fp32"] = ort_run
        if args.compile:
            compiled = torch.compile(folded, dynamic=True)
            for name, fn in (
                ("compiled_fp32", compiled),
                ("compiled_bf16", CpuAutocast(compiled, torch.bfloat16)),
            ):
                start = time.perf_counter()
                with torch.inference_mode():
                    fn(torch.zeros(BATCH, 1, *SHAPES[0]))
                compile_seconds[name] = time.perf_counter() - start
                runtimes[name] = fn
        results = {}
        with torch.inference_mode():
            for shape in SHAPES:
                x = torch.rand(BATCH, 1, *shape, generator=torch.Generator().manual_seed(0))
                x = (x * 2 - 1).contiguous(memory_format=torch.channels_last)
                want = eager(x)
                times: dict[str, list[float]] = {name: [] for name in runtimes}
                diffs = {
                    name: float((fn(x).float() - want).abs().max()) for name, fn in runtimes.items()
                }
                for _ in range(args.repeats):
                    for name, fn in runtimes.items():
                        start = time.perf_counter()
                        fn(x)
                        times[name].append(time.perf_counter() - start)
                results[f"{shape[0]}x{shape[1]}"] = {
                    name: {"seconds_per_batch": statistics.median(t), "max_abs_diff": diffs[name]}
                    for name, t in times.items()
                }
                print(
                    shape, {n: round(statistics.median(t), 4) for n, t in times.items()}, flush=True
                )
    report = {
        "machine": {
            "cpu": cpu_name(),
            "native_bf16": cpu_has_bf16(),
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "batch": BATCH,
        "results": results,
        "skipped": skipped,
        "compile_seconds_first_shape": compile_seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
