"""A dry run: the run built at full size -- teacher, student, every discriminator, adapter and
loss network of its method -- taking two training steps on the smallest inputs its data allows,
writing nothing (``gankd bench --dry-run``)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import torch

from gankd.assets import store as assets_store
from gankd.bench.assemble import POOL_SEED
from gankd.bench.compose import build_trainer, role_build
from gankd.bench.suite import ModelSetup, ResolvedRun
from gankd.bench.teachers import LoadedTeacher, _entry_env, load_teacher, trained_teacher_path
from gankd.datasets.config import DataConfig
from gankd.engine.distributed import training_sampler
from gankd.engine.trainer import resolve_device
from gankd.metrics.complexity import count_params
from gankd.models import zoo

#: training steps of a dry run
DRY_RUN_STEPS = 2


def dry_run(r: ResolvedRun, steps: int = DRY_RUN_STEPS) -> dict[str, Any]:
    """Build the run at full size -- teacher, student, every discriminator, adapter and loss
    network of the method -- and take ``steps`` training steps on the smallest inputs the data
    allows (batch 1; crop-after degradations at their minimum region and 32 px GT crops,
    fixed-size generators at their own size), from the run's real data. Nothing is written to
    results, no checkpoint, no cache of teacher outputs, no evaluation.

    The method's schedule is compressed to the ``steps`` (SDAKD's stages then span the two
    steps; the last D step is a lazy R1 step where the recipe has R1), so the terms a long run
    reaches late are exercised too. A teacher whose weights are
    not here (GCFSR: none is released where this runs; nothing is downloaded or trained by a dry
    run) is a random init of the real-size network, and the record says so. CUDA in the config
    falls back to the CPU when there is none, said so as well.
    """
    spec, setup = r.spec, r.setup
    notes: list[str] = []
    if setup.train.device == "cuda" and not torch.cuda.is_available():
        notes.append("config asks for cuda; no CUDA device here, the dry run uses the CPU")
        device = torch.device("cpu")
    else:
        device = resolve_device(setup.train.device)
    data = _tiny_data(setup)
    train = dataclasses.replace(setup.train, steps=steps, batch_size=1, log_every=1, val_every=0,
                                ckpt_every=0, device=device.type)
    loaded, _ = dry_run_teacher(setup, spec.data)
    net, teacher_source = loaded.net, loaded.source
    student_entry = zoo.student(setup.teacher, spec.ratio, setup.student, depth=spec.depth)
    student = role_build(student_entry, spec.seed, "student")
    if setup.student_pretrain is not None:
        notes.append(f"student from its random init; a real run first trains it "
                     f"{setup.student_pretrain.train.steps} supervised steps (cached per student and seed)")
    sampler = training_sampler(data, spec.data, 1, spec.seed, None, device)
    trainer = build_trainer(student=student, teacher=loaded, d_entry=zoo.get(setup.discriminator),
                            recipe=setup.recipe, cycle=setup.cycle, method=spec.method,
                            method_cfg=r.method_cfg, train=train,
                            sampler=sampler, ratio=spec.ratio, seed=spec.seed, image_size=data.hr_crop,
                            progress=False)
    method, recipe = trainer.method, trainer.method.recipe
    rows = []
    for i in range(steps):
        if i == steps - 1 and recipe.cfg.r1_weight > 0:
            trainer.d_steps = recipe.cfg.r1_every - 1  # the last step's D step is a lazy R1 step
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
