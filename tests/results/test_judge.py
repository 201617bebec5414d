"""From run records to a table's verdicts (gankd/results/judge.py): which runs count, how the paired
differences are laid out (per seed and photo, crops averaged per photo; per seed without
per-image values), and when a table is only a pilot."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_results import run_record

from gankd.bench.suite import SuiteIndex, load_suite
from gankd.results import verdict as v
from gankd.results.judge import MIN_PHOTOS, differences, judge_table, photo_of
from gankd.results.record import RunRecord
from gankd.results.suites import Suites

PLAN = v.Plan(margin=0.005, higher_is_better=False)


def _run(method: str, seed: int, per_photo: dict[str, float] | None, crops: int = 2, sha: str = "abc1234",
         lpips: float | None = None) -> RunRecord:
    rec = run_record("realesrgan", 0.25, method, seed, 24.0)
    rec["git_sha"] = sha
    if per_photo is not None:  # each photo's crops: its value -/+ a crop offset that averages out
        rec["per_image"] = {"lpips": {f"{p}#{k}": val + (k - (crops - 1) / 2) * 0.01
                                      for p, val in per_photo.items() for k in range(crops)}}
        rec["metrics"]["lpips"] = float(np.mean(list(rec["per_image"]["lpips"].values())))
    if lpips is not None:
        rec["metrics"]["lpips"] = lpips
    return RunRecord.from_dict(rec)


def test_photo_of_a_crop() -> None:
    assert photo_of("astronaut#3") == "astronaut" and photo_of("z017") == "z017"


def test_per_image_records_give_a_seed_by_photo_matrix_of_photo_means() -> None:
    runs = [_run("scratch", s, {"a": 0.5, "b": 0.6, "c": 0.4}) for s in (0, 1)]
    runs += [_run("mse", s, {"a": 0.49 - s / 100, "b": 0.6, "c": 0.41}) for s in (0, 1)]
    d, seeds = differences(runs, "mse", "lpips")
    assert seeds == [0, 1]
    np.testing.assert_allclose(d, [[-0.01, 0.0, 0.01], [-0.02, 0.0, 0.01]], atol=1e-12)
    study = judge_table(runs, "lpips", PLAN)
    assert study.verdicts["mse"].estimate.test == v.CROSSED and study.photos == 3


def test_one_record_without_per_image_values_falls_back_to_seeds() -> None:
    runs = [_run("scratch", s, {"a": 0.5, "b": 0.6}) for s in (0, 1, 2)]
    runs += [_run("mse", 0, None, lpips=0.54), _run("mse", 1, {"a": 0.5, "b": 0.6}),
             _run("mse", 2, {"a": 0.5, "b": 0.62})]
    d, seeds = differences(runs, "mse", "lpips")
    assert d.ndim == 1 and seeds == [0, 1, 2]
    assert d[0] == pytest.approx(0.54 - runs[0].metrics["lpips"])
    study = judge_table(runs, "lpips", PLAN)
    assert study.tests == [v.SEEDS_ONLY]
    assert any("no per-image values" in why for why in study.pilot_reasons)
    fid_like = judge_table(runs, "lpips", PLAN, per_image=False)  # a set metric has none to miss
    assert not any("no per-image" in why for why in fid_like.pilot_reasons)


def test_dirty_runs_do_not_pair() -> None:
    runs = [_run("scratch", s, None, lpips=0.5, sha="abc" if s != 1 else "abc-dirty") for s in (0, 1, 2)]
    runs += [_run("mse", s, None, lpips=0.49) for s in (0, 1, 2)]
    _, seeds = differences(runs, "mse", "lpips")
    assert seeds == [0, 2]


def test_a_big_enough_table_is_no_pilot() -> None:
    """Enough seeds for its own variance and at least MIN_PHOTOS photos: no pilot; the same
    table on fewer photos is one."""
    rng = np.random.default_rng(0)
    photos = [f"p{k:02d}" for k in range(MIN_PHOTOS)]
    base = {p: 0.5 + 0.05 * rng.standard_normal() for p in photos}
    runs = []
    for s in range(10):
        runs.append(_run("scratch", s, {p: base[p] + 0.002 * rng.standard_normal() for p in photos}, crops=1))
        runs.append(_run("mse", s, {p: base[p] + 0.02 + 0.002 * rng.standard_normal() for p in photos},
                         crops=1))
    study = judge_table(runs, "lpips", PLAN)
    assert study.verdicts["mse"].verdict == v.WORSE and study.photos == MIN_PHOTOS
    assert not study.pilot and study.seeds_needed["difference"] <= 10
    five = [{"lpips": dict(list(r.per_image["lpips"].items())[:5])} for r in runs]
    few = [RunRecord.from_dict({**r.to_dict(), "per_image": p}) for r, p in zip(runs, five)]
    reasons = judge_table(few, "lpips", PLAN).pilot_reasons
    assert any(f"5 evaluation photos, fewer than {MIN_PHOTOS}" in w for w in reasons)


def _table(seeds: int, sd: float, methods: tuple[str, ...] = ("mse",), short: dict[str, int] | None = None,
           rng_seed: int = 0) -> list[RunRecord]:
    """A table of ``MIN_PHOTOS`` photos whose methods differ from scratch by seed noise of s.d.
    ``sd`` (no true effect); ``short``: methods run on fewer seeds."""
    rng = np.random.default_rng(rng_seed)
    photos = [f"p{k:02d}" for k in range(MIN_PHOTOS)]
    base = {p: 0.5 + 0.05 * rng.standard_normal() for p in photos}
    runs = [_run("scratch", s, base, crops=1) for s in range(seeds)]
    for m in methods:
        for s in range((short or {}).get(m, seeds)):
            shift = sd * rng.standard_normal()
            runs.append(_run(m, s, {p: base[p] + shift + 0.001 * rng.standard_normal() for p in photos},
                             crops=1))
    return runs


def test_a_table_is_decisive_at_its_declared_seeds_whatever_its_variance() -> None:
    """The seed count is declared before the runs; the table's own variance sizes the next study,
    and never withholds a verdict (the rule before issue 39's decision: a pilot whenever its
    variance asked for more seeds than it had, which no declared sweep could then satisfy)."""
    noisy = _table(8, sd=0.02)
    study = judge_table(noisy, "lpips", PLAN, declared_seeds=8)
    assert study.seeds_needed["difference"] is None or study.seeds_needed["difference"] > 8
    assert not study.pilot, study.pilot_reasons
    assert study.verdicts["mse"].verdict == v.UNDETERMINED  # what the variance costs: no verdict


def test_fewer_seeds_than_declared_is_a_pilot_naming_the_methods_short() -> None:
    runs = _table(8, sd=0.001, methods=("mse", "akdg"), short={"akdg": 5})
    reasons = judge_table(runs, "lpips", PLAN, declared_seeds=8).pilot_reasons
    assert reasons == ["5 of the 8 seeds its suite declares (akdg: 5)"]
    assert not judge_table(_table(8, sd=0.001), "lpips", PLAN, declared_seeds=8).pilot
    # a table whose suite is not known here is held to the protocol's decisive count
    assert judge_table(_table(6, sd=0.001), "lpips", PLAN).pilot_reasons == [
        "6 of the 8 seeds the protocol asks of a decisive table"]
    assert not judge_table(_table(6, sd=0.001), "lpips", PLAN, decisive_seeds=6).pilot


def test_a_table_declared_with_fewer_than_the_decisive_seeds_stays_a_pilot() -> None:
    study = judge_table(_table(3, sd=0.001), "lpips", PLAN, declared_seeds=3)
    assert study.pilot_reasons == ["its suite declares 3 seeds, fewer than the 8 the protocol asks of a "
                                   "decisive table"]


def test_the_seeds_a_suite_declares_per_table() -> None:
    index = SuiteIndex()
    cpu = load_suite("cpu")
    assert index.declared_seeds("cpu", "realesrgan", 0.25, None) == len(cpu.models["realesrgan"].seeds) >= 8
    assert index.declared_seeds("cpu", "gcfsr", 0.25, None) == len(cpu.models["gcfsr"].seeds) >= 8
    assert index.declared_seeds("cpu", "realesrgan", 0.5, 10) == 3  # a shape's own seeds: a pilot
    assert index.declared_seeds("cpu", "nosuch", 0.25, None) is None
    assert index.declared_seeds("elsewhere", "realesrgan", 0.25, None) is None
    assert Suites().declared_seeds("cpu", "realesrgan", 0.25, None) is None
    assert cpu.protocol.decisive_seeds == 8


def test_task_of_a_suite_or_of_its_records() -> None:
    index = SuiteIndex()
    assert index.task_for("cpu", "dcgan", "bicubic") == "unconditional"  # the suite knows it
    assert index.task_for("elsewhere", "m", "identity") == "translation"  # else the records' baseline
    assert index.task_for("elsewhere", "m", None) == "unconditional"
    assert Suites().task_for("cpu", "dcgan", "bicubic") == "sr"  # told of no suite: the records' baseline
    assert index.protocol("cpu") == load_suite("cpu").protocol
