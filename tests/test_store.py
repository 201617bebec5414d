"""The results store: concurrent index appends lose no row, metrics.json is replaced atomically,
and readers find runs (with where they live) and skip what is not a run."""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from gankd import atomic
from gankd.bench import store

PROCS, ROWS = 4, 200


def _append_rows(results: str, proc: int, start: mp.Event) -> None:
    start.wait()  # every writer starts together, so their appends interleave
    for i in range(ROWS):
        # rows of different lengths: a torn write would show as a line that does not parse
        store.append_index(Path(results), {"proc": proc, "i": i, "pad": "x" * ((i * 37 + proc) % 300)})


def test_concurrent_appends_lose_no_row(tmp_path) -> None:
    ctx = mp.get_context("fork")  # no re-import of torch per child
    start = ctx.Event()
    procs = [ctx.Process(target=_append_rows, args=(str(tmp_path), p, start)) for p in range(PROCS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    lines = (tmp_path / "runs" / "index.jsonl").read_text().splitlines()
    assert len(lines) == PROCS * ROWS
    rows = [json.loads(line) for line in lines]  # every line is one whole row
    assert sorted((r["proc"], r["i"]) for r in rows) == [(p, i) for p in range(PROCS) for i in range(ROWS)]
    assert store.read_index(tmp_path) == rows
    # the writers really overlapped: some process's rows are not one contiguous block
    order = [r["proc"] for r in rows]
    assert sum(a != b for a, b in itertools.pairwise(order)) > PROCS - 1


def test_read_index_leaves_a_line_in_progress_and_skips_damage(tmp_path) -> None:
    store.append_index(tmp_path, {"run": 1})
    index = tmp_path / "runs" / "index.jsonl"
    with open(index, "a") as fh:
        fh.write("{not json}\n")
    store.append_index(tmp_path, {"run": 2})
    with open(index, "a") as fh:
        fh.write('{"run": 3, "metr')  # a writer mid-line: no newline yet
    assert store.read_index(tmp_path) == [{"run": 1}, {"run": 2}]
    assert store.read_index(tmp_path / "nowhere") == []


def _rewrite(run_dir: str, versions: list[dict], start: mp.Event, count: int) -> None:
    start.wait()
    for k in range(count):
        store.write_metrics(Path(run_dir), versions[k % 2])


def test_metrics_readers_never_see_a_partial_file(tmp_path) -> None:
    run_dir = tmp_path / "run"
    # ~0.5 MB each, many write() calls: a non-atomic write would be caught half-written
    versions = [{"v": v, "curve": [float(v)] * 30_000} for v in (0, 1)]
    store.write_metrics(run_dir, versions[0])
    ctx = mp.get_context("fork")
    start = ctx.Event()
    writer = ctx.Process(target=_rewrite, args=(str(run_dir), versions, start, 20))
    writer.start()
    start.set()
    reads, seen = 0, set()
    while writer.is_alive() or reads == 0:
        record = store.read_metrics(run_dir)  # raises on a torn file
        assert record is not None and record["curve"] == versions[record["v"]]["curve"]
        seen.add(record["v"])
        reads += 1
    writer.join()
    assert writer.exitcode == 0
    assert reads > 1 and seen == {0, 1}  # the reader really raced the writer
    assert [p.name for p in run_dir.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    store.write_metrics(run_dir, {"status": "done", "v": 1})

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        store.write_metrics(run_dir, {"status": "done", "v": 2})
    monkeypatch.undo()
    assert store.read_metrics(run_dir) == {"status": "done", "v": 1}
    assert sorted(os.listdir(run_dir)) == ["metrics.json"]


def test_iter_runs_finds_runs_where_they_are_and_skips_non_runs(tmp_path) -> None:
    runs = tmp_path / "runs"
    good = runs / "s" / "m" / "r0.25" / "mse" / "seed3"
    store.write_metrics(good, {"suite": "s", "method": "mse", "run_dir": "stale/elsewhere"})
    (runs / "s" / "m" / "r0.25" / "dcd" / "seed0").mkdir(parents=True)
    (runs / "s" / "m" / "r0.25" / "dcd" / "seed0" / "metrics.json").write_text('{"trunc')
    (runs / "s" / "m" / "r0.25" / "akdg" / "seed0").mkdir(parents=True)
    (runs / "s" / "m" / "r0.25" / "akdg" / "seed0" / "metrics.json").write_text("[1, 2]")
    atomic.write_json(runs / "s" / "m" / "reference" / "ev" / "teacher.json", {"role": "teacher"})
    found = list(store.iter_runs(tmp_path))
    assert [r["method"] for r in found] == ["mse"]
    assert found[0]["run_dir"] == "runs/s/m/r0.25/mse/seed3"  # where it was read, not what it claims
    (ref,) = store.iter_references(tmp_path)
    assert ref["role"] == "teacher" and ref["samples_dir"] == "runs/s/m/reference/ev"
    assert list(store.iter_runs(tmp_path / "empty")) == []
