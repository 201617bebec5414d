"""The results store: one ``metrics.json`` per run (the source of truth, written atomically) and
an append-only index of finished and failed runs that concurrent jobs share without losing rows.

Layout under ``results/``::

    runs/<suite>/<model>/r<ratio>/<method>/seed<k>/metrics.json, config.yaml, train.log,
        checkpoints/, samples/*.png
    runs/<suite>/<model>/reference/<evalset>/{teacher,bicubic}.json   (shared by every method)
    runs/index.jsonl                                                      (one line per run end)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.bench.locks import file_lock

STATUS_DONE = "done"
STATUS_FAILED = "failed"


def runs_root(results: Path) -> Path:
    return results / "runs"


def write_metrics(run_dir: Path, record: dict[str, Any]) -> Path:
    path = run_dir / "metrics.json"
    atomic.write_json(path, record)
    return path


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def append_index(results: Path, row: dict[str, Any]) -> None:
    """One JSON line per run end. O_APPEND writes of a single line under an exclusive lock:
    two runs finishing together both land."""
    index = runs_root(results) / "index.jsonl"
    line = (json.dumps(row, sort_keys=True, default=str) + "\n").encode()
    with file_lock(index.with_suffix(".lock")):
        fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_index(results: Path) -> list[dict[str, Any]]:
    index = runs_root(results) / "index.jsonl"
    if not index.is_file():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line.strip()]


def iter_runs(results: Path) -> Iterator[dict[str, Any]]:
    """Every run's metrics.json (references excluded), in path order."""
    root = runs_root(results)
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*/r*/*/seed*/metrics.json")):
        try:
            yield json.loads(path.read_text())
        except ValueError:
            continue  # a foreign or damaged file is not a run; the report counts what it can read


def iter_references(results: Path) -> Iterator[dict[str, Any]]:
    root = runs_root(results)
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*/reference/*/*.json")):
        try:
            yield json.loads(path.read_text())
        except ValueError:
            continue
