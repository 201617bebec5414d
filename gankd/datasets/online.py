"""Online training batches (GPU suites): HR crops from a DataLoader, degraded per batch on a device.

- The sample stream is infinite: epoch e visits the training images in a permutation seeded by
  (seed, e); like ``DistributedSampler``, the permutation is padded to a multiple of
  ``world_size`` and rank r takes every world_size-th entry from r. Batches run across epoch
  borders, so any number of images serves any batch size.
- Workers load images and cut ``degrade_side`` crops with flips/rotations; the crop of (epoch,
  image) is seeded by (seed, epoch, image), so the stream does not depend on the worker count.
- The main process degrades each batch on ``device`` with the seed (seed, rank, step), crops the
  pairs to ``hr_crop`` and, with ``queue_size`` > 0, mixes them through Real-ESRGAN's
  training-pair queue (BasicSR ``_dequeue_and_enqueue``).
- A worker never raises: a failure is sent back as a message, and the main process raises
  :class:`~gankd.datasets.images.ImageError` naming the file. Sizes are checked in the main
  process before any worker starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gankd.datasets.batch import Batch
from gankd.datasets.config import DataConfig
from gankd.datasets.crops import ImageCache, random_crop, to_tensor
from gankd.datasets.images import ImageError, ImageRef
from gankd.datasets.seeding import derive_seed, generator
from gankd.datasets.source import open_data, usable
from gankd.errors import ConfigError


@dataclass
class _Failure:
    message: str


class _CropDataset(Dataset):
    def __init__(self, refs: list[ImageRef], cfg: DataConfig, seed: int) -> None:
        self.refs = refs
        self.cfg = cfg
        self.seed = seed
        self._cache: ImageCache | None = None  # per worker process

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor | _Failure:
        epoch, idx = item
        ref = self.refs[idx]
        try:
            if self._cache is None:
                self._cache = ImageCache(self.cfg, budget_bytes=256 << 20)
            img = self._cache.get(ref)
            rng = np.random.default_rng(derive_seed("online-crop", self.seed, epoch, idx))
            return to_tensor(random_crop(img, self.cfg.degrade_side, rng, self.cfg.hflip, self.cfg.rot90))
        except Exception as exc:  # sent to the main process, which raises it with the file's name
            text = str(exc)
            return _Failure(text if str(ref.path) in text else f"{ref.path}: {type(exc).__name__}: {text}")


class _InfiniteBatches:
    """Batches of (epoch, image index) for one rank, forever."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size

    def _epoch(self, epoch: int) -> list[tuple[int, int]]:
        perm = torch.randperm(self.n, generator=generator(derive_seed("online-epoch", self.seed, epoch)))
        total = math.ceil(self.n / self.world_size) * self.world_size
        perm = perm.repeat(math.ceil(total / self.n))[:total]
        return [(epoch, int(i)) for i in perm[self.rank::self.world_size]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, pending = 0, []
        while True:
            while len(pending) < self.batch_size:
                pending.extend(self._epoch(epoch))
                epoch += 1
            yield pending[:self.batch_size]
            pending = pending[self.batch_size:]


def _collate(items: list[torch.Tensor | _Failure]) -> torch.Tensor | _Failure:
    for it in items:
        if isinstance(it, _Failure):
            return it
    return torch.stack(items)  # type: ignore[arg-type]


class _PairQueue:
    """BasicSR's training-pair pool: once full, each batch is swapped for random queued pairs."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.gen = generator(derive_seed("online-queue", seed))
        self.items: list[torch.Tensor] | None = None
        self.ptr = 0

    def __call__(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        b = tensors[0].size(0)
        if self.items is None:
            if self.size % b:
                raise ConfigError(f"queue_size={self.size} must be divisible by the batch size {b}")
            self.items = [t.new_zeros((self.size, *t.shape[1:])) for t in tensors]
        if self.ptr < self.size:  # filling: train on the batch itself
            for q, t in zip(self.items, tensors):
                q[self.ptr:self.ptr + b] = t
            self.ptr += b
            return tensors
        idx = torch.randperm(self.size, generator=self.gen).to(tensors[0].device)
        self.items = [q[idx] for q in self.items]
        out = [q[:b].clone() for q in self.items]
        for q, t in zip(self.items, tensors):
            q[:b] = t
        return out


def online_batches(cfg: DataConfig, data: str, batch_size: int, seed: int,
                   device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
    """An endless stream of degraded training batches for one rank (see the module doc)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is not in [0, world_size={world_size})")
    device = torch.device(device)
    source = open_data(data)
    refs = usable(source.splits(cfg).train, cfg.degrade_side, cfg, "training crop")
    if not refs:
        raise ConfigError(f"no training image is at least {cfg.degrade_side}px on each side")
    deg = cfg.build_degradation()
    loader = DataLoader(
        _CropDataset(refs, cfg, seed),
        batch_sampler=_InfiniteBatches(len(refs), batch_size, seed, rank, world_size),
        num_workers=cfg.num_workers, collate_fn=_collate, pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0)
    queue = _PairQueue(cfg.queue_size, derive_seed(seed, rank)) if cfg.queue_size else None
    return _stream(loader, deg, cfg, seed, rank, device, queue)


def _stream(loader: DataLoader, deg, cfg: DataConfig, seed: int, rank: int, device: torch.device,
            queue: _PairQueue | None) -> Iterator[Batch]:
    it = iter(loader)
    try:
        for step in range(2 ** 62):
            item = next(it)
            if isinstance(item, _Failure):
                raise ImageError(item.message)
            hr = item.to(device, non_blocking=True).float().div_(255.0)
            d = deg.train(hr, derive_seed("online-degrade", seed, rank, step), crop=cfg.hr_crop)
            g_input, real, target = d.g_input, d.real, d.target
            if queue is not None:
                same = target is real
                parts = [*g_input, real] + ([] if same or target is None else [target])
                parts = queue(parts)
                k = len(g_input)
                g_input, real = tuple(parts[:k]), parts[k]
                target = real if same else (None if target is None else parts[k + 1])
            yield Batch(g_input=tuple(g_input), real=real, target=target, index=None)
    finally:
        del it  # shuts the worker processes down when the consumer stops
