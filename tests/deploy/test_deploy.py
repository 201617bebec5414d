"""Deployment: exports to ONNX Runtime and ncnn checked against torch, failures and mismatches
as results (never a crash), the cache of exports, latency per runtime in a process of its own,
and `gankd export` over a finished run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import TINY_TEACHER

from gankd.bench.compose import seeded_build
from gankd.deploy import PARITY_TOLERANCE, runtimes
from gankd.deploy.export import PNNX_MEMORY_ENV, export, pnnx_memory_cap
from gankd.deploy.latency import measure
from gankd.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny():
    net = seeded_build(TINY_TEACHER, 3)
    xs = [tuple(t.numpy() for t in net.example_inputs(1, 12)) for _ in range(2)]
    return net, xs


def test_exports_match_torch_and_are_cached(tmp_path, monkeypatch):
    net, xs = tiny()
    results = export(net, xs, tmp_path, threads=1)
    assert set(results) == {"onnxruntime", "ncnn"}
    for r in results.values():
        assert r.ok and r.max_abs_diff < PARITY_TOLERANCE and r.status.startswith("ok"), r
    calls = []
    monkeypatch.setattr("gankd.deploy.export._write", lambda *a: calls.append(a))
    again = export(net, xs, tmp_path, threads=1)  # same weights and shapes: read back, not redone
    assert calls == [] and {k: v.max_abs_diff for k, v in again.items()} == \
        {k: v.max_abs_diff for k, v in results.items()}
    with torch.no_grad():  # other weights: another export
        next(net.parameters()).add_(0.1)
    assert len(list(tmp_path.glob("*/export.json"))) == 1
    export(net, xs, tmp_path, threads=1)
    assert len(list(tmp_path.glob("*/export.json"))) == 2


class _NotExportable(torch.nn.Module):
    """Stands for a layer a runtime has no equivalent of: tracing it fails."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            raise RuntimeError("no equivalent in this runtime")
        return x * 2


def test_a_failed_export_and_a_mismatch_are_results_not_crashes(tmp_path, monkeypatch):
    bad = export(_NotExportable(), [(np.random.rand(1, 3, 8, 8).astype(np.float32),)], tmp_path / "a", 1)
    assert all(not r.ok and r.status.startswith("export failed:") and "no equivalent" in r.status
               for r in bad.values())
    net, xs = tiny()
    real = runtimes.OnnxRunner.run
    monkeypatch.setattr(runtimes.OnnxRunner, "run", lambda self, x: real(self, x) + 3e-2)
    off = export(net, xs, tmp_path / "b", 1)["onnxruntime"]
    assert not off.ok and off.status == "mismatch 3.0e-02"


def test_pnnx_over_its_memory_cap_fails_alone_with_the_reason(tmp_path, monkeypatch):
    # 0.1 GiB is below what pnnx needs for any network: stands for the 23-block RRDBNet, whose
    # ncnn pass needs 23 GB (module doc of gankd.deploy.export)
    monkeypatch.setenv(PNNX_MEMORY_ENV, "0.1")
    net, xs = tiny()
    results = export(net, xs, tmp_path, threads=1)
    assert results["onnxruntime"].ok  # the cap is pnnx's alone
    ncnn = results["ncnn"]
    assert not ncnn.ok and ncnn.status.startswith("export failed: MemoryError: pnnx ran out of memory "
                                                  "under its 0.1 GiB cap"), ncnn.status
    assert PNNX_MEMORY_ENV in ncnn.status
    monkeypatch.setenv(PNNX_MEMORY_ENV, "4")  # another cap: exported again, not read back
    assert export(net, xs, tmp_path, threads=1)["ncnn"].ok
    assert len(list(tmp_path.glob("*/export.json"))) == 2


def test_a_deep_rrdbnet_converts_to_ncnn_in_little_memory(tmp_path, monkeypatch):
    # 22 RRDB blocks: pnnx's ncnn pass would need ~12 GB on the traced network as it is (module doc
    # of gankd.deploy.export); with each block's output cloned it needs under 1 GB, whatever the width
    monkeypatch.setenv(PNNX_MEMORY_ENV, "2")
    deep = dataclasses.replace(TINY_TEACHER, kwargs={**TINY_TEACHER.kwargs, "num_feat": 4, "num_grow_ch": 2,
                                                      "num_block": 22})
    net = seeded_build(deep, 5)
    xs = [tuple(t.numpy() for t in net.example_inputs(1, 8))]
    ncnn = export(net, xs, tmp_path, threads=1)["ncnn"]
    assert ncnn.ok, ncnn.status
    layers = (tmp_path.glob("*/model.ncnn.param").__next__()).read_text()
    assert " Noop " not in layers and layers.count("Convolution ") == 22 * 15 + 6  # no layer added


@pytest.mark.parametrize("value", ["lots", "0", "-2"])
def test_a_bad_pnnx_memory_cap_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(PNNX_MEMORY_ENV, value)
    with pytest.raises(ConfigError, match=PNNX_MEMORY_ENV):
        pnnx_memory_cap()


def test_latency_is_measured_in_a_process_of_its_own(tmp_path):
    net, xs = tiny()
    files = {k: v for r in export(net, xs, tmp_path, 1).values() for k, v in r.files.items()}
    state = tmp_path / "state.pt"
    torch.save(net.state_dict(), state)
    for runtime in ("torch", "torch_cl", "onnxruntime", "ncnn"):
        got = measure(runtime, TINY_TEACHER.arch, TINY_TEACHER.kwargs, state, files, size=12, threads=1,
                      warmup=1, repeats=3)
        assert "error" not in got, got
        assert got["median_ms"] > 0 and got["threads"] == 1 and got["input_shapes"] == [[1, 3, 12, 12]]
        assert got["cpu"]
    broken = measure("onnxruntime", TINY_TEACHER.arch, TINY_TEACHER.kwargs, state,
                     {"onnx": str(tmp_path / "nowhere.onnx")}, size=12, threads=1, warmup=0, repeats=1)
    assert "error" in broken and "median_ms" not in broken


@pytest.mark.slow
def test_gankd_export_adds_deployment_to_a_finished_run(tmp_path, monkeypatch):
    from gankd.cli import main

    monkeypatch.setenv("GANKD_REPORTS", str(tmp_path / "reports"))
    results = tmp_path / "results"
    assert main(["bench", "--suite", "smoke", "--model", "gcfsr", "--method", "scratch", "--quiet",
                 "--results", str(results), "--no-report"]) == 0
    assert main(["export", "--suite", "smoke", "--model", "gcfsr", "--quiet", "--results", str(results)]) == 0
    rec = json.loads((results / "runs/smoke/gcfsr/r0.25/scratch/seed0/metrics.json").read_text())
    deploy = rec["deploy"]
    assert set(deploy["exports"]) == {"onnxruntime", "ncnn"}
    # GCFSR's StyleGAN2 layers export once folded (test_fold), so every runtime is timed
    assert all(e["ok"] for e in deploy["exports"].values()), deploy["exports"]
    for rt, by_size in deploy["latency"].items():
        for v in by_size.values():
            assert "median_ms" in v and "error" not in v, (rt, v)
    assert deploy["latency"]["torch"]["32"]["median_ms"] > 0
    html = (tmp_path / "reports" / "leaderboard.html").read_text()
    assert "Deployment latency" in html


def test_export_builds_the_student_of_the_runs_shape(tmp_path, monkeypatch):
    """A shallow student (depth knob) is rebuilt at its own depth before its checkpoint loads:
    built at the teacher's depth, its state_dict would miss blocks and the export crash."""
    from gankd.bench import export_records
    from gankd.bench.suite import load_suite
    from gankd.engine import checkpoint
    from gankd.models import zoo
    from gankd.results.record import RunRecord

    setup = load_suite("smoke").models["realesrgan"]
    shallow = zoo.student(setup.teacher, 1.0, setup.student, depth=2).build()
    run_dir = "runs/smoke/realesrgan/r1-d2/scratch/seed0"
    checkpoint.save(tmp_path / run_dir / "checkpoints", 10, {"ema": shallow.state_dict()})
    seen = {}
    monkeypatch.setattr(export_records, "deploy_network",
                        lambda net, entry, *a, **k: seen.update(net=net, entry=entry) or {"exports": {}})
    rec = RunRecord(suite="smoke", model="realesrgan", ratio=1.0, depth=2, method="scratch", seed=0,
                    run_dir=run_dir)
    export_records.deploy_record(rec, tmp_path, setup)
    got = {k: v for k, v in seen["net"].state_dict().items()}
    assert got.keys() == shallow.state_dict().keys()
    assert all(torch.equal(got[k], v) for k, v in shallow.state_dict().items())
    assert rec.deploy == {"exports": {}}


def test_cuda_runtimes_are_timed_only_where_torch_sees_a_gpu(monkeypatch):
    from gankd.bench.deployment import timed_runtimes
    from gankd.bench.suite import DeployConfig
    from gankd.deploy import CPU_RUNTIMES, CUDA_RUNTIMES

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert timed_runtimes(DeployConfig()) == CPU_RUNTIMES
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert timed_runtimes(DeployConfig()) == CPU_RUNTIMES + CUDA_RUNTIMES
    listed = DeployConfig(runtimes=("torch", "torch_cuda_bf16"))  # listed ones are not timed twice
    assert timed_runtimes(listed) == ("torch", "torch_cuda_bf16", "torch_cuda", "onnxruntime_cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_cuda_runtime_without_a_gpu_is_a_result_with_its_reason(tmp_path):
    import onnxruntime as ort

    net, _ = tiny()
    state = tmp_path / "state.pt"
    torch.save(net.state_dict(), state)
    got = measure("torch_cuda", TINY_TEACHER.arch, TINY_TEACHER.kwargs, state, {}, size=12, threads=1,
                  warmup=0, repeats=1)
    assert "no CUDA device" in got["error"] and "median_ms" not in got
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        # ONNX Runtime would fall back to its CPU provider without a word; the runner refuses
        with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
            runtimes.load("onnxruntime_cuda", None, {"onnx": str(tmp_path / "any.onnx")}, 1)


def test_torch_bf16_runs_in_bf16_and_stays_near_fp32():
    """The bf16 runner's weights and activations are bf16 (checked on the CPU, where the CUDA
    runner's dtype handling is the same code); its output is near fp32's, not equal to it."""
    net, xs = tiny()
    fp32 = runtimes.TorchRunner(seeded_build(TINY_TEACHER, 3), 1).run(xs[0])
    half = runtimes.TorchRunner(net, 1, bf16=True)
    assert all(p.dtype == torch.bfloat16 for p in half.model.parameters())
    out = half.run(xs[0])
    assert out.dtype == np.float32 and out.shape == fp32.shape
    assert 0 < np.abs(out - fp32).max() < 0.1


def test_the_report_gives_a_cuda_runtimes_difference_from_fp32():
    from gankd.results.report.views import _parity

    deploy = {"exports": {"onnxruntime": {"status": "ok (max diff 3e-07)"}},
              "latency": {"torch_cuda_bf16": {"64": {"median_ms": 2.0, "max_abs_diff": 0.004},
                                              "128": {"median_ms": 6.0, "max_abs_diff": 0.007}},
                          "torch": {"64": {"median_ms": 9.0}}}}
    assert _parity(deploy, "onnxruntime") == "ok (max diff 3e-07)"
    assert _parity(deploy, "torch_cuda_bf16") == "vs fp32 CPU: max diff 7e-03"
    assert _parity(deploy, "torch") is None


def test_a_record_measured_elsewhere_gets_only_the_missing_runtimes_merged(tmp_path, monkeypatch):
    """`gankd export` on a GPU host adds the CUDA runtimes to a record timed on a CPU host and
    keeps its CPU numbers and host, so one runtime's column stays one machine's."""
    from gankd.bench import export_records
    from gankd.bench.suite import load_suite
    from gankd.engine import checkpoint
    from gankd.models import zoo
    from gankd.results.record import RunRecord

    setup = load_suite("smoke").models["realesrgan"]
    student = zoo.student(setup.teacher, 0.25, setup.student).build()
    run_dir = "runs/smoke/realesrgan/r0.25/scratch/seed0"
    checkpoint.save(tmp_path / run_dir / "checkpoints", 10, {"ema": student.state_dict()})
    asked = []

    def fake(net, entry, cfg, samples, progress=False, runtimes=None):
        asked.append(runtimes)
        return {"exports": {"onnxruntime": {"status": "ok (again)"}}, "cpu": "GPU host",
                "latency": {rt: {"64": {"median_ms": 1.0, "device": "GPU"}} for rt in runtimes}}

    monkeypatch.setattr(export_records, "deploy_network", fake)
    old = {"exports": {"onnxruntime": {"status": "ok (first)"}}, "cpu": "CPU host",
           "latency": {"torch": {"64": {"median_ms": 9.0}}}}
    rec = RunRecord(suite="smoke", model="realesrgan", ratio=0.25, method="scratch", seed=0, run_dir=run_dir,
                    deploy=json.loads(json.dumps(old)))
    export_records.deploy_record(rec, tmp_path, setup, runtimes=["torch_cuda"])
    assert asked == [["torch_cuda"]]
    assert rec.deploy["latency"]["torch"] == old["latency"]["torch"]
    assert rec.deploy["latency"]["torch_cuda"]["64"]["device"] == "GPU"
    assert rec.deploy["cpu"] == "CPU host" and rec.deploy["exports"] == old["exports"]


@pytest.mark.cuda
def test_cuda_runtimes_are_timed_with_their_difference_from_fp32(tmp_path):
    import onnxruntime as ort

    net, xs = tiny()
    files = {k: v for r in export(net, xs, tmp_path, 1).values() for k, v in r.files.items()}
    state = tmp_path / "state.pt"
    torch.save(net.state_dict(), state)
    for runtime, tol in (("torch_cuda", 1e-2), ("torch_cuda_bf16", 0.1), ("onnxruntime_cuda", 1e-2)):
        got = measure(runtime, TINY_TEACHER.arch, TINY_TEACHER.kwargs, state, files, size=12, threads=1,
                      warmup=1, repeats=3)
        if runtime == "onnxruntime_cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            assert "onnxruntime-gpu" in got["error"]
            continue
        assert "error" not in got, got
        assert got["median_ms"] > 0 and got["device"] and got["max_abs_diff"] < tol, got
