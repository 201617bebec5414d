"""The data side of a run, from the datasets layer: the check every run makes before it writes
or trains anything, the cached training pool (CPU suites) or an online stream (GPU suites), the
evaluation set and the validation images."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from gankd.bench import tasks
from gankd.bench.suite import ModelSetup
from gankd.datasets import evalset as evalsets
from gankd.datasets import pool as pools
from gankd.datasets.batch import EvalSample
from gankd.datasets.source import open_data, usable
from gankd.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataCheck:
    train: int
    val: int
    test: int
    rule: str


def check_data(setup: ModelSetup, data: str) -> DataCheck:
    """Every image the run will read -- the sources of its training pairs, its evaluation and its
    validation images -- found (links and duplicates resolved: gankd/datasets/folder_dataset.py),
    big enough for its crops and decoded, before the run writes or trains anything. A problem is
    a ``ConfigError`` naming the file: the user fixes the data, the run has left nothing behind."""
    cfg = setup.data
    if setup.task != "sr" and data == "builtin":
        return _builtin_task_check(setup)
    source = open_data(data)
    splits = source.splits(cfg)
    train = usable(splits.train, cfg.degrade_side, cfg, "training crop")
    if not train:
        raise ConfigError(f"no training image of {data} is at least {cfg.degrade_side}px on each side")
    test = usable(splits.test, cfg.eval_hr, cfg, "evaluation crop")
    if not test:
        raise ConfigError(f"no test image of {data} is at least {cfg.eval_hr}px on each side")
    val = usable(splits.val, cfg.val_side, cfg, "validation crop")
    source.verified([*train, *test, *val])
    log.info("data %s: %d training, %d validation, %d test image(s), all decoded (%s)", data, len(train),
             len(val), len(test), splits.rule)
    return DataCheck(len(train), len(val), len(test), splits.rule)


def _builtin_task_check(setup: ModelSetup) -> DataCheck:
    """Tasks whose real images the teacher makes (gankd.bench.tasks): the builtin photos a
    translation family reads are checked like any data; an unconditional one reads none."""
    if setup.task == "unconditional":
        rule = "no images: the teacher's samples are the real distribution"
        log.info("data builtin: %s", rule)
        return DataCheck(0, 0, 0, rule)
    return check_data(dataclasses.replace(setup, task="sr", cycle=None), "builtin")


def training_pool(setup: ModelSetup, data: str,
                  pool_seed: int) -> pools.TrainPool | tasks.UnpairedPool | None:
    if setup.task != "sr":
        return tasks.training_pool(setup, data, pool_seed)
    if setup.data.pool_size == 0:
        return None
    return pools.build_pool(setup.data, data, pool_seed)


def evaluation_set(setup: ModelSetup, data: str, suite: str) -> evalsets.EvalSet:
    if setup.task != "sr":
        return tasks.evaluation_set(setup, data, suite)
    return evalsets.build_evalset(setup.data, data, suite)


def validation_set(setup: ModelSetup, data: str, suite: str) -> list[EvalSample]:
    if setup.task != "sr":
        return tasks.validation_set(setup, data, suite)
    return evalsets.build_valset(setup.data, data, suite).samples
