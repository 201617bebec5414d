"""AKDG (Tsunashima et al., ICPR 2020): adversarial knowledge distillation with a distillation
discriminator.

Two discriminators, both from scratch: ``d`` judges real HR vs S(x) (the base recipe) and
``d_kd`` judges T(x) as real vs S(x) as fake. The student adds an adversarial term against
``d_kd``: it learns to produce what the distillation discriminator takes for the teacher's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from gankd.config import ours, paper
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.methods import METHODS


@dataclass(frozen=True)
class AKDGConfig(AdversarialConfig):
    kd_weight: float = ours(1.0, "lambda_kd relative to the recipe's GAN weight")
    d_width: float = ours(1.0, "width of the real-data discriminator (teacher size)")
    d_kd_width: float = paper(1.0, "the distillation D shares the base D's architecture")


@METHODS.register("akdg")
class AKDG(AdversarialMethod):
    name = "akdg"
    defining_terms = ("kd_adv",)
    paper_task = "unconditional"  # CIFAR-10 and LSUN bedroom, IS and FID
    Config = AKDGConfig
    # its term is adversarial, against its own discriminator: not a registered term (a term
    # compares a student with a teacher; here d_kd does, and the method steps it)
    term_weights: ClassVar[dict[str, str]] = {"kd_adv": "kd_weight"}

    def __init__(self, cfg: AKDGConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        self.add_discriminator("d_kd", cfg.d_kd_width)

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        terms = self.base_terms(s, "d")
        logits = self.discriminators["d_kd"](s.fake)
        terms.update(self.weigh({"kd_adv": self.recipe.generator_adversarial(logits)}))
        return terms

    def real_for(self, s: Step, disc: str) -> torch.Tensor:
        if disc == "d_kd":
            assert s.teacher is not None
            return s.teacher.image
        return s.batch.real
