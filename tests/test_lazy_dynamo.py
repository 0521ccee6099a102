"""common.lazy_dynamo: timm imported without torch's compiler, which loads on first real use."""

import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = """
import sys
import torch
eager_disable = torch.compiler.disable
from common.lazy_dynamo import import_timm
import_timm()
import timm
from timm.layers.typing import disable_compiler
assert "torch._dynamo" not in sys.modules, "imported the compiler"
assert "torch._dynamo.utils" not in sys.modules, "left the stand-in behind"
assert torch.compiler.disable is eager_disable, "left torch.compiler.disable changed"
model = timm.create_model("efficientnet_b0", pretrained=False, features_only=True).eval()
with torch.inference_mode():
    assert len(model(torch.zeros(1, 3, 64, 64))) == 5
assert "torch._dynamo" not in sys.modules, "a forward pass imported the compiler"
# what the stand-ins stood for still works, importing the real compiler on first use
assert disable_compiler(lambda x: x + 1)(1) == 2
assert "torch._dynamo" in sys.modules
roi_align = sys.modules["torchvision.ops.roi_align"]
from torch._dynamo.utils import is_compile_supported
assert roi_align.is_compile_supported("cpu") == is_compile_supported("cpu")
print("OK")
"""


def test_timm_imports_without_the_compiler_which_still_loads_when_used():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr


def test_an_already_imported_timm_is_left_as_it_is():
    import timm

    from common.lazy_dynamo import import_timm

    before = dict(sys.modules)
    import_timm()
    assert sys.modules.keys() == before.keys() and sys.modules["timm"] is timm
