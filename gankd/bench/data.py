"""The data side of a run, from the datasets layer: the cached training pool (CPU suites) or an
online stream (GPU suites), the evaluation set and the validation images."""

from __future__ import annotations

import torch

from gankd.bench.suite import ModelSetup
from gankd.datasets import evalset as evalsets
from gankd.datasets import pool as pools
from gankd.datasets.batch import EvalSample
from gankd.datasets.online import online_batches
from gankd.engine.config import TrainConfig
from gankd.engine.sampler import PoolSampler, StreamSampler


def training_pool(setup: ModelSetup, data: str, pool_seed: int) -> pools.TrainPool | None:
    if setup.data.pool_size == 0:
        return None
    return pools.build_pool(setup.data, data, pool_seed)


def training_sampler(setup: ModelSetup, data: str, train: TrainConfig, pool_seed: int, seed: int,
                     pool: pools.TrainPool | None = None, device: torch.device | str = "cpu"
                     ) -> PoolSampler | StreamSampler:
    pool = pool or training_pool(setup, data, pool_seed)
    if pool is not None:
        return PoolSampler(pool, train.batch_size, seed)
    return StreamSampler(online_batches(setup.data, data, train.batch_size, seed, device))


def evaluation_set(setup: ModelSetup, data: str, suite: str) -> evalsets.EvalSet:
    return evalsets.build_evalset(setup.data, data, suite)


def validation_set(setup: ModelSetup, data: str, suite: str) -> list[EvalSample]:
    return evalsets.build_valset(setup.data, data, suite).samples
