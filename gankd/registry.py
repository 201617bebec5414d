"""One registry per kind of component, filled by discovering modules by file name.

A registry knows a package and a file-name suffix (``*_arch.py`` for models, as in BasicSR).
Nothing is imported until the registry is first asked for a name, so importing ``gankd`` costs
nothing and a broken optional module fails loudly at the point where it is needed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gankd.errors import unknown_choice

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to components of one kind (model, method, dataset, metric, ...)."""

    def __init__(self, kind: str, package: str, suffix: str = "") -> None:
        self.kind = kind
        self.package = package
        self.suffix = suffix
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "__name__", None)
            if key is None:
                raise TypeError(f"cannot infer a {self.kind} name for {obj!r}")
            if key in self._items and self._items[key] is not obj:
                raise KeyError(f"{self.kind} {key!r} registered twice")
            self._items[key] = obj
            return obj

        return deco

    def discover(self) -> None:
        if self._discovered:
            return
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = info.name
            if mod.startswith("_") or not mod.endswith(self.suffix):
                continue
            importlib.import_module(f"{self.package}.{mod}")
        # Only once every module imported: a failing one raises again next time instead of
        # leaving a registry that claims to have no choices at all.
        self._discovered = True

    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._items[name]
        except KeyError:
            raise unknown_choice(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def items(self) -> Iterator[tuple[str, T]]:
        self.discover()
        return iter(sorted(self._items.items()))
