"""What each ``gankd`` command does, behind the CLI's parsing (gankd/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gankd.bench.suite import RunSpec, SuiteConfig, check_ratio, load_suite
from gankd.errors import ConfigError, unknown_choice
from gankd.paths import reports_dir, results_dir

console = Console(stderr=False)


def suite(name: str) -> SuiteConfig:
    return load_suite(name)


def run_spec(suite: SuiteConfig, model: str, method: str, student: str, seed: int, data: str) -> RunSpec:
    if model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    if method not in suite.methods:
        from gankd.methods import METHODS

        METHODS.get(method)  # an unknown name lists every registered method
        raise unknown_choice(f"METHOD for suite {suite.name}:", method, list(suite.methods))
    ratio = check_ratio(student)
    if data != "builtin" and not Path(data).expanduser().is_dir():
        raise ConfigError(f"DATA must be 'builtin' or a folder of images; {data!r} is not a folder")
    return RunSpec(suite.name, model, method, ratio, seed, data)


def bench(spec: RunSpec, suite: SuiteConfig, results: Path | None, progress: bool, force: bool,
          report: bool) -> int:
    from gankd.bench.run import run

    results = results or results_dir()
    record = run(spec, suite, results, progress=progress, force=force)
    _print_run(record)
    if report:
        _report(results, None)
    return 0


def _print_run(record: dict) -> None:
    t = Table(title=f"{record['method']} · {record['model']} · r={record['ratio']:g} · seed {record['seed']}")
    for col in ("metric", "value"):
        t.add_column(col)
    for k, v in (record.get("metrics") or {}).items():
        t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    for k, v in (record.get("missing_metrics") or {}).items():
        t.add_row(k, f"missing: {v}")
    if record.get("params"):
        t.add_row("params (M)", f"{record['params'] / 1e6:.3f}")
        t.add_row("GMACs", f"{record['macs'] / 1e9:.3f}")
    lat = (record.get("latency") or {}).get("median_ms")
    if lat:
        t.add_row("latency (ms)", f"{lat:.1f}")
    if record.get("speedup_vs_teacher"):
        t.add_row("speed-up vs teacher", f"{record['speedup_vs_teacher']:.2f}x")
    train = record.get("train") or {}
    if train:
        t.add_row("train time (s)", f"{train['wall_time_s']:.0f} ({train['steps']} steps)")
    console.print(t)


def sweep(suite: SuiteConfig, data: str, results: Path | None, shard: str, progress: bool, dry: bool) -> int:
    from gankd.bench.sweep import jobs, parse_shard, run_jobs

    k, n = parse_shard(shard)
    todo = jobs(suite, data)[k - 1::n]
    if dry:
        for spec in todo:
            print(spec.rel_dir)
        return 0
    results = results or results_dir()
    failures = run_jobs(todo, suite, results, progress=progress)
    _report(results, None)
    return 1 if failures else 0


def teacher(suite: SuiteConfig, model: str, data: str, progress: bool) -> int:
    from gankd.bench.teachers import load_teacher

    if model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    loaded = load_teacher(suite.models[model], data, progress=progress)
    print(f"teacher {suite.models[model].teacher}: {loaded.source} ({loaded.identity})")
    return 0


def _report(results: Path, out: Path | None) -> dict[str, Path]:
    from gankd.bench.report import build

    paths = build(results, out or reports_dir())
    print(f"report: {paths['html']}  (csv: {paths['csv']})")
    return paths


def report(results: Path | None, out: Path | None) -> int:
    _report(results or results_dir(), out)
    return 0


def regress(suite_name: str, baseline: Path | None, update: bool, progress: bool) -> int:
    from gankd.bench.regress import regress as do_regress

    return do_regress(suite_name, baseline, update=update, progress=progress)


def zoo() -> int:
    from gankd.metrics.complexity import count_entry
    from gankd.models import zoo as z

    t = Table(title="gankd model zoo (fvcore MACs at each config's standard input, noise off)")
    for col in ("config", "role", "arch", "input", "params (M)", "GMACs", "note"):
        t.add_column(col, overflow="fold")
    entries = []
    for e in z.entries().values():
        entries.append(e)
        if e.role == "teacher":
            entries += [z.student(e, r) for r in z.RATIOS]
        if e.role == "discriminator":
            entries += [z.scaled(e, r) for r in z.RATIOS]
    for e in entries:
        c = count_entry(e)
        side = f"{e.input}x{e.input}" + (" LR" if e.arch == "rrdbnet" else "")
        t.add_row(e.name, e.role, e.arch, side, f"{c.params / 1e6:.3f}", f"{c.macs / 1e9:.2f}", e.note)
    console.print(t)
    return 0


def listing() -> int:
    from gankd.assets import ASSETS
    from gankd.bench.suite import family_names, suite_names
    from gankd.datasets import DATASETS, DEGRADATIONS
    from gankd.methods import METHODS
    from gankd.metrics import METRICS
    from gankd.models import MODELS

    rows = [("methods", METHODS.names()), ("models (MODEL=)", family_names()),
            ("architectures", MODELS.names()), ("datasets (DATA=)", [*DATASETS.names(), "<folder>"]),
            ("degradations", DEGRADATIONS.names()), ("metrics", METRICS.names()),
            ("suites (SUITE=)", suite_names()), ("assets", ASSETS.names())]
    for kind, names in rows:
        print(f"{kind:18s} {', '.join(names)}")
    return 0


def assets(force: bool) -> int:
    from gankd.assets import ASSETS, store

    for name, asset in ASSETS.items():
        path = store.prepare(asset, force=force)
        print(f"{name:28s} {path}  ({asset.requirement})", file=sys.stdout)
    return 0
