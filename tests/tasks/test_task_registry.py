"""Tasks are registered strategies (gankd.tasks): what each one declares, and a new task as one
class that a family's YAML names (docs/extending.md, "A task")."""

from __future__ import annotations

import json

import pytest
import yaml

from gankd.bench.suite import load_suite
from gankd.cli import main
from gankd.errors import ConfigError
from gankd.metrics import all_result_columns
from gankd.paths import benchmarks_dir
from gankd.tasks import TASKS, baseline_roles, reference_roles, task, task_names, task_of_baseline
from gankd.tasks.sr_task import SuperResolution


def test_every_task_declares_its_references_floor_report_columns_and_primary_metric():
    assert set(task_names()) >= {"sr", "unconditional", "translation"}
    for name in task_names():
        t = task(name)
        assert t.name == name and t.references[0] == "teacher"
        assert t.baseline is None or t.baseline in t.references  # the floor is evaluated with it
        assert t.grid_before and all(len(c) == 2 for c in (*t.grid_before, *t.grid_after))
        assert t.primary in all_result_columns()
        assert set(t.references) <= set(reference_roles())
        assert task_of_baseline(t.baseline) == name or t.baseline is None
    assert reference_roles()[0] == "teacher"
    assert set(baseline_roles()) == {task(n).baseline for n in task_names()} - {None}


def test_an_unknown_task_is_refused_with_the_valid_choices(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: x\nmethods: [scratch]\nmodels:\n  gcfsr: {task: inpainting}\n")
    with pytest.raises(ConfigError, match=r"unknown task 'inpainting'; valid choices: sr, translation, "
                                          r"unconditional"):
        load_suite(str(path))


def test_the_cycle_objective_is_refused_for_a_task_that_does_not_take_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: x\nmethods: [scratch]\nmodels:\n"
                    "  gcfsr: {cycle: {weight: 10.0}}\n")
    with pytest.raises(ConfigError, match="cycle is CycleGAN's objective for unpaired translation, not for"):
        load_suite(str(path))


@pytest.mark.slow
def test_a_new_task_is_one_registered_class_and_runs_in_the_smoke_suite(tmp_path, monkeypatch):
    """The recipe of docs/extending.md followed for a throwaway task: a class registered under a
    new name (here a copy of SR with report columns of its own), a family that names it, and a
    suite that declares its primary metric. Nothing else is edited, and a run of it is judged
    with the references and the floor the class declares."""

    class Magnify(SuperResolution):
        name = "magnify"
        grid_before = (("input", "lr"), ("teacher", "teacher"))

    TASKS.discover()
    monkeypatch.setitem(TASKS._items, "magnify", Magnify)
    task.cache_clear()
    doc = yaml.safe_load((benchmarks_dir() / "smoke.yaml").read_text())
    doc.update(name="magnify-smoke", methods=["scratch"], shapes=[])
    doc["models"] = {"realesrgan": {**doc["models"]["realesrgan"], "task": "magnify"}}
    doc["protocol"]["primary"] = {"magnify": "lpips"}
    path = tmp_path / "magnify.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        suite = load_suite(str(path))
        assert suite.models["realesrgan"].task == "magnify"
        results = tmp_path / "results"
        monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))
        assert main(["bench", "--method", "scratch", "--model", "realesrgan", "--suite", str(path),
                     "--quiet", "--results", str(results)]) == 0
        run_dir = results / "runs/magnify-smoke/realesrgan/r0.25/scratch/seed0"
        rec = json.loads((run_dir / "metrics.json").read_text())
        assert rec["status"] == "done" and rec["floors"]["baseline"] == "bicubic"
        for role in Magnify.references:
            assert (results / rec["references"] / f"{role}.json").is_file()
    finally:
        task.cache_clear()
