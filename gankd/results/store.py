"""The results store: one ``metrics.json`` per run and per reference -- a ``RunRecord``
(gankd/results/record.py), written atomically, the single source of truth.

Layout under ``results/``::

    runs/<suite>/<model>/r<ratio>/<method>/seed<k>/metrics.json, config.yaml, checkpoints/, samples/*.png
    runs/<suite>/<model>/reference/<evalset>/{teacher,bicubic}.json   (shared by every method; a run
                                                                       names its folder: ``references``)

Concurrent jobs never write the same file (one run folder per job; references under a lock), so
no index is needed: the leaderboard reads the records themselves. A record that cannot be read is
collected as :class:`Unreadable` for the report to name: a run must not vanish from a table
without a word where the table is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gankd import atomic
from gankd.results.epochs import epoch_change
from gankd.results.record import RunRecord, RunStatus

log = logging.getLogger(__name__)

__all__ = ["RunRecord", "RunStatus", "Unreadable", "iter_references",
           "iter_runs", "read_metrics", "read_record", "runs_root", "write_metrics", "write_metrics_to"]


@dataclass(frozen=True)
class Unreadable:
    """A record in no table: where (relative to ``results``) and why -- its file cannot be read
    (``kind`` "unreadable"), or it was run with an older config than the suite's ("older config")."""

    path: str
    reason: str
    kind: str = "unreadable"


def runs_root(results: Path) -> Path:
    return results / "runs"


def write_metrics(run_dir: Path, record: RunRecord) -> Path:
    return write_metrics_to(run_dir / "metrics.json", record)


def write_metrics_to(path: Path, record: RunRecord) -> Path:
    atomic.write_json(path, record.to_dict())
    return path


def read_metrics(run_dir: Path) -> RunRecord | None:
    path = run_dir / "metrics.json"
    return read_record(path) if path.is_file() else None


def read_record(path: Path) -> RunRecord | None:
    """The record in ``path``; None for a file that is not one (foreign or damaged: the report
    counts what it can read)."""
    record = _read(path)
    if isinstance(record, str):
        log.warning("skipping %s: not a run record (%s)", path, record)
        return None
    return record


def _read(path: Path) -> RunRecord | str:
    """The record, or why there is none."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            return f"a JSON {type(data).__name__}, not a record"
        return RunRecord.from_dict(data)
    except (OSError, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def iter_runs(results: Path, unreadable: list[Unreadable] | None = None) -> Iterator[RunRecord]:
    """Every run's record (references excluded), in path order, its ``run_dir`` set to the folder
    it was read from (relative to ``results``), so samples are found even in a results tree that
    was copied or merged from elsewhere. Records that cannot be read go to ``unreadable``."""
    for path, record in _records(results, "*/*/r*/*/seed*/metrics.json", unreadable):
        record.run_dir = path.parent.relative_to(results).as_posix()
        yield record


def iter_references(results: Path, unreadable: list[Unreadable] | None = None) -> Iterator[RunRecord]:
    """Teacher and bicubic records, ``samples_dir`` set to where they were read (relative to
    ``results``: it holds ``lr/ hr/ teacher/ bicubic/`` PNGs of the grid's crops)."""
    for path, record in _records(results, "*/*/reference/*/*.json", unreadable):
        record.samples_dir = path.parent.relative_to(results).as_posix()
        yield record


def _records(results: Path, pattern: str,
             unreadable: list[Unreadable] | None) -> Iterator[tuple[Path, RunRecord]]:
    root = runs_root(results)
    if not root.is_dir():
        return
    for path in sorted(root.glob(pattern)):
        record = _read(path)
        if isinstance(record, str):
            log.warning("skipping %s: not a run record (%s)", path, record)
            if unreadable is not None:
                unreadable.append(Unreadable(path.relative_to(results).as_posix(), record))
            continue
        yield path, record


# -- a stored run against the config it would run with now ---------------------------------
def config_change(run_dir: Path, config: dict[str, Any], record: RunRecord | None = None) -> list[str]:
    """The dotted keys in which ``run_dir``'s stored config differs from ``config`` (empty: the
    same, or no config stored, as in records older than config.yaml), and the code epoch when its
    record's numbers come from before a change that moved them under the same config
    (gankd/results/epochs.py). ``record``: its record, where the caller has read it already."""
    path = run_dir / "config.yaml"
    changed = config_diff(yaml.safe_load(path.read_text()), plain_config(config)) if path.is_file() else []
    record = record or read_metrics(run_dir)  # a record without numbers (not applicable): none to date
    older = epoch_change(record) if record is not None and record.status.has_results else None
    return [*changed, older] if older else changed


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys in which two plain configs differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(set(old) | set(new), key=str)
                for k in config_diff(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".") or "config"]


def plain_config(obj: Any) -> Any:
    """YAML round-trip form (tuples become lists) so a stored config compares equal."""
    return yaml.safe_load(yaml.safe_dump(obj, sort_keys=False))
