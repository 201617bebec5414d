"""A suite's training run put together: teacher, student (after its cached supervised stage),
method, data and trainer, from (model setup, method, its config, ratio, seed, data).

Bench runs, tuning runs and the perf benchmarks all assemble their runs here; the networks and
the method meet in ``compose.build_trainer``, which cached trainings and dry runs use directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankd import atomic
from gankd.bench.cached_training import load_into, pretrained_student
from gankd.bench.compose import build_trainer, role_build
from gankd.bench.data import training_pool
from gankd.bench.suite import ModelSetup
from gankd.bench.teachers import LoadedTeacher, load_teacher
from gankd.datasets.pool import TrainPool
from gankd.engine.config import TrainConfig
from gankd.engine.distributed import Dist, training_sampler
from gankd.engine.trainer import Trainer, resolve_device
from gankd.models import zoo
from gankd.paths import cache_dir
from gankd.tasks import TeacherSource

#: the training pool is the same for every method and seed of a suite: the run seed draws the
#: student's init and the batch order, never the data (so the teacher cache is shared)
POOL_SEED = 0


@dataclass
class Assembly:
    trainer: Trainer
    loaded: LoadedTeacher
    student_entry: zoo.ZooEntry
    student_init: str  # where the student's starting weights come from, for the record
    pool: TrainPool | None


def assemble(setup: ModelSetup, method: str, method_cfg: Any, *, ratio: float, seed: int, data: str,
             train: TrainConfig | None = None, dist: Dist | None = None, progress: bool = True,
             depth: int | None = None, teacher: TeacherSource | None = None, **trainer_kw: Any) -> Assembly:
    """The run of ``method`` on this model: ``train`` overrides the setup's schedule (tuning runs
    are shorter); ``teacher`` gives the run's teacher where the caller has loaded it already (its
    data needed it: ``run_teacher``); ``trainer_kw`` goes to ``Trainer`` (``run_dir``,
    ``validate``, ``desc``)."""
    train = train or setup.train
    dist = dist or Dist()
    device = resolve_device(train.device)
    if train.threads:
        torch.set_num_threads(train.threads)
    loaded = (teacher or run_teacher(setup, data, progress))()
    student_entry = zoo.student(setup.teacher, ratio, setup.student, depth=depth)
    student = role_build(student_entry, seed, "student")
    pre, student_init = starting_student(setup, student_entry, seed, data, progress)
    if pre is not None:
        load_into(student, pre)
    pool = training_pool(setup, data, POOL_SEED, lambda: loaded)
    sampler = training_sampler(setup.data, data, train.batch_size, seed, pool, device, dist)
    trainer = build_trainer(student=student, teacher=loaded, d_entry=zoo.get(setup.discriminator),
                            recipe=setup.recipe, cycle=setup.cycle, method=method, method_cfg=method_cfg,
                            train=train,
                            sampler=sampler, ratio=ratio, seed=seed, image_size=setup.data.hr_crop,
                            dist=dist, progress=progress, **trainer_kw)
    if pool is not None and trainer.method.uses_teacher:
        assert trainer.teacher is not None
        for turn in (True, False):  # rank 0 computes the cache, the others then read it
            if dist.is_main == turn:
                trainer.teacher.precompute(pool, teacher_pool_dir(), progress=progress and turn)
            dist.barrier()
    return Assembly(trainer, loaded, student_entry, student_init, pool)


def run_teacher(setup: ModelSetup, data: str, progress: bool = True) -> Callable[[], LoadedTeacher]:
    """The run's teacher, loaded on first use and then shared: by the task's data (the
    validation set of an unpaired task is the teacher's outputs), the trainer and the
    references, so that a run loads it once."""
    return functools.cache(lambda: load_teacher(setup, data, POOL_SEED, progress=progress))


def not_applicable(setup: ModelSetup, method: str, ratio: float, depth: int | None = None) -> str | None:
    """Why ``method`` cannot distil this model's teacher into the student of this shape (the
    networks are built, not trained or loaded); None when it can."""
    from gankd.methods import METHODS

    student = zoo.student(setup.teacher, ratio, setup.student, depth=depth).build()
    return METHODS.get(method).not_applicable(student, zoo.get(setup.teacher).build())


def teacher_pool_dir() -> Path:
    return cache_dir() / "teacher-pools"


def starting_student(setup: ModelSetup, student_entry: zoo.ZooEntry, seed: int, data: str,
                     progress: bool = True) -> tuple[Path | None, str]:
    """The weights a run of this student and seed starts from (the cached supervised stage,
    trained here if missing; None: its seeded random init) and how the record names them: with
    the file's sha256, since one config trained on two machines gives two different students."""
    if setup.student_pretrain is None:
        return None, "random init (seed)"
    pre = pretrained_student(setup, student_entry, seed, data, POOL_SEED, progress=progress)
    return pre, (f"supervised pretraining ({setup.student_pretrain.train.steps} steps), "
                 f"{pre.parent.name}, sha256 {atomic.sha256_file(pre)[:16]}")
