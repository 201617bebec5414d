"""scripts/readme_table.py: the docs' leaderboard tables, each family with its own task's columns."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("readme_table")


def _csv(tmp_path: Path) -> Path:
    base = {"suite": "cpu", "ratio": "0.25", "depth": "", "kind": "student", "n": "3", "s_step": "0.2",
            "train_min": "7", "psnr": "13.3", "lpips": "0.52", "fid": "288", "kid": "0.284",
            "kid_std": "0.013", "precision": "0.05", "recall": "0.0"}
    rows = [{**base, "model": "dcgan", "method": "scratch"},
            {**base, "model": "dcgan", "method": "akdg", "kid": "0.257", "kid_delta": "-0.024",
             "kid_ci": "0.01", "kid_noise": "significant", "lpips_delta": "-0.5"},
            {**base, "model": "realesrgan", "method": "mse", "lpips_delta": "-0.0049"}]
    path = tmp_path / "leaderboard.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    return path


def test_each_task_shows_its_own_metrics_and_headline(script, tmp_path):
    assert [script.task_of(m) for m in ("dcgan", "cyclegan", "realesrgan")] == [
        "unconditional", "translation", "sr"]
    path = _csv(tmp_path)
    uncond = script.table(path, "dcgan", 0.25, task="unconditional").splitlines()
    assert uncond[0].split(" | ")[4:9] == ["KID", "FID", "precision", "recall", "paired ΔKID vs scratch"]
    assert "0.2840 ± 0.0130" in uncond[2] and "-0.0240 ± 0.0100 (significant)" in uncond[3]
    assert "-0.5" not in uncond[3]  # LPIPS is no headline of unconditional generation
    sr = script.table(path, "realesrgan", 0.25, task="sr").splitlines()
    assert "paired ΔLPIPS vs scratch" in sr[0] and "-0.0049" in sr[2] and len(sr) == 3
