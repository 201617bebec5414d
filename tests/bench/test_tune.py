"""`gankd tune`: the calibration protocol on the smoke suite, end to end through the CLI."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import yaml

from gankd.bench.suite import load_suite, method_options, method_weights
from gankd.bench.tune import scored_on
from gankd.cli import main
from gankd.hardware import cpu_info, device_family


@pytest.mark.slow
def test_tune_scores_on_validation_images_and_bench_uses_the_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_TUNED_DIR", str(tmp_path / "tuned"))
    suite = load_suite("smoke")
    default = method_options(suite, "realesrgan", "mse").weight
    assert method_weights(suite, "realesrgan", "mse")["weight"]["source"] == "ours"
    code = main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")])
    assert code == 0
    table = yaml.safe_load((tmp_path / "tuned" / "smoke.yaml").read_text())
    chosen = table["models"]["realesrgan"]["mse"]
    grid = {f"x{f:g}" for f in suite.tune.factors}
    assert set(chosen["scores"]) == grid  # the fixed grid: every method gets as many scored runs
    assert chosen["shape"] == "r0.25" and chosen["seed"] == suite.tune.seed not in suite.seeds
    # LPIPS: lower is better; the table's scores are rounded to 5 decimals, so two factors may tie
    # there (seen on an AMD EPYC with AVX-512: x0.001 and x1e-05), the choice being made unrounded
    # among the factors the PSNR guard lets through (the floor: scratch's PSNR less the margin)
    psnr, floor = chosen["psnr"], chosen["psnr_floor"]
    eligible = {k: v for k, v in chosen["scores"].items() if psnr[k] >= floor} or {
        k: v for k, v in chosen["scores"].items() if psnr[k] >= max(psnr.values()) - suite.tune.psnr_margin}
    assert ("note" in chosen) == all(p < floor for p in psnr.values())
    assert chosen["scores"][f"x{chosen['factor']:g}"] == min(eligible.values())
    runs = tmp_path / "results" / "tune" / "smoke" / "realesrgan" / "mse"
    for f in suite.tune.factors:
        rec = json.loads((runs / f"x{f:g}" / "score.json").read_text())
        assert rec["weights"]["weight"] == pytest.approx(default * f)
        assert rec["steps"] == suite.tune.steps(suite.models["realesrgan"].train.steps)
        assert rec["validation"]["images"] >= 1 and rec["metric"] == "lpips"
        assert rec["device"]["type"] == "cpu" and rec["device"]["cpu_isa"] == cpu_info()["isa"]
    # the table says which machine scored each factor (here: this one, for all)
    assert chosen["machines"] == {k: device_family(rec["device"]) for k in grid}
    assert device_family(rec["device"]).startswith(("AMD ", "Intel ", "x86_64 ", "aarch64 "))
    # the PSNR guard's reference: scratch at the same budget, once per student shape
    ref = json.loads((tmp_path / "results" / "tune" / "smoke" / "realesrgan" / "scratch" / "r0.25"
                      / "score.json").read_text())
    assert ref["steps"] == rec["steps"] and chosen["psnr_floor"] == pytest.approx(
        ref["validation"]["psnr"] - suite.tune.psnr_margin, abs=0.01)
    assert set(chosen["psnr"]) == set(chosen["scores"])
    # bench now runs mse with the chosen weight, and says where it came from
    assert method_options(suite, "realesrgan", "mse").weight == pytest.approx(default * chosen["factor"])
    w = method_weights(suite, "realesrgan", "mse")["weight"]
    assert w["source"].startswith("tuned") and w["value"] == pytest.approx(default * chosen["factor"])
    # each run names the tuning it used; a shape not tuned on says it borrows
    from gankd.bench.suite import StudentShape, tuning_provenance

    prov = tuning_provenance("smoke", "realesrgan", "mse", StudentShape(0.25))
    assert len(prov["sha256"]) == 64 and prov["shape"] == "r0.25" and prov["runs"] == len(grid)
    assert "borrowed" not in prov
    assert tuning_provenance("smoke", "realesrgan", "mse", StudentShape(0.5, 10))["borrowed"] == (
        "factors borrowed from r0.25")
    # a second call finds every run done and chooses the same
    assert main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    assert yaml.safe_load((tmp_path / "tuned" / "smoke.yaml").read_text())["models"] == table["models"]
    # a score made with another config (kept in git, the suite edited since) is made again
    lo, hi = (runs / f"x{f:g}" / "score.json" for f in suite.tune.factors)
    stored = json.loads(lo.read_text())
    stored["config"]["train"]["steps"] += 1
    lo.write_text(json.dumps(stored))
    kept = hi.stat().st_mtime_ns
    assert main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    assert json.loads(lo.with_name("score.stale.json").read_text())["config"] == stored["config"]
    assert json.loads(lo.read_text())["config"]["train"]["steps"] == stored["config"]["train"]["steps"] - 1
    assert hi.stat().st_mtime_ns == kept  # its config unchanged: not scored again
    # ... and so is a score made from another start: the same config trained on another machine
    # is another student (each score names its teacher's and starting student's sha256)
    stored = json.loads(hi.read_text())
    start = dict(stored["config"]["start"])
    assert start["teacher"].startswith(suite.models["realesrgan"].teacher + ":")
    assert "sha256 " in start["student"] or start["student"] == "random init (seed)"
    stored["config"]["start"]["student"] = "supervised pretraining, sha256 0123456789abcdef"
    hi.write_text(json.dumps(stored))
    assert main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    assert json.loads(hi.read_text())["config"]["start"] == start
    assert json.loads(hi.with_name("score.stale.json").read_text())["config"]["start"]["student"].endswith(
        "0123456789abcdef")
    # ... and so is one of an older code epoch (gankd/results/epochs.py): the same config, other numbers
    from gankd.results import epochs

    stored = json.loads(lo.read_text())
    assert stored["epoch"] == epochs.CURRENT
    stored["epoch"] = 0
    lo.write_text(json.dumps(stored))
    assert main(["tune", "--suite", "smoke", "--model", "realesrgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    assert json.loads(lo.with_name("score.stale.json").read_text())["epoch"] == 0
    assert json.loads(lo.read_text())["epoch"] == epochs.CURRENT


def test_tune_refuses_a_method_without_distillation_weights(capsys):
    assert main(["tune", "--suite", "smoke", "--method", "scratch"]) == 2
    assert "mse" in capsys.readouterr().err  # the message lists what can be tuned


def test_every_method_gets_the_same_grid_and_tuning_has_a_seed_of_its_own(tmp_path):
    """A fixed grid (no extension past an end: extra draws favour the methods that get them) and a
    tuning seed that no reported run uses."""
    from gankd.bench.suite import TuneConfig
    from gankd.bench.tune import search
    from gankd.errors import ConfigError

    for optimum in (1e-5, 1.0, 1e3):  # inside and beyond either end: the same runs
        runs = search(TuneConfig(), lambda f: {"factor": f, "score": abs(math.log10(f / optimum)),  # noqa: B023
                                               "higher_is_better": False})
        assert [r["factor"] for r in runs] == sorted(TuneConfig().factors)
    cpu = load_suite("cpu")
    assert cpu.tune.seed not in cpu.seeds
    raw = yaml.safe_load(Path(load_suite("smoke").path).read_text())
    raw["seeds"] = [0, raw["tune"]["seed"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"tune.seed 100 is also a run seed"):
        load_suite(str(bad))


def _scored(f: float, lpips: float, psnr: float) -> dict:
    return {"factor": f, "score": lpips, "higher_is_better": False, "validation": {"psnr": psnr}}


def test_the_psnr_guard_passes_over_factors_that_cost_fidelity():
    """DCD on Real-ESRGAN, as measured: LPIPS best at large factors, PSNR lost 4-5 dB there."""
    from gankd.bench.suite import TuneConfig
    from gankd.bench.tune import best_run, search

    psnr = {10.0: 17.92, 1.0: 17.93, 0.1: 18.02, 0.01: 18.81, 0.001: 21.86, 1e-4: 23.1}
    lpips = {10.0: 0.56209, 1.0: 0.56204, 0.1: 0.56155, 0.01: 0.5578, 0.001: 0.55559, 1e-4: 0.5557}
    guarded = TuneConfig(factors=(1e-4, 0.001, 0.01, 0.1, 1.0, 10.0), psnr_margin=0.5)

    def score(f: float) -> dict:
        return _scored(f, lpips[f], psnr[f])

    # guarded by scratch's 23.3 dB: chosen where PSNR holds, though LPIPS alone prefers x0.001
    runs = search(guarded, score)
    assert [r["factor"] for r in runs] == pytest.approx([1e-4, 0.001, 0.01, 0.1, 1.0, 10.0])
    assert best_run(runs, None, None)["factor"] == pytest.approx(0.001)
    assert best_run(runs, 22.8, 0.5)["factor"] == pytest.approx(1e-4)
    # none within the margin of scratch: the best LPIPS among those near the method's own best PSNR
    assert best_run(runs[1:], 22.8, 0.5)["factor"] == pytest.approx(0.001)
    flat = [_scored(f, s, 21.7) for f, s in ((0.1, 0.5668), (1.0, 0.5667), (10.0, 0.5669))]
    assert best_run(flat, 22.8, 0.5)["factor"] == 1.0  # OMGD: PSNR flat, its own; LPIPS decides
    # SDAKD on Real-ESRGAN, as measured: x1 has the best LPIPS and 0.9 dB less than scratch
    sdakd = [_scored(0.1, 0.55502, 23.03), _scored(1.0, 0.55419, 22.34), _scored(10.0, 0.5597, 20.18)]
    assert best_run(sdakd, None, None)["factor"] == 1.0
    assert best_run(sdakd, 23.3 - 0.5, 0.5)["factor"] == 0.1


def test_tunings_of_two_models_running_side_by_side_keep_each_others_choices(tmp_path):
    """One process per model writes the same table: each choice is merged into the file as it is
    now, not into the copy a process read when it started."""
    from gankd.bench.tune import _record

    path = tmp_path / "cpu.yaml"
    protocol = {"factors": [0.1, 1.0, 10.0]}
    _record(path, protocol, "realesrgan", "mse", {"factor": 0.1})
    _record(path, protocol, "gcfsr", "mse", {"factor": 10.0})      # the other process
    _record(path, protocol, "realesrgan", "akdg", {"factor": 1.0})
    table = yaml.safe_load(path.read_text())
    assert table["models"] == {"realesrgan": {"mse": {"factor": 0.1}, "akdg": {"factor": 1.0}},
                               "gcfsr": {"mse": {"factor": 10.0}}}
    assert table["protocol"] == protocol and path.read_text().startswith("# Written by `gankd tune`")


def test_a_task_can_be_tuned_on_its_own_headline():
    """cpu.yaml ranks dcgan's factors by KID against the teacher's samples, unguarded by PSNR; SR
    and translation keep LPIPS under the guard. A result key no metric returns, or an unknown
    task, is refused when the suite is read, with the choices."""
    from gankd.bench.suite import TuneConfig
    from gankd.errors import ConfigError
    from gankd.metrics import metric_of

    tune = load_suite("cpu").tune
    assert tune.metric_for("unconditional") == "kid" and metric_of("kid") == "fid"
    assert tune.metric_for("sr") == tune.metric_for("translation") == "lpips"
    assert tune.guards("sr") and tune.guards("translation") and not tune.guards("unconditional")
    assert not TuneConfig(psnr_margin=None).guards("sr")
    with pytest.raises(ConfigError, match=r"kd.*choices.*kid"):
        metric_of("kd")
    with pytest.raises(ConfigError, match=r"unconditonal.*unconditional"):
        TuneConfig(task_metrics={"unconditonal": "kid"})


@pytest.mark.slow
def test_an_unconditional_family_is_tuned_by_kid_without_the_psnr_guard(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKD_TUNED_DIR", str(tmp_path / "tuned"))
    suite = load_suite("smoke")
    assert main(["tune", "--suite", "smoke", "--model", "dcgan", "--method", "mse", "--quiet",
                 "--results", str(tmp_path / "results")]) == 0
    chosen = yaml.safe_load((tmp_path / "tuned" / "smoke.yaml").read_text())["models"]["dcgan"]["mse"]
    assert chosen["metric"] == "kid" and "psnr_floor" not in chosen
    runs = tmp_path / "results" / "tune" / "smoke" / "dcgan"
    assert not (runs / "scratch").exists()  # no guard, so no reference run
    scores = {f: json.loads((runs / "mse" / f"x{f:g}" / "score.json").read_text())
              for f in suite.tune.factors}
    assert all(r["metric"] == "kid" and r["score"] == r["validation"]["kid"] for r in scores.values())
    assert chosen["scores"][f"x{chosen['factor']:g}"] == min(chosen["scores"].values())  # lower is better


@pytest.mark.slow
def test_dcd_lambda_cd_is_balanced_against_its_output_kd_before_the_grid(tmp_path, monkeypatch):
    """The probe sets lambda_CD so that L_DCD's gradient on the student matches the output KD's
    (median over its steps), the grid's factors then scale all three weights, and bench uses the
    balanced-then-scaled weights with their source stated."""
    from gankd.bench.suite import StudentShape
    from gankd.bench.tune import balance

    monkeypatch.setenv("GANKD_TUNED_DIR", str(tmp_path / "tuned"))
    suite = load_suite("smoke")
    def probe() -> dict | None:
        return balance(suite, "realesrgan", "dcd", "builtin", tmp_path / "results", StudentShape(0.25),
                       progress=False)

    got = probe()
    assert got is not None and set(got["weights"]) == {"cd_weight"}
    stored = tmp_path / "results" / "tune" / "smoke" / "realesrgan" / "dcd" / "balance" / "probe.json"
    ratios = [sum(r[f"gradnorm/{t}"] for t in ("kd_style", "kd_feat")) / r["gradnorm/dcd"]
              for r in json.loads(stored.read_text())["history"] if r.get("gradnorm/dcd")]
    assert len(ratios) == suite.tune.balance_steps == got["steps"]
    assert got["median_norm_ratio"] == pytest.approx(statistics.median(ratios))
    assert got["weights"]["cd_weight"] == pytest.approx(got["default"] * got["median_norm_ratio"], rel=1e-3)
    assert got["weights"]["cd_weight"] > 10 * got["default"]  # at the release's ratio L_DCD is inert
    mtime = stored.stat().st_mtime_ns
    assert probe() == got and stored.stat().st_mtime_ns == mtime  # a second call reuses the probe
    # bench's config: balanced, then the chosen factor
    from gankd.bench.tune import _record

    _record(tmp_path / "tuned" / "smoke.yaml", {}, "realesrgan", "dcd",
            {"factor": 0.1, "balanced": got, "shape": "r0.25", "seed": 100, "scores": {"x0.1": 0.5}})
    cfg = method_options(suite, "realesrgan", "dcd")
    assert cfg.cd_weight == pytest.approx(0.1 * got["weights"]["cd_weight"])
    assert cfg.feature_weight == pytest.approx(0.1 * 1e4)
    assert "balanced" in method_weights(suite, "realesrgan", "dcd")["cd_weight"]["source"]


def test_the_tuned_table_names_each_factors_machine_only_where_scores_record_one():
    avx2 = {"type": "cpu", "cpu": "AMD EPYC", "torch_cpu_capability": "AVX2"}
    avx512 = {"type": "cpu", "cpu": "AMD EPYC 9B14", "torch_cpu_capability": "AVX512"}
    old = [{"factor": 0.1, "score": 0.3}, {"factor": 1.0, "score": 0.2}]
    # scores written before they recorded a machine: no key, so a re-run of the protocol over them
    # writes the entry (and the hash each run records of it) unchanged
    assert scored_on(old) == {}
    mixed = [{**old[0], "device": avx512}, old[1], {"factor": 10.0, "score": 0.4, "device": avx2}]
    assert scored_on(mixed) == {"x0.1": "AMD AVX512", "x1": "not recorded", "x10": "AMD AVX2"}
    gpu = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}
    assert scored_on([{**old[0], "device": gpu}]) == {"x0.1": "NVIDIA H100 80GB HBM3"}
