"""A throwaway method made by following the README's recipe ("A method: one new file") outside
the package: a copy of `mse` under another name, registered through ``GANKD_PLUGINS``
(tests/conftest.py sets it for the whole test session and every process it starts). Every test
that enumerates the method registry -- one step on every family, provenance of every option,
stored loss values, the CLI, the DDP test -- therefore also runs it, which shows that a method
is one file plus its regenerated data. Its numbers must equal mse's (tests/methods/test_extending.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from gankd.config import ours
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.methods import METHODS
from gankd.methods.terms import OutputMSE, Pair

NAME = "mse-copy"


@dataclass(frozen=True)
class MSECopyConfig(AdversarialConfig):
    weight: float = ours(1.0, "lambda of the MSE(S(x), T(x)) term (a copy of mse's)")


@METHODS.register(NAME)
class MSECopy(AdversarialMethod):
    name = NAME
    defining_terms = ("kd_mse",)
    paper_task = "unconditional"
    Config = MSECopyConfig
    term_weights: ClassVar[dict[str, str]] = {"kd_mse": "weight"}

    def __init__(self, cfg: MSECopyConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        self.kd = OutputMSE(self.recipe.in_loss_range)

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        terms = self.base_terms(s, "d")
        terms.update(self.weigh(self.kd(Pair.of(s))))
        return terms
