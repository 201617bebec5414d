"""Aggregation of run records into leaderboard rows: mean and spread over seeds, and a paired
comparison of every method against ``scratch`` on the same seeds."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

#: column -> True when higher is better
DIRECTION: dict[str, bool] = {
    "psnr": True, "ssim": True, "lpips": False, "fid": False, "kid": False, "niqe": False,
    "params_m": False, "gmacs": False, "latency_ms": False, "speedup": True, "train_min": False,
}
QUALITY = ("psnr", "ssim", "lpips", "fid", "kid", "niqe")
COLUMNS = (*QUALITY, "params_m", "gmacs", "latency_ms", "speedup", "train_min")
GROUP = ("suite", "model", "ratio")


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One run (or reference) record -> a flat row of the leaderboard's columns."""
    m = record.get("metrics") or {}
    lat = (record.get("latency") or {}).get("median_ms")
    train = record.get("train") or {}
    row = {
        "suite": record.get("suite"), "model": record.get("model"), "ratio": record.get("ratio"),
        "method": record.get("method") or record.get("role"), "seed": record.get("seed"),
        "status": record.get("status", "done"), "error": record.get("error", ""),
        **{k: m.get(k) for k in QUALITY},
        "params_m": record["params"] / 1e6 if record.get("params") else None,
        "gmacs": record["macs"] / 1e9 if record.get("macs") else None,
        "latency_ms": lat,
        "speedup": record.get("speedup_vs_teacher"),
        "train_min": train["wall_time_s"] / 60 if train.get("wall_time_s") else None,
    }
    return row


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def aggregate(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (suite, model, ratio, method); failed runs kept apart."""
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
        agg["errors"] = "; ".join(f"seed {r['seed']}: {r['error']}" for r in failed)
        for col in COLUMNS:
            agg[col], agg[col + "_std"] = _stats([r[col] for r in done])
        out.append(agg)
    _paired_vs_scratch(out, groups)
    return out


def _paired_vs_scratch(out: list[dict[str, Any]], groups: dict[tuple, list[dict[str, Any]]]) -> None:
    """delta = method - scratch, per shared seed; 'within noise' when |mean delta| < 2 standard
    errors of the paired differences, or fewer than two shared seeds make the noise unknowable."""
    for agg in out:
        if agg["method"] == "scratch":
            continue
        key = (*(agg[k] for k in GROUP), "scratch")
        if key not in groups:
            continue
        base = {r["seed"]: r for r in groups[key] if r["status"] == "done"}
        mine = {r["seed"]: r for r in groups[(*key[:-1], agg["method"])] if r["status"] == "done"}
        shared = sorted(set(base) & set(mine))
        for col in QUALITY:
            diffs = [mine[s][col] - base[s][col] for s in shared
                     if mine[s][col] is not None and base[s][col] is not None]
            mean, std = _stats(diffs)
            agg[col + "_delta"] = mean
            if mean is None:
                agg[col + "_noise"] = None
            elif std is None:
                agg[col + "_noise"] = "unknown (1 seed)"
            else:
                se = std / math.sqrt(len(diffs))
                agg[col + "_noise"] = "within noise" if abs(mean) < 2 * se else "significant"


def best_per_column(aggs: list[dict[str, Any]]) -> dict[str, str]:
    """Method with the best mean per column among students (references excluded)."""
    best: dict[str, str] = {}
    students = [a for a in aggs if a["method"] not in ("teacher", "bicubic") and a["n"]]
    for col in COLUMNS:
        vals = [(a[col], a["method"]) for a in students if a[col] is not None]
        if len(vals) >= 2:
            pick = max(vals) if DIRECTION[col] else min(vals)
            best[col] = pick[1]
    return best
