"""Where a run's teacher comes from.

- A zoo entry with ``weights`` (Real-ESRGAN x4plus): the converted offline asset, or the official
  file named by ``GANKD_WEIGHTS_<ASSET>``; loaded with strict key matching.
- A family with ``teacher_train`` (GCFSR, whose released checkpoints sit behind links no machine
  here reaches): ``GANKD_WEIGHTS_<ZOO ENTRY>`` (e.g. ``GANKD_WEIGHTS_GCFSR_512`` for a released
  ``params_ema``) when given, else the teacher ``gankd teacher`` trained with the family recipe
  at the suite's scale: the kept set's (``reports/sample/trained/teachers/<name>-<config hash>/``,
  ``gankd.bench.kept``) when it holds this config, else cached under
  ``$GANKD_CACHE/teachers/<name>-<config hash>/`` (trained there the first time). Training it is the
  ``scratch`` method with the teacher-size network as "student"; its EMA weights are the teacher.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gankd import atomic
from gankd.assets import store
from gankd.bench import kept
from gankd.bench.cached_training import INIT_BY_ROLE, load_cached, train_cached
from gankd.bench.compose import TeacherNet
from gankd.bench.data import training_images
from gankd.bench.suite import ModelSetup
from gankd.cachekeys import cache_key
from gankd.errors import ConfigError
from gankd.models import zoo

log = logging.getLogger(__name__)


@dataclass
class LoadedTeacher(TeacherNet):
    source: str = ""  # human-readable provenance for the report


def _entry_env(entry: zoo.ZooEntry) -> str:
    return "GANKD_WEIGHTS_" + entry.name.upper()


def load_teacher(setup: ModelSetup, data: str, pool_seed: int = 0, progress: bool = True) -> LoadedTeacher:
    entry = zoo.get(setup.teacher)
    net = entry.build()
    user = os.environ.get(_entry_env(entry))
    if user:
        path = Path(user).expanduser()
        if not path.is_file():
            raise ConfigError(f"{_entry_env(entry)} points to {path}, which does not exist")
        state = store.read_state_dict(path)
        net.load_state_dict(state, strict=True)
        return LoadedTeacher(net, f"{entry.name}:{atomic.sha256_file(path)[:16]}", f"user file {path}")
    if entry.weights:
        asset = store.get(entry.weights)
        state, source = store.load(asset, prepare_missing=True)
        net.load_state_dict(state, strict=True)
        sha = store.user_file(asset)
        digest = atomic.sha256_file(sha) if sha else json.loads(
            store.converted_path(asset).with_suffix(".json").read_text())["sha256"]
        return LoadedTeacher(net, f"{entry.name}:{digest[:16]}", source)
    if setup.teacher_train is None:
        raise ConfigError(f"teacher {entry.name} has no pretrained weights and the suite gives no "
                          f"teacher_train schedule; set {_entry_env(entry)} to a checkpoint")
    path = train_teacher(setup, data, pool_seed, progress=progress)  # found (and checked) or trained
    net.load_state_dict(load_cached(path), strict=True)
    digest = atomic.sha256_file(path)[:16]
    # the weights' digest in the source: the same config trained on two machines gives two
    # teachers, and the report must not rank runs of both together
    return LoadedTeacher(net, f"{entry.name}:{digest}", f"trained by gankd teacher "
                         f"({setup.teacher_train.steps} steps), {path.parent.name}, sha256 {digest}")


def trained_teacher_path(setup: ModelSetup, data: str, pool_seed: int) -> Path:
    key = cache_key({"teacher": zoo.get(setup.teacher), "d": zoo.get(setup.discriminator),
                     "recipe": setup.recipe, "train": setup.teacher_train.identity(),
                     "data": setup.data.training_identity(), "source": data, "pool_seed": pool_seed,
                     "images": training_images(setup, data, pool_seed),
                     "init": INIT_BY_ROLE})
    return kept.locate(Path("teachers") / f"{setup.teacher}-{key}" / "teacher.pth")


def train_teacher(setup: ModelSetup, data: str, pool_seed: int = 0, progress: bool = True) -> Path:
    """Train (or resume training) the family's teacher with its recipe: ``scratch`` with the
    teacher-size network as the "student"; one process at a time per config."""
    assert setup.teacher_train is not None
    entry = zoo.get(setup.teacher)
    return train_cached(trained_teacher_path(setup, data, pool_seed), entry, pool_seed, "teacher", "scratch",
                        setup.recipe, setup.teacher_train, setup, data, pool_seed,
                        desc=f"teacher {entry.name}", progress=progress)
