"""Reproducibility and the metric regression check (issue: CI guards the metrics)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import THROWAWAY

from gankd.bench.regress import (
    SPREAD_MULTIPLE,
    Diff,
    baseline_from,
    compare,
    family_values,
    regress,
    regressed,
)
from gankd.bench.suite import load_suite
from gankd.paths import benchmarks_dir, results_dir
from gankd.results.record import RunRecord


def suite_copy(tmp_path: Path, name: str, methods: list[str], models: list[str], edit=None) -> Path:
    raw = yaml.safe_load((benchmarks_dir() / "smoke.yaml").read_text())
    raw["name"] = name
    raw["methods"] = methods
    raw["models"] = {k: v for k, v in raw["models"].items() if k in models}
    shapes = [{**s, "methods": [m for m in s["methods"] if m in methods]} for s in raw.get("shapes", [])]
    raw["shapes"] = [s for s in shapes if s["methods"]]  # a shape lists only the suite's methods
    if edit:
        edit(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_smoke_runs_are_exactly_reproducible(tmp_path, capsys):
    """Two fresh runs of the same smoke jobs give identical metrics (not merely close)."""
    path = suite_copy(tmp_path, "repro", ["akdg", "sdakd"], ["gcfsr", "realesrgan"])
    base = tmp_path / "base.json"
    assert regress(suite=load_suite(str(path)), baseline_path=base, update=True, progress=False) == 0
    first = json.loads(base.read_text())
    assert regress(suite=load_suite(str(path)), baseline_path=base, update=True, progress=False) == 0
    assert "unchanged" in capsys.readouterr().out
    assert json.loads(base.read_text()) == first
    values = [m["value"] for run in first["runs"].values() for m in run["metrics"].values()]
    assert len(first["runs"]) == 4 and all(isinstance(v, float) for v in values)


@pytest.mark.slow
def test_changed_loss_weight_fails_regress_with_a_readable_diff(tmp_path, capsys):
    base = tmp_path / "base.json"
    ok = suite_copy(tmp_path, "weights", ["mse"], ["gcfsr"])
    assert regress(suite=load_suite(str(ok)), baseline_path=base, update=True, progress=False) == 0

    def heavier_kd(raw: dict) -> None:
        raw["method_options"]["mse"] = {"weight": 50.0}

    changed = suite_copy(tmp_path, "weights", ["mse"], ["gcfsr"], heavier_kd)
    capsys.readouterr()
    code = regress(suite=load_suite(str(changed)), baseline_path=base, progress=False)
    out = capsys.readouterr().out
    assert code == 1
    assert "metric regression vs baseline" in out and "outside tolerance" in out
    assert "gcfsr/r0.25/mse/seed0" in out
    assert "WORSE" in out or "better (outside tolerance)" in out


def test_compare_flags_each_direction_and_missing_runs():
    def rec(**metrics: float) -> RunRecord:
        return RunRecord("smoke", "m", "x", 0.25, 0, metrics=metrics)

    records = {"m/r0.25/x/seed0": rec(psnr=30.0, lpips=0.2)}
    suite = load_suite("smoke")
    base = baseline_from(records, suite)
    assert base["runs"]["m/r0.25/x/seed0"]["metrics"]["psnr"]["tolerance"] == regressed()["psnr"].tolerance
    spread = baseline_from(records, suite, {"m/r0.25/x/seed0": {"psnr": 0.1, "lpips": 1e-6}})
    m = spread["runs"]["m/r0.25/x/seed0"]["metrics"]
    assert m["psnr"]["tolerance"] == SPREAD_MULTIPLE * 0.1 and m["psnr"]["spread"] == 0.1
    assert m["lpips"]["tolerance"] == regressed()["lpips"].tolerance  # a tiny spread: the floor
    worse = {"m/r0.25/x/seed0": rec(psnr=29.0, lpips=0.2 + 1e-4)}
    diffs = {d.metric: d for d in compare(base, worse)}
    assert diffs["psnr"].verdict == "WORSE" and diffs["lpips"].ok
    better = {"m/r0.25/x/seed0": rec(psnr=31.0, lpips=0.1)}
    assert {d.verdict for d in compare(base, better)} == {"better (outside tolerance)"}
    gone = compare(base, {})
    assert all(d.verdict == "missing" for d in gone)
    extra = compare(base, {**worse, "new/r1/y/seed0": rec()})
    assert any(d.run == "new/r1/y/seed0" and not d.ok for d in extra)
    assert Diff("r", "psnr", None, None, 0.0, True).ok


def test_each_cpu_family_is_compared_with_its_own_values_and_others_with_the_cross_family_ones():
    """Two families 1.0 dB apart, each reproducing itself to 0.001: a machine of either family is
    held to its own value at its own tolerance; an unmeasured family gets the wide one."""
    from gankd.bench.regress import family_values, spreads_of
    from gankd.hardware import cpu_family

    key = "m/r0.25/x/seed0"
    values = {"default": {key: {"psnr": 30.0}}, "1 thread": {key: {"psnr": 30.001}},
              "AMD AVX2: default": {key: {"psnr": 31.0}}, "AMD AVX2: 1 thread": {key: {"psnr": 31.0}}}
    doc = {"values": values, "runs": spreads_of(values),
           "families": {"Intel AVX512": ["default", "1 thread"],
                        "AMD AVX2": ["AMD AVX2: default", "AMD AVX2: 1 thread"]}}
    assert doc["runs"][key]["psnr"] == pytest.approx(1.0)
    fams = family_values(doc)
    assert fams["AMD AVX2"][key]["psnr"] == {"value": 31.0, "spread": 0.0}
    assert fams["Intel AVX512"][key]["psnr"]["spread"] == pytest.approx(0.001)
    first = RunRecord("smoke", "m", "x", 0.25, 0, metrics={"psnr": 30.0})
    base = baseline_from({key: first}, load_suite("smoke"), doc["runs"], fams)
    entry = base["runs"][key]["metrics"]["psnr"]
    assert entry["tolerance"] == pytest.approx(3.0)
    assert set(entry["by_family"]) == {"AMD AVX2", "Intel AVX512"}

    def verdict(psnr: float, family: str) -> str:
        rec = RunRecord("smoke", "m", "x", 0.25, 0, metrics={"psnr": psnr})
        return compare(base, {key: rec}, family)[0].verdict

    assert verdict(31.0, "AMD AVX2") == "ok" and verdict(30.0, "Intel AVX512") == "ok"
    assert verdict(30.0, "AMD AVX2") == "WORSE"            # Intel's value is 1 dB off AMD's own
    assert verdict(30.3, "Intel AVX512") == "better (outside tolerance)"
    assert verdict(32.0, "Arm ASIMD") == "ok"              # unmeasured: the cross-family tolerance
    assert cpu_family({"model": "AMD EPYC 9B45", "torch_capability": "AVX512"}) == "AMD AVX512"
    assert cpu_family({"model": "Intel(R) Xeon(R) Platinum", "torch_capability": "AVX2"}) == "Intel AVX2"
    assert cpu_family({"model": "", "machine": "aarch64", "torch_capability": "DEFAULT"}) == "aarch64 DEFAULT"
    limited = {"model": "AMD EPYC", "torch_capability": "AVX512",
               "kernel_env": {"ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}}
    assert cpu_family(limited) == "AMD AVX512 (ONEDNN_MAX_CPU_ISA=AVX2)"  # threads: the family's own spread


def test_avx512_machines_of_different_onednn_tiers_are_different_families():
    """A Sapphire Rapids Xeon (AMX) and an older Xeon (VNNI) both report torch capability AVX512 but
    took other oneDNN kernels: a fresh clone's CI on the first failed the second's family values."""
    from gankd.hardware import cpu_family

    base = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"]
    spr = {"model": "Intel(R) Xeon(R) Processor", "torch_capability": "AVX512",
           "isa": [*base, "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "avx_vnni"]}
    clx = {"model": "Intel(R) Xeon(R) Processor @ 2.80GHz", "torch_capability": "AVX512",
           "isa": [*base, "avx512_vnni"]}
    zen = {"model": "AMD EPYC", "torch_capability": "AVX512", "isa": [*base, "avx512_vnni", "avx512_bf16"]}
    assert [cpu_family(i) for i in (spr, clx, zen)] == ["Intel AVX512-AMX", "Intel AVX512-VNNI",
                                                        "AMD AVX512-BF16"]
    assert cpu_family({**clx, "isa": base}) == "Intel AVX512"
    # an AVX2 machine has no AVX-512 tier, whatever else its flags say
    avx2 = {"model": "AMD EPYC", "torch_capability": "AVX2", "isa": ["avx2", "avx_vnni"]}
    assert cpu_family(avx2) == "AMD AVX2"
    # kernels capped by the environment below AVX-512: the tier of the CPU no longer applies
    capped = {**spr, "torch_capability": "AVX2", "kernel_env": {"ATEN_CPU_CAPABILITY": "avx2"}}
    assert cpu_family(capped) == "Intel AVX2 (ATEN_CPU_CAPABILITY=avx2)"


def test_a_run_forgotten_on_one_family_keeps_its_spread_and_falls_back_there():
    """After one family's runs changed on purpose, the other machines' values of them are dropped
    (regress_spread.py --forget): the spread still covers the runs only some variants measured, and
    the family without them is held to the cross-family value, not to a stale value of its own."""
    from gankd.bench.regress import by_family, family_values, spreads_of

    kept, changed = "m/r0.25/x/seed0", "c/r0.25/x/seed0"
    values = {"default": {kept: {"psnr": 30.0}},  # Intel: measured before the change
              "AMD AVX512: default": {kept: {"psnr": 30.0}, changed: {"psnr": 20.0}},
              "AMD AVX512: avx2": {kept: {"psnr": 30.002}, changed: {"psnr": 20.01}}}
    runs = spreads_of(values)
    assert runs[changed]["psnr"] == pytest.approx(0.01)   # not dropped for missing from the first
    families = {"Intel AVX512": ["default"], "AMD AVX512": ["AMD AVX512: default", "AMD AVX512: avx2"]}
    fams = family_values({"values": values, "families": families})
    assert set(by_family(fams, changed, "psnr")) == {"AMD AVX512"}
    assert set(by_family(fams, kept, "psnr")) == {"AMD AVX512", "Intel AVX512"}


def test_committed_baseline_covers_every_smoke_run():
    baseline = json.loads((results_dir() / "baselines" / "smoke.json").read_text())
    suite = load_suite("smoke")
    # the tests' throwaway method is registered in the tests' processes only, not in `make regress`
    expected = {f"{m}/r{sh.ratio:g}{f'-d{sh.depth}' if sh.depth else ''}/{meth}/seed{s}"
                for m in suite.models for sh in suite.student_shapes(m) for s in suite.seeds
                for meth in (sh.methods or suite.methods) if meth != THROWAWAY}
    assert set(baseline["runs"]) == expected
    for run in baseline["runs"].values():
        if run["status"] == "not applicable":  # recorded with its reason, nothing to compare
            assert not run["metrics"]
            continue
        assert run["status"] == "done"
        assert {"psnr", "lpips", "fid"} <= set(run["metrics"])  # every task's; SSIM not for samples
        for m in run["metrics"].values():
            assert m["tolerance"] > 0 and isinstance(m["higher_is_better"], bool)
    assert baseline["produced_by"]["git_sha"]
    spread = json.loads((results_dir() / "baselines" / "smoke.spread.json").read_text())
    families = family_values(spread)
    # Each family that measured a run has values of its own for it. A family whose runs were
    # forgotten (regress_spread.py --forget: the code moved every value and that machine was not
    # at hand) has none, and its machines fall back to the cross-family tolerance, which the
    # carried cross-machine spread keeps at least as wide as it was measured.
    for key, run in baseline["runs"].items():
        measured_by = {fam for fam, runs in families.items() if key in runs}
        for name, m in run["metrics"].items():
            assert set(m["by_family"]) == measured_by
            assert measured_by, f"{key}: no CPU family measured it"
            if set(spread["families"]) - measured_by:
                carried = spread.get("carried", {}).get("runs", {}).get(key, {}).get(name)
                assert m["spread"] >= (carried or 0.0), (key, name)


def test_regress_runs_from_a_cache_of_its_own(tmp_path, monkeypatch):
    """A cached network is keyed by its config, not by the threads it trained with: regress must
    not take one that a unit test (one thread) or a user left in the shared cache."""
    from gankd.bench.regress import hermetic
    from gankd.paths import cache_dir, trained_dir

    shared = tmp_path / "shared"
    (shared / "weights").mkdir(parents=True)
    (shared / "weights" / "teacher.pth").write_bytes(b"w")
    (shared / "students").mkdir()
    monkeypatch.setenv("GANKD_CACHE", str(shared))
    monkeypatch.setenv("GANKD_TRAINED", str(tmp_path / "trained"))
    monkeypatch.delenv("GANKD_KEPT", raising=False)
    with hermetic(tmp_path / "own"):
        assert cache_dir() == tmp_path / "own" and trained_dir() == cache_dir()
        assert (cache_dir() / "weights" / "teacher.pth").read_bytes() == b"w"  # fixed inputs shared
        assert not (cache_dir() / "students").exists()
        assert os.environ["GANKD_KEPT"] == "none"
    assert cache_dir() == shared and trained_dir() == tmp_path / "trained"
    assert "GANKD_KEPT" not in os.environ
