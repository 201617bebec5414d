"""Batches from a cached pool, in epochs of seeded permutations; its state is part of every
checkpoint, so a resumed run sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

from typing import Any

import torch

from gankd.datasets.batch import Batch
from gankd.engine.teacher import IndexedPool


class PoolSampler:
    def __init__(self, pool: IndexedPool, batch_size: int, seed: int) -> None:
        if len(pool) < batch_size:
            raise ValueError(f"pool of {len(pool)} samples is smaller than the batch size {batch_size}")
        self.pool = pool
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(pool), generator=self.gen)
        self.pos = 0

    def next(self) -> Batch:
        if self.pos + self.batch_size > len(self.perm):
            self.perm = torch.randperm(len(self.pool), generator=self.gen)
            self.pos = 0
        index = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.pool.batch(index)

    def rows(self, index: torch.Tensor) -> Batch:
        """The batch of exactly these rows, as ``next`` handed them out (a rank's own share under
        torchrun): what a resumed trainer replays its row caches' fills with."""
        own = getattr(self.pool, "own_rows", None)
        return own(index) if own is not None else self.pool.batch(index)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"]
        self.pos = state["pos"]


class StreamSampler:
    """Wraps an iterator of batches (online degradation on GPU suites). Its position is not
    restorable: a resumed online run continues with fresh random batches (documented)."""

    def __init__(self, batches: Any) -> None:
        self._it = iter(batches)

    def next(self) -> Batch:
        return next(self._it)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
