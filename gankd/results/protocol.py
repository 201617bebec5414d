"""How a suite's tables are judged, as the suite declares it (``protocol:`` in its YAML): the
results side's own type, which ``gankd.bench.suite`` reads a suite's declaration into."""

from __future__ import annotations

from dataclasses import dataclass, field

from gankd.errors import ConfigError, unknown_choice
from gankd.results.verdict import Plan
from gankd.tasks import task as task_of
from gankd.tasks import task_names


def primary_metrics() -> dict[str, str]:
    """Each task's primary metric, the one its papers judge by (``Task.primary``): LPIPS to the HR
    image for SR, LPIPS to the teacher's output for translation (what that family's lpips already
    measures: it has no paired target), FID to the teacher's samples for unconditional generation."""
    return {name: task_of(name).primary for name in task_names()}


#: the equivalence margin of each primary metric (docs/verdicts.md): about 2 % of the gap between
#: a scratch student and its teacher in the cpu suite (LPIPS 0.005 of Real-ESRGAN's 0.23; FID 5
#: of DCGAN's 233 at 256 samples)
MARGINS = {"lpips": 0.005, "fid": 5.0}
CORRECTIONS = ("holm", "bonferroni")


@dataclass(frozen=True)
class Protocol:
    """How a suite's tables are judged, declared before its runs (gankd/results/verdict.py): per
    task the primary metric (every other metric is secondary: shown, never a verdict), the
    family-wise level ``alpha`` over a table's methods with its ``correction``, the equivalence
    ``margins`` of the primary metrics, the ``power`` a study is sized for (``gankd power``), and
    ``decisive_seeds``: the fewest seeds a table may be decisive with. A table is decisive when
    every tested method shares with ``scratch`` the seeds its suite declares for it, and those are
    at least ``decisive_seeds`` (issue 39: at least 8); else it is a pilot. The count is fixed
    before the runs (the suite's, from a pilot's power calculation), never from the table's own
    variance: a test's error rates hold at any sample size, and a table that asks for more seeds
    than it has shows it as undetermined cells, not as a verdict withheld."""

    primary: dict[str, str] = field(default_factory=primary_metrics)
    alpha: float = 0.05
    correction: str = "holm"
    margins: dict[str, float] = field(default_factory=lambda: dict(MARGINS))
    power: float = 0.8
    decisive_seeds: int = 8

    def __post_init__(self) -> None:
        for task in self.primary:
            if task not in task_names():
                raise unknown_choice("task in protocol.primary", task, task_names())
        if self.correction not in CORRECTIONS:
            raise unknown_choice("protocol.correction", self.correction, CORRECTIONS)
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"protocol.alpha must be in (0, 0.5), got {self.alpha}")
        if not 0.5 <= self.power < 1:
            raise ConfigError(f"protocol.power must be in [0.5, 1), got {self.power}")
        if self.decisive_seeds < 2:
            raise ConfigError(f"protocol.decisive_seeds must be >= 2 (a paired test needs two), "
                              f"got {self.decisive_seeds}")
        for metric in sorted(set(self.primary.values())):
            if metric not in self.margins:
                raise ConfigError(f"protocol.margins has no equivalence margin for the primary metric "
                                  f"{metric!r} (margins given: {', '.join(sorted(self.margins)) or 'none'})")
        for metric, margin in self.margins.items():
            if not margin > 0:
                raise ConfigError(f"protocol.margins.{metric} must be > 0, got {margin}")

    def check_metrics(self) -> None:
        """Every metric named is a result some registered metric returns (imports the metric
        registry, hence not in ``__post_init__``)."""
        from gankd.metrics import all_result_columns

        keys = sorted(all_result_columns())
        for where, metric in [*(("protocol.primary", m) for m in self.primary.values()),
                              *(("protocol.margins", m) for m in self.margins)]:
            if metric not in keys:
                raise unknown_choice(f"metric in {where}", metric, keys)

    def plan(self, task: str) -> tuple[str, Plan]:
        """(the primary metric of ``task``, the ``verdict.Plan`` a table of that task is judged by)."""
        from gankd.metrics import all_result_columns

        if task not in self.primary:
            raise unknown_choice("task", task, sorted(self.primary))
        metric = self.primary[task]
        return metric, Plan(margin=self.margins[metric], alpha=self.alpha, correction=self.correction,
                            power=self.power, higher_is_better=all_result_columns()[metric].higher_is_better)
