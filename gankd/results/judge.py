"""A table's verdicts from its run records: each method's paired differences to ``scratch`` on
the table's primary metric (per seed and photo where the records hold per-image values, else per
seed), judged by the suite's declared protocol (gankd/results/verdict.py), and whether the table
has what the protocol declared it needs to decide anything (a *pilot* when it has not).

Only runs that count go in: finished, from a clean tree (``RunRecord.dirty``: a dirty run's code
is not the commit it names). Crops of one photo are averaged before the test: the unit whose
choice the verdict must generalise over is the photo (``photo_of``), and crops of one photo share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gankd.results import verdict as v
from gankd.results.record import RunRecord

BASELINE = "scratch"
#: the smallest evaluation set a decisive table rests on, in distinct photos (issue 37)
MIN_PHOTOS = 30


def counted(r: RunRecord) -> bool:
    """A run whose numbers enter means and verdicts: finished, from a clean tree."""
    return r.status.has_results and not r.dirty


def photo_of(image: str) -> str:
    """The photo an evaluation crop was cut from: ``astronaut#3`` -> ``astronaut``."""
    return image.split("#", 1)[0]


def differences(runs: Sequence[RunRecord], method: str, metric: str) -> tuple[np.ndarray | None, list[int]]:
    """``method - scratch`` on ``metric`` for the seeds both have counted runs of, and those seeds:
    a (seeds, photos) matrix when every one of those runs holds per-image values of ``metric``
    on at least two shared photos (crops averaged per photo), else a vector of the per-seed
    differences of the aggregate. None without a shared seed."""
    base = {r.seed: r for r in runs if r.method == BASELINE and counted(r) and metric in r.metrics}
    mine = {r.seed: r for r in runs if r.method == method and counted(r) and metric in r.metrics}
    seeds = sorted(set(base) & set(mine), key=lambda s: (s is None, s))
    if not seeds:
        return None, []
    pairs = [(mine[s], base[s]) for s in seeds]
    per = [(a.per_image.get(metric), b.per_image.get(metric)) for a, b in pairs]
    if all(a and b for a, b in per):
        names = sorted(set.intersection(*(set(a) & set(b) for a, b in per)))  # type: ignore[arg-type]
        photos = sorted({photo_of(n) for n in names})
        if len(photos) >= 2:
            rows = []
            for a, b in per:
                diff = {n: a[n] - b[n] for n in names}  # type: ignore[index]
                rows.append([np.mean([diff[n] for n in names if photo_of(n) == p]) for p in photos])
            return np.asarray(rows, dtype=np.float64), seeds  # type: ignore[return-value]
    return np.asarray([a.metrics[metric] - b.metrics[metric] for a, b in pairs], dtype=np.float64), \
        seeds  # type: ignore[return-value]


@dataclass
class Study:
    """What a table's verdicts rest on, and whether the table is complete enough to decide."""

    metric: str
    plan: v.Plan
    verdicts: dict[str, v.Verdict]
    methods: int  # the methods tested against scratch (the correction's family size)
    seeds: int  # the most seeds any method shares with scratch
    photos: int | None  # photos of the crossed tests (None: no per-image values)
    tests: list[str]
    components: v.Components | None  # pooled over the table's methods
    shared: dict[str, int] = field(default_factory=dict)  # method with results -> seeds shared with scratch
    declared_seeds: int | None = None  # the seeds its suite declares for the table (None: unknown)
    decisive_seeds: int = 8  # the protocol's fewest seeds for a decisive table
    seeds_needed: dict[str, int | None] = field(default_factory=dict)  # at its own variance: planning
    pilot_reasons: list[str] = field(default_factory=list)

    @property
    def pilot(self) -> bool:
        return bool(self.pilot_reasons)


def judge_table(runs: Sequence[RunRecord], metric: str, plan: v.Plan, per_image: bool = True,
                declared_seeds: int | None = None, decisive_seeds: int = 8) -> Study:
    """Every method of one table (its runs) against ``scratch`` on ``metric``. ``per_image``:
    whether the task's primary metric has per-image values at all (FID has none: a seeds-only
    test is then no shortcoming of the records). ``declared_seeds``: the seeds the table's suite
    declares for it; ``decisive_seeds``: the protocol's fewest for a decisive table
    (``gankd.results.protocol.Protocol``)."""
    methods = sorted({r.method for r in runs if r.method != BASELINE and r.status.has_results})
    diffs, shared = {}, {}
    for m in methods:
        diffs[m], shared[m] = differences(runs, m, metric)
    verdicts = v.judge(diffs, plan)
    ests = [x.estimate for x in verdicts.values() if x.estimate is not None]
    seeds = max((len(s) for s in shared.values()), default=0)
    photos = max((e.images for e in ests if e.images), default=None)
    comps = v.pooled([e.components for e in ests], [e.seeds - 1 for e in ests]) if ests else None
    tested = len(ests)
    study = Study(metric, plan, verdicts, tested, seeds, photos, sorted({e.test for e in ests}), comps,
                  shared={m: len(shared[m]) for m in methods},
                  declared_seeds=declared_seeds, decisive_seeds=decisive_seeds)
    if comps is not None:
        study.seeds_needed = v.seeds_needed(comps, plan.margin, photos, plan.alpha, max(1, tested),
                                            plan.power)
    study.pilot_reasons = _pilot_reasons(study, per_image)
    return study


def _pilot_reasons(s: Study, per_image: bool) -> list[str]:
    """Why a table cannot decide: its suite declares fewer seeds than the protocol's decisive
    count, a tested method shares fewer seeds with scratch than declared (the sweep has not
    finished it), no per-image values (its photos' uncertainty is not in the test), or fewer
    than ``MIN_PHOTOS`` photos. Its own variance is no reason: that sizes the next study
    (``seeds_needed``) and shows in the verdicts as undetermined cells."""
    out = []
    if not s.methods:
        return ["no method shares two or more counted seeds with scratch"]
    want = s.declared_seeds or s.decisive_seeds
    if s.declared_seeds is not None and s.declared_seeds < s.decisive_seeds:
        out.append(f"its suite declares {s.declared_seeds} seeds, fewer than the {s.decisive_seeds} "
                   f"the protocol asks of a decisive table")
    elif short := {m: k for m, k in s.shared.items() if k < want}:
        whose = ("its suite declares" if s.declared_seeds is not None
                 else "the protocol asks of a decisive table")
        alike = len(short) == len(s.shared) and len(set(short.values())) == 1  # the sweep's front
        out.append(f"{min(short.values())} of the {want} seeds {whose}" + ("" if alike else
                   f" ({', '.join(f'{m}: {k}' for m, k in sorted(short.items()))})"))
    if per_image and v.SEEDS_ONLY in s.tests:
        out.append("no per-image values: the test cannot take the choice of photos into account")
    elif per_image and s.photos is not None and s.photos < MIN_PHOTOS:
        out.append(f"{s.photos} evaluation photos, fewer than {MIN_PHOTOS}")
    return out


def has_per_image(metric: str) -> bool:
    """Whether a record holds ``metric`` per image (its metric class declares it)."""
    from gankd.metrics import METRICS, metric_of

    return bool(METRICS.get(metric_of(metric)).has_per_image)
