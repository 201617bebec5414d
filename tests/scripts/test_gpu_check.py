"""The prepared GPU check (``scripts/gpu_check.sh``, ``benchmarks/gpu_check.py``; issue 41, item
5), tested where there is no GPU: its ``--dry`` mode end to end on the CPU, on one method at the
smallest sizes, and each part it is made of."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from benchmarks import gpu_check
from gankd.paths import REPO_ROOT


@pytest.mark.slow
def test_the_dry_check_runs_every_part_end_to_end_and_writes_one_json(tmp_path):
    """One subprocess for all four parts: the imports and the networks are paid for once."""
    out = tmp_path / "check.json"
    proc = subprocess.run([str(REPO_ROOT / "scripts" / "gpu_check.sh"), "--dry", "--models", "realesrgan",
                           "--methods", "scratch", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["dry"] and env["device"] == "cpu" and env["torch"] == torch.__version__
    parts = report["parts"]
    assert set(parts) == set(gpu_check.PARTS) and report["status"] == "pass"

    tests = parts["cuda_tests"]  # collected here, run on a GPU
    assert tests["status"] == "skipped" and tests["reason"].startswith("needs CUDA")
    selected = tests["selected"]
    assert any("test_cuda_path.py::test_a_cuda_fp32_step_agrees_with_the_cpu_step" in t for t in selected)
    assert any("test_deploy.py::test_cuda_runtimes_are_timed" in t for t in selected)
    assert not any("[cpu" in t for t in selected)  # only the cuda-marked parameters

    rows = {r["precision"]: r for r in parts["train_steps"]["rows"]}
    assert rows.keys() == {"bf16", "fp32"}
    assert rows["bf16"]["status"] == "skipped" and "needs CUDA" in rows["bf16"]["reason"]
    fp32 = rows["fp32"]
    assert fp32["status"] == "pass" and fp32["model"] == "realesrgan" and fp32["method"] == "scratch"
    assert fp32["step_s"] > 0 and fp32["batch"] == 1 and fp32["paper_batch"] == 48
    assert fp32["peak_memory_mb"] is None and fp32["nan_terms"] == []

    vs = parts["vs_basicsr"]
    assert vs["status"] == "pass" and vs["device"] == "cpu"
    assert vs["basicsr_s"] > 0 and vs["gankd_s"] > 0
    assert vs["ratio"] == pytest.approx(vs["gankd_s"] / vs["basicsr_s"])
    assert vs["target_features"] == "computed every step"  # as BasicSR and the paper's online data

    ddp = parts["ddp"]
    assert ddp["status"] == "pass", ddp.get("reason")
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["wrapped_in_ddp"]
    assert ddp["steps"] == gpu_check.DDP_STEPS and len(ddp["losses"]) == gpu_check.DDP_STEPS
    assert ddp["replica_max_diff"] <= 1e-6


def test_a_batch_that_does_not_fit_is_halved_and_recorded():
    def run(batch: int) -> dict:
        if batch > 12:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return {"step_s": 0.5}

    got = gpu_check._fitting(run, 48, torch.device("cpu"))
    assert got == {"step_s": 0.5, "batch": 12, "oom_at": [48, 24]}

    def never(batch: int) -> dict:
        raise torch.OutOfMemoryError("CUDA out of memory")

    got = gpu_check._fitting(never, 48, torch.device("cpu"))
    assert got["status"] == "fail" and got["oom_at"] == [48, 24, 12]
    assert got["reason"] == "out of memory at batch 48, 24, 12"


def test_one_failing_part_fails_the_check_but_the_others_still_run(monkeypatch):
    ran = []
    monkeypatch.setattr(gpu_check, "RUNNERS", {
        "cuda_tests": lambda cfg: ran.append("cuda_tests") or {"status": "skipped", "reason": "needs CUDA"},
        "train_steps": lambda cfg: 1 / 0,
        "vs_basicsr": lambda cfg: ran.append("vs_basicsr") or {"status": "pass"},
        "ddp": lambda cfg: ran.append("ddp") or {"status": "pass"}})
    report = gpu_check.check(gpu_check.CheckConfig(dry=True))
    assert ran == ["cuda_tests", "vs_basicsr", "ddp"]
    assert report["status"] == "fail"
    assert report["parts"]["train_steps"]["reason"] == "ZeroDivisionError: division by zero"
    assert all("wall_s" in p for p in report["parts"].values())
    monkeypatch.setitem(gpu_check.RUNNERS, "train_steps", lambda cfg: {"status": "pass"})
    assert gpu_check.check(gpu_check.CheckConfig(dry=True))["status"] == "pass"  # skipped is no failure


def test_bad_arguments_and_a_missing_gpu_are_one_line_errors(capsys, tmp_path):
    assert gpu_check.main(["--dry", "--models", "esrgan", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("gpu_check: error: unknown paper-suite model 'esrgan'; valid choices: gcfsr, realesrgan")
    if not torch.cuda.is_available():
        assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
        assert "torch sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
