"""The verdict machinery (gankd/results/verdict.py): the crossed seed x image variance, Holm, TOST,
the detectable effect and the power helper, each against an independent computation; then a
simulation of 1000 tables with known nulls and known effects under crossed seed and photo
effects, which measures the family-wise error and the power of the whole procedure.

Monte-Carlo tolerance: with 1000 tables an error rate of exactly 5 % is observed above
0.05 + 2.33 * sqrt(0.05 * 0.95 / 1000) = 0.066 with probability 1 % (binomial, one-sided), so
the family-wise rates are held to 0.066; the RNG is seeded, so the test is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gankd.results import verdict as v

TABLES = 1000
FWER_BOUND = 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / TABLES)  # 0.066
MARGIN = 0.005  # LPIPS, the cpu suite's margin
#: realistic components of a paired LPIPS difference (issue 39's pilot: per-seed s.d. 0.0029 on
#: Real-ESRGAN r = 1/4 = sqrt(seed + residual / I) at 30 photos): seed, photo, seed x photo s.d.
REALISTIC = (0.0025, 0.003, 0.01)


# -- the estimator, Holm, TOST against independent computations --------------------------------
def test_crossed_variance_is_the_mean_squares_formula_and_unbiased() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1, (4, 6)) + rng.normal(0, 1, (4, 1)) + rng.normal(0, 2, (1, 6))
    e = v.crossed(d)
    s, i = d.shape
    # the same mean squares from the long-format sums of squares, written out independently
    g = d.mean()
    ss_s = i * ((d.mean(1) - g) ** 2).sum()
    ss_i = s * ((d.mean(0) - g) ** 2).sum()
    ss_r = ((d - g) ** 2).sum() - ss_s - ss_i
    ms_s, ms_i, ms_r = ss_s / (s - 1), ss_i / (i - 1), ss_r / ((s - 1) * (i - 1))
    assert e.mean == pytest.approx(g) and e.test == v.CROSSED and (e.seeds, e.images) == (4, 6)
    assert e.se**2 == pytest.approx((ms_s + ms_i - ms_r) / (s * i))
    df = (ms_s + ms_i - ms_r) ** 2 / (ms_s**2 / 3 + ms_i**2 / 5 + ms_r**2 / 15)
    assert e.df == pytest.approx(df)
    # unbiased: over many draws the estimated variance of the mean averages to the true one
    sa, sb, se, n_s, n_i = 0.5, 1.0, 2.0, 3, 8
    draws = (rng.normal(0, sa, (4000, n_s, 1)) + rng.normal(0, sb, (4000, 1, n_i))
             + rng.normal(0, se, (4000, n_s, n_i)))
    true = sa**2 / n_s + sb**2 / n_i + se**2 / (n_s * n_i)
    est = np.mean([v.crossed(x).se ** 2 for x in draws])
    assert est == pytest.approx(true, rel=0.06)  # the floor adds a little, never takes away
    assert est >= true * 0.97


def test_the_floor_never_drops_below_the_seeds_only_variance() -> None:
    """A photo component estimated below zero is floored: then the variance is the seeds-only
    one (the paired t over the per-seed means), with its S - 1 df."""
    d = np.array([[1.0, 1.2, 0.8], [2.0, 1.8, 2.2], [0.5, 0.5, 0.5]])  # photo means equal: MS_image 0
    e, seeds = v.crossed(d), v.seeds_only(d.mean(1))
    assert e.se == pytest.approx(seeds.se) and e.df == 2
    assert v.p_difference(seeds) == pytest.approx(stats.ttest_1samp(d.mean(1), 0).pvalue)


def test_seeds_only_is_the_paired_t_test() -> None:
    diffs = [0.5, 0.4, 0.6, 0.2]
    e = v.estimate(diffs)
    assert e.test == v.SEEDS_ONLY and e.images is None
    assert v.p_difference(e) == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    assert v.estimate(np.array([[0.1], [0.3], [0.2]])).test == v.SEEDS_ONLY  # one image: seeds only


def test_holm_against_a_hand_computed_example() -> None:
    p = [0.01, 0.04, 0.03, None, 0.005]
    # sorted 0.005 (x4) 0.01 (x3) 0.03 (x2) 0.04 (x1): 0.02, 0.03, 0.06, 0.06 (monotone)
    assert v.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, None, 0.02])
    assert v.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, None, 0.02])
    assert v.adjust([0.3, 0.2], "holm") == pytest.approx([0.4, 0.4])  # 0.3 x 1 < 0.2 x 2: monotone
    with pytest.raises(ValueError, match="valid choices: holm, bonferroni, none"):
        v.adjust([0.1], "hochberg")


def test_tost_is_the_larger_one_sided_p() -> None:
    e = v.Estimate(mean=0.001, se=0.001, df=10, seeds=11, images=None, test=v.SEEDS_ONLY,
                   components=v.Components(1e-5))
    lower = stats.t.sf((0.001 + 0.005) / 0.001, 10)
    upper = stats.t.cdf((0.001 - 0.005) / 0.001, 10)
    assert v.p_equivalence(e, 0.005) == pytest.approx(max(lower, upper))
    assert v.p_equivalence(e, 0.0005) > 0.5  # a margin inside the estimate: no equivalence
    with pytest.raises(ValueError, match="margin"):
        v.p_equivalence(e, 0)


def test_verdicts_by_direction_and_family() -> None:
    plan = v.Plan(margin=0.005, higher_is_better=False)
    out = v.judge({"lower": [-0.02, -0.021, -0.019, -0.02], "higher": [0.02, 0.021, 0.019, 0.02],
                   "tie": [0.0002, -0.0001, 0.0, 0.0001], "noisy": [0.03, -0.03, 0.02, -0.01],
                   "one": [0.5], "none": None}, plan)
    assert {m: o.verdict for m, o in out.items()} == {
        "lower": v.BETTER, "higher": v.WORSE, "tie": v.EQUIVALENT, "noisy": v.UNDETERMINED,
        "one": v.UNDETERMINED, "none": v.UNDETERMINED}
    assert out["one"].p is None and out["one"].why == "1 shared seed"
    raw = [out[m].p for m in ("lower", "higher", "tie", "noisy")]
    assert [out[m].p_adjusted for m in ("lower", "higher", "tie", "noisy")] == pytest.approx(v.adjust(raw))
    # higher is better (PSNR): the same differences read the other way
    flipped = v.judge({"higher": [0.02, 0.021, 0.019, 0.02]}, v.Plan(margin=0.005, higher_is_better=True))
    assert flipped["higher"].verdict == v.BETTER


def test_detectable_effect_formula() -> None:
    mde = v.detectable(se=0.001, df=8, alpha=0.05, m=5, power=0.8)
    assert mde == pytest.approx((stats.t.ppf(1 - 0.005, 8) + stats.t.ppf(0.8, 8)) * 0.001)
    # at that effect the exact (noncentral t) power is the target's, where df are not few
    comps = v.Components(seed=0.003**2)
    se, df = math.sqrt(comps.var_of_mean(21)), comps.df(21)
    effect = v.detectable(se, df, 0.05, 5, 0.8)
    assert v.power_difference(comps, 21, None, effect, 0.05, 5) == pytest.approx(0.8, abs=0.01)


def test_seeds_needed_on_the_issue_39_pilot() -> None:
    """Issue 39: a seed-to-seed s.d. of 0.0029 (Real-ESRGAN) needs about 5 seeds for a 0.005
    difference at 80 % power (one test), 0.0041 (GCFSR) about 8; more under a correction."""
    one = v.seeds_needed(v.Components(0.0029**2), MARGIN, None, m=1)
    assert one["difference"] == 5
    assert v.seeds_needed(v.Components(0.0041**2), MARGIN, None, m=1)["difference"] == 8
    assert v.seeds_needed(v.Components(0.0029**2), MARGIN, None, m=6)["difference"] > one["difference"]
    hopeless = v.seeds_needed(v.Components(1.0), MARGIN, None, most=10)
    assert hopeless == {"difference": None, "equivalence": None}


# -- the simulation ------------------------------------------------------------------------------
def simulate_table(rng: np.random.Generator, seeds: int, images: int, effects: list[float],
                   sd: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """One table: scratch and len(effects) methods, each run scored per photo as in a record:
    value = photo difficulty + the seed's shared start + the method's effect + its run's
    deviation + its own photo profile + noise; returned as each method's (seeds, photos) paired
    difference to scratch (photo difficulty and the shared start cancel, as in real pairs).
    The run-level parts carry half of each paired variance component, so that the differences
    have seed, photo and residual s.d. ``sd``."""
    sa, sb, se = (x / math.sqrt(2) for x in sd)
    photo, start = rng.normal(0, 0.05, images), rng.normal(0, 0.01, seeds)
    runs = [photo + start[:, None] + mu + rng.normal(0, sa, (seeds, 1)) + rng.normal(0, sb, images)
            + rng.normal(0, se, (seeds, images)) for mu in [0.0, *effects]]
    return {f"m{k}": runs[k + 1] - runs[0] for k in range(len(effects))}


def rates(seeds: int, images: int, effects: list[float], sd: tuple[float, float, float] = REALISTIC,
          correction: str = "holm", seeds_only: bool = False, margin: float = MARGIN) -> dict[str, float]:
    """Over TABLES simulated tables: the family-wise rate of a better/worse verdict on a true null
    (effect 0), the same for an equivalence verdict on a method at or beyond the margin, the share
    of true effects found (power) and of true nulls declared equivalent."""
    rng = np.random.default_rng(2026)
    plan = v.Plan(margin=margin, higher_is_better=False, correction=correction)
    false_diff = false_eq = found = equivalent = 0
    nulls, real = [k for k, e in enumerate(effects) if e == 0], [k for k, e in enumerate(effects) if e]
    at_margin = [k for k, e in enumerate(effects) if abs(e) >= margin]
    for _ in range(TABLES):
        diffs = simulate_table(rng, seeds, images, effects, sd)
        if seeds_only:  # what ignoring the photos would do: the paired t over per-seed means
            diffs = {m: d.mean(1) for m, d in diffs.items()}
        out = v.judge(diffs, plan)
        got = [out[f"m{k}"].verdict for k in range(len(effects))]
        false_diff += any(got[k] in (v.BETTER, v.WORSE) for k in nulls)
        false_eq += any(got[k] == v.EQUIVALENT for k in at_margin)
        found += sum(got[k] == (v.BETTER if effects[k] < 0 else v.WORSE) for k in real)
        equivalent += sum(got[k] == v.EQUIVALENT for k in nulls)
    return {"fwer": false_diff / TABLES, "false_equivalence": false_eq / TABLES,
            "power": found / (TABLES * len(real)) if real else math.nan,
            "equivalent": equivalent / (TABLES * len(nulls)) if nulls else math.nan}


def test_family_wise_error_is_controlled_under_crossed_effects() -> None:
    """Five methods, all truly equal to scratch, three seeds and 30 photos with seed, photo and
    seed x photo variance: at most 6.6 % of tables call any of them better or worse (measured
    2.8 %). Without Holm the same tables do so 16.6 % of the time: the check has teeth."""
    holm = rates(3, 30, [0.0] * 5)
    assert holm["fwer"] <= FWER_BOUND
    assert rates(3, 30, [0.0] * 5, correction="none")["fwer"] > 2 * FWER_BOUND


def test_photo_variance_is_not_ignored() -> None:
    """When the methods' effects vary much by photo (photo s.d. 0.01 against a seed s.d. of
    0.001), a test over seeds alone takes the 30 photos as fixed and calls nulls significant in
    most tables (measured 60.5 % at 8 seeds); the crossed test keeps the family-wise rate (2.8 %)."""
    sd = (0.001, 0.01, 0.01)
    assert rates(8, 30, [0.0] * 5, sd=sd)["fwer"] <= FWER_BOUND
    assert rates(8, 30, [0.0] * 5, sd=sd, seeds_only=True)["fwer"] > 0.3


def test_twice_the_margin_is_found_and_nulls_stay_nulls() -> None:
    """Two of five methods move LPIPS by twice the margin (one each way): at 5 seeds and 30
    photos the procedure finds them in at least 80 % of cases (measured 96.3 %; the power
    helper predicts 96.5 %), and the three nulls keep the family-wise rate (4.0 %). A true
    effect at the margin is declared equivalent in at most 6.6 % of tables (measured 2.5 %)."""
    r = rates(5, 30, [0.0, 0.0, 0.0, 2 * MARGIN, -2 * MARGIN])
    assert r["power"] >= 0.8 and r["fwer"] <= FWER_BOUND
    predicted = v.power_difference(v.Components(*(x**2 for x in REALISTIC)), 5, 30, 2 * MARGIN, 0.05, 5)
    assert predicted >= 0.8 and r["power"] >= predicted - 0.05  # Holm is at least Bonferroni's power
    assert rates(5, 30, [MARGIN, -MARGIN, MARGIN, 0.0, 0.0])["false_equivalence"] <= FWER_BOUND


def test_equivalence_is_declared_for_true_nulls_at_adequate_seeds() -> None:
    """The seeds the power helper asks for (Bonferroni, conservative) give equivalence verdicts
    on true nulls in at least 80 % of cases (measured 95.5 % at 9 seeds, 30 photos); at three
    seeds rarely (10.4 %: why a 3-seed pilot's verdicts are mostly undetermined)."""
    comps = v.Components(*(x**2 for x in REALISTIC))
    n = v.seeds_needed(comps, MARGIN, 30, m=5)["equivalence"]
    assert n is not None and 6 <= n <= 16
    assert rates(n, 30, [0.0] * 5)["equivalent"] >= 0.8
    assert rates(3, 30, [0.0] * 5)["equivalent"] < 0.2
