"""What the tasks without paired targets build from their teacher: its outputs, cached on disk,
and the unpaired training pool (gankd.tasks.unconditional_task, gankd.tasks.translation_task).

Reference outputs and domain-B images are computed once and cached under
``$GANKD_CACHE/task-outputs`` by the teacher's identity and what they were computed on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from gankd import atomic
from gankd.cachekeys import cache_key
from gankd.datasets import pool as pools
from gankd.datasets.batch import Batch
from gankd.datasets.seeding import derive_seed, generator
from gankd.engine.teacher import freeze
from gankd.errors import ConfigError
from gankd.locks import file_lock
from gankd.paths import cache_dir

if TYPE_CHECKING:
    from gankd.bench.suite import ModelSetup

log = logging.getLogger("gankd.bench.tasks")  # the logger these lines have always come from


@torch.no_grad()
def teacher_outputs(teacher: Any, inputs: Callable[[int, int], tuple[torch.Tensor, ...]], n: int,
                    what: dict[str, Any], batch_size: int = 8) -> torch.Tensor:
    """The frozen teacher's outputs on ``n`` inputs (``inputs(start, stop)`` gives a batch), as
    uint8 images on disk: computed once per (teacher, ``what``), then read and checked."""
    key = cache_key({"teacher": teacher.identity, **what})
    folder = cache_dir() / "task-outputs"
    path = folder / f"{key}.pt"
    with file_lock(folder / f".{key}.lock"):
        side = path.with_suffix(".sha256")
        if path.is_file() and side.is_file() and side.read_text().strip() == atomic.sha256_file(path):
            return torch.load(path, map_location="cpu", weights_only=True).float() / 255.0
        net = freeze(teacher.net)
        out = []
        for start in range(0, n, batch_size):
            out.append(net(*inputs(start, min(n, start + batch_size))).clamp(0, 1))
        images = (torch.cat(out) * 255).round().to(torch.uint8)
        atomic.torch_save(path, images)
        atomic.write_text(side, atomic.sha256_file(path) + "\n")
        log.info("teacher outputs %s: %d image(s) of %s", key, n, what.get("kind"))
    return images.float() / 255.0


def noise(n: int, nz: int, *seed_parts: object) -> torch.Tensor:
    return torch.randn(n, nz, 1, 1, generator=generator(derive_seed(*seed_parts)))


def latent_size(teacher: Any) -> int:
    return int(teacher.net.example_inputs(1)[0].shape[1])


@dataclass
class UnpairedPool:
    """Generator inputs and the discriminators' real images, drawn together by row but unrelated
    (``real`` has rows of its own; row i of a batch pairs input i with real i mod its length)."""

    key: str
    inputs: torch.Tensor
    real: torch.Tensor

    def __len__(self) -> int:
        return len(self.inputs)

    def batch(self, index: torch.Tensor) -> Batch:
        index = torch.as_tensor(index).to("cpu", torch.long).reshape(-1)
        return Batch(g_input=(self.inputs[index],), real=self.real[index % len(self.real)], target=None,
                     index=index)


def real_images(setup: ModelSetup, data: str, seed: int) -> torch.Tensor | None:
    """A user folder's images as the real distribution (None: builtin data, no real images)."""
    if data == "builtin":
        return None
    pool = pools.build_pool(setup.data, data, seed)
    return pool.batch(torch.arange(len(pool))).real


def pool_size(setup: ModelSetup, task: str) -> int:
    n = setup.data.pool_size
    if n < 1:
        raise ConfigError(f"the {task} task needs a training pool: set data.pool_size >= 1")
    return n
