"""Networks a suite trains once and caches: the GCFSR teacher (no released weights reachable)
and the supervised pretraining of students (Real-ESRGAN's RealESRNet stage).

A cache entry is keyed (``gankd.cachekeys``) by everything that determines the result (network
config, recipe, schedule, data config and source, seeds), trained under a file lock so parallel
sweep jobs train it once, resumable from its checkpoints, and holds the EMA weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gankd import atomic
from gankd.bench.suite import ModelSetup
from gankd.cachekeys import cache_key
from gankd.engine import checkpoint
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.locks import file_lock
from gankd.models import zoo
from gankd.paths import trained_dir


def train_cached(path: Path, entry: zoo.ZooEntry, init_seed: int, method: str, recipe: RecipeConfig,
                 train: TrainConfig, setup: ModelSetup, data: str, pool_seed: int, desc: str,
                 progress: bool = True) -> Path:
    """Train ``entry`` with ``method`` (no teacher) unless ``path`` exists; returns ``path``."""
    from gankd.bench.compose import build_trainer, seeded_build
    from gankd.bench.data import training_pool
    from gankd.engine.distributed import training_sampler
    from gankd.engine.trainer import resolve_device
    from gankd.methods import method_config

    with file_lock(path.parent / ".lock"):
        if path.is_file():
            return path
        pool = training_pool(setup, data, pool_seed)
        sampler = training_sampler(setup.data, data, train.batch_size, init_seed, pool,
                                   resolve_device(train.device))
        trainer = build_trainer(student=seeded_build(entry, init_seed), teacher=None,
                                d_entry=zoo.get(setup.discriminator), recipe=recipe, method=method,
                                method_cfg=method_config(method), train=train, sampler=sampler,
                                ratio=entry.ratio, seed=init_seed, run_dir=path.parent, progress=progress,
                                desc=desc)
        result = trainer.fit()
        atomic.torch_save(path, {k: v.cpu() for k, v in trainer.ema.state_dict().items()})
        atomic.write_json(path.with_suffix(".json"), {
            "entry": entry.name, "method": method, "steps": result.steps,
            "wall_time_s": result.wall_time_s, "history": result.history, "sha256": atomic.sha256_file(path)})
        checkpoint.prune(path.parent / "checkpoints", keep=0)
        return path


def load_into(net: nn.Module, path: Path) -> None:
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)


# -- student pretraining ---------------------------------------------------------------------
def pretrained_student(setup: ModelSetup, student: zoo.ZooEntry, seed: int, data: str, pool_seed: int,
                       progress: bool = True) -> Path:
    """The student after the suite's supervised stage, shared by every method of this seed."""
    pre = setup.student_pretrain
    assert pre is not None
    recipe = pre.recipe_for(setup.recipe, student.ratio)
    key = cache_key({"student": student, "seed": seed, "recipe": recipe, "train": pre.train.identity(),
                     "data": setup.data.training_identity(), "source": data, "pool_seed": pool_seed})
    path = trained_dir() / "students" / f"{student.name}-seed{seed}-{key}" / "student.pth"
    return train_cached(path, student, seed, "supervised", recipe, pre.train, setup, data, pool_seed,
                        desc=f"pretrain {student.name} s{seed}", progress=progress)
