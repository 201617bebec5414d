"""Aggregation of run records into leaderboard rows with pandas: records -> one DataFrame row per
run (``RunRecord.row``) -> groupby (suite, model, ratio, method) -> mean and spread over seeds, and a
paired comparison of every method against ``scratch`` on the same seeds. ``table`` is the
leaderboard as a DataFrame (what ``reports/leaderboard.csv`` holds and ``pandas.read_csv`` loads
back); ``aggregate`` hands its rows to the report as plain dicts (None for a value not measured).

Spread is the sample standard deviation over seeds (n - 1 in the denominator). The paired
comparison takes, per seed both runs share, the difference method - scratch; it is *significant*
when the two-sided 95% Student-t confidence interval of the mean difference excludes zero, else
*within noise*. One shared seed gives a difference but no noise estimate: its verdict is
``unknown (1 seed)``, never significant.

Provenance: a run from a dirty tree (modified tracked files: its code is not the commit it names)
is left out of every mean, spread and paired difference, and listed in ``left_out``; a run timed
under load (``RunRecord.under_load``) keeps its quality numbers but its s/step stays out of the
mean (``timed_under_load``). ``commits`` names the commits of each row's runs. ``term_shares``
names each loss term's share of the student's gradient over the whole run (``record.run_shares``:
the mean over its log windows, so a phased method's stages are weighed by their length), the mean
over the row's seeds, largest first, adding up to 100 %. ``kd_share`` is the method's own terms' part of it,
counted the same way (the inert flag reads it).

These paired intervals are descriptive: uncorrected, over seeds only, on every metric. The
verdicts (gankd/results/judge.py) are the table's tests: the primary metric only, corrected over
its methods, with the photos' uncertainty; "best" is marked on them alone (``best_per_column``).

Sanity floors (``mark_floors``): the no-network baseline is the floor every network must clear
(bicubic upsampling for SR, the unchanged input for translation). A student whose mean LPIPS is
not better than the baseline's on the same evaluation set, and a teacher that is not, are marked
``below bicubic`` (``below identity``) and never marked best: such a number is shown as what it
is, not ranked. Unconditional generation has no such baseline, and no floor.

Columns, their direction and digits come from the metric registry and the run record
(``gankd.results.record.columns``): a new metric shows up here without an edit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from gankd.deploy import RUNTIMES
from gankd.results.record import RunRecord, RunStatus, columns, shares_text
from gankd.tasks import baseline_roles, reference_roles

GROUP = ("suite", "model", "ratio", "depth")
KEY = (*GROUP, "method")
BASELINE = "scratch"
CONFIDENCE = 0.95
#: the floor: a network must beat bicubic on this metric (module doc)
FLOOR_METRIC = "lpips"

WITHIN_NOISE = "within noise"
SIGNIFICANT = "significant"
UNKNOWN_NOISE = "unknown (1 seed)"


def column_keys() -> list[str]:
    return [c.key for c in columns()]


def quality_keys() -> list[str]:
    from gankd.metrics import quality_columns

    return [c.key for c in quality_columns()]


def direction() -> dict[str, bool]:
    """column -> True when higher is better."""
    return {c.key: c.higher_is_better for c in columns()}


def flatten(record: RunRecord) -> dict[str, Any]:
    """One run (or reference) -> a flat row of the leaderboard's columns (None: not measured)."""
    return record.row()


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (None below two values) and count of the usable values."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, 0
    mean = math.fsum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None, 1
    var = math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var), len(vals)


def paired(diffs: Sequence[float]) -> dict[str, Any]:
    """Mean of paired differences, the half-width of its confidence interval and the verdict."""
    mean, std, n = mean_std(diffs)
    if mean is None:
        return {"delta": None, "ci": None, "n": 0, "verdict": None}
    if std is None:
        return {"delta": mean, "ci": None, "n": n, "verdict": UNKNOWN_NOISE}
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    # identical nonzero differences on every seed (std 0) are a real difference, not noise
    verdict = SIGNIFICANT if abs(mean) > half else WITHIN_NOISE
    return {"delta": mean, "ci": half, "n": n, "verdict": verdict}


def runs_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per run, every column numeric (NaN: not measured)."""
    df = pd.DataFrame(list(rows), columns=[*KEY, "seed", "status", "error", "weights", "machine", "git_sha",
                                           "dirty", "under_load", "term_shares", *column_keys()])
    df["dirty"] = df["dirty"].fillna(False).astype(bool)
    df["under_load"] = df["under_load"].astype(object).where(df["under_load"].notna(), None)
    df["git_sha"] = df["git_sha"].fillna("")
    for col in column_keys():
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["ratio"] = df["ratio"].astype(object).where(df["ratio"].notna(), None)
    df["depth"] = [None if d is None or _nan(d) else int(d) for d in df["depth"]]
    return df


def table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The leaderboard: per (suite, model, ratio, method) the mean and sample s.d. of every
    column over the seeds that finished, their count, the failed seeds and their errors, and
    against ``scratch`` the paired difference of every quality column."""
    df = runs_frame(rows)
    if df.empty:
        return pd.DataFrame()
    df["_key"] = [tuple(str(v) for v in k) for k in df[list(KEY)].itertuples(index=False)]
    out = []
    for _, g in sorted(df.groupby("_key", sort=False), key=lambda kv: kv[0]):
        status = g["status"].map(RunStatus.parse)
        finished = g[status.map(lambda s: s.has_results).astype(bool)]
        na = g[status.map(lambda s: s is RunStatus.NOT_APPLICABLE).astype(bool)]
        done, dirty = finished[~finished["dirty"]], finished[finished["dirty"]]
        failed = g[status.map(lambda s: s.failed).astype(bool)]
        first = g.iloc[0]
        agg: dict[str, Any] = {k: first[k] for k in KEY}
        agg["seeds"] = sorted(int(s) for s in done["seed"] if s is not None and not _nan(s))
        agg["n"] = len(done)
        agg["failed"] = len(failed)
        agg["failed_seeds"] = sorted(int(s) for s in failed["seed"] if s is not None and not _nan(s))
        by_seed = failed.sort_values("seed", key=lambda s: s.astype(str))
        agg["errors"] = "; ".join(f"seed {r.seed}: {r.error or 'no error recorded'}"
                                  for r in by_seed.itertuples())
        loaded = done["under_load"].apply(lambda u: u is True).astype(bool)
        for col in column_keys():
            values = done[~loaded][col] if col == "s_step" else done[col]  # contention is no step time
            mean, std, _ = mean_std(values.tolist())
            agg[col], agg[col + "_std"] = mean, std
        agg["left_out"] = "; ".join(f"seed {r.seed}: dirty tree ({_short(r.git_sha)})"
                                    for r in sorted(dirty.itertuples(), key=lambda r: str(r.seed)))
        agg["timed_under_load"] = " ".join(str(int(sd)) for sd in sorted(done[loaded]["seed"]))
        agg["commits"] = " ".join(sorted({_short(sha) for sha in finished["git_sha"] if sha}))
        agg["weights"] = next((w for w in done["weights"] if w), "")
        agg["term_shares"] = shares_text([s for s in done["term_shares"] if isinstance(s, dict)])
        agg["machines"] = "; ".join(sorted({m for m in done["machine"] if isinstance(m, str) and m}))
        agg["not_applicable"] = na["error"].iloc[0] if len(na) and not len(done) else ""
        out.append(agg)
    result = pd.DataFrame(out)
    _paired_vs_baseline(result, df)
    return result


def aggregate(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``table`` as plain dicts, a value not measured as None (the report's input)."""
    t = table(rows)
    return [{k: _plain(v) for k, v in row.items()} for row in t.to_dict("records")]


def _short(sha: str) -> str:
    return sha[:7] + ("-dirty" if sha.endswith("-dirty") else "")


def _paired_vs_baseline(result: pd.DataFrame, runs: pd.DataFrame) -> None:
    done = runs[(runs["status"] == RunStatus.DONE) & ~runs["dirty"]]
    for col in quality_keys():
        for s in ("_delta", "_ci", "_paired_n", "_noise"):
            result[col + s] = None
    for i, agg in result.iterrows():
        if agg["method"] in (BASELINE, *reference_roles()):
            continue
        same = ((done["suite"] == agg["suite"]) & (done["model"] == agg["model"])
                & _same(done, "ratio", agg["ratio"]) & _same(done, "depth", agg["depth"]))
        base = done[same & (done["method"] == BASELINE)].set_index("seed")
        if base.empty:
            continue
        mine = done[same & (done["method"] == agg["method"])].set_index("seed")
        shared = sorted(set(base.index) & set(mine.index), key=str)
        for col in quality_keys():
            p = paired([mine.at[s, col] - base.at[s, col] for s in shared
                        if not _nan(mine.at[s, col]) and not _nan(base.at[s, col])])
            result.at[i, col + "_delta"], result.at[i, col + "_ci"] = p["delta"], p["ci"]
            result.at[i, col + "_paired_n"], result.at[i, col + "_noise"] = p["n"], p["verdict"]


def _same(df: pd.DataFrame, col: str, value: Any) -> pd.Series:
    """Rows whose ``col`` equals ``value`` (None matches None: a student at the teacher's depth)."""
    if value is None or _nan(value):
        return df[col].apply(lambda v: v is None or _nan(v))
    return df[col].apply(lambda v: v is not None and not _nan(v) and float(v) == float(value))


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    return None if _nan(v) else v


def mark_floors(aggs: list[dict[str, Any]]) -> None:
    """Set ``floor`` on every aggregate of one table (students and references on the same
    evaluation set): ``below <baseline>`` where the mean of ``FLOOR_METRIC`` does not beat the
    no-network baseline's (bicubic for SR, the input itself for translation; unconditional
    generation has none, so nothing is marked there)."""
    base = next((a for a in aggs if a["method"] in baseline_roles()), None)
    level = base.get(FLOOR_METRIC) if base else None
    better = direction()[FLOOR_METRIC]
    for a in aggs:
        a["floor"] = ""
        value = a.get(FLOOR_METRIC)
        if level is None or value is None or a is base:
            continue
        if not (value > level if better else value < level):
            a["floor"] = f"below {base['method']}"


def add_ratios(aggs: list[dict[str, Any]]) -> None:
    """Per student of one table: the teacher's GMACs over its own (``mac_ratio``) and, per
    deployment runtime, the teacher's latency over its own on that runtime (``speedup_<rt>``):
    the speed-up a device would see, beside the one MACs promise."""
    teacher = next((a for a in aggs if a["method"] == "teacher"), None)
    for a in aggs:
        if a["method"] in reference_roles() or teacher is None:
            continue
        a["mac_ratio"] = _ratio(teacher.get("gmacs"), a.get("gmacs"))
        for rt in RUNTIMES:
            a[f"speedup_{rt}"] = _ratio(teacher.get(f"lat_{rt}_ms"), a.get(f"lat_{rt}_ms"))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def best_per_column(aggs: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """The students marked best, per column: a verdict, never a point estimate. Only the table's
    primary metric is marked (``primary``, set from the table's verdicts), on each student judged
    *better* than ``scratch`` after the table's correction; where several are, each is marked
    and none ranked above another (each was tested against scratch, not against the others).
    Every other column is unmarked: secondary metrics and costs carry no corrected test, and two
    tied point estimates are not a winner. A student below its floor is never marked."""
    best: dict[str, set[str]] = {}
    for a in aggs:
        if a["method"] in reference_roles() or a.get("floor") or not a.get("primary"):
            continue
        if a.get("verdict") != "better":
            continue
        best.setdefault(str(a["primary"]), set()).add(str(a["method"]))
    return best
