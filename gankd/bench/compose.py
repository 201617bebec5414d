"""Builds the pieces of a training run from zoo entries and configs (no I/O, no data).

``build_trainer`` is the one place where a student, a teacher network, a discriminator entry, a
recipe and a method become a ``Trainer``; every caller (bench runs, dry runs, cached trainings,
tuning, the perf benchmarks, the tests' tiny runs) goes through it. The method is built first,
so the teacher is wrapped knowing the taps the method asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gankd.datasets.seeding import derive_seed, seeded
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.engine.cycle import CycleConfig
from gankd.engine.method import Method, Setup
from gankd.engine.recipe import Recipe
from gankd.engine.teacher import Teacher
from gankd.engine.trainer import Sampler, Trainer, resolve_device
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.models import zoo

log = logging.getLogger(__name__)


@dataclass
class TeacherNet:
    """A teacher network and its identity (zoo entry + weight hash: keys every teacher cache)."""

    net: nn.Module
    identity: str


def make_discriminator_factory(d_entry: zoo.ZooEntry, seed: int) -> Callable[[float, str], nn.Module]:
    """Discriminators at a width ratio, each initialised from (run seed, its role) alone: what
    other networks were built before (or whether a teacher was trained in this process) never
    changes a discriminator's init."""

    def make(width: float, role: str) -> nn.Module:
        entry = d_entry if width == 1.0 else zoo.scaled(d_entry, width)
        return seeded_build(entry, derive_seed(seed, "discriminator", role))

    return make


def make_method(name: str, cfg: Any, student: nn.Module, teacher: nn.Module | None,
                d_entry: zoo.ZooEntry, recipe: Recipe, total_steps: int, ratio: float,
                image_size: int = 0, seed: int = 0) -> Method:
    """Method ``name`` built against these networks. The student's and teacher's taps at ``k``
    evenly spaced depths come from the architectures' own ``feature_taps``. Everything random in
    its construction (adapters, connectors, discriminators) is drawn from ``seed`` and roles."""

    def tap_pairs(k: int) -> tuple[list[str], list[str]]:
        """``k`` taps, or as many as the shallower network has levels (the out-64 GCFSR has three
        decoder levels): a method's ``taps`` is a most, so one default serves every family."""
        if teacher is None:
            raise ValueError("feature taps need a teacher")
        for j in range(k, 0, -1):
            try:
                pairs = student.feature_taps(j), teacher.feature_taps(j)
            except ValueError:
                continue
            if j < k:
                log.info("method %s: %d taps fit these networks (taps=%d asked)", name, j, k)
            return pairs
        raise ConfigError(f"method {name}: no feature tap fits these networks (taps={k})")

    setup = Setup(student=student, teacher=teacher, recipe=recipe,
                  make_discriminator=make_discriminator_factory(d_entry, seed), tap_pairs=tap_pairs,
                  total_steps=total_steps, ratio=ratio, image_size=image_size, seed=seed)
    with seeded(derive_seed(seed, "method", name)):
        return METHODS.get(name)(cfg, setup)


def build_trainer(*, student: nn.Module, teacher: TeacherNet | None, d_entry: zoo.ZooEntry,
                  recipe: RecipeConfig, method: str, method_cfg: Any, train: TrainConfig,
                  sampler: Sampler, ratio: float, seed: int, image_size: int = 0,
                  cycle: CycleConfig | None = None, **trainer_kw: Any) -> Trainer:
    """The method against ``student`` and ``teacher``, and the trainer that runs it (``cycle``:
    CycleGAN's objective in the base recipe, gankd.engine.cycle).
    ``trainer_kw``: ``run_dir``, ``validate``, ``progress``, ``desc``, ``dist`` of ``Trainer``."""
    recipe_obj = Recipe(recipe, cycle)
    m = make_method(method, method_cfg, student, teacher.net if teacher else None, d_entry, recipe_obj,
                    total_steps=train.steps, ratio=ratio, image_size=image_size, seed=seed)
    wrapped = None
    if teacher is not None:
        wrapped = Teacher(teacher.net, teacher.identity, taps=m.teacher_taps,
                          device=resolve_device(train.device))
    return Trainer(train, student, m, wrapped, sampler, seed=seed, **trainer_kw)


def role_build(entry: zoo.ZooEntry, seed: int, role: str) -> nn.Module:
    """Builds ``entry`` with its init drawn from (``seed``, ``role``): a student and a teacher
    trained from the same seed (the cpu GCFSR teacher at pool seed 0, seed 0's student) start
    from unrelated draws, as every discriminator and adapter does."""
    return seeded_build(entry, derive_seed(seed, role))


def seeded_build(entry: zoo.ZooEntry, seed: int) -> nn.Module:
    """Builds ``entry`` with its random init drawn from ``seed`` alone."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return entry.build()
    finally:
        torch.set_rng_state(state)

