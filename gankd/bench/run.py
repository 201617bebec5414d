"""One benchmark run: prepare assets, data and teacher; train; evaluate the EMA student beside
the teacher and bicubic on the same evaluation set; write results; return the record."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gankd import atomic
from gankd.bench import environment, store
from gankd.bench.compose import make_method, seeded_build
from gankd.bench.data import evaluation_set, training_pool, training_sampler, validation_set
from gankd.bench.evaluation import complexity_and_latency, evaluate_generator, reference_records
from gankd.bench.suite import RunSpec, SuiteConfig, resolved
from gankd.bench.teachers import load_teacher
from gankd.engine.recipe import Recipe
from gankd.engine.seeding import seed_everything
from gankd.engine.teacher import Teacher
from gankd.engine.trainer import NonFiniteLoss, Trainer, resolve_device
from gankd.errors import ConfigError, GankdError
from gankd.methods import method_config
from gankd.models import zoo
from gankd.paths import cache_dir

log = logging.getLogger(__name__)

#: the training pool is the same for every method and seed of a suite: the run seed draws the
#: student's init and the batch order, never the data (so the teacher cache is shared)
POOL_SEED = 0


def run_dir_of(results: Path, spec: RunSpec) -> Path:
    return store.runs_root(results) / spec.rel_dir


def preflight(run_dir: Path, need_mb: int = 200) -> None:
    """Fail before training, not after, when results cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise GankdError(f"cannot write results to {run_dir}: {exc.strerror or exc}") from None
    free_mb = shutil.disk_usage(run_dir).free / 2**20
    if free_mb < need_mb:
        raise GankdError(f"only {free_mb:.0f} MiB free under {run_dir}; a run needs about {need_mb} MiB")


def run(spec: RunSpec, suite: SuiteConfig, results: Path, progress: bool = True,
        force: bool = False) -> dict[str, Any]:
    setup = suite.models[spec.model]
    run_dir = run_dir_of(results, spec)
    existing = store.read_metrics(run_dir)
    if existing and existing.get("status") == store.STATUS_DONE and not force:
        log.info("%s already done; skipping", spec.rel_dir)
        return existing
    preflight(run_dir)
    config = resolved(suite, spec)
    cfg_path = run_dir / "config.yaml"
    if force and run_dir.exists():
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    elif cfg_path.is_file() and yaml.safe_load(cfg_path.read_text()) != _plain(config):
        raise ConfigError(f"{run_dir} holds a run of a different config; its checkpoints cannot be "
                          "resumed. Re-run with --force to start it over.")
    atomic.write_text(cfg_path, yaml.safe_dump(_plain(config), sort_keys=False))

    t_start = time.perf_counter()
    seed_everything(spec.seed)
    device = resolve_device(setup.train.device)
    if setup.train.threads:
        torch.set_num_threads(setup.train.threads)

    loaded = load_teacher(setup, spec.data, POOL_SEED, progress=progress)
    teacher = Teacher(loaded.net, loaded.identity, device=device)
    student_entry = zoo.student(setup.teacher, spec.ratio, setup.student)
    student = seeded_build(student_entry, spec.seed)
    recipe = Recipe(setup.recipe)
    mcfg = method_config(spec.method, suite.method_options.get(spec.method))
    method = make_method(spec.method, mcfg, student, teacher, zoo.get(setup.discriminator), recipe,
                         total_steps=setup.train.steps, ratio=spec.ratio,
                         image_size=setup.data.hr_crop)
    pool = training_pool(setup, spec.data, POOL_SEED)
    if pool is not None and method.uses_teacher:
        teacher.precompute(pool, cache_dir() / "teacher-pools", progress=progress)
    sampler = training_sampler(setup, spec.data, setup.train, POOL_SEED, spec.seed, pool=pool, device=device)
    valset = validation_set(setup, spec.data, spec.suite)

    def validate(model: nn.Module) -> dict[str, float]:
        return evaluate_generator(model, valset, ("psnr",), device, setup.eval).metrics

    trainer = Trainer(setup.train, student, method, teacher, sampler, run_dir=run_dir,
                      validate=validate if valset else None, progress=progress,
                      desc=f"{spec.method} {spec.model} r{spec.ratio:g} s{spec.seed}")
    base = _base_record(spec, suite, loaded.source, recipe, device, student_entry)
    try:
        result = trainer.fit()
    except NonFiniteLoss as exc:
        record = {**base, "status": store.STATUS_FAILED, "error": str(exc), "failed_step": exc.step,
                  "failed_term": exc.term, "history": trainer.history}
        store.write_metrics(run_dir, record)
        store.append_index(results, _index_row(record))
        raise

    evalset = evaluation_set(setup, spec.data, spec.suite)
    keep = [s.name for s in evalset.samples[: setup.eval.grid_crops]]
    ev = evaluate_generator(trainer.ema.model, evalset.samples, setup.eval.metrics, device, setup.eval,
                            keep_outputs=keep)
    _save_samples(run_dir / "samples", ev.outputs)
    cx = complexity_and_latency(trainer.ema.model, student_entry, setup.eval, device)
    refs = reference_records(results, spec, setup, teacher, evalset, device, keep)
    record = {
        **base,
        "status": store.STATUS_DONE,
        "metrics": ev.metrics,
        "missing_metrics": ev.missing,
        "eval": {"images": ev.num_images, "evalset": evalset.key, "manifest_sha256": evalset.manifest_sha256,
                 "wall_time_s": ev.wall_s},
        **cx,
        "speedup_vs_teacher": _ratio(refs["teacher"].get("latency", {}).get("median_ms"),
                                     cx["latency"].get("median_ms")),
        "train": {"steps": result.steps, "wall_time_s": result.wall_time_s, "step_time_s": result.step_time_s,
                  "resumed_from": result.resumed_from, "peak_memory_mb": result.peak_memory_mb},
        "history": result.history,
        "val_history": result.val_history,
        "total_time_s": time.perf_counter() - t_start,
    }
    store.write_metrics(run_dir, record)
    store.append_index(results, _index_row(record))
    for ck in (run_dir / "checkpoints").glob("step_*"):
        if ck.suffix == ".pt" and ck != sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1]:
            ck.unlink()
    return record


def _base_record(spec: RunSpec, suite: SuiteConfig, teacher_source: str, recipe: Recipe,
                 device: torch.device, student_entry: zoo.ZooEntry) -> dict[str, Any]:
    setup = suite.models[spec.model]
    return {
        "suite": spec.suite, "model": spec.model, "method": spec.method, "ratio": spec.ratio,
        "seed": spec.seed, "data": spec.data,
        # where the run's files (samples/ for the report's grid) live, relative to results/
        "run_dir": (Path("runs") / spec.rel_dir).as_posix(),
        "comparable_with_papers": False if spec.data == "builtin" else None,
        "teacher": setup.teacher, "teacher_source": teacher_source, "student": student_entry.name,
        "perceptual_network": recipe.perceptual_network,
        "git_sha": environment.git_sha(), "versions": environment.versions(),
        "device": environment.device_info(device),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _index_row(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("suite", "model", "method", "ratio", "seed", "status", "git_sha", "written_at")
    return {k: record.get(k) for k in keys} | {"metrics": record.get("metrics", {})}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _save_samples(folder: Path, outputs: dict[str, torch.Tensor]) -> None:
    from gankd.bench.images import save_png

    for name, img in outputs.items():
        save_png(folder / f"{name}.png", img)


def _plain(obj: Any) -> Any:
    """YAML round-trip form (tuples become lists) so a stored config compares equal."""
    return yaml.safe_load(yaml.safe_dump(obj, sort_keys=False))
