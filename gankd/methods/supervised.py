"""Supervised only, no discriminator: the recipe's supervised terms to the paired target.
Real-ESRGAN's RealESRNet stage is this with the perceptual weight at 0 (L1 only).

Not a distillation method. Suites whose family trains its GAN from a supervised network (Real-
ESRGAN: the GAN stage starts from RealESRNet) use it to pretrain every student identically, once
per (student, seed), before the method under test takes over (``student_pretrain`` in a suite).
Without it a randomly initialised RRDBNet under the full GAN recipe is first driven to a black
image by the perceptual term, and short CPU schedules measure nothing but that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gankd.engine.method import Method, Step
from gankd.methods import METHODS


@dataclass(frozen=True)
class SupervisedConfig:
    """No options: what is supervised, and how much, is the recipe's business."""


@METHODS.register("supervised")
class Supervised(Method):
    name = "supervised"
    Config = SupervisedConfig
    uses_teacher = False
    internal = True

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        assert s.batch.target is not None, "supervised training needs a paired target"
        return self.recipe.supervised_terms(s.fake, s.batch.target, s.batch.index)
