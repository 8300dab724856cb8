"""Named implementations of one kind (sources, backbones, methods), imported on first use.

A registry maps each name to ``"module:attribute"``; its names are known without
importing the code (which may import torch), so ``params.yaml`` is checked against the
very registry that implements the choices, at load time and in a fraction of a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from alcycle.errors import ParamsError

@dataclass(frozen=True)
class Registry:
    """``targets``: name -> ``"module:attribute"``, or None for a choice that needs no code (``none``)."""

    kind: str  # what one entry is, for messages: "backbone", "source"
    targets: Mapping[str, str | None]
    error: type[Exception] = ParamsError  # what ``load`` raises for an unknown name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __iter__(self) -> Iterator[str]:
        return iter(self.targets)

    def __contains__(self, name: object) -> bool:
        return name in self.targets

    def problem(self, key: str, value: str) -> str | None:
        """The message for ``params.yaml``'s ``key`` set to ``value``, or None when it is valid."""
        if value in self.targets:
            return None
        return f"'{key}' is {value!r}; choose one of: {', '.join(self.names)}"

    def load(self, name: str) -> Any:
        """The implementation of ``name`` (None for a choice without code)."""
        if name not in self.targets:
            raise self.error(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names)}")
        target = self.targets[name]
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)
