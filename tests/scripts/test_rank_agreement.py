"""scripts/rank_agreement.py: a method's verdict against scratch in its paper's setting beside SR."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import load_script

from gankd.tasks import task_names

FIELDS = ("suite", "model", "ratio", "depth", "kind", "method", "n", "not_applicable",
          "lpips_delta", "lpips_ci", "lpips_noise", "fid_delta", "fid_ci", "fid_noise")


@pytest.fixture(scope="module")
def script():
    return load_script("rank_agreement")


def _row(model: str, method: str, delta: float | None, noise: str = "significant", metric: str = "lpips",
         **kw: str) -> dict[str, str]:
    row = {"suite": "cpu", "model": model, "ratio": "0.25", "depth": "", "kind": "student", "method": method,
           "n": "3", **kw}
    if delta is not None:
        row.update({f"{metric}_delta": str(delta), f"{metric}_ci": "0.001", f"{metric}_noise": noise})
    return row


def _csv(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "leaderboard.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def test_verdicts_agree_disagree_or_are_left_open(tmp_path, script):
    rows = [_row(m, "scratch", None) for m in ("realesrgan", "gcfsr", "dcgan", "cyclegan")]
    rows += [
        # mse: better in SR (both models) and in its own unconditional setting (FID): agrees
        _row("realesrgan", "mse", -0.004), _row("gcfsr", "mse", -0.002),
        _row("dcgan", "mse", -12.0, metric="fid"),
        # akdg: worse in its own setting, better in SR: disagrees
        _row("realesrgan", "akdg", -0.003), _row("gcfsr", "akdg", -0.001),
        _row("dcgan", "akdg", 5.0, metric="fid"),
        # dcd: within noise in SR: no verdict
        _row("realesrgan", "dcd", 0.0005, "within noise"), _row("gcfsr", "dcd", -0.002),
        _row("cyclegan", "dcd", -0.01),
        # sdakd is an SR method: compared with the other settings, where it was not run
        _row("realesrgan", "sdakd", -0.005), _row("gcfsr", "sdakd", -0.004),
        _row("cyclegan", "lit", None, not_applicable="needs the teacher's width"),
    ]
    out = script.tables(_csv(tmp_path, rows), "cpu", 0.25)
    lines = {line.split(" | ")[0].strip("| `"): line for line in out.splitlines() if line.startswith("| `")}
    assert lines["mse"].endswith("| yes |") and "dcgan: better" in lines["mse"]
    assert lines["akdg"].endswith("| no |") and "dcgan: worse" in lines["akdg"]
    assert lines["dcd"].endswith("| – (not significant) |") and "realesrgan: within noise" in lines["dcd"]
    assert lines["sdakd"].endswith("| – (not run) |")
    assert "lit" not in lines  # not applicable rows are not ranked
    # gcfsr ranks sdakd, mse, dcd, akdg; realesrgan sdakd, mse, akdg, dcd: one discordant pair of six
    assert "| gcfsr / realesrgan | +0.67 | 4 |" in out


def test_kendall_tau(script):
    assert script.kendall_tau(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert script.kendall_tau(["a", "b", "c"], ["c", "b", "a"]) == -1.0
    assert script.kendall_tau(["a", "b"], ["b", "x"]) is None  # one shared item ranks nothing


def test_every_distillation_method_names_the_task_its_paper_claims(script):
    from gankd.methods import METHODS, benchmark_methods

    for name in benchmark_methods():
        task = METHODS.get(name).paper_task
        assert (task is None) == (name == "scratch"), name
        assert task is None or task in task_names(), (name, task)
