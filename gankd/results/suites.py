"""What the results side is told about the suites its records come from.

Records carry their suite's name, not its declaration. Three things about a suite matter when
records are judged and shown: the verdict protocol it declares, the task of each of its models
(which primary metric, which image columns), the seeds it declares for each table (whether the
table is complete, or a pilot), and whether a record ran under the suite's current
config (a run of an edited suite is left out until `gankd sweep` runs it again). Knowing them
means loading the suite, which resolves training configs: the training side's business. So the
results package asks a ``Suites`` it is handed and builds none itself: ``gankd.bench.suite``'s
``SuiteIndex`` answers for this checkout's suites; this default answers for a suite nobody knows
-- the default protocol, the task the records' no-network baseline implies, every record current.
"""

from __future__ import annotations

from pathlib import Path

from gankd.results.protocol import Protocol
from gankd.results.record import RunRecord
from gankd.tasks import task_of_baseline


class Suites:
    """The default: no suite is known."""

    def protocol(self, suite: str) -> Protocol:
        """The suite's declared verdict protocol (unknown: the default, what the shipped suites declare)."""
        return Protocol()

    def task(self, suite: str, model: str) -> str | None:
        """The task of ``model`` in ``suite`` (None: not known here)."""
        return None

    def declared_seeds(self, suite: str, model: str, ratio: float, depth: int | None) -> int | None:
        """How many seeds ``suite`` declares for the table of ``model`` at this student shape
        (None: not known here; the protocol's ``decisive_seeds`` is then what the table needs)."""
        return None

    def config_change(self, results: Path, record: RunRecord) -> list[str]:
        """What differs between the config ``record`` ran with and its suite's current one
        (empty: current, or a suite not known here)."""
        return []

    def task_for(self, suite: str, model: str, baseline: str | None) -> str:
        """The model's task in its suite, else the one its records' no-network baseline implies
        (records older than any task but SR name none: SR)."""
        return self.task(suite, model) or task_of_baseline(baseline) or "sr"
