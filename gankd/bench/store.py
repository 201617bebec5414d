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
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.bench.locks import file_lock

log = logging.getLogger(__name__)

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
    index.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(index.with_suffix(".lock")):
        fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:  # os.write may write less than asked (signals, full pipes); finish the line
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)


def read_index(results: Path) -> list[dict[str, Any]]:
    """Every complete row. Readers take no lock, so a last line still being written (no newline
    yet) is left for the next read; a damaged line elsewhere is skipped, the rest still count."""
    index = runs_root(results) / "index.jsonl"
    if not index.is_file():
        return []
    text = index.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            log.warning("skipping a damaged line of %s: %.80s", index, line)
    return rows


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a foreign or damaged file is not a run; the report counts what it can read
    return record if isinstance(record, dict) else None


def iter_runs(results: Path) -> Iterator[dict[str, Any]]:
    """Every run's metrics.json (references excluded), in path order.

    ``run_dir`` is set to the folder the record was read from, relative to ``results`` (posix),
    so samples are found even in a results tree that was copied or merged from elsewhere.
    """
    return _records(results, "*/*/r*/*/seed*/metrics.json", "run_dir")


def iter_references(results: Path) -> Iterator[dict[str, Any]]:
    """Teacher and bicubic records; ``samples_dir`` (relative to ``results``) is where they were read,
    holding ``lr/ hr/ teacher/ bicubic/`` PNGs of the grid's crops."""
    return _records(results, "*/*/reference/*/*.json", "samples_dir")


def _records(results: Path, pattern: str, where_key: str) -> Iterator[dict[str, Any]]:
    root = runs_root(results)
    if not root.is_dir():
        return
    for path in sorted(root.glob(pattern)):
        record = _read_record(path)
        if record is not None:
            record[where_key] = path.parent.relative_to(results).as_posix()
            yield record
