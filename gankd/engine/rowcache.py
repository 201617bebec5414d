"""No-grad features of images that are a fixed function of their pool row (the paired target, a
frozen teacher's output), computed the first time a row is drawn and looked up after that.

A fixed training pool is drawn epoch after epoch; the VGG forward of its targets repeats work
whose result never changes. The cache holds fp32 copies up to a byte budget (0: off). A looked-up
value is the one first computed; computing it again in another batch can move a convolution's
last bit (equal to ~1e-6, tests/engine/test_rowcache.py), which is the only difference caching makes.

That difference would reach a resumed run: its cache starts empty, so after the pool reshuffles
it computes rows in other batches than the uninterrupted run did, and the two part from there.
The values are too large for a checkpoint (up to the budget), so a checkpoint holds ``fills``
instead, the pool rows of each call that changed the cache, and a resumed trainer makes those
calls again in order (``refill``, given by the cache's owner): the same rows in the same batches
give the same values bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Features = dict[str, torch.Tensor]
#: makes the owner's call of the cache again for a batch (and the teacher's outputs on it)
Refill = Callable[[Any, Any], None]


class RowCache:
    def __init__(self, megabytes: float = 0.0, refill: Refill | None = None) -> None:
        self.budget = int(megabytes * 2**20)
        self._rows: dict[int, Features] = {}
        self._row_bytes = 0
        self.hits = 0
        self.misses = 0
        #: the rows of each call that changed the cache, in order (module doc)
        self.fills: list[list[int]] = []
        self.refill = refill

    def clear(self) -> None:
        self._rows.clear()
        self.fills = []

    def __len__(self) -> int:
        return len(self._rows)

    @torch.no_grad()
    def __call__(self, fn: Callable[[torch.Tensor], Features], x: torch.Tensor,
                 index: torch.Tensor | None) -> Features:
        """``fn(x)``, with rows of ``x`` named by ``index`` taken from the cache where known."""
        if index is None or not self.budget:
            return fn(x)
        rows = [int(i) for i in index]
        missing = [j for j, r in enumerate(rows) if r not in self._rows]
        self.hits += len(rows) - len(missing)
        self.misses += len(missing)
        if not missing:
            return self._stack(rows)
        if self._row_bytes and self._room() < len(missing):  # full: this batch is computed whole
            return fn(x)
        fresh = fn(x[missing])
        self.fills.append(rows)  # from here on the cache changes: it keeps rows, or learns their size
        if not self._row_bytes:  # the first call: every row is missing
            self._row_bytes = sum(v[0].numel() * v.element_size() for v in fresh.values())
            if self._room() < len(missing):
                return fresh
        for n, j in enumerate(missing):
            self._rows[rows[j]] = {k: v[n].clone() for k, v in fresh.items()}
        return self._stack(rows)

    def _room(self) -> int:
        return self.budget // self._row_bytes - len(self._rows)

    def _stack(self, rows: list[int]) -> Features:
        first = self._rows[rows[0]]
        return {k: torch.stack([self._rows[r][k] for r in rows]) for k in first}
