"""A run is resolved once (issue 40, item 2): ``gankd bench`` builds one ``ResolvedRun`` at its
edge -- the method's config, the weights' provenance, the tuning it used, the config written to
the run folder -- and everything below takes it from there; the tuned table is read once."""

from __future__ import annotations

import pytest

from gankd.bench import commands
from gankd.bench import run as run_mod
from gankd.bench import suite as suite_mod


class Reached(Exception):
    pass


def test_bench_resolves_its_run_once_and_reads_the_tuned_table_once(tmp_path, monkeypatch):
    s = commands.suite("smoke")  # loading a suite checks every method's options: not the run's walk
    spec = commands.run_spec(s, "realesrgan", "akdg", "0.25", 0, "builtin")
    calls = {"resolve": 0, "tuned_entry": 0}
    real_resolve, real_entry = suite_mod.resolve, suite_mod.tuned_entry

    def resolve(*a, **k):
        calls["resolve"] += 1
        return real_resolve(*a, **k)

    def tuned_entry(*a, **k):
        calls["tuned_entry"] += 1
        return real_entry(*a, **k)

    seen = {}

    def assemble(setup, method, method_cfg, **kwargs):  # where training would start
        seen["cfg"] = method_cfg
        raise Reached

    monkeypatch.setattr(suite_mod, "resolve", resolve)
    monkeypatch.setattr(suite_mod, "tuned_entry", tuned_entry)
    monkeypatch.setattr(run_mod, "assemble", assemble)
    monkeypatch.setattr(run_mod, "validation_set", lambda *a: [])
    with pytest.raises(Reached):
        commands.bench(spec, s, tmp_path, progress=False, force=False, report=False)
    assert calls == {"resolve": 1, "tuned_entry": 1}
    assert seen["cfg"] == real_resolve(s, spec).method_cfg


def test_the_resolved_run_is_what_the_run_folder_and_the_record_say():
    import torch

    from gankd.models import zoo

    s = commands.suite("smoke")
    r = suite_mod.resolve(s, commands.run_spec(s, "gcfsr", "mse", "0.25", 0, "builtin"))
    assert r.setup is s.models["gcfsr"]
    assert r.config["method"]["weight"] == r.method_cfg.weight == r.weights["weight"]["value"]
    assert r.config["run"]["method"] == "mse" and r.config["setup"]["teacher"] == r.setup.teacher
    student = zoo.student(r.setup.teacher, r.spec.ratio, r.setup.student)
    record = run_mod._base_record(r, "teacher-id", r.setup.recipe, torch.device("cpu"), student)
    assert record.method_weights == r.weights and record.tuning == r.tuning
