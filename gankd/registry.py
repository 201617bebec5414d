"""One registry per kind of component, filled by discovering modules by file name.

A registry knows a package and a file-name suffix (``*_arch.py`` for models, as in BasicSR).
Nothing is imported until the registry is first asked for a name, so importing ``gankd`` costs
nothing and a broken optional module fails loudly at the point where it is needed.

Components outside the package (a method under development, a test's throwaway copy) are named in
``GANKD_PLUGINS``: dotted module names or ``.py`` files, separated by ``os.pathsep``, imported once
when the first registry discovers its package (mmengine's ``custom_imports``, as an environment
variable so that every process of a run -- torchrun's workers, a sweep's jobs -- imports them too).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gankd.errors import ConfigError, unknown_choice

T = TypeVar("T")

#: the environment variable naming modules outside the package that register components
PLUGINS_ENV = "GANKD_PLUGINS"
_plugins_imported: set[str] = set()


def plugin_module_name(path: str) -> str:
    """The name a plugin file is imported under: stable across processes, so that an object it
    defines pickles to a torchrun worker or a sweep job that imported the same file."""
    return "gankd_plugin_" + os.path.splitext(os.path.basename(path))[0]


def import_plugins() -> None:
    """Import every module ``GANKD_PLUGINS`` names that this process has not imported yet."""
    for entry in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
        if entry in _plugins_imported:
            continue
        _plugins_imported.add(entry)  # first: a plugin that asks a registry at import time
        try:
            _import_plugin(entry)
        except BaseException:
            _plugins_imported.discard(entry)
            raise


def _import_plugin(entry: str) -> None:
    if not entry.endswith(".py"):
        try:
            importlib.import_module(entry)
        except ModuleNotFoundError as e:
            if e.name != entry and not entry.startswith(f"{e.name}."):
                raise  # the plugin exists and one of its own imports is missing
            raise ConfigError(f"{PLUGINS_ENV}: no module {entry!r} on the path "
                              "(a dotted module name, or a path ending in .py)") from None
        return
    if not os.path.isfile(entry):
        raise ConfigError(f"{PLUGINS_ENV}: no file {entry!r}")
    name = plugin_module_name(entry)
    spec = importlib.util.spec_from_file_location(name, entry)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


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
        import_plugins()  # each time: GANKD_PLUGINS may name a module after the first discovery
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

    def from_package(self, name: str) -> bool:
        """Whether ``name`` is defined in the package itself, not in a ``GANKD_PLUGINS`` module
        (the docs describe the package's components only)."""
        return getattr(self.get(name), "__module__", "").startswith(f"{self.package}.")

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def items(self) -> Iterator[tuple[str, T]]:
        self.discover()
        return iter(sorted(self._items.items()))
