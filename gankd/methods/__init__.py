"""Distillation methods: one file each, registered by name; a new method is one new file here
plus its config (a dataclass in that file, overridable from a suite YAML).

Each module's class is the method's whole definition: which networks it adds, its loss terms,
its schedule, and its defaults with their provenance (``paper(...)`` or ``ours(...)``).
"""

from __future__ import annotations

from typing import Any

from gankd.config import from_mapping
from gankd.engine.method import Method
from gankd.registry import Registry

METHODS: Registry[type[Method]] = Registry("method", "gankd.methods")


def benchmark_methods() -> list[str]:
    """The registered distillation methods a suite can run (internal stages left out)."""
    return [n for n in METHODS.names() if not METHODS.get(n).internal]


def method_config(name: str, overrides: dict[str, Any] | None = None, where: str = "") -> Any:
    """The typed config of method ``name`` with ``overrides`` applied (validated)."""
    cls = METHODS.get(name)
    return from_mapping(cls.Config, overrides or {}, where or f"methods.{name}")
