"""The data side of a run, from the datasets layer: the cached training pool (CPU suites) or an
online stream (GPU suites), the evaluation set and the validation images."""

from __future__ import annotations

from gankd.bench.suite import ModelSetup
from gankd.datasets import evalset as evalsets
from gankd.datasets import pool as pools
from gankd.datasets.batch import EvalSample


def training_pool(setup: ModelSetup, data: str, pool_seed: int) -> pools.TrainPool | None:
    if setup.data.pool_size == 0:
        return None
    return pools.build_pool(setup.data, data, pool_seed)


def evaluation_set(setup: ModelSetup, data: str, suite: str) -> evalsets.EvalSet:
    return evalsets.build_evalset(setup.data, data, suite)


def validation_set(setup: ModelSetup, data: str, suite: str) -> list[EvalSample]:
    return evalsets.build_valset(setup.data, data, suite).samples
