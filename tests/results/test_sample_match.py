"""A run beside the committed sample (gankd/results/sample_match.py): the same run is found only
under the same config and compared bit for bit, a difference names the CPU families, and the row
counts only the sample's clean runs of this run's config."""

from __future__ import annotations

from pathlib import Path

import yaml
from synthetic_results import run_record

from gankd.results import store
from gankd.results.record import RunRecord
from gankd.results.sample_match import match

AVX512 = {"type": "cpu", "cpu": "AMD EPYC", "torch_cpu_capability": "AVX512", "cpu_count": 2}
AVX2 = {**AVX512, "torch_cpu_capability": "AVX2"}


def _write(results: Path, seed: int, lpips: float, *, lr: float = 1e-4, sha: str = "abc1234",
           device: dict | None = None) -> RunRecord:
    rec = run_record("gcfsr", 0.25, "sdakd", seed, 24.0)
    rec.update(git_sha=sha, device=device or AVX512, run_dir=f"runs/cpu/gcfsr/r0.25/sdakd/seed{seed}")
    rec["metrics"]["lpips"] = lpips
    record = RunRecord.from_dict(rec)
    run_dir = results / record.run_dir
    run_dir.mkdir(parents=True)
    store.write_metrics(run_dir, record)
    config = {"run": {"suite": "cpu", "model": "gcfsr", "method": "sdakd", "seed": seed},
              "method": {"lr": lr}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return record


def test_the_same_run_is_identical_or_differs_with_the_machines_named(tmp_path) -> None:
    sample = tmp_path / "sample"
    for seed, v in ((0, 0.30), (1, 0.32), (2, 0.31)):
        _write(sample, seed, v)
    _write(sample, 3, 0.29, sha="abc1234-dirty")  # a dirty run is in no row
    mine = _write(tmp_path / "mine", 0, 0.30)
    found = match(mine, tmp_path / "mine", sample, "lpips")
    assert found.same_run is not None and sorted(found.row) == [0, 1, 2]
    lines = dict(found.lines(mine.machine))
    assert lines["sample: this run"].endswith(": identical")
    row = lines["sample: this row"]
    assert "0.31 ± 0.01 over 3 seeds, range 0.3-0.32: this run is inside the seeds' range" in row

    other = _write(tmp_path / "other", 0, 0.345, device=AVX2)
    lines = dict(match(other, tmp_path / "other", sample, "lpips").lines(other.machine))
    assert "this run differs by +0.045" in lines["sample: this run"]
    assert "AMD AVX2" in lines["sample: this run"] and "AMD AVX512" in lines["sample: this run"]
    assert "outside the seeds' range" in lines["sample: this row"]
    same_family = _write(tmp_path / "same", 0, 0.301)
    lines = dict(match(same_family, tmp_path / "same", sample, "lpips").lines(same_family.machine))
    assert "on the same CPU family: a change in code or data" in lines["sample: this run"]


def test_a_run_of_another_config_is_not_compared(tmp_path) -> None:
    sample = tmp_path / "sample"
    for seed in (0, 1):
        _write(sample, seed, 0.3 + seed / 100)
    mine = _write(tmp_path / "mine", 0, 0.40, lr=2e-4)
    found = match(mine, tmp_path / "mine", sample, "lpips")
    assert found.same_run is None and found.config_differs == ["method.lr"] and found.row == {}
    assert found.lines(mine.machine) == [("sample: this run",
                                          "recorded under another config (method.lr): not compared")]
    alone = _write(tmp_path / "alone", 5, 0.3)  # a seed the sample lacks, and no row of this config
    assert match(alone, tmp_path / "alone", tmp_path / "empty", "lpips").lines(alone.machine) == [
        ("sample", "the committed sample has no comparable run of this table")]
