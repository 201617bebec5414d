"""The protocol a task implements (gankd.tasks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from gankd.bench.compose import TeacherNet
    from gankd.bench.suite import ModelSetup
    from gankd.datasets.batch import EvalSample
    from gankd.datasets.evalset import EvalSet

#: the run's teacher, loaded once by whoever assembles the run and handed to the task: a task
#: calls it only where its data needs the teacher (its outputs are the reference or the real
#: images), so an SR run never loads it for data, and no task module imports the teacher loader
TeacherSource = Callable[[], "TeacherNet"]


@dataclass(frozen=True)
class DataCheck:
    train: int
    val: int
    test: int
    rule: str


class Task:
    """One kind of generator. Class attributes say what the results side needs to know (without
    loading any data); the methods build the run's data."""

    name: ClassVar[str]
    #: the roles evaluated beside every student on its evaluation set (reference records): the
    #: teacher and, where the task has one, its no-network baseline
    references: ClassVar[tuple[str, ...]]
    #: the no-network baseline a student and its teacher must beat on the floor metric (None:
    #: the task has none)
    baseline: ClassVar[str | None]
    #: each input has a target of its own (an SR pair): the supervised losses and SDAKD apply
    paired: ClassVar[bool]
    #: the metric the task's papers judge by: the verdicts' primary metric by default
    primary: ClassVar[str]
    #: the metrics results text shows beside the primary one, descriptive only (RESULTS.md)
    secondary: ClassVar[tuple[str, ...]]
    #: whether tuning's PSNR guard applies (PSNR measures nothing for a sample of noise)
    psnr_guard: ClassVar[bool] = True
    #: whether a family of this task may carry CycleGAN's cycle objective (``cycle:``)
    takes_cycle: ClassVar[bool] = False
    #: the teacher's output is the evaluation's reference: its own quality is not measured
    teacher_is_reference: ClassVar[bool] = False
    #: the report's image columns around the students': (label, folder of the reference dir)
    grid_before: ClassVar[tuple[tuple[str, str], ...]]
    grid_after: ClassVar[tuple[tuple[str, str], ...]] = ()

    def check_data(self, setup: ModelSetup, data: str) -> DataCheck:
        """Every image the run will read found, big enough and decoded, before anything is written
        (a problem is a ``ConfigError`` naming the file)."""
        raise NotImplementedError

    def training_pool(self, setup: ModelSetup, data: str, pool_seed: int, teacher: TeacherSource) -> Any:
        """The cached training pool (None: an online stream, gankd.datasets.online)."""
        raise NotImplementedError

    def training_images(self, setup: ModelSetup, data: str, pool_seed: int) -> dict[str, Any]:
        """What a network trained on this family's pool depends on in the data (a cache key part)."""
        return {"source": data}

    def evaluation_set(self, setup: ModelSetup, data: str, suite: str, teacher: TeacherSource) -> EvalSet:
        raise NotImplementedError

    def validation_set(self, setup: ModelSetup, data: str, suite: str,
                       teacher: TeacherSource) -> list[EvalSample]:
        raise NotImplementedError

    def teacher_samples(self, samples: list[EvalSample], suite: str) -> list[EvalSample]:
        """The evaluation samples the teacher's reference row is measured on (default: the
        students' own)."""
        return samples
