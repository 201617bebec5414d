"""A run beside the committed sample's: what `make bench` prints after its own table, so a user
sees at once whether their run reproduces the sample (issue 41: "its numbers within the sample
row's seed spread, CPU-family differences stated").

Two comparisons, on the table's primary metric: the sample's record of this very run (same suite,
model, shape, method and seed) when it ran under the same config -- bit for bit equal on the CPU
family that made it, otherwise a difference to be read against the other CPU family named --
and the sample's row for this method (its counted seeds' range, mean and s.d.).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from gankd.results import store
from gankd.results.epochs import epoch_of
from gankd.results.judge import counted
from gankd.results.record import RunRecord


@dataclass(frozen=True)
class SampleMatch:
    metric: str
    value: float
    same_run: RunRecord | None  # the sample's record of this run, under the same config
    config_differs: list[str]  # where the sample's record of this run ran another config
    row: dict[int, float]  # the sample's counted seeds of this method and table -> value

    def lines(self, machine: str) -> list[tuple[str, str]]:
        """(what, finding) rows for a table; ``machine``: this run's CPU family or GPU."""
        out = []
        m = self.metric
        if self.same_run is not None:
            theirs = self.same_run.metrics[m]
            where = f"commit {self.same_run.git_sha[:7]}, {self.same_run.machine or 'machine not recorded'}"
            if theirs == self.value:
                found = f"{m} {theirs:.6g} ({where}): identical"
            else:
                same = self.same_run.machine == machine
                found = (f"{m} {theirs:.6g} ({where}): this run differs by {self.value - theirs:+.3g}"
                         + (" on the same CPU family: a change in code or data, not in kernels" if same else
                            f"; this run's machine is {machine or 'not recorded'}, and CPU families take "
                            "different kernels (docs/reproducibility.md)"))
            out.append(("sample: this run", found))
        elif self.config_differs:
            what = ", ".join(self.config_differs[:3]) + (" ..." if len(self.config_differs) > 3 else "")
            out.append(("sample: this run", f"recorded under another config ({what}): not compared"))
        if len(self.row) >= 2:
            vals = list(self.row.values())
            lo, hi = min(vals), max(vals)
            inside = "inside" if lo <= self.value <= hi else "outside"
            out.append(("sample: this row", f"{m} {statistics.mean(vals):.4g} ± {statistics.stdev(vals):.2g} "
                                            f"over {len(vals)} seeds, range {lo:.4g}-{hi:.4g}: this run is "
                                            f"{inside} the seeds' range"))
        elif not out:
            out.append(("sample", "the committed sample has no comparable run of this table"))
        return out


def match(record: RunRecord, results: Path, sample_results: Path, metric: str) -> SampleMatch | None:
    """``record`` (a finished run under ``results``) against the sample under ``sample_results``:
    only sample runs whose stored config is this run's (but for the seed) count. None when the
    record has no value of ``metric`` or no stored config."""
    mine = _config(results / record.run_dir)
    if metric not in record.metrics or mine is None:
        return None
    same, differs = None, []
    theirs = store.read_metrics(sample_results / record.run_dir)
    if theirs is not None and counted(theirs) and metric in theirs.metrics:
        differs = _differs(_config(sample_results / record.run_dir), mine) + _epochs(theirs, record)
        same = None if differs else theirs
    row = {}
    for r in store.iter_runs(sample_results):
        table = (r.suite, r.model, r.ratio, r.depth, r.method)
        if table == (record.suite, record.model, record.ratio, record.depth, record.method) and counted(r) \
                and metric in r.metrics and not _differs(_config(sample_results / r.run_dir), mine) \
                and not _epochs(r, record):
            row[r.seed] = r.metrics[metric]
    return SampleMatch(metric, record.metrics[metric], same, differs, row)


def _epochs(theirs: RunRecord, mine: RunRecord) -> list[str]:
    """The code epochs of two runs when they differ (gankd/results/epochs.py): the same config, other
    numbers. An undatable record is taken as it is."""
    a, b = epoch_of(theirs), epoch_of(mine)
    return [] if a is None or b is None or a == b else [f"code epoch {a} (this run's: {b})"]


def _config(run_dir: Path) -> dict | None:
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _differs(theirs: dict | None, mine: dict) -> list[str]:
    """Where two stored run configs differ, the seed aside (a record without one: "config")."""
    if theirs is None:
        return ["config"]
    def unseeded(c: dict) -> dict:
        return {**c, "run": {k: v for k, v in (c.get("run") or {}).items() if k != "seed"}}

    return store.config_diff(unseeded(theirs), unseeded(mine))
