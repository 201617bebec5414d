"""Shared fixtures: tiny configs of the real architectures and a synthetic indexed pool."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see gankd/cli.py; set before torch loads

import dataclasses
from collections.abc import Callable

import pytest
import torch

from gankd.bench.compose import make_method, seeded_build
from gankd.datasets.batch import Batch
from gankd.engine.config import RecipeConfig, TrainConfig
from gankd.engine.recipe import Recipe
from gankd.engine.sampler import PoolSampler
from gankd.engine.teacher import Teacher
from gankd.engine.trainer import Trainer
from gankd.methods import method_config
from gankd.models import zoo


class SyntheticPool:
    """LR/HR pairs of smooth random images: the shape of a cached pool, no files."""

    def __init__(self, n: int = 8, lr: int = 8, scale: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        hr = torch.nn.functional.interpolate(torch.rand(n, 3, lr, lr, generator=g), scale_factor=scale,
                                             mode="bicubic", align_corners=False).clamp(0, 1)
        self.hr = hr
        self.lr = torch.nn.functional.avg_pool2d(hr, scale)
        self.key = f"synthetic-{n}-{lr}-{seed}"

    def __len__(self) -> int:
        return len(self.hr)

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(g_input=(self.lr[index],), real=self.hr[index], target=self.hr[index], index=index)


TINY_TEACHER = dataclasses.replace(
    zoo.get("realesrgan_x4plus"), name="tiny_rrdb",
    kwargs={"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 16, "num_block": 4, "num_grow_ch": 8})
TINY_D = dataclasses.replace(zoo.get("realesrgan_unet_d"), name="tiny_unet_d",
                             kwargs={"num_in_ch": 3, "num_feat": 16, "skip_connection": True})


@pytest.fixture
def pool() -> SyntheticPool:
    return SyntheticPool()


@pytest.fixture
def make_trainer(tmp_path) -> Callable[..., Trainer]:
    """A Trainer of a tiny Real-ESRGAN-shaped run for ``method`` (student at r=0.5, 2 blocks)."""

    def build(method: str, steps: int = 2, run_dir=None, method_overrides: dict | None = None,
              recipe: RecipeConfig | None = None, seed: int = 0, ckpt_every: int = 0,
              pool: SyntheticPool | None = None) -> Trainer:
        torch.manual_seed(seed)
        pool = pool or SyntheticPool()
        recipe_obj = Recipe(recipe or RecipeConfig(perceptual_layers={"conv1_2": 0.1, "conv2_2": 0.1}))
        teacher = Teacher(seeded_build(TINY_TEACHER, 123), identity="tiny")
        student_entry = zoo.student(TINY_TEACHER, 0.5, {"num_block": 2})
        student = seeded_build(student_entry, seed)
        if method in ("dcd", "sdakd"):  # the tiny student has 2 blocks: 2 taps
            method_overrides = {"taps": 2, **(method_overrides or {})}
        cfg = method_config(method, method_overrides)
        m = make_method(method, cfg, student, teacher, TINY_D, recipe_obj, total_steps=steps, ratio=0.5)
        train = TrainConfig(steps=steps, batch_size=2, log_every=1, ckpt_every=ckpt_every, device="cpu")
        return Trainer(train, student, m, teacher, PoolSampler(pool, 2, seed), run_dir=run_dir,
                       progress=False)

    return build


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a loaded 2-core machine a
    second OpenMP thread spinning for a busy core slows a step down tenfold."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
