"""LIT (Koratana et al., ICML 2019, "LIT: Learned Intermediate Representation Training for Model
Compression"): a shallower student of the teacher's width learns section by section.

The residual trunks of teacher and student are cut into ``sections`` at matching boundaries
(evenly spaced blocks: RRDB block outputs). Each student section is trained to reproduce the
teacher's representation at its section's end (intermediate L2), and -- the part that makes the
sections learn in parallel from stable inputs -- it takes as its input, in this loss, the
*teacher's* representation at the previous boundary (the first section its own input). The whole
student is also trained end to end: output-level KD (L2 to the teacher's output) and the base
recipe with its adversarial term, as the paper trains the compressed StarGAN.

Applies to residual generators of the teacher's width only (the teacher's features feed the
student's sections): Real-ESRGAN students with fewer RRDB blocks at ratio 1.0 (e.g.
``--student 1.0 --blocks 6``). GCFSR's decoder has no residual trunk, and a narrower student
cannot take the teacher's features: both are recorded as not applicable, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gankd.config import ours, paper
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.methods import METHODS


@dataclass(frozen=True)
class LITConfig(AdversarialConfig):
    #: the distillation weight(s) `gankd tune` scales together (gankd/bench/tune.py)
    TUNED: ClassVar[tuple[str, ...]] = ("hint_weight", "kd_weight")
    sections: int = ours(3, "sections the trunks are cut into (evenly spaced block boundaries)")
    hint_weight: float = ours(1.0, "weight of the intermediate L2 of each section")
    kd_weight: float = ours(1.0, "weight of the output-level L2 to the teacher's output")
    teacher_inputs: bool = paper(True, "sections take the teacher's previous representation (LIT's "
                                       "parallel section training)")


def _trunk(net: nn.Module) -> nn.Sequential | None:
    name = getattr(net, "residual_body", None)
    trunk = getattr(net, name, None) if name else None
    return trunk if isinstance(trunk, nn.Sequential) else None


@METHODS.register("lit")
class LIT(AdversarialMethod):
    name = "lit"
    paper_task = "translation"  # StarGAN, conditional image-to-image translation
    Config = LITConfig

    @classmethod
    def not_applicable(cls, student: nn.Module, teacher: nn.Module | None) -> str | None:
        s, t = _trunk(student), _trunk(teacher) if teacher is not None else None
        if s is None or t is None:
            return (f"LIT distils residual trunks section by section; {type(student).__name__} has no "
                    "residual trunk (neither GCFSR's StyleGAN2 decoder nor DCGAN's upsampling stack has one)")
        if len(s) >= len(t):
            return f"LIT compresses depth: the student has {len(s)} blocks, the teacher {len(t)}"
        width = lambda net: next(p for p in net.parameters()).shape[1]  # noqa: E731  (a block's input channels)
        if width(s) != width(t):
            return (f"LIT feeds the teacher's features into the student's sections: the student needs the "
                    f"teacher's width ({width(t)} channels), it has {width(s)}; use ratio 1.0, fewer blocks")
        return None

    def __init__(self, cfg: LITConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        reason = self.not_applicable(setup.student, setup.teacher)
        if reason:
            from gankd.errors import ConfigError

            raise ConfigError(reason)
        s_trunk, t_trunk = _trunk(setup.student), _trunk(setup.teacher)
        k = min(cfg.sections, len(s_trunk))
        s_ends = [round((j + 1) * len(s_trunk) / k) - 1 for j in range(k)]
        t_ends = [round((j + 1) * len(t_trunk) / k) - 1 for j in range(k)]
        name_s, name_t = setup.student.residual_body, setup.teacher.residual_body
        self.student_taps = [f"{name_s}.{i}" for i in s_ends]
        self.teacher_taps = [f"{name_t}.{i}" for i in t_ends]
        self.__dict__["_trunk"] = s_trunk  # the student's own blocks: not a parameter of the method
        self.s_starts = [0, *(e + 1 for e in s_ends[:-1])]
        self.s_ends = s_ends

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        assert s.teacher is not None
        terms = self.base_terms(s, "d")
        trunk: nn.Sequential = self.__dict__["_trunk"]
        hint = s.fake.new_zeros(())
        for j, (start, end) in enumerate(zip(self.s_starts, self.s_ends)):
            want = s.teacher.features[j].detach()
            if j == 0 or not self.cfg.teacher_inputs:
                got = s.student_features[j]  # its own input: the student's forward
            else:
                got = trunk[start:end + 1](s.teacher.features[j - 1].detach())
            hint = hint + F.mse_loss(got, want)
        terms["kd_hint"] = self.cfg.hint_weight * hint
        to = self.recipe.in_loss_range
        terms["kd_out"] = self.cfg.kd_weight * F.mse_loss(to(s.fake), to(s.teacher.image))
        return terms
