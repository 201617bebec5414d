"""SDAKD (Kaparinos & Mezaris, 2025): a three-stage, student-discriminator-aware distillation.

The paper's code is not public; this follows what its abstract and summaries state, and marks
every default it does not state as ours:

- stage 1: supervised only (the base recipe's L1 + perceptual to the HR target); no
  discriminator is stepped, no feature loss;
- stage 2: stage 1 + feature-map distillation. Per tap, an MLP adapted to the reduced channels,
  MLP(F_s) = conv1x1(C_s -> C_h) -> ReLU -> conv1x1(C_h -> C_t), regressed (L2) onto the detached
  teacher feature F_t;
- stage 3: stage 2 + adversarial training against a *student-size* discriminator (width r of
  the teacher's); no teacher-size discriminator exists in this method.

Stage lengths are fractions of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gankd.config import ours, paper
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.engine.taps import tap_channels
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.methods.terms import FeatureRegression, Pair
from gankd.models import has_paired_target

STAGES = ("supervised", "features", "adversarial")


@dataclass(frozen=True)
class SDAKDConfig(AdversarialConfig):
    stage_fractions: tuple[float, float, float] = ours((0.2, 0.3, 0.5), "stage lengths as run fractions")
    taps: int = ours(4, "feature maps distilled (evenly spaced depths)")
    feature_weight: float = ours(1.0, "weight of the MLP feature-distillation L2")
    hidden: int = ours(0, "MLP hidden channels C_h; 0 means C_t (the teacher's channels)")
    d_width: float | None = paper(None, "discriminator at the student's width ratio r (None = r)")

    def __post_init__(self) -> None:
        if any(f < 0 for f in self.stage_fractions) or abs(sum(self.stage_fractions) - 1) > 1e-6:
            raise ValueError(f"stage_fractions must be >= 0 and sum to 1, got {self.stage_fractions}")


@METHODS.register("sdakd")
class SDAKD(AdversarialMethod):
    name = "sdakd"
    defining_terms = ("kd_feat",)
    every_term_options: ClassVar[dict[str, object]] = {"stage_fractions": (0.0, 0.0, 1.0)}  # stage 3 only
    paper_task = "sr"  # GCFSR and Real-ESRGAN students
    Config = SDAKDConfig
    term_weights: ClassVar[dict[str, str]] = {"kd_feat": "feature_weight"}

    @classmethod
    def not_applicable(cls, student: nn.Module, teacher: nn.Module | None) -> str | None:
        if not has_paired_target(student):
            return ("SDAKD's first two stages are supervised (L1 + perceptual to the paired target); "
                    f"{type(student).__name__} takes {student.input_kind} input, with no paired target")
        return None

    def __init__(self, cfg: SDAKDConfig, setup: Setup) -> None:
        if setup.teacher is None:
            raise ConfigError("sdakd needs a teacher")
        super().__init__(cfg, setup)
        self.student_taps, self.teacher_taps = setup.tap_pairs(cfg.taps)
        c_s = tap_channels(setup.student, self.student_taps)
        c_t = tap_channels(setup.teacher, self.teacher_taps)
        self.features = FeatureRegression(c_s, c_t, cfg.hidden)
        f1, f2, _ = cfg.stage_fractions
        # Stage k starts at the first step whose index reaches its fraction of the run.
        self.boundaries = (round(f1 * setup.total_steps), round((f1 + f2) * setup.total_steps))

    def discriminator_width(self, setup: Setup) -> float:
        # student-size: no teacher-size discriminator exists in this method
        return self.cfg.d_width or setup.ratio

    def stage_index(self, step: int) -> int:
        return sum(step >= b for b in self.boundaries)

    def stage(self, step: int) -> str:
        return STAGES[self.stage_index(step)]

    def generator_side(self) -> list[nn.Parameter]:
        return [*super().generator_side(), *self.features.trainable()]

    def active_discriminators(self, step: int) -> list[str]:
        return ["d"] if self.stage_index(step) == 2 else []

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        stage = self.stage_index(s.step)
        terms = self.base_terms(s, "d" if stage == 2 else None)
        if stage >= 1:
            terms.update(self.weigh(self.features(Pair.of(s))))
        return terms
