"""Sweeps submitted through submitit (issue 41, item 4): the submitit local executor finishes a
smoke sweep with the records a local sweep writes, a second submission submits nothing, and the
Slurm submission asks for what the command says."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from gankd.bench.executors import EXECUTORS, ClusterOptions, make_executor
from gankd.cli import main
from gankd.errors import ConfigError

SWEEP = ["sweep", "--suite", "smoke", "--model", "gcfsr", "--method", "scratch", "--method", "mse",
         "--quiet", "--allow-dirty"]
RUNS = ("smoke/gcfsr/r0.25/scratch/seed0", "smoke/gcfsr/r0.25/mse/seed0")


@pytest.fixture(autouse=True)
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))


def records(results: Path) -> dict[str, dict]:
    out = {}
    for rel in RUNS:
        rec = json.loads((results / "runs" / rel / "metrics.json").read_text())
        out[rel] = {"status": rec["status"], "metrics": rec["metrics"], "evalset": rec["evalset"]}
    return out


def test_an_unknown_executor_is_refused_with_the_choices(tmp_path, capsys):
    assert main([*SWEEP, "--results", str(tmp_path), "--executor", "kubernetes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("gankd: error: unknown executor (--executor) 'kubernetes'; valid choices: "
                   + ", ".join(sorted(EXECUTORS)))
    assert not (tmp_path / "runs").exists()


def test_bad_cluster_options_are_refused_in_one_line(tmp_path, capsys):
    assert main([*SWEEP, "--results", str(tmp_path), "--executor", "slurm", "--slurm-arg", "account"]) == 2
    assert "--slurm-arg must be KEY=VALUE" in capsys.readouterr().err
    assert main([*SWEEP, "--results", str(tmp_path), "--executor", "slurm", "--array-parallelism", "0"]) == 2
    assert "--array-parallelism must be >= 1, got 0" in capsys.readouterr().err


def test_slurm_without_a_cluster_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(ConfigError, match=r"--executor slurm: .*srun.*login node"):
        make_executor("slurm", tmp_path / "sub", "smoke", ClusterOptions())


def test_the_slurm_array_asks_for_one_gpu_per_job_and_the_given_options(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    opts = ClusterOptions(timeout_min=90, partition="gpu", parallelism=8, slurm_args={"account": "kd"})
    ex = make_executor("slurm", tmp_path / "sub", "paper", opts)
    text = ex._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("--gpus-per-node=1", "--partition=gpu", "--time=90", "--account=kd",
                 "--job-name=gankd-paper", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}\n" in text
    assert ex._executor.parameters["array_parallelism"] == 8
    cpu = make_executor("slurm", tmp_path / "sub", "cpu", ClusterOptions(gpus=0))
    assert "--gpus-per-node" not in cpu._executor._make_submission_file_text("x", "uid")


@pytest.mark.slow
def test_submitit_local_sweep_writes_the_local_records_and_resubmits_nothing(tmp_path, caplog):
    local, submitted = tmp_path / "local", tmp_path / "submitit"
    # the local sweep in a process of its own, as each submitted job is: a test run earlier in this
    # process may have left state behind (threads, flush-to-zero) that moves the last bits
    done = subprocess.run([sys.executable, "-m", "gankd.cli", *SWEEP, "--results", str(local)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*SWEEP, "--results", str(submitted), "--executor", "submitit-local"]) == 0
    want, got = records(local), records(submitted)
    assert {r["status"] for r in want.values()} == {"done"}
    assert got == want  # the same runs, bitwise the same metrics
    logs = sorted(p.name for p in (submitted / "submitit" / "smoke").iterdir())
    assert any(name.endswith("_result.pkl") for name in logs)  # they ran as submitit jobs
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gankd.bench.executors"):
        assert main([*SWEEP, "--results", str(submitted), "--executor", "submitit-local"]) == 0
    assert "2 of 2 job(s) finished already; not submitted" in caplog.text
    assert sorted(p.name for p in (submitted / "submitit" / "smoke").iterdir()) == logs
