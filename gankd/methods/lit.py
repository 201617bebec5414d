"""LIT (Koratana et al., ICML 2019, "LIT: Learned Intermediate Representation Training for Model
Compression"): a shallower student of the teacher's width learns section by section, then is
fine-tuned.

As the release runs it (stanford-futuredata/lit-code, 678c83a; ``stargan/`` is its GAN setting,
``cifar10/`` its general recipe), each rule with its line:

- the student's layers outside the residual trunk -- stem, upsampler, head -- are the teacher's:
  copied at the start (``stargan/solver.py:98-100``; ``cifar10/main.py:212-215``) and not trained
  during the LIT phase (``solver.py:102-106``; ``main.py:150-157``). Here the copy is made over the
  suite's starting student (every method of a table starts from the same supervised student; LIT
  then replaces what its release replaces), and the LIT phase's loss cannot reach those layers;
- the trunks are cut into ``sections`` at evenly spaced block boundaries, three as the general
  recipe (``cifar10/main.py:22``; the StarGAN release trains its one bottleneck as a single
  section, ``solver.py:272``). **Every** section, the first included, is fed the teacher's
  representation at its start -- the first one the teacher's trunk input (``main.py:180-186``:
  ``features[s_idx]`` with ``features[0]`` the teacher's stem output; ``solver.py:272``) -- and
  regressed (MSE) onto the teacher's representation at its end;
- two phases: first the LIT phase, the sections' hint loss alone, no discriminator step
  (``solver.py:217-287``: the adversarial and reconstruction terms are commented out, D is not
  stepped), for half of the generator updates (``solver.py:55`` 200000 LIT iterations beside
  ``main.py:74`` 200000 fine-tuning iterations); then fine-tuning with the model's full loss, the
  base recipe against the discriminator (``solver.py:362-395``).

Departures, each for a stated reason:

- the discriminator starts from scratch (the release loads the teacher's, ``solver.py:126-128``):
  Real-ESRGAN's pretrained discriminator ships in no registry package, and the other families'
  teachers come without theirs;
- fine-tuning trains the whole student. The StarGAN release sets ``requires_grad = False`` on
  every generator parameter before fine-tuning (``solver.py:213-214``), which leaves its
  generator unchanged by that phase; the CIFAR release never resets the LIT phase's flags, so its
  copied layers stay frozen (``main.py:152``). Neither is described as the method; the paper
  fine-tunes the compressed network;
- the CIFAR recipe's output KD (``beta = 0.75`` of a softened cross-entropy, ``main.py:25, 175``)
  has no counterpart in the GAN release's loss, which is followed here: no term to tune.

Applies to residual generators of the teacher's width only (the teacher's features feed the
student's sections): Real-ESRGAN students with fewer RRDB blocks at ratio 1.0 (e.g.
``--student 1.0 --blocks 6``). GCFSR's decoder has no residual trunk, and a narrower student
cannot take the teacher's features: both are recorded as not applicable, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gankd.config import paper
from gankd.engine.method import AdversarialConfig, AdversarialMethod, Setup, Step
from gankd.engine.taps import INPUT
from gankd.errors import ConfigError
from gankd.methods import METHODS
from gankd.methods.terms import Pair, SectionHints

PHASES = ("lit", "finetune")


@dataclass(frozen=True)
class LITConfig(AdversarialConfig):
    sections: int = paper(3, "NB_SECTIONS (cifar10/main.py:22); evenly spaced block boundaries")
    lit_fraction: float = paper(0.5, "200000 LIT iterations (stargan/solver.py:55) beside 200000 "
                                     "fine-tuning iterations (stargan/main.py:74)")
    copy_teacher_layers: bool = paper(True, "the student's non-trunk layers are the teacher's "
                                            "(stargan/solver.py:98-100, cifar10/main.py:212-215)")

    def __post_init__(self) -> None:
        if not 0 <= self.lit_fraction <= 1:
            raise ValueError(f"lit_fraction must be in [0, 1], got {self.lit_fraction}")
        if self.sections < 1:
            raise ValueError(f"sections must be >= 1, got {self.sections}")


def _trunk(net: nn.Module) -> nn.Sequential | None:
    name = getattr(net, "residual_body", None)
    trunk = getattr(net, name, None) if name else None
    return trunk if isinstance(trunk, nn.Sequential) else None


@METHODS.register("lit")
class LIT(AdversarialMethod):
    name = "lit"
    defining_terms = ("kd_hint",)
    # the LIT phase throughout: its fine-tuning is the base recipe alone
    every_term_options: ClassVar[dict[str, object]] = {"lit_fraction": 1.0}
    partial_student_graph = True  # the LIT phase: stem, upsampler and head get no gradient
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
            raise ConfigError(reason)
        s_trunk, t_trunk = _trunk(setup.student), _trunk(setup.teacher)
        assert s_trunk is not None and t_trunk is not None and setup.teacher is not None
        k = min(cfg.sections, len(s_trunk))
        s_ends = [round((j + 1) * len(s_trunk) / k) - 1 for j in range(k)]
        t_ends = [round((j + 1) * len(t_trunk) / k) - 1 for j in range(k)]
        name_t = setup.teacher.residual_body
        # the teacher's representation at the trunk's input, then at each section's end
        self.teacher_taps = [f"{name_t}.0{INPUT}", *(f"{name_t}.{i}" for i in t_ends)]
        # the student's own blocks: handed to the term, not parameters of the method
        self.hints = SectionHints(s_trunk, [0, *(e + 1 for e in s_ends[:-1])], s_ends)
        self.lit_steps = round(cfg.lit_fraction * setup.total_steps)
        if cfg.copy_teacher_layers:
            copy_non_trunk(setup.teacher, setup.student)

    def stage(self, step: int) -> str:
        return PHASES[step >= self.lit_steps]

    def active_discriminators(self, step: int) -> list[str]:
        return [] if step < self.lit_steps else super().active_discriminators(step)

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        if s.step >= self.lit_steps:  # fine-tuning: the model's full loss
            return self.base_terms(s, "d")
        return self.hints(Pair.of(s))  # unweighted: the release weighs nothing (no term to tune)


@torch.no_grad()
def copy_non_trunk(teacher: nn.Module, student: nn.Module) -> None:
    """The teacher's parameters and buffers into every student layer outside the residual trunk
    (their shapes agree: LIT's student has the teacher's width)."""
    body = f"{student.residual_body}."
    source = teacher.state_dict()
    for name, tensor in student.state_dict().items():
        if not name.startswith(body):
            tensor.copy_(source[name])
