"""One benchmark run: prepare assets, data and teacher; train; evaluate the EMA student beside
the teacher and bicubic on the same evaluation set; write results; return the record.

Under ``torchrun`` every rank trains (DDP, ``gankd.engine.distributed``); rank 0 alone checks and
writes the results folder, validates, evaluates and writes results. ``dry_run`` builds a run at
full size and takes two steps on tiny inputs, writing nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from gankd import atomic
from gankd.assets import store as assets_store
from gankd.bench import environment, store
from gankd.bench.compose import make_method, seeded_build
from gankd.bench.data import evaluation_set, training_pool, training_sampler, validation_set
from gankd.bench.evaluation import complexity_and_latency, evaluate_generator, reference_records
from gankd.bench.pretrained import load_into, pretrained_student
from gankd.bench.suite import ModelSetup, RunSpec, SuiteConfig, method_options, resolved
from gankd.bench.teachers import LoadedTeacher, _entry_env, load_teacher, trained_teacher_path
from gankd.datasets.config import DataConfig
from gankd.engine import checkpoint, distributed
from gankd.engine.recipe import Recipe
from gankd.engine.seeding import seed_everything
from gankd.engine.teacher import Teacher
from gankd.engine.trainer import NonFiniteLoss, Trainer, resolve_device
from gankd.errors import ConfigError, GankdError
from gankd.metrics.complexity import count_params
from gankd.models import zoo
from gankd.paths import cache_dir

log = logging.getLogger(__name__)

#: the training pool is the same for every method and seed of a suite: the run seed draws the
#: student's init and the batch order, never the data (so the teacher cache is shared)
POOL_SEED = 0
#: what ``run`` returns on ranks > 0 of a torchrun job (they train; rank 0 evaluates and writes)
STATUS_WORKER = "worker"
#: training steps of a dry run (``dry_run``)
DRY_RUN_STEPS = 2


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


def run(spec: RunSpec, suite: SuiteConfig, results: Path, progress: bool = True,
        force: bool = False) -> dict[str, Any]:
    setup = suite.models[spec.model]
    run_dir = run_dir_of(results, spec)
    existing = store.read_metrics(run_dir)
    if existing and existing.get("status") == store.STATUS_DONE and not force:
        log.info("%s already done; skipping", spec.rel_dir)
        return existing
    dist = distributed.from_env(setup.train.device)
    config = resolved(suite, spec)
    if dist.is_main:
        preflight(run_dir, cache=cache_dir())
        cfg_path = run_dir / "config.yaml"
        if force and run_dir.exists():
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        elif cfg_path.is_file() and yaml.safe_load(cfg_path.read_text()) != _plain(config):
            raise ConfigError(f"{run_dir} holds a run of a different config; its checkpoints cannot be "
                              "resumed. Re-run with --force to start it over.")
        atomic.write_text(cfg_path, yaml.safe_dump(_plain(config), sort_keys=False))
    dist.barrier()  # the others wait for rank 0's checks (its failure ends the job via torchrun)

    t_start = time.perf_counter()
    seed_everything(spec.seed)
    device = resolve_device(setup.train.device)
    if setup.train.threads:
        torch.set_num_threads(setup.train.threads)

    loaded = load_teacher(setup, spec.data, POOL_SEED, progress=progress)
    teacher = Teacher(loaded.net, loaded.identity, device=device)
    student_entry = zoo.student(setup.teacher, spec.ratio, setup.student)
    student = seeded_build(student_entry, spec.seed)
    student_init = "random init (seed)"
    if setup.student_pretrain is not None:
        pre = pretrained_student(setup, student_entry, spec.seed, spec.data, POOL_SEED, progress=progress)
        load_into(student, pre)
        student_init = (f"supervised pretraining ({setup.student_pretrain.train.steps} steps), "
                        f"{pre.parent.name}")
    recipe = Recipe(setup.recipe)
    mcfg = method_options(suite, spec.model, spec.method)
    method = make_method(spec.method, mcfg, student, teacher, zoo.get(setup.discriminator), recipe,
                         total_steps=setup.train.steps, ratio=spec.ratio,
                         image_size=setup.data.hr_crop)
    pool = training_pool(setup, spec.data, POOL_SEED)
    if pool is not None and method.uses_teacher:
        for turn in (True, False):  # rank 0 computes the cache, the others then read it
            if dist.is_main == turn:
                teacher.precompute(pool, cache_dir() / "teacher-pools", progress=progress and turn)
            dist.barrier()
    if dist.enabled:
        sampler = distributed.rank_sampler(setup.data, spec.data, setup.train.batch_size, spec.seed, pool,
                                           device, dist)
    else:
        sampler = training_sampler(setup, spec.data, setup.train, POOL_SEED, spec.seed, pool=pool,
                                   device=device)
    valset = validation_set(setup, spec.data, spec.suite) if dist.is_main else []

    def validate(model: nn.Module) -> dict[str, float]:
        return evaluate_generator(model, valset, ("psnr",), device, setup.eval).metrics

    trainer = Trainer(setup.train, student, method, teacher, sampler, run_dir=run_dir,
                      validate=validate if valset else None, progress=progress,
                      desc=f"{spec.method} {spec.model} r{spec.ratio:g} s{spec.seed}", dist=dist)
    base = {**_base_record(spec, suite, loaded.source, recipe, device, student_entry),
            "student_init": student_init, "processes": dist.world_size}
    try:
        result = trainer.fit()
        if not dist.is_main:  # evaluation and results are rank 0's
            return {**base, "status": STATUS_WORKER, "rank": dist.rank}
        record = _evaluate(base, spec, setup, results, run_dir, trainer, result, student_entry, teacher,
                           device, t_start)
    except NonFiniteLoss as exc:
        _record_failure(results, run_dir, base, dist.is_main, str(exc), trainer.history,
                        failed_step=exc.step, failed_term=exc.term)
        raise
    except Exception as exc:  # a crash is a failed run in the leaderboard, not a missing one
        _record_failure(results, run_dir, base, dist.is_main, f"{type(exc).__name__}: {exc}",
                        trainer.history)
        raise
    store.write_metrics(run_dir, record)
    store.append_index(results, _index_row(record))
    checkpoint.prune(run_dir / "checkpoints", keep=1)  # the final one stays: the student and its EMA
    return record


def _record_failure(results: Path, run_dir: Path, base: dict[str, Any], is_main: bool, error: str,
                    history: list[dict[str, Any]], **extra: Any) -> None:
    if not is_main:
        return
    record = {**base, "status": store.STATUS_FAILED, "error": error, **extra, "history": history}
    store.write_metrics(run_dir, record)
    store.append_index(results, _index_row(record))


def _evaluate(base: dict[str, Any], spec: RunSpec, setup: ModelSetup, results: Path, run_dir: Path,
              trainer: Trainer, result: Any, student_entry: zoo.ZooEntry, teacher: Teacher,
              device: torch.device, t_start: float) -> dict[str, Any]:
    """The EMA student, the teacher and bicubic on the same evaluation set; the run's record."""
    evalset = evaluation_set(setup, spec.data, spec.suite)
    keep = [s.name for s in evalset.samples[: setup.eval.grid_crops]]
    ev = evaluate_generator(trainer.ema.model, evalset.samples, setup.eval.metrics, device, setup.eval,
                            keep_outputs=keep)
    _save_samples(run_dir / "samples", ev.outputs)
    cx = complexity_and_latency(trainer.ema.model, student_entry, setup.eval, device)
    refs = reference_records(results, spec, setup, teacher, evalset, device, keep)
    return {
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
                  "resumed_from": result.resumed_from, "peak_memory_mb": result.peak_memory_mb,
                  "peak_memory": result.memory_source, "global_batch": setup.train.batch_size},
        "history": result.history,
        "val_history": result.val_history,
        "total_time_s": time.perf_counter() - t_start,
    }


def dry_run(spec: RunSpec, suite: SuiteConfig, steps: int = DRY_RUN_STEPS) -> dict[str, Any]:
    """Build the run at full size -- teacher, student, every discriminator, adapter and loss
    network of the method -- and take ``steps`` training steps on the smallest inputs the data
    allows (batch 1; crop-after degradations at their minimum region and 32 px GT crops,
    fixed-size generators at their own size), from the run's real data. Nothing is written to
    results, no checkpoint, no cache of teacher outputs, no evaluation.

    The method's schedule is compressed to the ``steps`` (SDAKD's stages then span the two
    steps), so the terms a long run reaches late are exercised too. A teacher whose weights are
    not here (GCFSR: none is released where this runs; nothing is downloaded or trained by a dry
    run) is a random init of the real-size network, and the record says so. CUDA in the config
    falls back to the CPU when there is none, said so as well.
    """
    setup = suite.models[spec.model]
    notes: list[str] = []
    if setup.train.device == "cuda" and not torch.cuda.is_available():
        notes.append("config asks for cuda; no CUDA device here, the dry run uses the CPU")
        device = torch.device("cpu")
    else:
        device = resolve_device(setup.train.device)
    data = _tiny_data(setup)
    train = dataclasses.replace(setup.train, steps=steps, batch_size=1, log_every=1, val_every=0,
                                ckpt_every=0, device=device.type)
    seed_everything(spec.seed)
    loaded, _ = dry_run_teacher(setup, spec.data)
    net, teacher_source = loaded.net, loaded.source
    teacher = Teacher(net, loaded.identity, device=device)
    student_entry = zoo.student(setup.teacher, spec.ratio, setup.student)
    student = seeded_build(student_entry, spec.seed)
    if setup.student_pretrain is not None:
        notes.append(f"student from its random init; a real run first trains it "
                     f"{setup.student_pretrain.train.steps} supervised steps (cached per student and seed)")
    recipe = Recipe(setup.recipe)
    method = make_method(spec.method, method_options(suite, spec.model, spec.method),
                         student, teacher, zoo.get(setup.discriminator), recipe, total_steps=steps,
                         ratio=spec.ratio, image_size=data.hr_crop)
    sampler = distributed.rank_sampler(data, spec.data, 1, spec.seed, None, device, distributed.Dist())
    trainer = Trainer(train, student, method, teacher, sampler, run_dir=None, progress=False)
    rows = []
    for _ in range(steps):
        trainer.memory.start()
        t0 = time.perf_counter()
        terms = trainer.train_step()
        rows.append({"step": trainer.step, "stage": method.stage(trainer.step - 1),
                     "time_s": time.perf_counter() - t0, "terms": terms})
        trainer.memory.stop()

    return {
        "dry_run": True, "suite": spec.suite, "model": spec.model, "method": spec.method, "ratio": spec.ratio,
        "seed": spec.seed, "data": spec.data, "device": str(device),
        "teacher": {"entry": setup.teacher, "params": count_params(net), "source": teacher_source},
        "student": {"entry": student_entry.name, "params": count_params(student)},
        "discriminators": {k: count_params(d) for k, d in method.discriminators.items()},
        "generator_side_params": sum(p.numel() for p in method.generator_side()),
        "perceptual_network": recipe.perceptual_network,
        "inputs": {"batch": 1, "hr_crop": data.hr_crop, "degrade_size": data.degrade_side,
                   "g_input": [list(t.shape) for t in sampler.next().g_input]},
        "full_run": {"steps": setup.train.steps, "global_batch": setup.train.batch_size,
                     "hr_crop": setup.data.hr_crop},
        "steps": rows,
        "peak_memory_mb": trainer.memory.peak_mb,
        "peak_memory": trainer.memory.source,
        "notes": notes,
    }


#: GT crop of a dry run's training pairs where the degradation crops after degrading (the
#: Real-ESRGAN UNet discriminator halves the side three times)
DRY_RUN_CROP = 32


def _tiny_data(setup: ModelSetup) -> DataConfig:
    cfg = setup.data
    deg = cfg.build_degradation()
    common = {"pool_size": 0, "queue_size": 0, "num_workers": 0}
    if not deg.crop_after:  # the generator takes its own size (GCFSR): whole images, batch 1
        return dataclasses.replace(cfg, **common)
    side = next(s for s in range(DRY_RUN_CROP, cfg.degrade_side + 1) if _fits(deg, s))
    return dataclasses.replace(cfg, hr_crop=DRY_RUN_CROP, degrade_size=side, **common)


def _fits(deg: Any, side: int) -> bool:
    try:
        deg.check_side(side, "degrade_size")
        return True
    except ValueError:
        return False


def dry_run_teacher(setup: ModelSetup, data: str) -> tuple[LoadedTeacher, bool]:
    """The run's teacher when its weights are already here, else a random init of the same
    network (second value True); a dry run downloads nothing and trains no teacher."""
    entry = zoo.get(setup.teacher)
    user = bool(os.environ.get(_entry_env(entry)))
    if entry.weights:
        asset = assets_store.get(entry.weights)
        ready = user or bool(os.environ.get(asset.env_var)) or assets_store.verify(asset)
        missing = f"its weights {entry.weights!r} are not prepared here (run `gankd assets`)"
    else:
        ready = user or (setup.teacher_train is not None
                         and trained_teacher_path(setup, data, POOL_SEED).is_file())
        missing = (f"no released weights are reachable here and `gankd teacher` has not trained one yet "
                   f"(or set {_entry_env(entry)})")
    if ready:
        return load_teacher(setup, data, POOL_SEED, progress=False), False
    return LoadedTeacher(entry.build(), f"{entry.name}:random-init",
                         f"RANDOM INIT of the real-size network: {missing}"), True


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
