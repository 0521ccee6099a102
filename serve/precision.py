"""The float type the generators run in: bfloat16 on CPUs with AMX, float32 elsewhere.

On a CPU with AMX (Intel Xeon 4th generation and later) oneDNN runs bfloat16 convolutions on
the matrix units: the generators' forward pass takes about half as long, and their output
moves by at most a few thousandths of the tanh range (a level or two of 255 on a few pixels;
``benchmarks/bench_serve.py`` measures both). Without AMX bfloat16 buys little, so
``auto`` keeps float32 there. The router and the judge stay in float32 everywhere on the CPU:
their calibrated confidences and scores decide which specialist colours a photo. On a GPU
every model runs under float16 autocast, as before (``serve.colorizer``).
"""

import platform
from pathlib import Path

import torch
from torch import nn

from .options import PRECISIONS


def cpu_has_amx(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU advertises AMX bfloat16 (Linux; False where that cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    return any(
        line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines()
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
    if precision == "bfloat16" or cpu_has_amx():
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
