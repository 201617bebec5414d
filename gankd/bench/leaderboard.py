"""Aggregation of run records into leaderboard rows: mean and spread over seeds, and a paired
comparison of every method against ``scratch`` on the same seeds.

Spread is the sample standard deviation over seeds (n - 1 in the denominator). The paired
comparison takes, per seed both runs share, the difference method - scratch; it is *significant*
when the two-sided 95% Student-t confidence interval of the mean difference excludes zero, else
*within noise*. One shared seed gives a difference but no noise estimate: its verdict is
``unknown (1 seed)``, never significant.

Sanity floors (``mark_floors``): bicubic upsampling is the floor every network must clear. A
student whose mean LPIPS is not better than bicubic's on the same evaluation set, and a teacher
that is not, are marked ``below bicubic`` and never marked best: such a number is shown as what it
is, not ranked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from scipy import stats

#: column -> True when higher is better
DIRECTION: dict[str, bool] = {
    "psnr": True, "ssim": True, "lpips": False, "fid": False, "kid": False, "niqe": False,
    "params_m": False, "gmacs": False, "latency_ms": False, "speedup": True, "train_min": False,
    "train_gmacs": False, "s_step": False,
}
QUALITY = ("psnr", "ssim", "lpips", "fid", "kid", "niqe")
COLUMNS = (*QUALITY, "params_m", "gmacs", "latency_ms", "speedup", "train_min", "train_gmacs", "s_step")
#: the floor: a network must beat bicubic on this metric (module doc)
FLOOR_METRIC = "lpips"
BELOW_BICUBIC = "below bicubic"
GROUP = ("suite", "model", "ratio")
REFERENCES = ("teacher", "bicubic")
BASELINE = "scratch"
CONFIDENCE = 0.95

WITHIN_NOISE = "within noise"
SIGNIFICANT = "significant"
UNKNOWN_NOISE = "unknown (1 seed)"


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One run (or reference) record -> a flat row of the leaderboard's columns.

    A metric the run could not compute (``missing_metrics``) is None here, never 0.
    """
    m = record.get("metrics") or {}
    lat = (record.get("latency") or {}).get("median_ms")
    train = record.get("train") or {}
    cost = (train.get("cost") or {}).get("gmacs_per_step") or {}
    weights = record.get("method_weights") or {}
    return {
        "suite": record.get("suite"), "model": record.get("model"), "ratio": record.get("ratio"),
        "method": record.get("method") or record.get("role"), "seed": record.get("seed"),
        "status": record.get("status", "done"), "error": record.get("error", ""),
        **{k: _number(m.get(k)) for k in QUALITY},
        "params_m": record["params"] / 1e6 if record.get("params") else None,
        "gmacs": record["macs"] / 1e9 if record.get("macs") else None,
        "latency_ms": _number(lat),
        "speedup": _number(record.get("speedup_vs_teacher")),
        "train_min": train["wall_time_s"] / 60 if train.get("wall_time_s") else None,
        "train_gmacs": _number(cost.get("total")),
        "s_step": _number(train.get("step_time_s")) or None,
        "weights": "; ".join(f"{k}={w['value']:.4g} ({w['source']})" for k, w in weights.items()),
    }


def _number(v: Any) -> float | None:
    """A finite float, or None (a NaN metric is as unusable as a missing one)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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


def aggregate(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (suite, model, ratio, method).

    Failed runs contribute no numbers: they are counted (``failed``) and their errors kept.
    Every non-baseline method of a group with a ``scratch`` baseline gets, per quality column,
    ``<col>_delta`` (mean paired difference), ``<col>_ci`` (95% half-width), ``<col>_paired_n``
    and ``<col>_noise`` (the verdict).
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(*(r[k] for k in GROUP), r["method"])].append(r)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        done = [r for r in members if r["status"] == "done"]
        failed = [r for r in members if r["status"] != "done"]
        agg: dict[str, Any] = dict(zip((*GROUP, "method"), key))
        agg["seeds"] = sorted(r["seed"] for r in done if r["seed"] is not None)
        agg["n"] = len(done)
        agg["failed"] = len(failed)
        agg["failed_seeds"] = sorted(r["seed"] for r in failed if r["seed"] is not None)
        agg["errors"] = "; ".join(f"seed {r['seed']}: {r['error'] or 'no error recorded'}"
                                  for r in sorted(failed, key=lambda r: str(r["seed"])))
        for col in COLUMNS:
            agg[col], agg[col + "_std"], _ = mean_std(r[col] for r in done)
        agg["weights"] = next((r["weights"] for r in done if r.get("weights")), "")
        out.append(agg)
    _paired_vs_baseline(out, groups)
    return out


def _paired_vs_baseline(out: list[dict[str, Any]], groups: dict[tuple, list[dict[str, Any]]]) -> None:
    for agg in out:
        if agg["method"] in (BASELINE, *REFERENCES):
            continue
        key = (*(agg[k] for k in GROUP), BASELINE)
        if key not in groups:
            continue
        base = {r["seed"]: r for r in groups[key] if r["status"] == "done"}
        mine = {r["seed"]: r for r in groups[(*key[:-1], agg["method"])] if r["status"] == "done"}
        shared = sorted(set(base) & set(mine), key=str)
        for col in QUALITY:
            p = paired([mine[s][col] - base[s][col] for s in shared
                        if mine[s][col] is not None and base[s][col] is not None])
            agg[col + "_delta"], agg[col + "_ci"] = p["delta"], p["ci"]
            agg[col + "_paired_n"], agg[col + "_noise"] = p["n"], p["verdict"]


def mark_floors(aggs: list[dict[str, Any]]) -> None:
    """Set ``floor`` on every aggregate of one table (students and references on the same
    evaluation set): ``below bicubic`` where the mean of ``FLOOR_METRIC`` does not beat bicubic's."""
    bicubic = next((a.get(FLOOR_METRIC) for a in aggs if a["method"] == "bicubic"), None)
    for a in aggs:
        a["floor"] = ""
        value = a.get(FLOOR_METRIC)
        if bicubic is None or value is None or a["method"] == "bicubic":
            continue
        beats = value > bicubic if DIRECTION[FLOOR_METRIC] else value < bicubic
        if not beats:
            a["floor"] = BELOW_BICUBIC


def best_per_column(aggs: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Methods with the best mean per column among students (teacher and bicubic excluded).

    A column is marked only when it separates students: with fewer than two students that have
    a value, or when every student ties (e.g. params of same-size students), nothing is best.
    Ties for the best value are all marked. Latency and speed-up are not marked when every
    student has the same size: the same network timed again differs by measurement noise only.
    A student below its floor (``mark_floors``) is never marked.
    """
    best: dict[str, set[str]] = {}
    students = [a for a in aggs if a["method"] not in REFERENCES and a["n"] and not a.get("floor")]
    same_net = all(len({a[c] for a in students}) == 1 for c in ("params_m", "gmacs"))
    for col in COLUMNS:
        if same_net and col in ("latency_ms", "speedup"):
            continue
        vals = {a["method"]: a[col] for a in students if a[col] is not None}
        if len(vals) < 2 or len(set(vals.values())) < 2:
            continue
        top = max(vals.values()) if DIRECTION[col] else min(vals.values())
        best[col] = {m for m, v in vals.items() if v == top}
    return best
