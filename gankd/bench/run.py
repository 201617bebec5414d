"""One benchmark run: prepare assets, data and teacher; train; evaluate the EMA student beside
the teacher and bicubic on the same evaluation set; write results; return the record.

Under ``torchrun`` every rank trains (DDP, ``gankd.engine.distributed``); rank 0 alone checks and
writes the results folder, validates, evaluates and writes results.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gankd import atomic, tasks
from gankd.bench import environment
from gankd.bench.assemble import assemble, not_applicable, run_teacher
from gankd.bench.data import check_data, evaluation_set, validation_set
from gankd.bench.deployment import deploy_network
from gankd.bench.evaluation import complexity_and_latency, evaluate_generator, reference_records
from gankd.bench.suite import ModelSetup, ResolvedRun, RunSpec
from gankd.datasets.source import is_named_source
from gankd.engine import checkpoint, distributed, livelog
from gankd.engine.cost import step_cost
from gankd.engine.recipe import Recipe
from gankd.engine.teacher import Teacher
from gankd.engine.trainer import NonFiniteLoss, Trainer, resolve_device
from gankd.errors import ConfigError, DiskFullError, GankdError
from gankd.locks import file_lock, holder
from gankd.methods import METHODS
from gankd.models import zoo
from gankd.paths import cache_dir
from gankd.results import epochs, store
from gankd.results.record import RunRecord, RunStatus, gradient_shares, reference_dir
from gankd.tasks import TeacherSource

log = logging.getLogger(__name__)



def run_dir_of(results: Path, spec: RunSpec) -> Path:
    return store.runs_root(results) / spec.rel_dir


def preflight(run_dir: Path, need_mb: int = 200, cache: Path | None = None) -> None:
    """Fail before training, not after, when results (or the cache, which the evaluation set is
    written to after training) cannot be written: each folder gets a real write probe, which
    also catches what permission bits do not show (read-only mounts, root, quotas)."""
    for what, folder in (("results", run_dir), ("the cache", cache)):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise GankdError(f"cannot write {what} to {folder}: {exc.strerror or exc}") from None
        free_mb = shutil.disk_usage(folder).free / 2**20
        if free_mb < need_mb:
            raise GankdError(f"only {free_mb:.0f} MiB free under {folder}; a run needs about {need_mb} MiB "
                             f"for {what}")


def run_lock(results: Path, spec: RunSpec) -> Path:
    """The lock of a run folder: outside it, so that a run refused before it writes anything
    leaves no folder behind."""
    return store.runs_root(results) / ".locks" / f"{spec.rel_dir}.lock"


def run(r: ResolvedRun, results: Path, progress: bool = True,
        force: bool = False, live: livelog.LiveOptions | None = None) -> RunRecord:
    """The run ``r`` (``gankd.bench.suite.resolve``: resolved once, at the command's edge), one
    writer per run folder: a second command for the same run waits for the first (naming it) and
    then finds its result. Under torchrun the job's other ranks cannot wait with rank 0, so there
    a run folder in use is an error instead. ``live``: where the training curves go (default:
    TensorBoard in the run folder, ``gankd.engine.livelog``)."""
    spec = r.spec
    dist = distributed.from_env(r.setup.train.device)
    if not dist.is_main:
        return _run(r, results, progress, force, live)
    lock = run_lock(results, spec)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the lock is the first thing a run writes: say so as the preflight does
        raise GankdError(f"cannot write results to {lock.parent}: {exc.strerror or exc}") from None
    with file_lock(lock, holder(), what=str(run_dir_of(results, spec)),
                   wait=not dist.enabled):
        return _run(r, results, progress, force, live)


#: validation images whose student outputs the live log shows at each validation
LIVE_VAL_IMAGES = 2


def _run(r: ResolvedRun, results: Path, progress: bool, force: bool,
         live: livelog.LiveOptions | None = None) -> RunRecord:
    spec, setup, config = r.spec, r.setup, r.config
    run_dir = run_dir_of(results, spec)
    existing = store.read_metrics(run_dir)
    if existing and existing.status.finished and not force:
        done = existing.status.has_results
        changed = store.config_change(run_dir, config, existing) if done else []
        if not changed:
            log.info("%s already %s; skipping", spec.rel_dir, existing.status)
            return existing
        # A finished run of another config (re-tuned weights, an edited suite) would be ranked
        # beside runs of this one: run it again, keeping the old record beside the new.
        log.warning("%s was run with a different config (%s); running it again (its record is kept as "
                    "%s)", spec.rel_dir, ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else ""),
                    STALE_RECORD)
        if distributed.from_env(setup.train.device).is_main:
            os.replace(run_dir / "metrics.json", run_dir / STALE_RECORD)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    dist = distributed.from_env(setup.train.device)
    reason = not_applicable(setup, spec.method, spec.ratio, spec.depth)
    if reason is not None:  # recorded, so the leaderboard shows the cell and why; nothing trained
        record = RunRecord(suite=spec.suite, model=spec.model, method=spec.method, ratio=spec.ratio,
                           seed=spec.seed, depth=spec.depth, data=spec.data, status=RunStatus.NOT_APPLICABLE,
                           error=reason, run_dir=(Path("runs") / spec.rel_dir).as_posix(),
                           git_sha=environment.git_sha(), epoch=epochs.CURRENT)
        if dist.is_main:
            store.write_metrics(run_dir, record)
        log.info("%s: not applicable: %s", spec.rel_dir, reason)
        return record
    if dist.is_main:
        check_data(setup, spec.data)  # before anything is written into the run folder
        preflight(run_dir, cache=cache_dir())
        cfg_path = run_dir / "config.yaml"
        resumable = any((run_dir / "checkpoints").glob("step_*.pt"))
        if force and run_dir.exists():
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        elif (resumable and cfg_path.is_file()
              and yaml.safe_load(cfg_path.read_text()) != store.plain_config(config)):
            raise ConfigError(f"{run_dir} holds a run of a different config; its checkpoints cannot be "
                              "resumed. Re-run with --force to start it over.")
        atomic.write_text(cfg_path, yaml.safe_dump(store.plain_config(config), sort_keys=False))
    dist.barrier()  # the others wait for rank 0's checks (its failure ends the job via torchrun)

    t_start = time.perf_counter()
    teacher_of_run = run_teacher(setup, spec.data, progress)
    valset = validation_set(setup, spec.data, spec.suite, teacher_of_run) if dist.is_main else []
    device = resolve_device(setup.train.device)

    shown = [s.name for s in valset[:LIVE_VAL_IMAGES]]

    def validate(model: nn.Module) -> Any:  # the metrics, and the outputs the live log shows
        return evaluate_generator(model, valset, ("psnr",), device, setup.eval, keep_outputs=shown)

    # begun by the trainer at its first step; closed here, after the evaluation's numbers and
    # crops, or on any failure
    curves = livelog.open_log(run_dir, dist, live, name=Path(spec.rel_dir).as_posix(),
                              config=store.plain_config(config))
    try:
        return _train_and_evaluate(r, results, run_dir, dist, device, validate if valset else None, curves,
                                   progress, t_start, teacher_of_run)
    finally:
        curves.close()


def _train_and_evaluate(r: ResolvedRun, results: Path, run_dir: Path, dist: distributed.Dist,
                        device: torch.device, validate: Callable[[nn.Module], Any] | None,
                        curves: livelog.LiveLog, progress: bool, t_start: float,
                        teacher_of_run: TeacherSource) -> RunRecord:
    spec, setup = r.spec, r.setup
    built = assemble(setup, spec.method, r.method_cfg, ratio=spec.ratio, seed=spec.seed, data=spec.data,
                     dist=dist, progress=progress, teacher=teacher_of_run, run_dir=run_dir, validate=validate,
                     live=curves,
                     desc=f"{spec.method} {spec.model} {spec.shape.tag} s{spec.seed}", depth=spec.depth)
    trainer, teacher = built.trainer, built.trainer.teacher
    assert teacher is not None
    record = _base_record(r, built.loaded.source, trainer.method.recipe, device, built.student_entry)
    record.student_init, record.processes = built.student_init, dist.world_size
    try:
        with environment.LoadMonitor() as load:  # a step time means something only on a quiet machine
            result = trainer.fit()
        record.load = load.summary(cores_used=torch.get_num_threads() * dist.world_size)
        if not dist.is_main:  # evaluation and results are rank 0's
            record.status = RunStatus.WORKER
            return record
        _evaluate(record, spec, setup, results, run_dir, trainer, result, built.student_entry, teacher,
                  teacher_of_run, device, t_start, curves)
    except NonFiniteLoss as exc:
        _record_failure(run_dir, record, dist.is_main, str(exc), trainer.history, exc.step, exc.term)
        raise
    except DiskFullError:
        raise  # not a failed run: nothing more fits on the disk, and the same command resumes it
    except Exception as exc:  # a crash is a failed run in the leaderboard, not a missing one
        _record_failure(run_dir, record, dist.is_main, f"{type(exc).__name__}: {exc}", trainer.history)
        raise
    store.write_metrics(run_dir, record)
    checkpoint.prune(run_dir / "checkpoints", keep=1)  # the final one stays: the student and its EMA
    return record


def _record_failure(run_dir: Path, record: RunRecord, is_main: bool, error: str,
                    history: list[dict[str, Any]], step: int | None = None, term: str = "") -> None:
    if not is_main:
        return
    record.status, record.error, record.history = RunStatus.FAILED, error, history
    record.failed_step, record.failed_term = step, term
    try:
        store.write_metrics(run_dir, record)
    except DiskFullError as exc:  # the failure being raised is what the user needs to read
        log.warning("the failed run's record was not written: %s", exc)


def _evaluate(record: RunRecord, spec: RunSpec, setup: ModelSetup, results: Path, run_dir: Path,
              trainer: Trainer, result: Any, student_entry: zoo.ZooEntry, teacher: Teacher,
              loaded: TeacherSource, device: torch.device, t_start: float,
              curves: livelog.LiveLog | None = None) -> None:
    """The EMA student, the teacher and bicubic on the same evaluation set, into the run's record
    (and the student's numbers and crops into the live log)."""
    evalset = evaluation_set(setup, spec.data, spec.suite, loaded)
    keep = [s.name for s in evalset.samples[: setup.eval.grid_crops]]
    ev = evaluate_generator(trainer.ema.model, evalset.samples, setup.eval.metrics, device, setup.eval,
                            keep_outputs=keep)
    _save_samples(run_dir / "samples", ev.outputs)
    if curves is not None:
        curves.scalars(result.steps, {f"eval/{k}": v for k, v in ev.metrics.items()})
        truth = {f"eval_hr/{s.name}": s.hr for s in evalset.samples if s.name in keep}
        curves.images(result.steps, {**{f"eval_images/{k}": v for k, v in ev.outputs.items()}, **truth})
    cx = complexity_and_latency(trainer.ema.model, student_entry, setup.eval, device)
    refs = reference_records(results, spec, setup, teacher, evalset, device, keep)
    record.status = RunStatus.DONE
    record.metrics, record.missing_metrics, record.per_image = ev.metrics, ev.missing, ev.per_image
    record.eval = {"images": ev.num_images, "evalset": evalset.key,
                   "manifest_sha256": evalset.manifest_sha256, "wall_time_s": ev.wall_s}
    record.references = reference_dir(spec.suite, spec.model, evalset.key).as_posix()
    record.params, record.macs, record.macs_input = cx["params"], cx["macs"], cx["macs_input"]
    record.latency = cx["latency"]
    record.speedup_vs_teacher = _ratio(refs["teacher"].latency.get("median_ms"),
                                       cx["latency"].get("median_ms"))
    record.train = {
        "steps": result.steps, "wall_time_s": result.wall_time_s, "step_time_s": result.step_time_s,
        "resumed_from": result.resumed_from, "peak_memory_mb": result.peak_memory_mb,
        "peak_memory": result.memory_source, "global_batch": setup.train.batch_size,
        # counted on this process's share of the batch; a DDP job's other ranks do as much
        "cost": step_cost(trainer) if not trainer.dist.enabled else {"skipped": "not counted under torchrun"},
        "method_diagnostics": trainer.method.diagnostics(),
        # each generator term's median share of the student's gradient (the defining terms' is the
        # leaderboard's kd_share): what a reader checks before trusting a method's row
        "grad_share": gradient_shares(result.history)}
    record.floors = floors(ev.metrics, refs, setup.task)
    if setup.eval.deploy.in_run:
        record.deploy = deploy_network(trainer.ema.model, student_entry, setup.eval.deploy, evalset.samples)
    record.history, record.val_history = result.history, result.val_history
    record.total_time_s = time.perf_counter() - t_start


def _base_record(r: ResolvedRun, teacher_source: str, recipe: Recipe, device: torch.device,
                 student_entry: zoo.ZooEntry) -> RunRecord:
    spec, setup = r.spec, r.setup
    return RunRecord(
        suite=spec.suite, model=spec.model, method=spec.method, ratio=spec.ratio, seed=spec.seed,
        data=spec.data, depth=spec.depth,
        # where the run's files (samples/ for the report's grid) live, relative to results/
        run_dir=(Path("runs") / spec.rel_dir).as_posix(),
        comparable_with_papers=False if is_named_source(spec.data) else None,
        teacher=setup.teacher, teacher_source=teacher_source, student=student_entry.name,
        perceptual_network=recipe.perceptual_network,
        method_weights=r.weights, tuning=r.tuning,
        defining_terms=list(METHODS.get(spec.method).defining_terms),
        git_sha=environment.git_sha(), epoch=epochs.CURRENT, versions=environment.versions(),
        device=environment.device_info(device), threading=environment.threading_info(),
        written_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


#: the metric of the sanity floors: a network worth distilling or reporting beats the task's
#: no-network baseline on it
FLOOR_METRIC = "lpips"


def floors(metrics: dict[str, float], refs: dict[str, RunRecord], task: str = "sr") -> dict[str, Any]:
    """The sanity floors of this run against its references (issue 11): the student and the
    teacher each against the task's no-network baseline (bicubic for SR, the input itself for
    translation; none for unconditional generation) on LPIPS. A run below its floor is reported
    as such."""
    role = tasks.task(task).baseline
    base = refs[role].metrics.get(FLOOR_METRIC) if role in refs else None
    teacher = refs["teacher"].metrics.get(FLOOR_METRIC) if "teacher" in refs else None
    mine = metrics.get(FLOOR_METRIC)
    if base is None:
        return {"metric": FLOOR_METRIC, "baseline": role, "baseline_value": None}
    return {"metric": FLOOR_METRIC, "baseline": role, "baseline_value": base, "teacher": teacher,
            "student_below_baseline": None if mine is None else mine >= base,
            "teacher_below_baseline": None if teacher is None else teacher >= base}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _save_samples(folder: Path, outputs: dict[str, torch.Tensor]) -> None:
    """This evaluation's crops, and only these: a crop an earlier evaluation of the run kept (of
    another evaluation set) would stand in the report's grid beside numbers it did not make."""
    from gankd.images import save_png

    for name, img in outputs.items():
        save_png(folder / f"{name}.png", img)
    for old in folder.glob("*.png"):
        if old.stem not in outputs:
            old.unlink()


#: where a finished run's record goes when its config changed and the run is done again
STALE_RECORD = "metrics.stale.json"
