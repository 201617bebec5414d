"""scripts/deploy_table.py: the deployment table of docs/deployment.md from run records (median per shape,
range, speed-up per runtime, failed runtimes shown, runs without numbers counted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("deploy_table")


def _deploy(ms: dict[str, float | None]) -> dict:
    failed = {"error": "not timed: export failed"}
    return {"latency": {rt: {"64": {"median_ms": v} if v is not None else failed} for rt, v in ms.items()}}


def _write(path: Path, **doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": "done", "macs_input": 64, **doc}))


def test_medians_ranges_speedups_and_failures(tmp_path, script):
    base = tmp_path / "runs" / "cpu" / "m"
    _write(base / "reference/abc/teacher.json", macs=16e9,
           deploy=_deploy({"torch": 100.0, "torch_cl": 80.0, "onnxruntime": 50.0, "ncnn": 60.0}))
    for seed, (t, o) in enumerate([(10.0, 5.0), (20.0, 4.0), (30.0, 6.0)]):
        _write(base / f"r0.25/scratch/seed{seed}/metrics.json", ratio=0.25, depth=None, macs=1e9,
               deploy=_deploy({"torch": t, "torch_cl": 8.0, "onnxruntime": o, "ncnn": None}))
    _write(base / "r0.5-d2/scratch/seed0/metrics.json", ratio=0.5, depth=2, macs=2e9,
           deploy=_deploy({"torch": 40.0, "torch_cl": 30.0, "onnxruntime": 25.0, "ncnn": 20.0}))
    _write(base / "r0.5-d2/mse/seed0/metrics.json", ratio=0.5, depth=2, macs=2e9)  # not exported yet
    _write(base / "r0.5-d2/dcd/seed0/metrics.json", ratio=0.5, depth=2, macs=2e9, status="failed")
    lines = script.table(tmp_path, "cpu", "m").splitlines()
    assert lines[2] == "| teacher | 16.0 | 64 | 100.0 | 80.0 | **50.0** | 60.0 |"
    assert lines[3] == ("| student r = 1/4 (n = 3) | 1.00 | 64 | 20.0 (10.0-30.0) | 8.0 (8.0-8.0) "
                        "| **5.0 (4.0-6.0)** | – |")
    assert lines[4] == "| speed-up | 16.0 (MACs) | 64 | 5.0 | 10.0 | 10.0 | – |"
    assert lines[5] == "| student r = 0.5, 2 blocks (n = 1) | 2.00 | 64 | 40.0 | 30.0 | 25.0 | **20.0** |"
    assert lines[6] == "| speed-up | 8.0 (MACs) | 64 | 2.5 | 2.7 | 2.0 | 3.0 |"
    assert lines[-1].startswith("1 finished run(s) without deployment numbers")
    assert not any("hosts" in line for line in lines)
    # a student measured on another machine: the speed-ups then compare machines, and it says so
    _write(base / "r0.5-d2/mse/seed0/metrics.json", ratio=0.5, depth=2, macs=2e9,
           deploy={**_deploy({"torch": 41.0}), "cpu": "Other CPU"})
    assert "Measured on 2 hosts" in script.table(tmp_path, "cpu", "m")
