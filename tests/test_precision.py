"""The generators' float type (serve.precision): bfloat16 only where it is asked for or the
CPU has AMX; the router and judge stay float32; colours stay close to float32's."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import serve.precision as precision
from discriminators.scoring import Judge
from serve import Colorizer
from serve.precision import CpuAutocast, cpu_has_bf16, generator_dtype
from specialists.output import predict_ab
from tests.serve_support import (
    DOMAINS,
    constant_generator,
    grey_photo,
    make_weights,
    monotone_discriminator,
    tiny_router,
)

CPU = torch.device("cpu")


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    amx, avx512, without = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    amx.write_text("processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile\n")
    avx512.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_has_bf16(amx) and cpu_has_bf16(avx512) and not cpu_has_bf16(without)
    assert not cpu_has_bf16(tmp_path / "missing")


@pytest.mark.parametrize("native, want", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_is_bfloat16_only_with_native_bfloat16(monkeypatch, native, want):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    assert generator_dtype("auto", CPU) == want
    assert generator_dtype("float32", CPU) == torch.float32
    assert generator_dtype("bfloat16", CPU) == torch.bfloat16
    assert (
        generator_dtype("bfloat16", torch.device("cuda")) == torch.float32
    )  # GPU: float16 autocast
    with pytest.raises(ValueError, match="precision 'half'"):
        generator_dtype("half", CPU)


def test_autocast_keeps_the_output_space_and_chroma_gain():
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, 3, padding=1).eval()
    model.chroma_gain = 2.0
    x = torch.rand(1, 1, 16, 16) * 0.2
    wrapped = CpuAutocast(model, torch.bfloat16)
    with torch.no_grad():
        fast, exact = predict_ab(wrapped, x), predict_ab(model, x)
    assert fast.dtype == torch.float32
    assert torch.allclose(fast, exact, atol=0.02)  # the gain of 2 applied through the wrapper
    assert not torch.equal(fast, exact)  # it did run in bfloat16


def test_colorizer_serves_copies_in_the_asked_precision():
    generators = {d: constant_generator(None) for d in DOMAINS}
    judge = Judge({d: monotone_discriminator() for d in DOMAINS})
    fast = Colorizer(tiny_router(), generators, judge, size=64, precision="bfloat16")
    exact = Colorizer(tiny_router(), generators, judge, size=64, precision="float32")
    assert fast.dtype == torch.bfloat16 and exact.dtype == torch.float32
    assert all(isinstance(g, CpuAutocast) for g in fast.generators.values())
    assert not any(isinstance(g, CpuAutocast) for g in exact.generators.values())
    # the models are taken over, folded: no batch norm is left to run
    assert not any(isinstance(m, nn.BatchNorm2d) for g in generators.values() for m in g.modules())
    photo = grey_photo(96, 64, seed=3)
    a, b = fast.colorize(photo, domain="general"), exact.colorize(photo, domain="general")
    diff = (a.ab - b.ab).abs()
    assert 0 < diff.max() < 0.05  # normalised ab: bfloat16 moves it a little, never far


def test_the_command_line_takes_and_checks_precision(tmp_path):
    weights = make_weights(tmp_path / "w")
    photo = tmp_path / "in.png"
    grey_photo(64, 48, seed=1).save(photo)
    run = [sys.executable, "-m", "serve.colorize", str(photo), "--weights", str(weights)]
    done = subprocess.run(
        [*run, "-o", str(tmp_path / "out"), "--precision", "float32"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "generators in float32" in done.stderr
    bad = subprocess.run(
        [*run, "-o", str(tmp_path / "o2"), "--precision", "half"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--precision" in bad.stderr and "Traceback" not in bad.stderr
