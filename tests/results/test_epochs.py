"""Code epochs (gankd/results/epochs.py): a run whose numbers come from before a change that moved
them under the same config is "older" as a changed config is -- left out of the report with the
reason, run again by the sweep, not compared with a newer run of the sample."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from synthetic_results import run_record

from gankd.paths import REPO_ROOT
from gankd.results import epochs, store
from gankd.results.record import RunRecord
from gankd.results.sample_match import match

FIRST = epochs.EPOCHS[0]


def _parent_of_first_epoch() -> str:
    out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", f"{FIRST.commit}^"],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"this checkout's history lacks epoch 1's commit {FIRST.commit}: {out.stderr}"
    return out.stdout.strip()


def record(**fields) -> RunRecord:
    base = run_record("gcfsr", 0.25, "mse", 0, 24.0)
    base.update(run_dir="runs/cpu/gcfsr/r0.25/mse/seed0", **fields)
    return RunRecord.from_dict(base)


def test_a_record_names_its_epoch_and_an_older_one_says_which_change_it_predates() -> None:
    assert epochs.CURRENT == epochs.EPOCHS[-1].number >= 1
    assert epochs.epoch_of(record(epoch=epochs.CURRENT)) == epochs.CURRENT
    assert epochs.epoch_change(record(epoch=epochs.CURRENT)) is None
    why = epochs.epoch_change(record(epoch=0))
    assert why is not None and FIRST.commit[:7] in why and "seeded by role" in why
    assert RunRecord.from_dict(record(epoch=0).to_dict()).epoch == 0  # survives the round trip


def test_a_record_older_than_the_field_is_dated_by_its_commit_then_by_its_date() -> None:
    before = _parent_of_first_epoch()
    assert epochs.epoch_of(record(git_sha=before)) == 0
    assert epochs.epoch_of(record(git_sha=before + "-dirty")) == 0
    assert epochs.epoch_of(record(git_sha=FIRST.commit)) == 1
    # a commit this checkout does not know (a shallow clone): its date decides
    unknown = "f" * 40
    assert epochs.epoch_of(record(git_sha=unknown, written_at="2026-12-04T18:19:58Z")) == 0
    assert epochs.epoch_of(record(git_sha=unknown, written_at="2026-12-07T17:40:00Z")) == 1
    assert epochs.epoch_of(record(git_sha=unknown, written_at="")) is None  # undatable: taken as is
    assert epochs.epoch_change(record(git_sha=unknown, written_at="")) is None


def _stored(tmp_path: Path, **fields) -> Path:
    run_dir = tmp_path / "runs/cpu/gcfsr/r0.25/mse/seed0"
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_metrics(run_dir, record(**fields))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"method": {"weight": 1.0}}))
    return run_dir


@pytest.mark.parametrize("status", ["done", "not applicable"])
def test_a_run_of_an_older_epoch_is_a_changed_run_if_it_has_numbers(tmp_path, status) -> None:
    config = {"method": {"weight": 1.0}}
    run_dir = _stored(tmp_path, epoch=epochs.CURRENT, status=status)
    assert store.config_change(run_dir, config) == []
    run_dir = _stored(tmp_path, epoch=0, status=status)
    changed = store.config_change(run_dir, config)
    if status == "done":
        assert len(changed) == 1 and changed[0].startswith("code epoch 0")
    else:  # nothing measured, nothing to be older
        assert changed == []
    assert store.config_change(run_dir, {"method": {"weight": 2.0}})[0] == "method.weight"


def test_the_sample_is_not_compared_across_epochs(tmp_path) -> None:
    sample = _stored(tmp_path / "sample", epoch=0).parents[5]
    mine_dir = _stored(tmp_path / "mine", epoch=epochs.CURRENT)
    mine = store.read_metrics(mine_dir)
    found = match(mine, tmp_path / "mine", sample, "lpips")
    assert found.same_run is None and found.row == {}
    assert found.config_differs == [f"code epoch 0 (this run's: {epochs.CURRENT})"]
    same = match(mine, tmp_path / "mine", tmp_path / "mine", "lpips")
    assert same.same_run is not None and same.config_differs == []


def test_the_committed_sample_holds_no_current_run_of_an_older_epoch() -> None:
    """What the report ranks from the sample was made by code of this epoch."""
    from gankd.bench.suite import SuiteIndex
    from gankd.results.report import tables

    runs, _ = tables(REPO_ROOT / "reports/sample/results", SuiteIndex())
    finished = [r for r in runs if r.status.has_results]
    assert finished
    assert [r.run_dir for r in finished if epochs.epoch_of(r) != epochs.CURRENT] == []


def test_a_result_without_a_record_is_dated_by_its_commit() -> None:
    """Tuning scores (score.json) carry a commit but no date: the commit alone dates them."""
    assert epochs.dated(_parent_of_first_epoch()) == 0
    assert epochs.dated(FIRST.commit + "-dirty") == 1
    assert epochs.dated("") is None and epochs.dated("unknown") is None


def test_a_reference_of_an_older_or_undated_epoch_is_evaluated_again(tmp_path, monkeypatch) -> None:
    """The teacher and bicubic rows are shared by every run of a table: one made by older code (or
    one that cannot be dated) is made again by the next run that needs it; a current one is reused."""
    from types import SimpleNamespace as NS

    import torch

    from gankd.bench import evaluation
    from gankd.bench.suite import RunSpec, load_suite
    from gankd.metrics.evaluate import EvalResult

    calls: list[str] = []

    def evaluate(gen, samples, metrics, device, cfg, keep):
        calls.append("evaluated")
        return EvalResult({"lpips": 0.3}, {"lpips": False}, {}, len(samples), 0.0, 0.0, {})

    monkeypatch.setattr(evaluation, "evaluate_generator", evaluate)
    monkeypatch.setattr(evaluation, "complexity_and_latency",
                        lambda *a: {"params": 1, "macs": 1, "macs_input": 64, "latency": {}})
    monkeypatch.setattr(evaluation, "measure", lambda *a, **k: NS(to_dict=dict))
    monkeypatch.setattr(evaluation.ev, "bicubic_generator", lambda *a: None)
    suite = load_suite("smoke")
    setup = _without_deploy(suite.models["realesrgan"])
    spec = RunSpec("smoke", "realesrgan", "mse", 0.25, 0, "builtin")
    teacher = NS(identity="realesrgan_x4plus:0123", net=NS(example_inputs=lambda *a: None))
    evalset = NS(key="ev", samples=[NS(name="a", scale=4, hr=torch.zeros(3, 8, 8), lr=torch.zeros(3, 2, 2))])

    def refs():
        return evaluation.reference_records(tmp_path, spec, setup, teacher, evalset, torch.device("cpu"), [])

    made = refs()
    assert len(calls) == 2 and {r.epoch for r in made.values()} == {epochs.CURRENT}
    refs()
    assert len(calls) == 2  # current: reused
    folder = tmp_path / made["teacher"].references
    for stale in ({"epoch": 0}, {"epoch": None, "git_sha": "", "written_at": ""}):
        old = json.loads((folder / "teacher.json").read_text())
        (folder / "teacher.json").write_text(json.dumps({**old, **stale}))
        refs()
        assert json.loads((folder / "teacher.json").read_text())["epoch"] == epochs.CURRENT
    assert len(calls) == 4  # the teacher twice more; bicubic, current, reused


def _without_deploy(setup):
    """``setup`` with exports and runtime latency off (not what this test is about)."""
    import dataclasses

    ev = dataclasses.replace(setup.eval, deploy=dataclasses.replace(setup.eval.deploy, in_run=False))
    return dataclasses.replace(setup, eval=ev)
