"""Provenance at the sweep and the planning end: a sweep refuses a dirty tree unless told, and
`gankd power` sizes each table from a pilot's variance."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_results import make_tree

from gankd.bench import commands, environment
from gankd.bench.suite import load_suite
from gankd.bench.sweep import check_clean
from gankd.cli import main
from gankd.errors import ConfigError


def test_check_clean_names_the_files_and_the_way_out() -> None:
    check_clean([])  # a clean tree runs
    files = [f"gankd/m{k}.py" for k in range(7)]
    with pytest.raises(ConfigError, match=r"gankd/m0.py, .*gankd/m4.py and 2 more.*--allow-dirty"):
        check_clean(files)


def test_sweep_refuses_a_dirty_tree_unless_allowed(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(environment, "modified_tracked_files", lambda: ["gankd/bench/run.py"])
    smoke = load_suite("smoke")
    with pytest.raises(ConfigError, match=r"gankd/bench/run\.py"):
        commands.sweep(smoke, "builtin", tmp_path, "1/1", progress=False, dry=False,
                       only={"model": ["dcgan"], "method": ["scratch"], "shape": None})
    assert not (tmp_path / "runs").exists()  # refused before any job
    # listing the jobs changes nothing, and is allowed
    assert commands.sweep(smoke, "builtin", tmp_path, "1/1", progress=False, dry=True,
                          only={"model": ["dcgan"], "method": ["scratch"], "shape": None}) == 0
    assert "smoke/dcgan/r0.25/scratch/seed0" in capsys.readouterr().out
    assert main(["sweep", "--suite", "smoke", "--results", str(tmp_path), "--model", "dcgan", "--method",
                 "scratch", "--quiet"]) == 2  # the CLI's exit code for a refused request


def test_results_written_into_the_repository_do_not_make_a_run_dirty(monkeypatch, tmp_path) -> None:
    """A sweep or tune into reports/sample rewrites tracked records (a stale one re-scored): that
    is its output, not code; a changed source file still is."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    for rel in ("reports/sample/results/a/metrics.json", "results/baselines/smoke.json", "gankd/m.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("1")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    monkeypatch.setattr(environment, "REPO_ROOT", tmp_path)

    def sha() -> str:
        environment.git_sha.cache_clear()
        return environment.git_sha()

    (tmp_path / "reports/sample/results/a/metrics.json").write_text("2")
    (tmp_path / "results/baselines/smoke.json").write_text("2")
    git("mv", "reports/sample/results/a/metrics.json", "reports/sample/results/a/metrics.stale.json")
    assert environment.modified_tracked_files() == [] and not sha().endswith("-dirty")
    (tmp_path / "gankd/m.py").write_text("2")
    assert environment.modified_tracked_files() == ["gankd/m.py"] and sha().endswith("-dirty")
    environment.git_sha.cache_clear()


def test_power_sizes_each_table_from_its_pooled_variance(tmp_path, capsys) -> None:
    make_tree(tmp_path)
    assert commands.power(tmp_path) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("synth realesrgan r0.25 ")]
    # LPIPS = 0.6 - PSNR / 100: per-seed differences of mse, sdakd (3 seeds) and akdg (2 seeds),
    # their variances pooled with their df as weights
    diffs = [np.array([-0.005, -0.004, -0.006]), np.array([-0.003, 0.003, -0.001]),
             np.array([-0.002, -0.004])]
    pooled = sum(d.var(ddof=1) * (len(d) - 1) for d in diffs) / sum(len(d) - 1 for d in diffs)
    assert f"per-seed {pooled ** 0.5:.3g}" in row
    cells = row.split()
    assert cells[-4:-2] == ["3", "3"]  # methods tested, seeds now
    assert int(cells[-2]) > 3 and int(cells[-1]) > 3
    with pytest.raises(ConfigError, match="--images must be >= 2"):
        commands.power(tmp_path, images=1)
