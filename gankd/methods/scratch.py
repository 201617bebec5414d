"""No distillation: the model's base recipe against a teacher-size discriminator trained from
scratch on real HR vs S(x). The reference every distilled student is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gankd.config import ours
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Step
from gankd.methods import METHODS


@dataclass(frozen=True)
class ScratchConfig(AdversarialConfig):
    d_width: float = ours(1.0, "teacher-size discriminator, as SPEC section 4 fixes for scratch")


@METHODS.register("scratch")
class Scratch(AdversarialMethod):
    name = "scratch"
    Config = ScratchConfig
    uses_teacher = False

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        return self.base_terms(s, "d")
