"""Each method's verdict against ``scratch`` within one table: better / worse / equivalent /
undetermined, with the family-wise error over the table's methods controlled.

Pure numpy and scipy (no torch): the report and ``gankd power`` read records without it.

**The test.** Per method, the paired differences ``d[s, i] = method - scratch`` of the primary
metric on seed ``s`` and evaluation photo ``i`` (the same photos for every seed and method;
several crops of one photo are averaged first, since the question is which *photos* were
chosen, and crops of one photo share it). Their grand mean is the effect. Its uncertainty comes
from a crossed random-effects model, ``d = mu + a_s + b_i + e_si``: the seed's deviation
``a_s`` (another training run), the photo's ``b_i`` (the method helps some photos more than
others; another test set would have other photos) and their interaction. From the two-way ANOVA
without replication (expected mean squares ``MS_seed = I sa2 + se2``, ``MS_image = S sb2 +
se2``, ``MS_resid = se2``)::

    Var(mean) = sa2 / S + sb2 / I + se2 / (S I) = (MS_seed + MS_image - MS_resid) / (S I)

with Satterthwaite's degrees of freedom. Floors: a photo component estimated below zero is set
to zero, so the variance is never below the seeds-only one, ``MS_seed / (S I)`` (the seed
component is never dropped: with three seeds its estimate is too noisy to call it zero, and
dropping it would trade the seeds' 2 df for the photos' many); degrees of freedom are at least 1.

Why this and not a two-way bootstrap: with 3-16 seeds a bootstrap over seeds has too few
distinct resamples (10 for three seeds) and its percentile intervals are too narrow at small n,
while the ANOVA estimator is unbiased (before its floor) for any S, I >= 2 and its t reference
with Satterthwaite's df is calibrated (``tests/results/test_verdict.py`` measures it by simulation).

Records without per-image values (older records, and set metrics such as FID and KID, which
have no value per image) fall back to the paired t-test over seeds, whose variance treats the
photos as fixed; the ``test`` field says which was used.

**Verdicts.** Two-sided t-test of ``mu = 0`` (difference family) and TOST, two one-sided tests
of ``|mu| >= margin`` (equivalence family), each family corrected over the methods of the table
by Holm's step-down (or Bonferroni). A method is *better* or *worse* when its adjusted difference
p is below alpha (by the sign of the effect and the metric's direction), else *equivalent* when
its adjusted TOST p is, else *undetermined*. The minimum detectable effect is the true difference
a two-sided test at the Bonferroni level alpha / m (a conservative stand-in for Holm's first,
strictest step) would find with the target power at the achieved standard error and df:
``(t(1 - alpha / 2m) + t(power)) * se``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

BETTER, WORSE, EQUIVALENT, UNDETERMINED = "better", "worse", "equivalent", "undetermined"
VERDICTS = (BETTER, WORSE, EQUIVALENT, UNDETERMINED)
CROSSED = "seed x photo ANOVA"
SEEDS_ONLY = "paired t over seeds"
CORRECTIONS = ("holm", "bonferroni", "none")  # "none": for the simulation's counterfactual only


@dataclass(frozen=True)
class Components:
    """Variance components of one paired difference: ``seed`` (sa2), ``image`` (sb2) and
    ``residual`` (se2, seed x image) for per-image data; for per-seed data ``seed`` is the
    variance of a seed's mean difference (sa2 + se2 / I) and the others are None."""

    seed: float
    image: float | None = None
    residual: float | None = None

    def var_of_mean(self, seeds: int, images: int | None = None) -> float:
        if self.image is None or self.residual is None:
            return self.seed / seeds
        assert images
        return self.seed / seeds + self.image / images + self.residual / (seeds * images)

    def df(self, seeds: int, images: int | None = None) -> float:
        """Satterthwaite's df of ``var_of_mean`` at ``seeds`` x ``images`` (the expected mean
        squares in place of the observed ones): what a study of that size would have."""
        if self.image is None or self.residual is None or not images or images < 2:
            return float(seeds - 1)
        ms_s = images * self.seed + self.residual
        ms_i = seeds * self.image + self.residual
        return _satterthwaite(ms_s, ms_i, self.residual, seeds, images)


@dataclass(frozen=True)
class Estimate:
    """The mean paired difference, its standard error and df, and how they were obtained."""

    mean: float
    se: float
    df: float
    seeds: int
    images: int | None  # photos in the crossed test; None for the seeds-only test
    test: str
    components: Components


def _satterthwaite(ms_s: float, ms_i: float, ms_r: float, s: int, i: int) -> float:
    num = (ms_s + ms_i - ms_r) ** 2
    den = ms_s**2 / (s - 1) + ms_i**2 / (i - 1) + ms_r**2 / ((s - 1) * (i - 1))
    return max(1.0, num / den) if den > 0 else float(s - 1)


def crossed(d: np.ndarray) -> Estimate:
    """The crossed seed x image estimate of a (seeds, images) matrix of paired differences."""
    d = np.asarray(d, dtype=np.float64)
    s, i = d.shape
    if s < 2 or i < 2:
        raise ValueError(f"the crossed test needs >= 2 seeds and >= 2 images, got {s} x {i}")
    grand = d.mean()
    seed_means, image_means = d.mean(1), d.mean(0)
    ms_s = i * np.sum((seed_means - grand) ** 2) / (s - 1)
    ms_i = s * np.sum((image_means - grand) ** 2) / (i - 1)
    resid = d - seed_means[:, None] - image_means[None, :] + grand
    ms_r = np.sum(resid**2) / ((s - 1) * (i - 1))
    image_var = max(0.0, (ms_i - ms_r) / s)
    comps = Components(seed=max(0.0, (ms_s - ms_r) / i), image=image_var, residual=float(ms_r))
    if image_var > 0:
        var = (ms_s + ms_i - ms_r) / (s * i)
        df = _satterthwaite(ms_s, ms_i, ms_r, s, i)
    else:  # the floor: photos add nothing measurable, the seeds-only variance
        var, df = ms_s / (s * i), float(s - 1)
    return Estimate(float(grand), math.sqrt(max(var, 0.0)), df, s, i, CROSSED, comps)


def seeds_only(d: Sequence[float] | np.ndarray) -> Estimate:
    """The paired t-test over seeds of per-seed differences (of a metric's aggregate)."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if len(d) < 2:
        raise ValueError(f"a paired test needs >= 2 seeds, got {len(d)}")
    var = float(d.var(ddof=1))
    return Estimate(float(d.mean()), math.sqrt(var / len(d)), float(len(d) - 1), len(d), None, SEEDS_ONLY,
                    Components(seed=var))


def estimate(d: Sequence[float] | np.ndarray) -> Estimate:
    """``crossed`` for a (seeds, images) matrix with >= 2 images, else ``seeds_only`` over the
    per-seed means (a vector of per-seed differences is taken as it is)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 2 and d.shape[1] >= 2:
        return crossed(d)
    return seeds_only(d.mean(1) if d.ndim == 2 else d)


# -- tests and corrections -------------------------------------------------------------------
def p_difference(e: Estimate) -> float:
    """Two-sided p of ``mean = 0``."""
    if e.se == 0:
        return 0.0 if e.mean != 0 else 1.0
    return float(2 * special.stdtr(e.df, -abs(e.mean) / e.se))  # scipy's t.sf without its overhead


def p_equivalence(e: Estimate, margin: float) -> float:
    """TOST p of ``|mean| >= margin``: the larger of the two one-sided p-values."""
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be > 0, got {margin}")
    if e.se == 0:
        return 0.0 if abs(e.mean) < margin else 1.0
    lower = special.stdtr(e.df, -(e.mean + margin) / e.se)  # H0: mean <= -margin
    upper = special.stdtr(e.df, (e.mean - margin) / e.se)  # H0: mean >= +margin
    return float(max(lower, upper))


def adjust(p: Sequence[float | None], correction: str = "holm") -> list[float | None]:
    """Family-wise adjusted p-values (None stays None and does not count in the family).
    Holm: sorted ascending, ``max over j <= k of min(1, (m - j + 1) p_(j))``."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; valid choices: {', '.join(CORRECTIONS)}")
    idx = [k for k, v in enumerate(p) if v is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p)
    if correction == "none":
        for k in idx:
            out[k] = p[k]
        return out
    if correction == "bonferroni":
        for k in idx:
            out[k] = min(1.0, m * float(p[k]))  # type: ignore[arg-type]
        return out
    running = 0.0
    for rank, k in enumerate(sorted(idx, key=lambda k: p[k])):  # type: ignore[arg-type, return-value]
        running = max(running, min(1.0, (m - rank) * float(p[k])))  # type: ignore[arg-type]
        out[k] = running
    return out


def detectable(se: float, df: float, alpha: float, m: int, power: float) -> float:
    """The minimum detectable effect: a two-sided test at alpha / m finds a true difference of
    this size with probability ``power`` (normal-shift approximation with t quantiles)."""
    level = alpha / max(1, m)
    return float((special.stdtrit(df, 1 - level / 2) + special.stdtrit(df, power)) * se)


# -- one table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    method: str
    verdict: str
    estimate: Estimate | None  # None: fewer than two shared seeds
    p: float | None = None
    p_adjusted: float | None = None
    p_tost: float | None = None
    p_tost_adjusted: float | None = None
    mde: float | None = None
    why: str = ""  # for undetermined without a test: the reason

    @property
    def delta(self) -> float | None:
        return None if self.estimate is None else self.estimate.mean


@dataclass(frozen=True)
class Plan:
    """What one table's verdicts are declared with: the part of a suite's protocol
    (``gankd.results.protocol.Protocol``) that the statistics need, for the table's primary metric."""

    margin: float
    higher_is_better: bool
    alpha: float = 0.05
    correction: str = "holm"
    power: float = 0.8


def judge(diffs: Mapping[str, Sequence[float] | np.ndarray | None], plan: Plan) -> dict[str, Verdict]:
    """The verdict of every method of one table from its paired differences to ``scratch``:
    a (seeds, images) matrix, a per-seed vector, or None (no shared seeds). Methods with fewer
    than two shared seeds are *undetermined* and are not counted in the correction."""
    ests: dict[str, Estimate | None] = {}
    for method, d in diffs.items():
        arr = None if d is None else np.asarray(d, dtype=np.float64)
        ests[method] = estimate(arr) if arr is not None and arr.shape[0] >= 2 else None
    methods = list(ests)
    p = [p_difference(e) if e else None for e in ests.values()]
    p_eq = [p_equivalence(e, plan.margin) if e else None for e in ests.values()]
    p_adj, p_eq_adj = adjust(p, plan.correction), adjust(p_eq, plan.correction)
    m = sum(e is not None for e in ests.values())
    out = {}
    for k, method in enumerate(methods):
        e = ests[method]
        if e is None:
            n = 0 if diffs[method] is None else np.asarray(diffs[method]).shape[0]
            out[method] = Verdict(method, UNDETERMINED, None, why=f"{n} shared seed{'s' if n != 1 else ''}")
            continue
        if p_adj[k] < plan.alpha:  # type: ignore[operator]
            verdict = BETTER if (e.mean > 0) == plan.higher_is_better else WORSE
        elif p_eq_adj[k] < plan.alpha:  # type: ignore[operator]
            verdict = EQUIVALENT
        else:
            verdict = UNDETERMINED
        out[method] = Verdict(method, verdict, e, p[k], p_adj[k], p_eq[k], p_eq_adj[k],
                              detectable(e.se, e.df, plan.alpha, m, plan.power))
    return out


# -- power -----------------------------------------------------------------------------------
#: quantiles of the variance estimate's chi-square over which equivalence power is averaged
_CHI2_GRID = 400


def power_difference(comps: Components, seeds: int, images: int | None, effect: float, alpha: float,
                     m: int) -> float:
    """Probability that the two-sided test at alpha / m rejects when the true difference is
    ``effect``: noncentral t at the expected standard error and Satterthwaite df."""
    se = math.sqrt(comps.var_of_mean(seeds, images))
    df = comps.df(seeds, images)
    crit = float(stats.t.ppf(1 - alpha / max(1, m) / 2, df))
    if se == 0:
        return 1.0 if effect else alpha / max(1, m)
    nc = abs(effect) / se
    power = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if not math.isfinite(power):  # scipy's nct gives up far in the tail: the normal shift there
        power = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
    return min(1.0, power)


def power_equivalence(comps: Components, seeds: int, images: int | None, margin: float, alpha: float,
                      m: int) -> float:
    """Probability that TOST at alpha / m declares equivalence when the true difference is 0.
    Both one-sided tests reject when ``|mean| < margin - t * se_hat``; the mean is normal and
    ``se_hat^2`` a scaled chi-square with Satterthwaite's df, so the probability is
    ``E[2 Phi((margin - t se_hat) / se) - 1]^+`` over the chi-square (a quantile grid): the
    estimated se varies, and at a few df that matters (a fixed se would understate the power)."""
    se = math.sqrt(comps.var_of_mean(seeds, images))
    if se == 0:
        return 1.0
    df = comps.df(seeds, images)
    crit = float(stats.t.ppf(1 - alpha / max(1, m), df))
    u = (np.arange(_CHI2_GRID) + 0.5) / _CHI2_GRID
    se_hat = se * np.sqrt(stats.chi2.ppf(u, df) / df)
    inner = 2 * stats.norm.cdf((margin - crit * se_hat) / se) - 1
    return float(np.clip(inner, 0, None).mean())


def seeds_needed(comps: Components, margin: float, images: int | None, alpha: float = 0.05, m: int = 1,
                 power: float = 0.8, effect: float | None = None, most: int = 64) -> dict[str, int | None]:
    """The fewest seeds (>= 2) at which a table of ``m`` methods reaches ``power`` for a
    difference of ``effect`` (default: the margin) and for equivalence at the margin when there
    is no difference, both at the Bonferroni level alpha / m; None above ``most``."""
    effect = margin if effect is None else effect

    def first(ok: object) -> int | None:
        return next((s for s in range(2, most + 1) if ok(s)), None)  # type: ignore[operator]

    return {
        "difference": first(lambda s: power_difference(comps, s, images, effect, alpha, m) >= power),
        "equivalence": first(lambda s: power_equivalence(comps, s, images, margin, alpha, m) >= power),
    }


def pooled(parts: Sequence[Components], weights: Sequence[float]) -> Components:
    """Components averaged over a table's methods (weights: each method's residual df)."""
    w = np.asarray(weights, dtype=np.float64)
    if not len(parts) or w.sum() <= 0:
        raise ValueError("nothing to pool")

    def avg(values: list[float | None]) -> float | None:
        if any(v is None for v in values):
            return None
        return float(np.dot(w, np.asarray(values, dtype=np.float64)) / w.sum())

    seed = avg([c.seed for c in parts])
    assert seed is not None
    return Components(seed, avg([c.image for c in parts]), avg([c.residual for c in parts]))
