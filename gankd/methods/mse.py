"""MSE-method (Aguinaldo et al., 2019, "Compressing GANs using Knowledge Distillation"): the
student imitates the teacher's output pixel by pixel, added to the base recipe.

Loss: base + lambda * MSE(S(x), T(x)). The paper's joint variant keeps the adversarial term;
so does ours (same teacher-size discriminator as scratch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from gankd.config import ours
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Step
from gankd.methods import METHODS


@dataclass(frozen=True)
class MSEConfig(AdversarialConfig):
    #: the distillation weight(s) `gankd tune` scales together (gankd/bench/tune.py)
    TUNED: ClassVar[tuple[str, ...]] = ("weight",)
    weight: float = ours(1.0, "lambda of the MSE(S(x), T(x)) term; on the scale of the L1 term")


@METHODS.register("mse")
class MSE(AdversarialMethod):
    name = "mse"
    defining_terms = ("kd_mse",)
    paper_task = "unconditional"  # DCGAN on MNIST / CIFAR-10 (Aguinaldo et al. 2019)
    Config = MSEConfig

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        assert s.teacher is not None
        terms = self.base_terms(s, "d")
        # in the family's loss range, like its L1 (GCFSR: [-1, 1])
        to = self.recipe.in_loss_range
        terms["kd_mse"] = self.cfg.weight * F.mse_loss(to(s.fake), to(s.teacher.image))
        return terms
