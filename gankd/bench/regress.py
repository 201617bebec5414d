"""Metric regression against a committed baseline, in the spirit of mmagic's metafiles.

``results/baselines/<suite>.json`` holds, per run of the suite, each metric's value, the spread
measured for it across machines' code paths, its tolerance and whether higher is better.
``gankd regress`` runs the suite from scratch in a fresh results folder, prints a diff table and
fails on any metric outside its tolerance, in either direction (an unexplained improvement is a
change too; the table says which way it moved). ``--update`` rewrites the baseline on purpose,
recording the machine (CPU model, ISA flags) and git sha; when every value is unchanged it
leaves the file as it is, so the baseline only changes when results do.

Why results differ between machines, and how the tolerances absorb it (issue 12). A CPU run is
bitwise reproducible on one machine, whatever the cache's state. Across machines it is not: the
instruction sets a CPU offers decide which kernels oneDNN (convolutions), MKL (matmuls) and ATen's
vectorised loops run -- AVX-512 and AVX2 kernels block and sum in other orders -- and the thread
count splits reductions differently. The last bits of every convolution differ, the 23-block
teacher's outputs (what ``mse`` and ``dcd`` learn from) differ by ~1e-6, and a few GAN steps at a
high learning rate amplify that. ``benchmarks/regress_spread.py`` measures the amplified result on
one machine by running the smoke suite under the code paths other machines take (1 and 2
threads; ATen, oneDNN and MKL limited to AVX2, and to SSE4; a cold cache; another process
loading the CPU) and writes, per run and metric, the largest difference to
``results/baselines/<suite>.spread.json``. Each tolerance is ``SPREAD_MULTIPLE`` times that spread,
and never below the smallest tolerance the metric's ``Column`` declares; the spread is written
beside it in the baseline.

CPU families (``gankd.hardware.cpu_family``: vendor, torch's kernel capability and oneDNN's ISA
tier, e.g. ``AMD AVX2``, ``Intel AVX512-AMX``) differ from each other far more than the code paths
of one family do: an AMD EPYC's results are up to 25 FID from an Intel Xeon's on the smoke suite,
where each machine's own variants agree within ~1. One tolerance wide enough for every family no
longer catches a real change (DCD's taps in reverse order). So each family measured in the spread
file (its ``families``: the variants measured on it, the as-is one first) gets values of its own
in the baseline (``by_family``: that family's as-is value, the spread among its own variants, the
tolerance from that spread), and a machine of a measured family is compared with those. A family
never measured falls back to the cross-family value and tolerance, and ``gankd regress`` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankd import atomic
from gankd.bench import environment
from gankd.bench.suite import SuiteConfig, load_suite
from gankd.hardware import cpu_family
from gankd.metrics import Column, all_result_columns
from gankd.paths import results_dir
from gankd.results.record import RunRecord
from gankd.results.tables import print_table as show


def regressed() -> dict[str, Column]:
    """The metrics regress checks: those whose ``Column`` declares a smallest tolerance -- what any
    two machines may differ by even where the measured spread is 0 (gankd.metrics)."""
    return {k: c for k, c in all_result_columns().items() if c.tolerance is not None}


#: tolerance = this x the largest difference measured across code paths (module doc)
SPREAD_MULTIPLE = 3.0


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


def run_key(record: RunRecord) -> str:
    shape = f"r{record.ratio:g}" + (f"-d{record.depth}" if record.depth else "")
    return f"{record.model}/{shape}/{record.method}/seed{record.seed}"


def collect(suite: SuiteConfig, data: str, results: Path, progress: bool,
            reverse: bool = False) -> dict[str, RunRecord]:
    """Every run of ``suite``, into ``results``, from a cache of their own (``hermetic``)."""
    from gankd.bench.run import run
    from gankd.bench.suite import resolve
    from gankd.bench.sweep import jobs

    out = {}
    specs = jobs(suite, data)
    with hermetic(results / "cache"):
        for spec in reversed(specs) if reverse else specs:  # reversed: caches fill in another order
            record = run(resolve(suite, spec), results, progress=progress)
            out[run_key(record)] = record
    return out


@contextlib.contextmanager
def hermetic(cache: Path) -> Iterator[None]:
    """The suite's derived caches (pools, evaluation sets, trained-once teachers and students)
    built afresh in ``cache``, only weights and downloads shared; the kept set and
    ``GANKD_TRAINED`` left out. Why: a cached network is keyed by its config, but its last bits
    also depend on the threads it trained with, and a shared cache may have been filled by anyone
    -- a fresh clone's ``make test`` failed 17 metrics here because a unit test (one thread) had
    trained the smoke suite's supervised student into the cache before ``gankd regress`` ran."""
    from gankd.paths import KEPT_OFF, fresh_cache

    saved = {k: os.environ.get(k) for k in ("GANKD_CACHE", "GANKD_TRAINED", "GANKD_KEPT")}
    fresh = fresh_cache(cache)
    os.environ.update({"GANKD_CACHE": str(fresh), "GANKD_KEPT": KEPT_OFF})
    os.environ.pop("GANKD_TRAINED", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def measured(records: dict[str, RunRecord]) -> dict[str, dict[str, float]]:
    """{run: {metric: value}} of the regression metrics."""
    checked = regressed()
    return {key: {k: v for k, v in sorted(rec.metrics.items()) if k in checked}
            for key, rec in sorted(records.items())}


def spread_path(baseline_path: Path) -> Path:
    return baseline_path.with_name(baseline_path.stem + ".spread.json")


def tolerance(metric: str, spread: float | None) -> float:
    floor = regressed()[metric].tolerance
    assert floor is not None
    return floor if spread is None else max(floor, SPREAD_MULTIPLE * spread)


def spreads_of(values: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{run: {metric: largest difference between any two of the variants}} of ``values``
    ({variant: {run: {metric: value}}})."""
    # Over every variant's runs, not the first's: a family's runs forgotten on the other machines
    # (regress_spread.py --forget) are measured by some variants only.
    seen: dict[str, dict[str, list[float]]] = {}
    for v in values.values():
        for key, metrics in v.items():
            for m, value in metrics.items():
                seen.setdefault(key, {}).setdefault(m, []).append(value)
    return {key: {m: max(vs) - min(vs) for m, vs in metrics.items()} for key, metrics in seen.items()}


def family_values(spread_doc: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{family: {run: {metric: {"value", "spread"}}}} of each CPU family the spread file measured:
    its as-is variant's value and the largest difference among its own variants."""
    out = {}
    for family, names in spread_doc.get("families", {}).items():
        own = {n: spread_doc["values"][n] for n in names}
        sp = spreads_of(own)
        out[family] = {key: {m: {"value": v, "spread": sp[key][m]} for m, v in metrics.items()}
                       for key, metrics in own[names[0]].items()}
    return out


def by_family(families: dict[str, dict[str, dict[str, dict[str, float]]]], key: str,
              name: str) -> dict[str, dict[str, float]]:
    """One metric's entry per family: value, the family's own spread, the tolerance from it."""
    return {fam: {"value": e["value"], "spread": e["spread"], "tolerance": tolerance(name, e["spread"])}
            for fam, runs in sorted(families.items()) if (e := runs.get(key, {}).get(name)) is not None}


def baseline_from(records: dict[str, RunRecord], suite: SuiteConfig,
                  spreads: dict[str, dict[str, float]] | None = None,
                  families: dict[str, dict[str, dict[str, dict[str, float]]]] | None = None,
                  ) -> dict[str, Any]:
    runs = {}
    for key, values in measured(records).items():
        metrics = {}
        for name, value in values.items():
            s = (spreads or {}).get(key, {}).get(name)
            metrics[name] = {"value": value, "spread": s, "tolerance": tolerance(name, s),
                             "higher_is_better": regressed()[name].higher_is_better}
            if families:
                metrics[name]["by_family"] = by_family(families, key, name)
        runs[key] = {"status": records[key].status, "metrics": metrics}
    return {"suite": suite.name, "tolerance_rule": f"max(floor, {SPREAD_MULTIPLE:g} x spread)", "runs": runs}


def baseline_families(baseline: dict[str, Any]) -> set[str]:
    return {fam for run in baseline["runs"].values() for m in run["metrics"].values()
            for fam in m.get("by_family", {})}


def compare(baseline: dict[str, Any], records: dict[str, RunRecord], family: str | None = None) -> list[Diff]:
    """Each metric against ``family``'s own value and tolerance where the baseline has them, else
    against the cross-family ones."""
    diffs = []
    for key, spec in baseline["runs"].items():
        rec = records.get(key)
        got = rec.metrics if rec is not None else {}
        for name, m in spec["metrics"].items():
            ref = m.get("by_family", {}).get(family, m) if family else m
            diffs.append(Diff(key, name, ref["value"], got.get(name), ref["tolerance"],
                              m["higher_is_better"]))
    for key in sorted(set(records) - set(baseline["runs"])):
        diffs.append(Diff(key, "(run)", None, float("nan"), 0.0, True))
    return diffs


def print_table(diffs: list[Diff]) -> None:
    rows = [(d.run, d.metric, _f(d.baseline), _f(d.value),
             "" if d.baseline is None or d.value is None else f"{d.value - d.baseline:+.4g}",
             f"{d.tolerance:.3g}", d.verdict) for d in diffs]
    columns = ("run", "metric", "baseline", "now", "diff", "tolerance", "verdict")
    show("metric regression vs baseline", columns, rows, styles=[None if d.ok else "bold red" for d in diffs])
    # One plain line per failure: whatever a log does to the table, a grep finds the run.
    for d in diffs:
        if not d.ok:
            print(f"FAIL {d.run} {d.metric}: baseline {_f(d.baseline)}, now {_f(d.value)}, "
                  f"tolerance {d.tolerance:.3g} ({d.verdict})")


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.5g}"


def regress(suite_name: str = "smoke", baseline_path: Path | None = None, update: bool = False,
            progress: bool = True, data: str = "builtin", suite: SuiteConfig | None = None,
            dump: Path | None = None, reverse: bool = False) -> int:
    suite = suite or load_suite(suite_name)
    baseline_path = baseline_path or results_dir() / "baselines" / f"{suite.name}.json"
    with tempfile.TemporaryDirectory(prefix="gankd-regress-") as tmp:
        records = collect(suite, data, Path(tmp), progress, reverse)
    if dump is not None:
        doc = {"suite": suite.name, "cpu": environment.cpu_info(), "runs": measured(records)}
        atomic.write_json(dump, doc)
        print(f"metrics written: {dump}")
        return 0
    if update:
        side = spread_path(baseline_path)
        doc = json.loads(side.read_text()) if side.is_file() else {}
        new = baseline_from(records, suite, doc.get("runs"), family_values(doc) if doc else None)
        spreads = doc.get("runs")
        old = json.loads(baseline_path.read_text()) if baseline_path.is_file() else None
        if old is not None and old.get("suite") == new["suite"] and old.get("runs") == new["runs"]:
            print(f"baseline {baseline_path} unchanged: every value reproduced")
            return 0
        new["produced_by"] = {"git_sha": environment.git_sha(), "cpu": environment.cpu_info(),
                              "versions": environment.versions(),
                              "spread": str(side) if spreads else "none measured: floors only"}
        atomic.write_json(baseline_path, new)
        print(f"baseline written: {baseline_path} ({len(new['runs'])} runs)")
        return 0
    if not baseline_path.is_file():
        print(f"no baseline at {baseline_path}: run `make regress-update` to create it")
        return 1
    baseline = json.loads(baseline_path.read_text())
    family = cpu_family()
    if family in baseline_families(baseline):
        print(f"CPU family {family}: compared with the values and spread measured on this family")
    else:
        print(f"CPU family {family} has no values of its own in {baseline_path.name} (measured: "
              f"{', '.join(sorted(baseline_families(baseline))) or 'none'}): compared with the cross-family "
              "values and tolerances; benchmarks/regress_spread.py --merge measures it")
    diffs = compare(baseline, records, family)
    print_table(diffs)
    bad = [d for d in diffs if not d.ok]
    if bad:
        print(f"{len(bad)} metric(s) outside tolerance")
        return 1
    print(f"all {len(diffs)} metrics within tolerance")
    return 0
