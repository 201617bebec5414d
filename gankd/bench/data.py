"""The data side of a run, as its family's task builds it (gankd.tasks): the check every run makes
before it writes or trains anything, the cached training pool (CPU suites) or an online stream
(GPU suites), the evaluation set and the validation images. ``teacher`` is the run's teacher,
loaded once by whoever assembles the run; a task calls it only where its data needs it."""

from __future__ import annotations

from typing import Any

from gankd.bench.suite import ModelSetup
from gankd.datasets import evalset as evalsets
from gankd.datasets.batch import EvalSample
from gankd.tasks import DataCheck, TeacherSource, task

__all__ = ["DataCheck", "check_data", "evaluation_set", "training_images", "training_pool",
           "validation_set"]


def _no_teacher() -> Any:
    raise AssertionError("this task's data needs the run's teacher, and none was handed to it")


def check_data(setup: ModelSetup, data: str) -> DataCheck:
    """Every image the run will read found, big enough and decoded, before anything is written."""
    return task(setup.task).check_data(setup, data)


def training_pool(setup: ModelSetup, data: str, pool_seed: int, teacher: TeacherSource = _no_teacher) -> Any:
    return task(setup.task).training_pool(setup, data, pool_seed, teacher)


def training_images(setup: ModelSetup, data: str, pool_seed: int) -> dict[str, Any]:
    """What a network trained on this family's training pool depends on in the data."""
    return task(setup.task).training_images(setup, data, pool_seed)


def evaluation_set(setup: ModelSetup, data: str, suite: str,
                   teacher: TeacherSource = _no_teacher) -> evalsets.EvalSet:
    return task(setup.task).evaluation_set(setup, data, suite, teacher)


def validation_set(setup: ModelSetup, data: str, suite: str,
                   teacher: TeacherSource = _no_teacher) -> list[EvalSample]:
    return task(setup.task).validation_set(setup, data, suite, teacher)
