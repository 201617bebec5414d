"""Metric regression against a committed baseline, in the spirit of mmagic's metafiles.

``results/baselines/<suite>.json`` holds, per run of the suite, each metric's value, its
tolerance and whether higher is better. ``gankd regress`` runs the suite from scratch in a fresh
results folder, prints a diff table and fails on any metric outside its tolerance, in either
direction (an unexplained improvement is a change too; the table says which way it moved).
``--update`` rewrites the baseline on purpose, recording machine and git sha; when every value
is unchanged it leaves the file as it is, so the baseline only changes when results do.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gankd import atomic
from gankd.bench import environment
from gankd.bench.suite import SuiteConfig, load_suite
from gankd.paths import results_dir

#: metric -> (absolute tolerance, relative tolerance, higher is better). Tolerance is the larger
#: of the two; CPU runs of the smoke suite are exactly reproducible on one machine, so these only
#: absorb floating-point differences between CPUs and library builds.
TOLERANCES: dict[str, tuple[float, float, bool]] = {
    "psnr": (0.02, 0.0, True),
    "ssim": (0.001, 0.0, True),
    "lpips": (0.002, 0.0, False),
    "fid": (0.5, 0.01, False),
    "kid": (0.002, 0.02, False),
    "niqe": (0.05, 0.0, False),
}


@dataclass
class Diff:
    run: str
    metric: str
    baseline: float | None
    value: float | None
    tolerance: float
    higher_is_better: bool

    @property
    def ok(self) -> bool:
        if self.baseline is None or self.value is None:
            return self.baseline is None and self.value is None
        return abs(self.value - self.baseline) <= self.tolerance

    @property
    def verdict(self) -> str:
        if self.ok:
            return "ok"
        if self.baseline is None or self.value is None:
            return "missing"
        better = (self.value > self.baseline) == self.higher_is_better
        return "better (outside tolerance)" if better else "WORSE"


def run_key(record: dict[str, Any]) -> str:
    return f"{record['model']}/r{record['ratio']:g}/{record['method']}/seed{record['seed']}"


def collect(suite: SuiteConfig, data: str, results: Path, progress: bool) -> dict[str, dict[str, Any]]:
    from gankd.bench.run import run
    from gankd.bench.sweep import jobs

    out = {}
    for spec in jobs(suite, data):
        record = run(spec, suite, results, progress=progress)
        out[run_key(record)] = record
    return out


def baseline_from(records: dict[str, dict[str, Any]], suite: SuiteConfig) -> dict[str, Any]:
    runs = {}
    for key, rec in sorted(records.items()):
        metrics = {}
        for name, value in sorted((rec.get("metrics") or {}).items()):
            if name not in TOLERANCES:
                continue
            abs_tol, rel_tol, higher = TOLERANCES[name]
            metrics[name] = {"value": value, "tolerance": max(abs_tol, rel_tol * abs(value)),
                             "higher_is_better": higher}
        runs[key] = {"status": rec.get("status"), "metrics": metrics}
    return {"suite": suite.name, "runs": runs}


def compare(baseline: dict[str, Any], records: dict[str, dict[str, Any]]) -> list[Diff]:
    diffs = []
    for key, spec in baseline["runs"].items():
        rec = records.get(key, {})
        got = rec.get("metrics") or {}
        for name, m in spec["metrics"].items():
            diffs.append(Diff(key, name, m["value"], got.get(name), m["tolerance"], m["higher_is_better"]))
    for key in sorted(set(records) - set(baseline["runs"])):
        diffs.append(Diff(key, "(run)", None, float("nan"), 0.0, True))
    return diffs


def print_table(diffs: list[Diff], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="metric regression vs baseline")
    t.add_column("run", no_wrap=True)
    for col in ("metric", "baseline", "now", "diff", "tolerance", "verdict"):
        t.add_column(col)
    for d in diffs:
        delta = "" if d.baseline is None or d.value is None else f"{d.value - d.baseline:+.4g}"
        style = None if d.ok else "bold red"
        t.add_row(d.run, d.metric, _f(d.baseline), _f(d.value), delta, f"{d.tolerance:.3g}", d.verdict,
                  style=style)
    console.print(t)
    # One plain line per failure: a narrow CI log may squeeze the table, a grep must still find the run.
    for d in diffs:
        if not d.ok:
            console.print(f"FAIL {d.run} {d.metric}: baseline {_f(d.baseline)}, now {_f(d.value)}, "
                          f"tolerance {d.tolerance:.3g} ({d.verdict})", soft_wrap=True, highlight=False)


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.5g}"


def regress(suite_name: str = "smoke", baseline_path: Path | None = None, update: bool = False,
            progress: bool = True, data: str = "builtin", suite: SuiteConfig | None = None) -> int:
    suite = suite or load_suite(suite_name)
    baseline_path = baseline_path or results_dir() / "baselines" / f"{suite.name}.json"
    with tempfile.TemporaryDirectory(prefix="gankd-regress-") as tmp:
        records = collect(suite, data, Path(tmp), progress)
    new = baseline_from(records, suite)
    if update:
        old = json.loads(baseline_path.read_text()) if baseline_path.is_file() else None
        if old is not None and old.get("suite") == new["suite"] and old.get("runs") == new["runs"]:
            print(f"baseline {baseline_path} unchanged: every value reproduced")
            return 0
        new["produced_by"] = {"git_sha": environment.git_sha(), "machine": platform.machine(),
                              "cpu": platform.processor() or platform.machine(),
                              "versions": environment.versions()}
        atomic.write_json(baseline_path, new)
        print(f"baseline written: {baseline_path} ({len(new['runs'])} runs)")
        return 0
    if not baseline_path.is_file():
        print(f"no baseline at {baseline_path}: run `make regress-update` to create it")
        return 1
    diffs = compare(json.loads(baseline_path.read_text()), records)
    print_table(diffs)
    bad = [d for d in diffs if not d.ok]
    if bad:
        print(f"{len(bad)} metric(s) outside tolerance")
        return 1
    print(f"all {len(diffs)} metrics within tolerance")
    return 0
