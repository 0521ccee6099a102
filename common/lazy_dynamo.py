"""Import timm without importing torch's compiler, which serving never uses.

Importing ``torch._dynamo`` is about a fifth of ``python -m serve.colorize``'s start-up
(1.1-1.3 s, ``python -X importtime``), and two things in timm's import pull it in for
functions serving never calls: torchvision's ``ops.roi_align`` imports
``torch._dynamo.utils`` for ``is_compile_supported`` (called only inside ``roi_align``), and
timm's ``naflexvit`` decorates methods with ``torch.compiler.disable``, which imports the
compiler to wrap them. :func:`import_timm` imports timm with both deferred: a stand-in for
``torch._dynamo.utils`` whose every name imports the real module on first use, and
``torch.compiler.disable`` as torch's own lazy form of it (``torch._disable_dynamo``, which
imports the compiler when the wrapped function is first called). Nothing else changes; once
timm is imported both stand-ins are gone, and a later ``import torch._dynamo``
(``torch.compile``, training) is the real one.
"""

import importlib
import sys
import types

import torch
import torch.compiler

_DYNAMO_UTILS = "torch._dynamo.utils"


def import_timm() -> None:
    """Import timm (and torchvision) with ``torch._dynamo`` deferred to its first use."""
    if any(name in sys.modules for name in ("timm", "torchvision", "torch._dynamo")):
        import timm  # noqa: F401  (already imported, or the compiler already is: no saving)

        return
    stand_in = _dynamo_utils_stand_in()
    eager_disable = torch.compiler.disable
    sys.modules[_DYNAMO_UTILS] = stand_in
    torch.compiler.disable = _lazy_disable(eager_disable)
    try:
        import timm  # noqa: F401
    finally:
        torch.compiler.disable = eager_disable
        if sys.modules.get(_DYNAMO_UTILS) is stand_in:
            del sys.modules[_DYNAMO_UTILS]


def _dynamo_utils_stand_in() -> types.ModuleType:
    """A module in place of ``torch._dynamo.utils`` that imports it when a name is used."""
    stand_in = types.ModuleType(_DYNAMO_UTILS, "deferred: see common.lazy_dynamo")

    def real() -> types.ModuleType:
        if sys.modules.get(_DYNAMO_UTILS) is stand_in:
            del sys.modules[_DYNAMO_UTILS]
        return importlib.import_module(_DYNAMO_UTILS)

    def is_compile_supported(device_type: str) -> bool:
        return real().is_compile_supported(device_type)

    def any_other(name: str) -> object:
        if name.startswith("__"):  # inspect and pickle probe every module for __file__ ...
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.is_compile_supported = is_compile_supported
    stand_in.__getattr__ = any_other
    return stand_in


def _lazy_disable(eager):  # noqa: ANN001, ANN202  (torch.compiler.disable's own signature)
    """``torch.compiler.disable`` that imports the compiler when the function is first run."""

    def disable(fn=None, recursive=True, *, reason=None):  # noqa: ANN001, ANN202
        if fn is None or reason is not None:  # the decorator-factory form: as torch does it
            return eager(fn, recursive, reason=reason)
        return torch._disable_dynamo(fn, recursive)

    return disable
