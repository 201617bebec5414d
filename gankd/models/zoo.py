"""The model zoo: named configs of registered architectures, and students derived by width.

A student is its teacher's entry with every ``width_keys`` argument multiplied by ``r`` (and any
extra overrides, e.g. fewer RRDB blocks); it is named ``<teacher>@r<r>``. The same rule derives
the student discriminator of SDAKD from the teacher-size one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from torch import nn

from gankd import models
from gankd.config import from_mapping, load_yaml
from gankd.errors import ConfigError, unknown_choice
from gankd.paths import family_names

ZOO_FILE = Path(__file__).with_name("zoo.yaml")
RATIOS = (0.5, 0.25, 0.125)


@dataclass(frozen=True)
class ZooEntry:
    arch: str
    role: Literal["teacher", "student", "discriminator"]
    #: a model family: one of ``benchmarks/models/<family>.yaml`` (``gankd.paths.family_names``)
    family: str
    kwargs: dict[str, Any]
    input: int
    weights: str | None = None
    note: str = ""
    name: str = ""
    ratio: float = 1.0
    overrides: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        return models.build(self.arch, **self.kwargs)


@cache
def entries() -> dict[str, ZooEntry]:
    raw = load_yaml(ZOO_FILE)
    families = family_names()
    out = {}
    for name, spec in raw.items():
        entry = from_mapping(ZooEntry, spec, f"{ZOO_FILE.name}: {name}")
        if entry.arch not in models.MODELS:
            raise unknown_choice(f"architecture in {ZOO_FILE.name}: {name}:", entry.arch,
                                 models.MODELS.names())
        if entry.family not in families:
            raise unknown_choice(f"family in {ZOO_FILE.name}: {name} (a benchmarks/models/<family>.yaml):",
                                 entry.family, families)
        out[name] = dataclasses.replace(entry, name=name)
    return out


def get(name: str) -> ZooEntry:
    zoo = entries()
    if name not in zoo:
        raise unknown_choice("zoo entry", name, list(zoo))
    return zoo[name]


def scaled(entry: ZooEntry, r: float, overrides: dict[str, Any] | None = None,
           role: str | None = None) -> ZooEntry:
    """``entry`` with its width multiplied by ``r`` (ints rounded, at least 1)."""
    if not 0 < r <= 1:
        raise ConfigError(f"width ratio must be in (0, 1], got {r}")
    cls = models.MODELS.get(entry.arch)
    kwargs = dict(entry.kwargs)
    for key in cls.width_keys:
        value = kwargs[key]
        kwargs[key] = max(1, round(value * r)) if isinstance(value, int) else value * r
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key not in kwargs:
            raise unknown_choice(f"{entry.arch} argument", key, list(kwargs))
        kwargs[key] = value
    suffix = f"@r{r:g}" + "".join(f",{k}={v}" for k, v in sorted(overrides.items()))
    return dataclasses.replace(
        entry, kwargs=kwargs, name=entry.name + suffix, ratio=r, overrides=overrides,
        role=role or ("student" if entry.role == "teacher" else entry.role), weights=None,
        note=f"width x{r:g} of {entry.name}")


def student(teacher: str | ZooEntry, r: float, overrides: dict[str, Any] | None = None,
            depth: int | None = None) -> ZooEntry:
    """The student of ``teacher`` at width ratio ``r`` and, where the architecture has a depth
    knob (``depth_key``: RRDBNet's blocks), ``depth``."""
    base = get(teacher) if isinstance(teacher, str) else teacher
    if depth is not None:
        key = getattr(models.MODELS.get(base.arch), "depth_key", None)
        if key is None:
            raise ConfigError(f"{base.arch} students scale width only: the architecture has no depth knob, "
                              f"so a student cannot be given {depth} blocks")
        if depth < 1:
            raise ConfigError(f"a student needs at least 1 block, got {depth}")
        overrides = {**(overrides or {}), key: depth}
    return scaled(base, r, overrides, role="student")
