"""No-grad features of images that are a fixed function of their pool row (the paired target, a
frozen teacher's output), computed the first time a row is drawn and looked up after that.

A fixed training pool is drawn epoch after epoch; the VGG forward of its targets repeats work
whose result never changes. The cache holds fp32 copies up to a byte budget (0: off) and is not
checkpointed: a resumed run refills it as it goes. A looked-up value is the one first computed;
computing it again in another batch can move a convolution's last bit (equal to ~1e-6,
tests/test_rowcache.py), which is the only difference caching makes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Features = dict[str, torch.Tensor]


class RowCache:
    def __init__(self, megabytes: float = 0.0) -> None:
        self.budget = int(megabytes * 2**20)
        self._rows: dict[int, Features] = {}
        self._row_bytes = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._rows.clear()

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
