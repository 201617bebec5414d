"""Leaderboard aggregation: mean and sample spread over seeds, failed runs kept apart, paired
comparison against scratch on shared seeds only, and best-per-column marking."""

from __future__ import annotations

import math
import statistics

import pytest
from synthetic_results import ERROR, PLAN, make_tree, run_record

from gankd.results import store
from gankd.results.leaderboard import (
    SIGNIFICANT,
    UNKNOWN_NOISE,
    WITHIN_NOISE,
    aggregate,
    best_per_column,
    column_keys,
    flatten,
    mean_std,
    paired,
)
from gankd.results.record import RunRecord

# two-sided 95% Student-t quantiles, from tables (not from the code under test)
T975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305}


def _agg(rows, method, model="realesrgan", ratio=0.25):
    (hit,) = [a for a in aggregate(rows) if (a["model"], a["ratio"], a["method"]) == (model, ratio, method)]
    return hit


def test_mean_std_is_sample_std_and_ignores_missing_values() -> None:
    mean, std, n = mean_std([1.0, None, 2.0, 4.0, float("nan")])
    assert n == 3
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))  # n - 1 denominator
    assert mean_std([3.0]) == (3.0, None, 1)  # one value: no spread
    assert mean_std([None]) == (None, None, 0)


def test_flatten_converts_units_and_keeps_missing_metrics_missing() -> None:
    rec = run_record("realesrgan", 0.25, "mse", 0, 24.0, missing={"niqe": "too small"})
    rec["metrics"]["ssim"] = float("nan")
    row = flatten(RunRecord.from_dict(rec))
    assert row["params_m"] == pytest.approx(rec["params"] / 1e6)
    assert row["gmacs"] == pytest.approx(rec["macs"] / 1e9)
    assert row["train_min"] == pytest.approx(rec["train"]["wall_time_s"] / 60)
    assert row["latency_ms"] == rec["latency"]["median_ms"]
    assert row["niqe"] is None and row["ssim"] is None  # never 0 for "not measured"
    assert row["psnr"] == 24.0


def test_aggregate_mean_std_n_over_seeds(tmp_path) -> None:
    make_tree(tmp_path)
    rows = [flatten(r) for r in store.iter_runs(tmp_path)]
    mse = _agg(rows, "mse")
    psnrs = list(PLAN["realesrgan"][0.25]["mse"].values())
    assert mse["n"] == 3 and mse["seeds"] == [0, 1, 2] and mse["failed"] == 0
    assert mse["psnr"] == pytest.approx(statistics.mean(psnrs))
    assert mse["psnr_std"] == pytest.approx(statistics.stdev(psnrs))
    assert mse["train_min"] == pytest.approx(statistics.mean([(90 + s) / 60 for s in (0, 1, 2)]))


def test_a_row_names_the_machines_its_seeds_ran_on() -> None:
    """A sample assembled over sessions mixes machines: the row says which (its s/step and
    latency compare only within one)."""
    recs = [run_record("realesrgan", 0.25, "mse", s, 24.0 + s) for s in (0, 1, 2)]
    recs[0]["device"] = {"type": "cpu", "cpu": "AMD EPYC", "torch_cpu_capability": "AVX512"}
    recs[1]["device"] = {"type": "cpu", "cpu": "Intel(R) Xeon(R) Processor", "torch_cpu_capability": "AVX512"}
    recs[2]["device"] = {"type": "cuda", "name": "NVIDIA H200"}
    rows = [flatten(RunRecord.from_dict(r)) for r in recs]
    assert [r["machine"] for r in rows] == ["AMD AVX512", "Intel AVX512", "NVIDIA H200"]
    assert _agg(rows, "mse")["machines"] == "AMD AVX512; Intel AVX512; NVIDIA H200"


def test_failed_runs_contribute_no_numbers(tmp_path) -> None:
    make_tree(tmp_path)
    rows = [flatten(r) for r in store.iter_runs(tmp_path)]
    akdg = _agg(rows, "akdg")  # seed 0 failed, seeds 1 and 2 finished
    assert (akdg["n"], akdg["failed"], akdg["seeds"], akdg["failed_seeds"]) == (2, 1, [1, 2], [0])
    assert akdg["psnr"] == pytest.approx((24.4 + 24.5) / 2)
    assert akdg["errors"] == f"seed 0: {ERROR}"
    dcd = _agg(rows, "dcd")  # every seed failed
    assert (dcd["n"], dcd["failed"]) == (0, 3)
    assert all(dcd[c] is None and dcd[c + "_std"] is None for c in column_keys())
    assert dcd["errors"].count(ERROR) == 3


def test_paired_differences_use_shared_seeds_only() -> None:
    rows = [flatten(RunRecord.from_dict(run_record("m", 0.25, "scratch", s, p)))
            for s, p in ((0, 20.0), (1, 21.0), (2, 22.0))]
    rows += [flatten(RunRecord.from_dict(run_record("m", 0.25, "mse", s, p)))
             for s, p in ((1, 21.5), (2, 22.7), (3, 99.0))]
    mse = _agg(rows, "mse", model="m")
    # seeds 1 and 2 only: diffs 0.5 and 0.7 (seed 3 has no scratch twin, seed 0 no mse twin)
    assert mse["psnr_paired_n"] == 2
    assert mse["psnr_delta"] == pytest.approx(0.6)
    assert mse["psnr_ci"] == pytest.approx(T975[1] * statistics.stdev([0.5, 0.7]) / math.sqrt(2))
    assert mse["psnr_noise"] == WITHIN_NOISE  # t(1 df) is wide: 0.6 < 1.27
    # the unpaired mean difference would be 47.7 - 21 = 26.7: pairing is what makes this honest
    assert mse["psnr"] - _agg(rows, "scratch", model="m")["psnr"] > 20


def test_paired_verdicts() -> None:
    # consistent gain on every seed
    p = paired([1.0, 1.1, 0.9])
    assert p["verdict"] == SIGNIFICANT and p["n"] == 3
    assert p["ci"] == pytest.approx(T975[2] * 0.1 / math.sqrt(3))
    # mean 2, sd 1, n 3: twice the standard error but inside the t interval -> noise
    p = paired([1.0, 2.0, 3.0])
    assert abs(p["delta"]) > 2 * 1 / math.sqrt(3)
    assert p["verdict"] == WITHIN_NOISE
    # sign flips across seeds
    assert paired([0.3, -0.3, 0.1])["verdict"] == WITHIN_NOISE
    # one seed: a difference, but the noise is unknown; never called significant
    p = paired([5.0])
    assert (p["delta"], p["ci"], p["verdict"]) == (5.0, None, UNKNOWN_NOISE)
    # identical differences on every seed (deterministic runs) are real; no difference is noise
    assert paired([0.2, 0.2, 0.2])["verdict"] == SIGNIFICANT
    assert paired([0.0, 0.0])["verdict"] == WITHIN_NOISE
    assert paired([])["verdict"] is None


def test_synthetic_tree_verdicts(tmp_path) -> None:
    make_tree(tmp_path)
    aggs = aggregate(flatten(r) for r in store.iter_runs(tmp_path))
    by = {(a["model"], a["ratio"], a["method"]): a for a in aggs}
    assert by["realesrgan", 0.25, "mse"]["psnr_noise"] == SIGNIFICANT
    assert by["realesrgan", 0.25, "mse"]["lpips_noise"] == SIGNIFICANT  # direction-free: |delta| vs CI
    assert by["realesrgan", 0.25, "sdakd"]["psnr_noise"] == WITHIN_NOISE
    assert by["realesrgan", 0.25, "sdakd"]["niqe_delta"] is None  # not measured for sdakd
    assert by["realesrgan", 0.25, "akdg"]["psnr_paired_n"] == 2
    assert by["gcfsr", 0.25, "sdakd"]["psnr_noise"] == UNKNOWN_NOISE
    assert by["gcfsr", 0.25, "sdakd"]["psnr_delta"] == pytest.approx(0.5)
    assert by["realesrgan", 0.25, "scratch"]["psnr_delta"] is None  # no comparison with itself
    assert by["realesrgan", 0.25, "dcd"]["psnr_paired_n"] == 0


def _student(method, **cols):
    base = {c: None for c in column_keys()}
    return {"method": method, "n": 1, **base, **cols}


def test_best_is_a_corrected_verdict_never_a_point_estimate() -> None:
    """Issue 37: "best" is marked only where a student is better than scratch after the table's
    correction, on the primary metric; the best point estimate of a column (here c's LPIPS, b's
    PSNR) is no winner, and costs carry no test."""
    aggs = [
        _student("a", psnr=25.0, lpips=0.30, primary="lpips", verdict="better", train_min=3.0),
        _student("b", psnr=26.0, lpips=0.35, primary="lpips", verdict="equivalent", train_min=2.0),
        _student("c", psnr=24.0, lpips=0.20, primary="lpips", verdict="undetermined", train_min=1.0),
        _student("d", psnr=24.5, lpips=0.29, primary="lpips", verdict="better", floor="below bicubic"),
        _student("e", psnr=24.5, lpips=0.40, primary="lpips", verdict="worse"),
        {**_student("teacher", psnr=30.0, lpips=0.1), "verdict": "better", "primary": "lpips"},
        {**_student("bicubic", psnr=20.0, lpips=0.05)},
    ]
    assert best_per_column(aggs) == {"lpips": {"a"}}  # d is below its floor, the teacher a reference
    aggs[1]["verdict"] = "better"  # two better than scratch: both marked, neither ranked
    assert best_per_column(aggs) == {"lpips": {"a", "b"}}
    assert best_per_column([_student("a", psnr=25.0), _student("b", psnr=26.0)]) == {}


def test_dirty_runs_stay_out_of_means_and_loaded_timings_out_of_s_step() -> None:
    """A run from a dirty tree is shown (left_out, commits) but enters no mean and no pairing; a
    run timed under load keeps its metrics but not its s/step."""
    recs = [run_record("realesrgan", 0.25, m, s, p) for m, s, p in
            (("scratch", 0, 24.0), ("scratch", 1, 24.2), ("scratch", 2, 30.0),
             ("mse", 0, 24.5), ("mse", 1, 24.6), ("mse", 2, 20.0))]
    recs[2]["git_sha"] = recs[5]["git_sha"] = "abcdef0123-dirty"
    for r, step, load in zip(recs, (1.0, 1.2, 9.0, 1.5, 7.0, 9.0), (1.0, 1.5, 1.0, 2.0, 5.2, 1.0)):
        r["train"]["step_time_s"] = step
        r["load"] = {"max": load, "cores_used": 2, "under_load": load > 2.5}
    rows = [flatten(RunRecord.from_dict(r)) for r in recs]
    scratch, mse = _agg(rows, "scratch"), _agg(rows, "mse")
    assert (scratch["n"], scratch["seeds"]) == (2, [0, 1]) and scratch["psnr"] == pytest.approx(24.1)
    assert scratch["left_out"] == "seed 2: dirty tree (abcdef0-dirty)"
    assert scratch["commits"] == "0123456 abcdef0-dirty"
    assert mse["psnr_delta"] == pytest.approx(0.45)  # seeds 0 and 1 only
    assert mse["psnr_paired_n"] == 2
    assert mse["s_step"] == 1.5 and mse["timed_under_load"] == "1"  # seed 1's 7.0 s left out
    assert mse["psnr"] == pytest.approx(24.55)  # its quality numbers stay in


def test_a_reference_from_a_dirty_tree_is_still_the_reference() -> None:
    """A teacher or bicubic record is evaluated once and shared by the table: a dirty commit on it
    does not blank the table's reference rows."""
    teacher = RunRecord(suite="s", model="m", method="teacher", role="teacher", ratio=None, seed=None,
                        metrics={"lpips": 0.3}, git_sha="abc1234-dirty")
    (row,) = aggregate([teacher.row()])
    assert (row["n"], row["lpips"], row["left_out"]) == (1, 0.3, "")
