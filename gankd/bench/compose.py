"""Builds the pieces of a training run from zoo entries and configs (no I/O, no data)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gankd.engine.method import Method, Setup
from gankd.engine.recipe import Recipe
from gankd.engine.teacher import Teacher
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.models import zoo


def make_discriminator_factory(d_entry: zoo.ZooEntry):
    def make(width: float) -> nn.Module:
        entry = d_entry if width == 1.0 else zoo.scaled(d_entry, width)
        return entry.build()

    return make


def make_method(name: str, cfg: Any, student: nn.Module, teacher: Teacher | None,
                d_entry: zoo.ZooEntry, recipe: Recipe, total_steps: int, ratio: float,
                image_size: int = 0) -> Method:
    """Method ``name`` built against these networks. The student's and teacher's taps at ``k``
    evenly spaced depths come from the architectures' own ``feature_taps``."""

    def tap_pairs(k: int) -> tuple[list[str], list[str]]:
        if teacher is None:
            raise ValueError("feature taps need a teacher")
        try:
            return student.feature_taps(k), teacher.net.feature_taps(k)
        except ValueError as exc:
            raise ConfigError(f"method {name}: taps={k} does not fit these networks: {exc}") from None

    setup = Setup(student=student, teacher=teacher, recipe=recipe,
                  make_discriminator=make_discriminator_factory(d_entry), tap_pairs=tap_pairs,
                  total_steps=total_steps, ratio=ratio, image_size=image_size)
    method = METHODS.get(name)(cfg, setup)
    if teacher is not None:
        teacher.use_taps(method.teacher_taps)
    return method


def seeded_build(entry: zoo.ZooEntry, seed: int) -> nn.Module:
    """Builds ``entry`` with its random init drawn from ``seed`` alone."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return entry.build()
    finally:
        torch.set_rng_state(state)
