"""MSE-method (Aguinaldo et al., 2019, "Compressing GANs using Knowledge Distillation"): the
student imitates the teacher's output pixel by pixel, added to the base recipe.

Loss: base + lambda * MSE(S(x), T(x)). The paper's joint variant keeps the adversarial term;
so does ours (same teacher-size discriminator as scratch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from gankd.config import ours
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.methods import METHODS
from gankd.methods.terms import OutputMSE, Pair


@dataclass(frozen=True)
class MSEConfig(AdversarialConfig):
    weight: float = ours(1.0, "lambda of the MSE(S(x), T(x)) term; on the scale of the L1 term")


@METHODS.register("mse")
class MSE(AdversarialMethod):
    name = "mse"
    defining_terms = ("kd_mse",)
    paper_task = "unconditional"  # DCGAN on MNIST / CIFAR-10 (Aguinaldo et al. 2019)
    Config = MSEConfig
    term_weights: ClassVar[dict[str, str]] = {"kd_mse": "weight"}

    def __init__(self, cfg: MSEConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        # in the family's loss range, like its L1 (GCFSR: [-1, 1])
        self.kd = OutputMSE(self.recipe.in_loss_range)

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        terms = self.base_terms(s, "d")
        terms.update(self.weigh(self.kd(Pair.of(s))))
        return terms
