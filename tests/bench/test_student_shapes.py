"""Students shaped for devices: a width ratio and, where the architecture has a depth knob, a
depth (RRDB blocks), through the zoo, suites, sweeps, runs and the report."""

from __future__ import annotations

import dataclasses

import pytest

from gankd.bench.suite import PretrainConfig, RunSpec, StudentShape, load_suite
from gankd.bench.sweep import jobs
from gankd.cli import main
from gankd.config import from_mapping
from gankd.errors import ConfigError
from gankd.models import zoo


def test_rrdbnet_students_take_a_depth_gcfsr_students_do_not():
    s = zoo.student("realesrgan_x4plus", 0.5, depth=6)
    assert s.kwargs["num_block"] == 6 and s.kwargs["num_feat"] == 32 and s.name.endswith(",num_block=6")
    assert zoo.student("realesrgan_x4plus", 0.5).kwargs["num_block"] == 23
    with pytest.raises(ConfigError, match="gcfsr students scale width only"):
        zoo.student("gcfsr_64", 0.5, depth=3)
    with pytest.raises(ConfigError, match="at least 1 block"):
        zoo.student("realesrgan_x4plus", 0.5, depth=0)


def test_a_shape_names_its_folder_and_its_runs():
    assert StudentShape(0.25).tag == "r0.25" and StudentShape(0.5, 6).tag == "r0.5-d6"
    spec = RunSpec("cpu", "realesrgan", "mse", 0.5, 1, "builtin", 6)
    assert str(spec.rel_dir) == "cpu/realesrgan/r0.5-d6/mse/seed1"
    assert str(dataclasses.replace(spec, depth=None).rel_dir) == "cpu/realesrgan/r0.5/mse/seed1"


def test_suite_shapes_go_to_the_models_that_can_take_them():
    suite = dataclasses.replace(load_suite("smoke"), shapes=(StudentShape(0.5, 2),))
    assert suite.student_shapes("realesrgan") == [StudentShape(0.25), StudentShape(0.5, 2)]
    assert suite.student_shapes("gcfsr") == [StudentShape(0.25)]  # no depth knob: skipped
    assert suite.student_shapes("dcgan") == [StudentShape(0.25)]
    assert suite.student_shapes("cyclegan") == [StudentShape(0.25), StudentShape(0.5, 2)]  # n_blocks
    specs = jobs(suite, "builtin")
    assert {(s.model, s.depth) for s in specs} == {("realesrgan", None), ("realesrgan", 2), ("gcfsr", None),
                                                   ("dcgan", None), ("cyclegan", None), ("cyclegan", 2)}
    assert len(specs) == 6 * len(suite.methods)


def test_a_shape_can_name_the_families_it_is_for():
    """cpu.yaml's latency-matched r0.5-d10 was matched on Real-ESRGAN: CycleGAN, which has a depth
    knob too, does not get it; an unknown family there is refused at load with the choices."""
    suite = load_suite("cpu")
    assert StudentShape(0.5, 10) in suite.student_shapes("realesrgan")
    assert StudentShape(0.5, 10) not in suite.student_shapes("cyclegan")
    assert StudentShape(1.0, 6) in suite.student_shapes("cyclegan")
    smoke = dataclasses.replace(load_suite("smoke"), shapes=(StudentShape(0.5, 2, models=("cyclegan",)),))
    assert StudentShape(0.5, 2) not in smoke.student_shapes("realesrgan")
    assert StudentShape(0.5, 2) in smoke.student_shapes("cyclegan")


def test_a_shape_for_an_unknown_family_is_refused(tmp_path):
    from gankd.paths import benchmarks_dir

    text = (benchmarks_dir() / "cpu.yaml").read_text().replace("models: [realesrgan]", "models: [realesrgn]")
    assert "realesrgn" in text
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"realesrgn.*realesrgan"):
        load_suite(str(tmp_path / "bad.yaml"))


def test_blocks_on_the_command_line(capsys):
    assert main(["bench", "--suite", "smoke", "--model", "gcfsr", "--method", "mse", "--blocks", "3",
                 "--dry-run"]) == 2
    assert "students scale width only" in capsys.readouterr().err
    assert main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--blocks", "two",
                 "--dry-run"]) == 2
    assert "--blocks must be an integer" in capsys.readouterr().err


@pytest.mark.slow
def test_a_shallow_student_runs_and_gets_its_own_table(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))
    results = tmp_path / "results"
    assert main(["bench", "--suite", "smoke", "--model", "realesrgan", "--method", "scratch",
                 "--student", "0.5", "--blocks", "2", "--quiet", "--results", str(results)]) == 0
    rec = json.loads((results / "runs/smoke/realesrgan/r0.5-d2/scratch/seed0/metrics.json").read_text())
    assert rec["depth"] == 2 and rec["student"].endswith("num_block=2")
    html = (tmp_path / "reports" / "leaderboard.html").read_text()
    assert "student r=0.5, 2 blocks" in html and "data-depth='2'" in html


def test_the_supervised_stage_scales_its_lr_with_width(monkeypatch):
    """cpu.yaml sets the Real-ESRGAN L1 stage's lr for r = 1/4; a wider student trains at a
    smaller one (the teacher-width r1-d6 diverged at the thin students' 1e-3), and the r = 1/4
    students keep exactly theirs, so their cached stage is found again."""
    from gankd.bench import cached_training

    setup = load_suite("cpu").models["realesrgan"]
    seen: dict[str, float] = {}

    def record(path, student, seed, role, method, recipe, *args, **kwargs):
        seen[student.name] = recipe.lr_g

    monkeypatch.setattr(cached_training, "train_cached", record)
    for ratio, depth in ((0.25, None), (0.5, 10), (1.0, 6)):
        student = zoo.student(setup.teacher, ratio, setup.student, depth=depth)
        cached_training.pretrained_student(setup, student, 0, "builtin", 0, progress=False)
    assert seen == {"realesrgan_x4plus@r0.25": 1e-3, "realesrgan_x4plus@r0.5,num_block=10": 5e-4,
                    "realesrgan_x4plus@r1,num_block=6": 2.5e-4}
    assert setup.student_pretrain.recipe_for(setup.recipe, 0.25).lr_g == 1e-3  # bit for bit
    with pytest.raises(ConfigError, match=r"student_pretrain: lr_ratio must be a width ratio in \(0, 1\]"):
        from_mapping(PretrainConfig, {"train": {}, "lr_ratio": 2.0}, "student_pretrain")


def test_the_lr_scaling_knob_is_not_a_config_change_where_it_changes_nothing():
    """Runs and tuning scores record their setup; `lr_ratio` joined it after the r = 1/4 sample
    was made, with the same lr for those students: their records stay current, while a student
    the knob does change records it."""
    from gankd.bench.suite import setup_identity

    setup = load_suite("cpu").models["realesrgan"]
    assert "lr_ratio" not in setup_identity(setup, 0.25)["student_pretrain"]
    assert setup_identity(setup, 1.0)["student_pretrain"]["lr_ratio"] == 0.25
    unscaled = dataclasses.replace(setup.student_pretrain, lr_ratio=None)
    before = dataclasses.replace(setup, student_pretrain=unscaled)
    assert setup_identity(before, 0.25) == setup_identity(setup, 0.25)
    assert setup_identity(before, 1.0) != setup_identity(setup, 1.0)


def test_each_table_runs_its_declared_seeds():
    """cpu.yaml: the primary tables (Real-ESRGAN and GCFSR at r = 1/4) run the seeds their power
    calculation asked for, every other table three (a pilot); a sweep lists exactly those jobs,
    and the declaration is no part of a run's config (runs of seeds 0-2 stay current)."""
    from gankd.bench.suite import StudentShape, setup_identity
    from gankd.bench.sweep import jobs

    suite = load_suite("cpu")
    assert suite.seeds_for("realesrgan", StudentShape(0.25)) == tuple(range(8))
    assert suite.seeds_for("gcfsr", StudentShape(0.25)) == tuple(range(13))
    assert suite.seeds_for("realesrgan", StudentShape(1.0, 6)) == (0, 1, 2)
    assert suite.seeds_for("realesrgan", StudentShape(0.5, 10)) == (0, 1, 2)
    assert suite.seeds_for("dcgan", StudentShape(0.25)) == (0, 1, 2)
    specs = jobs(suite, "builtin")
    seeds = {(s.model, s.shape.tag): set() for s in specs}
    for s in specs:
        seeds[(s.model, s.shape.tag)].add(s.seed)
    assert seeds[("gcfsr", "r0.25")] == set(range(13)) and seeds[("realesrgan", "r1-d6")] == {0, 1, 2}
    assert "seeds" not in setup_identity(suite.models["gcfsr"], 0.25)
    assert suite.tune.seed not in suite.all_seeds()
