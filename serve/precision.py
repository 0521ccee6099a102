"""The generators' float type: bfloat16 on CPUs with native bfloat16 maths, else float32.

On a CPU with AMX (Intel Xeon 4th generation and later) oneDNN runs bfloat16 convolutions on
the matrix units, and on one with AVX-512 BF16 (AMD EPYC Zen 4, Intel Cooper Lake and later)
on its bfloat16 dot-product instructions: a mixed folder took 0.068 s a photo end to end
against 0.083 in float32 on a 2-core EPYC, 0.060 against 0.071 on a 2-core Xeon with AMX,
and the colours moved by 0.2-0.4 levels of 255 on average (``benchmarks/bench_serve.py``
measures the speed; README). Without either, bfloat16 is emulated, so ``auto`` keeps float32.
The router and the judge stay in float32 everywhere on the CPU: their calibrated
confidences and scores decide which specialist colours a photo. On a GPU every model runs
under float16 autocast, as before (``serve.colorizer``).
"""

import platform
from pathlib import Path

import torch
from torch import nn

from .options import PRECISIONS

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 maths


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU advertises native bfloat16 (AMX or AVX-512 BF16; Linux; False where
    that cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    return any(
        line.startswith("flags") and any(flag in line.split() for flag in BF16_FLAGS)
        for line in text.splitlines()
    )


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name, for benchmark reports (the platform's guess off Linux)."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def generator_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the generators compute in on ``device`` for ``--precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if device.type != "cpu" or precision == "float32":
        return torch.float32  # a GPU uses its own float16 autocast (serve.colorizer)
    if precision == "bfloat16" or cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


class CpuAutocast(nn.Module):
    """Runs ``module`` under CPU autocast to ``dtype`` and hands back float32, so the colour
    maths after it is unchanged; ``.module`` is where ``specialists.output`` finds the
    wrapped model's output space and chroma gain."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", self.dtype):
            return self.module(x).float()
