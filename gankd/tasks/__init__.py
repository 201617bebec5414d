"""What a family's generator does, one registered strategy per task (``*_task.py`` here).

A family's ``task`` (``benchmarks/models/<family>.yaml``) names one of them. The task owns
everything that differs between an SR network, an unconditional generator and an unpaired
translator: which data a run checks and trains on, its validation and evaluation sets, the
references every student is judged beside and the no-network floor among them, the report's
image columns, its primary metric and whether tuning's PSNR guard applies. A fourth task is one
new file here and the family YAML that names it (docs/extending.md).

Importing this package costs nothing: the registry imports the task modules (and with them
torch and the datasets) when a task is first asked for, so the results side can name tasks
without loading them.
"""

from __future__ import annotations

import functools

from gankd.registry import Registry
from gankd.tasks.base import DataCheck, Task, TeacherSource

TASKS: Registry[type[Task]] = Registry("task", "gankd.tasks", suffix="_task")

__all__ = [
    "TASKS",
    "DataCheck",
    "Task",
    "TeacherSource",
    "baseline_roles",
    "reference_roles",
    "task",
    "task_names",
    "task_of_baseline",
]


@functools.cache
def task(name: str) -> Task:
    """The strategy of task ``name`` (a ConfigError with the valid choices when there is none)."""
    return TASKS.get(name)()


def task_names() -> tuple[str, ...]:
    return tuple(TASKS.names())


def reference_roles() -> tuple[str, ...]:
    """Every role a reference record can have (each task's references), the teacher first."""
    roles: dict[str, None] = {}
    for _, cls in TASKS.items():
        roles.update(dict.fromkeys(cls.references))
    return tuple(sorted(roles, key=lambda r: r != "teacher"))


def baseline_roles() -> tuple[str, ...]:
    """The no-network baselines of the tasks that have one (bicubic, the input itself, ...)."""
    return tuple(cls.baseline for _, cls in TASKS.items() if cls.baseline)


def task_of_baseline(baseline: str | None) -> str | None:
    """The task whose records name ``baseline`` as their floor (None: no task does)."""
    return next((name for name, cls in TASKS.items() if cls.baseline == baseline), None)
