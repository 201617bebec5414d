"""What the page shows of a table, as plain data for the template: formatted values, which cell
is best, which row is below its floor, the paired comparison. Labels, hints, directions and
digits come from the columns the metric registry and the run record declare."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from gankd.results.leaderboard import (
    BASELINE,
    FLOOR_METRIC,
    SIGNIFICANT,
    best_per_column,
    column_keys,
    quality_keys,
)
from gankd.results.record import INERT_SHARE, RunRecord, RunStatus, column, pct
from gankd.results.report.sections import Section
from gankd.tasks import reference_roles

DASH = "–"
FLOOR_TITLE = (f"mean {FLOOR_METRIC} does not beat the no-network baseline (bicubic; for translation the "
               "unchanged input) on this evaluation set: not ranked")
SIGNIFICANT_DIGITS = 3
#: a method's colour is the same in every plot of the page
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")


def colours(methods: Iterable[str]) -> dict[str, str]:
    names = sorted(set(methods), key=lambda m: (m != BASELINE, m))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(names)}


def label(key: str) -> str:
    c = column(key)
    return f"{c.label} ({c.unit})" if c.unit else c.label


def arrow(key: str) -> str:
    return "↑" if column(key).higher_is_better else "↓"


def decimals(value: float, key: str) -> int:
    digits = column(key).digits
    if digits is not None:
        return digits
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def fmt(value: float | None, key: str, std: float | None = None) -> tuple[str, str]:
    """(value, '± spread') as shown; the spread gets the value's decimals."""
    if value is None:
        return DASH, ""
    d = decimals(value, key)
    text = f"{value:.{d}f}" + ("×" if key == "speedup" else "")
    return text, ("" if std is None else f"± {std:.{d}f}")


def missing_reasons(records: list[RunRecord], method: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        if r.method != method:
            continue
        for k, why in r.missing_metrics.items():
            out.setdefault(k, str(why))
    if "fid" in out:
        out.setdefault("kid", out["fid"])  # one network computes both
    return out


#: a verdict's sort key (best first) and its cell's class
VERDICT_ORDER = {"better": 0, "equivalent": 1, "undetermined": 2, "worse": 3}
VERDICT_CLASS = {"better": "better", "worse": "worse", "equivalent": "equiv", "undetermined": "noise"}


def board(s: Section, palette: dict[str, str]) -> dict[str, Any]:
    """The table of one section: a header per column, a row per method and reference, and the
    verdict against scratch last (gankd/results/judge.py)."""
    best = best_per_column(s.students)
    keys = [k for k in column_keys() if column(k).shown]
    head = [{"label": label(k), "hint": column(k).hint, "arrow": arrow(k),
             "dir": "desc" if column(k).higher_is_better else "asc"} for k in keys]
    study = s.study
    if study is not None:
        head.append({"label": f"Verdict vs {BASELINE} ({label(study.metric)})", "arrow": "", "dir": "asc",
                     "hint": f"primary metric, {study.plan.correction.capitalize()}-corrected over the "
                             f"table's methods at alpha {study.plan.alpha:g}; equivalent: TOST within "
                             f"±{study.plan.margin:g}"})
    rows = []
    for a in s.aggs:
        method = str(a["method"])
        is_ref = method in reference_roles()
        row: dict[str, Any] = {"method": method, "is_ref": is_ref, "floor": a.get("floor", ""),
                               "floor_title": FLOOR_TITLE}
        share = a.get("kd_share")
        if not is_ref and share is not None and share < INERT_SHARE:
            row["inert"] = f"inert: own terms {pct(share)} of the gradient"
        if not is_ref:
            row["colour"] = palette.get(method, "#999")
            if a["n"]:
                row["n_label"], row["seeds_title"] = f"n={a['n']}", "seeds " + " ".join(map(str, a["seeds"]))
            if a["failed"] and a["n"]:
                row["failed_badge"], row["errors"] = f"{a['failed']} failed", a["errors"]
            row["weights"] = a.get("weights", "")
        if not is_ref and not a["n"] and a.get("not_applicable"):
            row["cls"] = RunStatus.NOT_APPLICABLE.css_class
            row["missing_row"] = RunStatus.NOT_APPLICABLE.describe(a["not_applicable"])
        elif not is_ref and not a["n"]:
            row["cls"] = RunStatus.FAILED.css_class
            row["failed_text"] = f"({a['failed']} run{'s' if a['failed'] != 1 else ''}): {a['errors']}"
        else:
            row["cls"] = "ref" if is_ref else ""
            missing = missing_reasons([s.refs[method]] if is_ref and method in s.refs else s.runs, method)
            cells = []
            for k in keys:
                val, std = a[k], a[k + "_std"]
                text, spread = fmt(val, k, std)
                why = missing.get(k) if val is None else None
                if k == "s_step" and a.get("timed_under_load"):
                    why = f"seeds {a['timed_under_load']} timed under load: not in this mean"
                terms = a.get("term_shares") if k == "kd_share" and not is_ref else ""
                if terms:  # every term's pull beside the method's own terms' (issue 36)
                    said = f"share of the student's gradient per term over the run (mean over seeds): {terms}"
                    why = f"{why}; {said}" if why else said
                cells.append({"v": None if val is None else f"{val:.10g}", "text": text,
                              "best": k in best and method in best[k], "why": why, "terms": terms,
                              "spread": spread if k not in ("params_m", "gmacs") else ""})  # sizes: no spread
            if study is not None:
                cells.append(_verdict_cell(a, method))
            row["cells"] = cells
            if a.get("left_out"):
                row["left_out"] = a["left_out"]
        rows.append(row)
    for role in s.expected_refs:
        if role not in s.refs:
            rows.append({"method": role, "is_ref": True, "cls": "ref missing",
                         "missing_row": "not evaluated yet (a run computes it after its training finishes)"})
    return {"suite": s.suite, "model": s.model, "ratio": f"{s.ratio:g}", "depth": s.depth or "", "head": head,
            "rows": rows}


def _verdict_cell(a: dict[str, Any], method: str) -> dict[str, Any]:
    """The board's verdict cell: the verdict (its adjusted p in the tooltip), nothing for
    references and the baseline itself."""
    if method in reference_roles() or method == BASELINE or not a.get("verdict"):
        text = "baseline" if method == BASELINE else DASH
        return {"v": None, "text": text, "best": False, "why": None, "spread": "", "cls": ""}
    verdict = str(a["verdict"])
    p = a.get("verdict_p_adj")
    return {"v": str(VERDICT_ORDER.get(verdict, 9)), "text": verdict, "best": False, "spread": "",
            "why": None if p is None else f"adjusted p {p:.3g}", "cls": VERDICT_CLASS.get(verdict, "")}


def _p(value: float | None) -> str:
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def verdicts(s: Section) -> dict[str, Any] | None:
    """The verdict table of a section: per method the primary metric's paired difference to
    scratch, its test, raw and adjusted p of the difference and of the TOST, the verdict and the
    detectable effect; and what the table rests on (a pilot says why)."""
    study = s.study
    if study is None or not study.verdicts:
        return None
    key = study.metric
    rows = []
    for method, x in sorted(study.verdicts.items()):
        e = x.estimate
        places = decimals(study.plan.margin, key) + 1  # a digit finer than the column shows
        rows.append({
            "method": method, "verdict": x.verdict, "cls": VERDICT_CLASS.get(x.verdict, ""),
            "delta": DASH if e is None else f"{e.mean:+.{places}f}",
            "se": "" if e is None else f"± {e.se:.{places}f}",
            "p": _p(x.p), "p_adj": _p(x.p_adjusted), "p_tost": _p(x.p_tost),
            "p_tost_adj": _p(x.p_tost_adjusted),
            "mde": DASH if x.mde is None else f"{x.mde:.{places}f}",
            "seeds": e.seeds if e else 0, "images": (e.images or DASH) if e else DASH,
            "df": DASH if e is None else f"{e.df:.1f}", "test": e.test if e else x.why})
    needed = study.seeds_needed
    return {"metric": label(key), "arrow": arrow(key), "margin": f"{study.plan.margin:g}",
            "alpha": f"{study.plan.alpha:g}", "correction": study.plan.correction.capitalize(), "rows": rows,
            "power": f"{study.plan.power:.0%}", "m": study.methods, "pilot": study.pilot_reasons,
            "needed": {k: (n if n is not None else "more than 64") for k, n in needed.items()},
            "commits": ", ".join(f"{c} ({n} run{'s' if n != 1 else ''})"
                                 for c, n in sorted(s.commits.items())),
            "left_out": [f"{r.method} seed {r.seed} ({r.git_sha[:7]}-dirty): {label(key)} "
                         f"{fmt(r.metrics.get(key), key)[0]}" for r in s.left_out],
            "under_load": [f"{r.method} seed {r.seed}: load {r.load.get('max', 0):.1f} on "
                           f"{r.load.get('cores_used', '?')} cores" for r in s.under_load]}


def paired(s: Section) -> dict[str, Any]:
    quality = quality_keys()
    rows = []
    for a in s.students:
        if a["method"] == BASELINE or not any(a.get(c + "_delta") is not None for c in quality):
            continue
        cells: list[dict[str, str] | None] = []
        for c in quality:
            d = a.get(c + "_delta")
            if d is None:
                cells.append(None)
                continue
            noise = a.get(c + "_noise") or ""
            better = (d > 0) == column(c).higher_is_better
            ci = a.get(c + "_ci")
            places = decimals(d, c)
            cells.append({"cls": ("better" if better else "worse") if noise == SIGNIFICANT else "noise",
                          "verdict": noise, "text": f"{d:+.{places}f}",
                          "ci": f" ± {ci:.{places}f}" if ci is not None else ""})
        rows.append({"method": a["method"], "n": max(a.get(c + "_paired_n") or 0 for c in quality),
                     "cells": cells})
    has_baseline = any(a["method"] == BASELINE and a["n"] for a in s.students)
    return {"baseline": BASELINE, "rows": rows, "no_baseline": not rows and not has_baseline,
            "head": [{"label": label(c), "hint": column(c).hint, "arrow": arrow(c)} for c in quality]}


def deployment(s: Section) -> dict[str, Any] | None:
    """Latency per runtime and input size (median over seeds of each run's median, ± its IQR),
    each export's parity with torch, the speed-up over the teacher per runtime and the MAC ratio."""
    from statistics import median

    from gankd.deploy import RUNTIMES

    per_method: dict[str, list[dict[str, Any]]] = {}
    teacher = s.refs.get("teacher")
    if teacher is not None and teacher.deploy:
        per_method["teacher"] = [teacher.deploy]
    for r in s.runs:
        if r.status.has_results and r.deploy:
            per_method.setdefault(r.method, []).append(r.deploy)
    if not per_method:
        return None
    sizes = sorted({int(z) for ds in per_method.values() for d in ds
                    for by_size in (d.get("latency") or {}).values() for z in by_size}) or [0]
    runtimes = [rt for rt in RUNTIMES if any(rt in (d.get("latency") or {}) for ds in per_method.values()
                                             for d in ds)]
    aggs = {a["method"]: a for a in s.aggs}
    order = sorted(per_method, key=lambda m: (m != "teacher", m != BASELINE, m))
    rows = []
    for m in order:
        cells = []
        for rt in runtimes:
            for z in sizes:
                hits = [(d.get("latency") or {}).get(rt, {}).get(str(z)) or {} for d in per_method[m]]
                vals = [h["median_ms"] for h in hits if "median_ms" in h]
                errs = [h["error"] for h in hits if "error" in h]
                if vals:
                    iqr = median(h["iqr_ms"] for h in hits if "iqr_ms" in h)
                    cells.append({"text": f"{median(vals):.1f}", "spread": f"± {iqr:.1f}", "why": ""})
                else:
                    cells.append({"text": DASH, "spread": "", "why": errs[0] if errs else "not measured"})
        parity = []
        for rt in runtimes:
            statuses = [_parity(d, rt) for d in per_method[m]]
            statuses = [x for x in statuses if x]
            parity.append(statuses[0] if len(set(statuses)) == 1 else "; ".join(sorted(set(statuses))) or "")
        a = aggs.get(m, {})
        speed = [fmt(a.get(f"speedup_{rt}"), "speedup")[0] if m != "teacher" else "1.00×" for rt in runtimes]
        ratio = a.get("mac_ratio")
        rows.append({"method": m, "cells": cells, "parity": parity, "speedups": speed,
                     "mac_ratio": "1.00×" if m == "teacher" else (f"{ratio:.2f}×" if ratio else DASH)})
    return {"runtimes": runtimes, "sizes": sizes, "rows": rows,
            "threads": next((d.get("threads") for ds in per_method.values() for d in ds), None),
            "cpu": next((d.get("cpu") for ds in per_method.values() for d in ds), ""),
            "gpus": sorted({v["device"] for ds in per_method.values() for d in ds
                            for by_size in (d.get("latency") or {}).values() for v in by_size.values()
                            if "device" in v})}


def _parity(deploy: dict[str, Any], runtime: str) -> str | None:
    """An exported runtime's check against torch; a CUDA runtime's largest difference from fp32
    torch on the CPU (recorded with its latency, gankd/deploy/latency.py)."""
    status = ((deploy.get("exports") or {}).get(runtime) or {}).get("status")
    if status:
        return status
    diffs = [v["max_abs_diff"] for v in ((deploy.get("latency") or {}).get(runtime) or {}).values()
             if "max_abs_diff" in v]
    return f"vs fp32 CPU: max diff {max(diffs):.0e}" if diffs else None
