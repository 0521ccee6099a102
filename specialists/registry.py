"""A name -> factory registry, the way timm's ``create_model`` works.

Every model built through a registry remembers how it was built (``model.spec``), so a
checkpoint can store that as data and rebuild the model without any ``if arch == ...``.
"""

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

Factory = Callable[..., nn.Module]


class Registry:
    """Maps model names to typed factory functions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Factory] = {}

    def register(self, factory: Factory) -> Factory:
        """Decorator: register ``factory`` under its function name."""
        name = factory.__name__
        if name in self._factories:
            raise ValueError(f"{self.kind} model {name!r} is registered twice")
        self._factories[name] = factory
        return factory

    def accepts(self, name: str, argument: str) -> bool:
        """Whether factory ``name`` takes keyword ``argument`` (e.g. ``pretrained``)."""
        return argument in inspect.signature(self._factories[name]).parameters

    def names(self) -> list[str]:
        return sorted(self._factories)

    def summary(self, name: str) -> str:
        """The first line of ``name``'s factory docstring: what the model is, for --help."""
        doc = (self._factories[name].__doc__ or "").strip()
        return doc.split("\n", 1)[0].replace("``", "")

    def create(self, name: str, **kwargs: Any) -> nn.Module:
        """Build ``name`` with ``kwargs`` and record the spec on the model."""
        if name not in self._factories:
            known = ", ".join(self.names())
            raise ValueError(f"unknown {self.kind} model {name!r}; known: {known}")
        model = self._factories[name](**kwargs)
        model.spec = {"name": name, "kwargs": dict(kwargs)}
        return model
