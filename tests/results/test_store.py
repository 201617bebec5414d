"""The results store: a run record round-trips (older schemas included), metrics.json is replaced
atomically, and readers find runs (with where they live) and skip what is not a run."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from gankd import atomic
from gankd.errors import DiskFullError
from gankd.results import store
from gankd.results.record import RunRecord


def rec(**fields) -> RunRecord:
    base = {"suite": "s", "model": "m", "method": "mse", "ratio": 0.25, "seed": 0}
    return RunRecord.from_dict({**base, **fields})


def test_a_record_round_trips_and_keeps_what_it_does_not_know(tmp_path) -> None:
    old = {"suite": "s", "model": "m", "method": "mse", "ratio": 0.25, "seed": 1, "status": "done",
           "metrics": {"psnr": 24.0}, "eval": {"evalset": "ev123"}, "from_a_newer_version": [1, 2]}
    r = RunRecord.from_dict(old)  # schema 1: no "schema", no "references"
    assert r.schema == 3 and r.references == "runs/s/m/reference/ev123"  # named, not guessed later
    assert r.per_image == {} and r.load == {} and r.under_load is None  # older: none recorded
    assert r.extra == {"from_a_newer_version": [1, 2]} and r.metrics == {"psnr": 24.0}
    store.write_metrics(tmp_path / "run", r)
    back = store.read_metrics(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert back == r and written["from_a_newer_version"] == [1, 2] and written["schema"] == 3
    assert back.row()["psnr"] == 24.0 and back.row()["niqe"] is None


def _rewrite(run_dir: str, versions: list[dict], start: mp.Event, count: int) -> None:
    start.wait()
    for k in range(count):
        store.write_metrics(Path(run_dir), versions[k % 2])


def test_metrics_readers_never_see_a_partial_file(tmp_path) -> None:
    run_dir = tmp_path / "run"
    # ~0.5 MB each, many write() calls: a non-atomic write would be caught half-written
    versions = [rec(seed=v, history=[{"step": float(v)}] * 30_000) for v in (0, 1)]
    store.write_metrics(run_dir, versions[0])
    ctx = mp.get_context("fork")
    start = ctx.Event()
    writer = ctx.Process(target=_rewrite, args=(str(run_dir), versions, start, 20))
    writer.start()
    start.set()
    reads, seen = 0, set()
    while writer.is_alive() or reads == 0:
        record = store.read_metrics(run_dir)  # raises on a torn file
        assert record is not None and record.history == versions[record.seed].history
        seen.add(record.seed)
        reads += 1
    writer.join()
    assert writer.exitcode == 0
    assert reads > 1 and seen == {0, 1}  # the reader really raced the writer
    assert [p.name for p in run_dir.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    store.write_metrics(run_dir, rec(seed=1))

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(DiskFullError, match=r"disk full under .*/run: metrics.json needs [\d.]+ KiB"):
        store.write_metrics(run_dir, rec(seed=2))
    monkeypatch.undo()
    assert store.read_metrics(run_dir) == rec(seed=1)
    assert sorted(os.listdir(run_dir)) == ["metrics.json"]


def test_iter_runs_finds_runs_where_they_are_and_skips_non_runs(tmp_path) -> None:
    runs = tmp_path / "runs"
    good = runs / "s" / "m" / "r0.25" / "mse" / "seed3"
    store.write_metrics(good, rec(run_dir="stale/elsewhere"))
    (runs / "s" / "m" / "r0.25" / "dcd" / "seed0").mkdir(parents=True)
    (runs / "s" / "m" / "r0.25" / "dcd" / "seed0" / "metrics.json").write_text('{"trunc')
    (runs / "s" / "m" / "r0.25" / "akdg" / "seed0").mkdir(parents=True)
    (runs / "s" / "m" / "r0.25" / "akdg" / "seed0" / "metrics.json").write_text("[1, 2]")
    atomic.write_json(runs / "s" / "m" / "reference" / "ev" / "teacher.json",
                      {"suite": "s", "model": "m", "method": "teacher", "role": "teacher", "ratio": None,
                       "seed": None})
    found = list(store.iter_runs(tmp_path))
    assert [r.method for r in found] == ["mse"]
    assert found[0].run_dir == "runs/s/m/r0.25/mse/seed3"  # where it was read, not what it claims
    (ref,) = store.iter_references(tmp_path)
    assert ref.role == "teacher" and ref.is_reference and ref.samples_dir == "runs/s/m/reference/ev"
    assert list(store.iter_runs(tmp_path / "empty")) == []


def test_a_finished_run_of_another_config_runs_again_and_keeps_its_old_record(tmp_path, monkeypatch) -> None:
    """Results accumulate across machines and sessions (reports/sample/results): a finished run is
    skipped only while its config is the current one; re-tuned weights make it run again."""
    import yaml

    from gankd.bench import run as run_mod
    from gankd.bench.suite import RunSpec, load_suite, resolve
    from gankd.bench.sweep import job_state

    suite = load_suite("smoke")
    spec = RunSpec("smoke", "gcfsr", "mse", 0.25, 0, "builtin")
    run_dir = run_mod.run_dir_of(tmp_path, spec)
    config = resolve(suite, spec).config
    assert job_state(spec, suite, tmp_path) == "to run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_0000050.pt").write_bytes(b"")
    assert job_state(spec, suite, tmp_path) == "resumes at step 50"
    store.write_metrics(run_dir, rec(status="done", metrics={"psnr": 20.0}))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(store.plain_config(config), sort_keys=False))
    assert job_state(spec, suite, tmp_path) == "done"

    class Trained(Exception):
        pass

    def assemble(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(run_mod, "assemble", assemble)
    monkeypatch.setattr(run_mod, "check_data", lambda *a: None)
    monkeypatch.setattr(run_mod, "validation_set", lambda *a: [])
    same = run_mod.run(resolve(suite, spec), tmp_path, progress=False)
    assert same.metrics == {"psnr": 20.0}  # the same config: skipped, not trained

    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    stored["method"]["weight"] = 123.0
    stored["setup"]["train"]["steps"] += 1
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    assert store.config_change(run_dir, config) == ["method.weight", "setup.train.steps"]
    assert job_state(spec, suite, tmp_path).startswith("stale")
    with pytest.raises(Trained):
        run_mod.run(resolve(suite, spec), tmp_path, progress=False)
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / run_mod.STALE_RECORD).read_text())["metrics"] == {"psnr": 20.0}


def test_a_sweep_selects_by_model_method_and_shape_and_names_the_valid_ones() -> None:
    from gankd.bench.suite import load_suite
    from gankd.bench.sweep import jobs, select
    from gankd.errors import ConfigError

    specs = jobs(load_suite("cpu"), "builtin")
    kept = select(specs, {"model": ["realesrgan"], "method": ["dcd", "scratch"], "shape": ["r0.25"]})
    assert {(s.model, s.method, s.shape.tag) for s in kept} == {("realesrgan", "dcd", "r0.25"),
                                                                ("realesrgan", "scratch", "r0.25")}
    seeds = load_suite("cpu").seeds_for("realesrgan", kept[0].shape)
    assert sorted(s.seed for s in kept) == sorted([*seeds, *seeds])
    valid = r"unknown shape .*'r0\.3'.*valid choices: r0\.25, r0\.5-d10, r1-d6"
    with pytest.raises(ConfigError, match=valid):
        select(specs, {"shape": ["r0.3"]})


def test_the_report_leaves_out_runs_of_an_older_config(tmp_path) -> None:
    import yaml

    from gankd.bench import run as run_mod
    from gankd.bench.suite import RunSpec, SuiteIndex, load_suite, resolve
    from gankd.results.report import current

    suite = load_suite("smoke")
    for seed, steps_added in ((0, 0), (1, 1)):
        spec = RunSpec("smoke", "gcfsr", "mse", 0.25, seed, "builtin")
        run_dir = run_mod.run_dir_of(tmp_path, spec)
        fields = {"suite": "smoke", "model": "gcfsr", "method": "mse", "ratio": 0.25, "seed": seed}
        store.write_metrics(run_dir, RunRecord.from_dict({**fields, "status": "done", "data": "builtin"}))
        config = store.plain_config(resolve(suite, spec).config)
        config["setup"]["train"]["steps"] += steps_added
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    foreign = RunRecord.from_dict({"suite": "mine", "model": "m", "method": "mse", "ratio": 0.25, "seed": 0})
    runs = [*store.iter_runs(tmp_path), foreign]
    kept = current(tmp_path, runs, suites=SuiteIndex())
    assert [(r.suite, r.seed) for r in kept] == [("smoke", 0), ("mine", 0)]
    assert len(current(tmp_path, runs)) == 3  # told of no suite, the results side keeps every record


def test_networks_trained_once_live_where_gankd_trained_says(tmp_path, monkeypatch) -> None:
    from gankd.bench.suite import load_suite
    from gankd.bench.teachers import trained_teacher_path
    from gankd.paths import cache_dir

    setup = load_suite("smoke").models["gcfsr"]
    assert trained_teacher_path(setup, "builtin", 0).is_relative_to(cache_dir())
    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path / "kept"))
    path = trained_teacher_path(setup, "builtin", 0)
    assert path.is_relative_to(tmp_path / "kept" / "teachers")
    assert path.parent.name.startswith(setup.teacher + "-")


def test_the_report_names_runs_that_do_not_share_a_teacher_or_a_start() -> None:
    from gankd.results.report import mixed_starts

    def run(method: str, seed: int, teacher: str, start: str) -> RunRecord:
        return RunRecord.from_dict({"suite": "cpu", "model": "gcfsr", "method": method, "ratio": 0.25,
                                    "seed": seed, "data": "builtin", "teacher_source": teacher,
                                    "student_init": f"supervised pretraining, {start}",
                                    "run_dir": f"runs/{method}/seed{seed}"})

    same = [run("scratch", 0, "t sha256 a", "s0"), run("mse", 0, "t sha256 a", "s0"),
            run("mse", 1, "t sha256 a", "s1")]
    assert mixed_starts(same) == []
    mixed = [*same, run("dcd", 0, "t sha256 b", "s0x")]
    lines = mixed_starts(mixed)
    assert len(lines) == 2
    assert any("2 different teachers" in line and "t sha256 b: 1 run(s)" in line for line in lines)
    assert any("seed0: 2 different starting students" in line for line in lines)


def test_a_run_status_is_typed_and_an_unknown_one_is_named(tmp_path) -> None:
    from gankd.results.record import RunStatus

    rec = RunRecord.from_dict({"suite": "s", "model": "m", "method": "mse", "ratio": 0.25, "seed": 0,
                               "status": "not applicable"})
    assert rec.status is RunStatus.NOT_APPLICABLE and rec.status.finished and not rec.status.has_results
    assert json.loads(json.dumps(rec.to_dict()))["status"] == "not applicable"  # the file's value
    assert RunStatus.FAILED.finished is False and RunStatus.DONE.has_results
    run_dir = tmp_path / "runs/s/m/r0.25/mse/seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({**rec.to_dict(), "status": "finished"}))
    unreadable: list = []
    assert list(store.iter_runs(tmp_path, unreadable=unreadable)) == []
    assert "unknown run status 'finished'; a record holds one of: done, failed, not applicable" in \
        unreadable[0].reason
