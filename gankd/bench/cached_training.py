"""Networks a suite trains once and caches: the GCFSR teacher (no released weights reachable)
and the supervised pretraining of students (Real-ESRGAN's RealESRNet stage).

A cache entry is keyed (``gankd.cachekeys``) by everything that determines the result (network
config, recipe, schedule, data config and source, seeds), trained under a file lock so parallel
sweep jobs train it once, resumable from its checkpoints, and holds the EMA weights.

Every use of a cached network checks its file against the sha256 its ``.json`` recorded when it
was trained: a changed byte would otherwise go unseen, give other numbers and blame the user's
settings when it turns into a diverging loss. A file without its ``.json`` is a training killed
between the two writes (its checkpoints are still there): it is resumed, which rewrites both.

Before the writable store, the kept set (``gankd.bench.kept``: the networks committed with the
sample) is looked in; a network found there is checked the same way and only read. One log line
says where each network came from.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankd import atomic
from gankd.bench import compose, kept
from gankd.bench.data import training_images, training_pool, validation_set
from gankd.bench.evaluation import evaluate_generator
from gankd.bench.suite import ModelSetup
from gankd.cachekeys import cache_key
from gankd.engine import checkpoint
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.engine.distributed import training_sampler
from gankd.engine.trainer import resolve_device
from gankd.errors import GankdError
from gankd.locks import file_lock
from gankd.methods import method_config
from gankd.models import zoo

log = logging.getLogger(__name__)

#: the suite label of the validation set cached trainings draw their curves on: they serve every
#: suite of one family config, so none of the suites' own labels applies
VALSET_LABEL = "cached"

#: in the cache keys of trained networks: their init is drawn from (seed, role), not from the raw
#: seed as before, so a network cached under the old rule is never taken for one of the new
INIT_BY_ROLE = "seed and role"


def train_cached(path: Path, entry: zoo.ZooEntry, init_seed: int, role: str, method: str,
                 recipe: RecipeConfig, train: TrainConfig, setup: ModelSetup, data: str, pool_seed: int,
                 desc: str, progress: bool = True) -> Path:
    """Train ``entry`` (initialised from ``init_seed`` and its ``role``) with ``method`` (no teacher)
    unless ``path`` exists; returns ``path``. With ``train.val_every``, the EMA network's PSNR and
    LPIPS on validation images are recorded every that many steps (``val_history`` in the .json):
    how long a cached stage trains is argued from those, never from the evaluation set."""
    if kept.holds(path):  # read only: no lock, no resume, nothing written beside it
        digest = atomic.sha256_file(path)
        _check(path, digest)
        log.info("%s: kept set %s (sha256 %s)", desc, kept.shown(path), digest[:16])
        return path
    with file_lock(path.parent / ".lock"):
        if path.is_file() and path.with_suffix(".json").is_file():
            digest = atomic.sha256_file(path)
            _check(path, digest)
            log.info("%s: found in %s, %s (sha256 %s)", desc, kept.store_name(), path, digest[:16])
            return path
        if path.is_file():
            log.warning("%s has no %s (its training was stopped before it was recorded): training it "
                        "again, from its checkpoints if any", path, path.with_suffix(".json").name)
        pool = training_pool(setup, data, pool_seed)
        device = resolve_device(train.device)
        sampler = training_sampler(setup.data, data, train.batch_size, init_seed, pool, device)
        validate = None
        if train.val_every:
            valset = validation_set(setup, data, VALSET_LABEL)
            shown = [s.name for s in valset[:2]]  # the live log's images (gankd.engine.livelog)

            def validate(model: nn.Module) -> Any:
                return evaluate_generator(model, valset, ("psnr", "lpips"), device, setup.eval,
                                          keep_outputs=shown)

        # compose.build_trainer, looked up at the call: tests stand in for the training there
        trainer = compose.build_trainer(student=compose.role_build(entry, init_seed, role), teacher=None,
                                        d_entry=zoo.get(setup.discriminator), recipe=recipe, method=method,
                                        method_cfg=method_config(method), train=train, sampler=sampler,
                                        ratio=entry.ratio, seed=init_seed, run_dir=path.parent,
                                        progress=progress, desc=desc, validate=validate)
        result = trainer.fit()
        atomic.torch_save(path, {k: v.cpu() for k, v in trainer.ema.state_dict().items()})
        atomic.write_json(path.with_suffix(".json"), {
            "entry": entry.name, "method": method, "steps": result.steps,
            "wall_time_s": result.wall_time_s, "history": result.history, "val_history": result.val_history,
            "sha256": atomic.sha256_file(path)})
        checkpoint.prune(path.parent / "checkpoints", keep=0)
        others = kept.other_keys(path)
        why = f"; the kept set holds {', '.join(others)}, another config" if others else ""
        log.info("%s: trained into %s, %s (sha256 %s)%s", desc, kept.store_name(), path,
                 atomic.sha256_file(path)[:16], why)
        return path


def load_cached(path: Path) -> dict[str, Any]:
    """The weights of a cached network, read once and checked against their recorded sha256."""
    data = path.read_bytes()
    _check(path, atomic.sha256_bytes(data))
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_into(net: nn.Module, path: Path) -> None:
    net.load_state_dict(load_cached(path), strict=True)


def _check(path: Path, digest: str) -> None:
    side = path.with_suffix(".json")
    # a kept network is the sample's own: restored from git, never deleted to be trained again
    what, fix = ("kept network", kept.fix()) if kept.holds(path) else (
        "cached network", f"delete {path.parent} to train it again")
    try:
        recorded = json.loads(side.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
        raise GankdError(f"{what} {path}: its record {side.name} {reason}, so the weights cannot "
                         f"be checked; {fix}") from None
    if digest != recorded:
        raise GankdError(f"{what} {path} is damaged: its sha256 {digest[:16]} is not the "
                         f"{str(recorded)[:16]} {side.name} recorded when it was trained; {fix}")


# -- student pretraining ---------------------------------------------------------------------
def pretrained_student(setup: ModelSetup, student: zoo.ZooEntry, seed: int, data: str, pool_seed: int,
                       progress: bool = True) -> Path:
    """The student after the suite's supervised stage, shared by every method of this seed."""
    pre = setup.student_pretrain
    assert pre is not None
    recipe = pre.recipe_for(setup.recipe, student.ratio)
    key = cache_key({"student": student, "seed": seed, "recipe": recipe, "train": pre.train.identity(),
                     "data": setup.data.training_identity(), "source": data, "pool_seed": pool_seed,
                     "images": training_images(setup, data, pool_seed),
                     "init": INIT_BY_ROLE})
    path = kept.locate(Path("students") / f"{student.name}-seed{seed}-{key}" / "student.pth")
    return train_cached(path, student, seed, "student", "supervised", recipe, pre.train, setup, data,
                        pool_seed, desc=f"pretrain {student.name} s{seed}", progress=progress)
