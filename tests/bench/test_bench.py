"""End to end through the CLI on the smoke suite: a run's record, the leaderboard, the report,
resumption, and a run whose loss turns NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gankd.cli import main
from gankd.paths import benchmarks_dir
from gankd.results import epochs, store

SPEC_METRICS = ("psnr", "ssim", "lpips", "fid", "kid", "niqe")


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    results, reports = tmp_path / "results", tmp_path / "reports"
    monkeypatch.setenv("GANKD_REPORTS", str(reports))
    return results, reports


@pytest.mark.slow
def test_smoke_bench_sdakd_gcfsr_writes_record_row_and_report(dirs, capsys):
    results, reports = dirs
    code = main(["bench", "--method", "sdakd", "--model", "gcfsr", "--suite", "smoke", "--quiet",
                 "--results", str(results)])
    assert code == 0
    run_dir = results / "runs/smoke/gcfsr/r0.25/sdakd/seed0"
    rec = json.loads((run_dir / "metrics.json").read_text())
    assert rec["status"] == "done"
    for m in SPEC_METRICS:  # every metric, or a stated reason for its absence
        assert m in rec["metrics"] or rec["missing_metrics"].get(m), m
    assert rec["metrics"]["fid_patches"] > 0
    for key in ("params", "macs", "latency", "train", "history", "git_sha", "versions", "device"):
        assert rec[key], key
    assert rec["latency"]["median_ms"] > 0 and rec["train"]["steps"] == 6
    assert {h["stage"] for h in rec["history"]} == {"supervised", "features", "adversarial"}
    assert (run_dir / "config.yaml").is_file() and list((run_dir / "samples").glob("*.png"))
    # per-image values of every per-image metric, one per evaluation crop by name, whose mean
    # is the aggregate (FID and KID are metrics of the set: none)
    names = set(rec["per_image"]["psnr"])
    assert len(names) == rec["eval"]["images"] and set(rec["per_image"]) >= {"psnr", "ssim", "lpips"}
    for key, values in rec["per_image"].items():
        assert set(values) == names
        assert sum(values.values()) / len(values) == pytest.approx(rec["metrics"][key], rel=1e-9, abs=1e-12)
    assert "fid" not in rec["per_image"] and "kid" not in rec["per_image"]
    assert rec["threading"]["torch_threads"] >= 1 and "OMP_WAIT_POLICY" in rec["threading"]["env"]
    assert rec["load"]["max"] >= rec["load"]["before"] and isinstance(rec["load"]["under_load"], bool)
    assert rec["epoch"] == epochs.CURRENT  # the code epoch its numbers belong to (gankd/results/epochs.py)
    assert rec["schema"] == 3 and rec["references"] == f"runs/smoke/gcfsr/reference/{rec['eval']['evalset']}"
    assert (results / rec["references"] / "teacher.json").is_file()  # the run names its references
    assert rec["train"]["cost"]["gmacs_per_step"]["total"] > 0 and rec["floors"]["metric"] == "lpips"
    assert [(r.method, r.status) for r in store.iter_runs(results)] == [("sdakd", "done")]
    csv = (reports / "leaderboard.csv").read_text().splitlines()
    # GCFSR students have no depth knob: the depth field is empty
    assert any(line.startswith("smoke,gcfsr,0.25,,student,sdakd,1") for line in csv)
    assert {"teacher", "bicubic"} <= {line.split(",")[5] for line in csv[1:]}
    html = (reports / "leaderboard.html").read_text()
    assert "sdakd" in html and "teacher" in html and "bicubic" in html
    # beside the committed sample, which has no smoke run: it says so (gankd/results/sample_match.py)
    assert "the committed sample has no comparable run of this table" in capsys.readouterr().out

    # The same command again finds the run done: nothing retrained, the record unchanged.
    mtime = (run_dir / "metrics.json").stat().st_mtime_ns
    assert main(["bench", "--method", "sdakd", "--model", "gcfsr", "--suite", "smoke", "--quiet",
                 "--results", str(results), "--no-report"]) == 0
    assert (run_dir / "metrics.json").stat().st_mtime_ns == mtime

    # A teacher row of another teacher (a sample's, trained on another machine) is not reused.
    teacher_json = results / rec["references"] / "teacher.json"
    ours = json.loads(teacher_json.read_text())
    teacher_json.write_text(json.dumps({**ours, "source": "gcfsr_32:0000000000000000"}))
    assert main(["bench", "--method", "scratch", "--model", "gcfsr", "--suite", "smoke", "--quiet",
                 "--results", str(results), "--no-report"]) == 0
    assert json.loads(teacher_json.read_text())["source"] == ours["source"]


@pytest.mark.slow
def test_nan_loss_marks_the_run_failed_with_step_and_term(dirs, tmp_path, capsys):
    results, reports = dirs
    suite = yaml.safe_load((benchmarks_dir() / "smoke.yaml").read_text())
    suite["name"] = "smoke-nan"
    # A learning rate no network survives: the first step blows the weights up, a later loss
    # is no longer finite.
    suite["models"]["realesrgan"]["recipe"].update(lr_g=1e30, lr_d=1e30)
    path = tmp_path / "smoke-nan.yaml"
    path.write_text(yaml.safe_dump(suite))
    code = main(["bench", "--method", "mse", "--model", "realesrgan", "--suite", str(path), "--quiet",
                 "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 1
    rec = json.loads((results / "runs/smoke-nan/realesrgan/r0.25/mse/seed0/metrics.json").read_text())
    assert rec["status"] == "failed" and rec["failed_step"] >= 1
    assert f"'{rec['failed_term']}'" in err and f"step {rec['failed_step']}" in err
    assert rec["metrics"] == {}  # no numbers from a failed run
    assert main(["report", "--results", str(results), "--out", str(reports)]) == 0
    html = (reports / "leaderboard.html").read_text()
    assert "failed" in html and rec["failed_term"] in html


@pytest.mark.slow
def test_a_crash_is_recorded_as_a_failed_run(dirs, monkeypatch, capsys):
    results, _ = dirs
    import gankd.bench.run as run_module

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation set went missing")

    monkeypatch.setattr(run_module, "evaluation_set", broken)
    with pytest.raises(RuntimeError, match="went missing"):
        main(["bench", "--method", "scratch", "--model", "gcfsr", "--suite", "smoke", "--quiet",
              "--results", str(results), "--no-report"])
    rec = json.loads((results / "runs/smoke/gcfsr/r0.25/scratch/seed0/metrics.json").read_text())
    assert rec["status"] == "failed"
    assert rec["error"] == "RuntimeError: evaluation set went missing"
    assert [r.status for r in store.iter_runs(results)] == ["failed"]


def test_a_run_keeps_only_the_crops_of_its_last_evaluation(tmp_path):
    """A re-run on another evaluation set (builtin -> photos) must not leave the old set's crops,
    which the report's grid would show as rows of this run."""
    import torch

    from gankd.bench.run import _save_samples

    folder = tmp_path / "samples"
    _save_samples(folder, {"astronaut#0": torch.rand(3, 8, 8), "coffee#0": torch.rand(3, 8, 8)})
    _save_samples(folder, {"bridge#0": torch.rand(3, 8, 8)})
    assert sorted(p.name for p in folder.iterdir()) == ["bridge#0.png"]
