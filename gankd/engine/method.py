"""The protocol every distillation method implements, and what the engine hands it.

A method is an ``nn.Module`` (so its extra networks -- discriminators, adapters, connectors --
live in its state dict and checkpoints). It declares:

- ``discriminators``: an ``nn.ModuleDict``; the engine gives each its own optimizer and steps
  those ``active_discriminators(step)`` names after each generator step;
- ``generator_side()``: trainable parameters beside the student's that the generator optimizer
  updates (adapters, connectors);
- ``student_taps`` / ``teacher_taps``: module names whose outputs it needs; the engine hooks them
  and passes the features in the ``Step`` record;
- ``generator_terms(step)`` and ``discriminator_terms(step, active)``: *weighted* loss terms by
  name; the engine sums, backpropagates, logs each by name. A method's distillation losses are
  composed from registered terms (``gankd.methods.terms``), each weighed by a config field
  (``term_weights``, ``weigh``).

The engine freezes every discriminator during the generator step (gradients still flow *through*
them to the student) and steps only the generator optimizer there.

Most methods are the base recipe against one discriminator ``d`` plus their own terms: they
derive from ``AdversarialMethod`` (which builds ``d``) with a config derived from
``AdversarialConfig`` (which holds its width), and write only what is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from gankd.config import ours
from gankd.datasets.batch import Batch
from gankd.engine.cycle import D_A, Cycle
from gankd.engine.recipe import Recipe
from gankd.engine.rowcache import RowCache
from gankd.engine.teacher import TeacherOutput
from gankd.errors import ConfigError


@dataclass
class Setup:
    """What a method receives when it is built."""

    student: nn.Module
    teacher: nn.Module | None  # the frozen teacher network (tap names, channels), if the run has one
    recipe: Recipe
    #: builds a fresh discriminator at a width ratio of the teacher-size one (1.0 = teacher size);
    #: its init is drawn from (run seed, role) alone, the role being its name in the method
    make_discriminator: Callable[[float, str], nn.Module]
    #: module names of ``k`` matching taps: (student names, teacher names)
    tap_pairs: Callable[[int], tuple[list[str], list[str]]]
    total_steps: int
    ratio: float
    #: the side of the images discriminators see (fixed-size discriminators need it)
    image_size: int = 0
    #: the run's seed: networks a method builds from (seed, role) alone (gankd.engine.cycle)
    seed: int = 0


@dataclass
class Step:
    """One training step as a method sees it."""

    step: int
    batch: Batch
    fake: torch.Tensor  # student output, attached to the graph
    student_features: list[torch.Tensor] = field(default_factory=list)
    teacher: TeacherOutput | None = None
    d_step: int = 0  # how many discriminator steps were taken before this one (lazy R1)
    #: the student's forward, for terms that run it on other inputs (CycleGAN's cycle)
    generator: Callable[..., torch.Tensor] | None = None


class Method(nn.Module):
    name: ClassVar[str]
    Config: ClassVar[type]
    uses_teacher: ClassVar[bool] = True
    #: a training stage the harness runs itself (a supervised warm start), not a method to benchmark
    internal: ClassVar[bool] = False
    #: the task its paper makes its claims on ("sr", "unconditional", "translation"; None: no
    #: paper): scripts/rank_agreement.py compares the method's standing there with SR
    paper_task: ClassVar[str | None] = None
    #: the generator terms that make the method what it is (its own distillation, not the base
    #: recipe): the report flags a run where they carry under 1 % of the student's gradient
    defining_terms: ClassVar[tuple[str, ...]] = ()
    #: some stage's generator terms leave student parameters without a gradient (LIT's hint phase
    #: trains the trunk alone): under DDP the trainer then has DDP find the unused ones each step
    partial_student_graph: ClassVar[bool] = False
    #: config options under which the first step already computes every one of the method's terms
    #: (the last stage of a schedule): the stored loss values, the step-time and the memory
    #: benchmarks measure the method there, without knowing its schedule
    every_term_options: ClassVar[dict[str, Any]] = {}
    #: each distillation loss's weight, a field of ``Config`` (loss name -> field): where the
    #: weight's default comes from is the field's ``paper(...)``/``ours(...)``; `gankd tune`
    #: scales these fields and no others (``tuned_weights``); a loss not named is unweighted
    term_weights: ClassVar[dict[str, str]] = {}
    #: (own loss, reference losses): where a release's ratio leaves the method's own term inert,
    #: `gankd tune` first sets its weight so that its gradient on the student matches theirs
    #: (DCD's lambda_CD against its output KD; gankd/bench/tune.py)
    balanced: ClassVar[tuple[str, tuple[str, ...]] | None] = None

    @classmethod
    def tuned_weights(cls) -> tuple[str, ...]:
        """The config fields `gankd tune` scales: the weights of the method's distillation losses."""
        return tuple(dict.fromkeys(cls.term_weights.values()))

    def __init__(self, cfg: Any, setup: Setup) -> None:
        super().__init__()
        self.cfg = cfg
        self.recipe = setup.recipe
        self._make_discriminator = setup.make_discriminator
        self.discriminators = nn.ModuleDict()
        self.student_taps: list[str] = []
        self.teacher_taps: list[str] = []
        self.cycle: Cycle | None = None  # built by methods on the base recipe (AdversarialMethod)

    @classmethod
    def not_applicable(cls, student: nn.Module, teacher: nn.Module | None) -> str | None:
        """Why this method cannot distil ``teacher`` into ``student`` (None: it can). A run of an
        inapplicable pair is recorded as not applicable, with this reason, without training."""
        return None

    def add_discriminator(self, name: str, width: float) -> nn.Module:
        """A fresh discriminator ``name`` at ``width`` of the teacher-size one, stepped by the
        engine with its own optimizer."""
        self.discriminators[name] = self._make_discriminator(width, name)
        return self.discriminators[name]

    def generator_side(self) -> list[nn.Parameter]:
        """Trainable parameters beside the student's (a method adds its own to these)."""
        return list(self.cycle.parameters()) if self.cycle is not None else []

    def diagnostics(self) -> dict[str, float]:
        """Numbers about the method's own state a run records (e.g. how far an online teacher
        drifted); none by default."""
        return {}

    def row_caches(self) -> list[RowCache]:
        """Caches of no-grad features keyed by pool row (``gankd.engine.rowcache``) that the
        engine sizes from the training config; a method adds its own."""
        return [self.recipe.target_cache]

    def stage(self, step: int) -> str:
        return "main"

    def active_discriminators(self, step: int) -> list[str]:
        return list(self.discriminators)

    def generator_terms(self, s: Step) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_terms(self, s: Step, active: list[str]) -> dict[str, torch.Tensor]:
        """Each active D judges ``real_for(s, name)`` against the student's output."""
        terms: dict[str, torch.Tensor] = {}
        for name in active:
            if name == D_A and self.cycle is not None:  # CycleGAN's D_A: photos against G_BA(b)
                real, fake = s.batch.g_input[0], self.cycle.fake_a(s.step)
            else:
                real, fake = self.real_for(s, name), s.fake.detach()
            d = self.discriminators[name]
            for k, v in self.recipe.discriminator_terms(d, real, fake, s.d_step).items():
                terms[f"{name}/{k}"] = v
        return terms

    def real_for(self, s: Step, disc: str) -> torch.Tensor:
        """What discriminator ``disc`` is shown as real: the real images, unless a method says
        otherwise (AKDG's distillation D sees the teacher's output)."""
        return s.batch.real

    def weigh(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A term's losses, each times its weight (``term_weights``)."""
        return {k: getattr(self.cfg, self.term_weights[k]) * v if k in self.term_weights else v
                for k, v in losses.items()}

    # -- helpers shared by methods built on the base recipe -------------------------------
    def base_terms(self, s: Step, disc: str | None = "d") -> dict[str, torch.Tensor]:
        """The model's base recipe: supervised terms to the paired target and the adversarial
        term against discriminator ``disc`` (None: no adversarial term); for an unpaired family
        with CycleGAN's objective, its cycle, identity and G_BA terms too."""
        terms: dict[str, torch.Tensor] = {}
        if s.batch.target is not None:
            terms.update(self.recipe.supervised_terms(s.fake, s.batch.target, s.batch.index))
        if disc is not None:
            terms["gan"] = self.recipe.generator_adversarial(self.discriminators[disc](s.fake))
        if self.cycle is not None:
            assert s.generator is not None
            terms.update(self.cycle.generator_terms(
                s.step, s.batch.g_input[0], s.batch.real, s.fake, s.generator, self.discriminators[D_A],
                self.recipe.generator_adversarial, self.recipe.in_loss_range))
        return terms


@dataclass(frozen=True)
class AdversarialConfig:
    """The option every ``AdversarialMethod`` has. A method re-declares ``d_width`` to state
    where its own default comes from (``paper(...)`` or ``ours(...)``)."""

    d_width: float = ours(1.0, "the teacher-size discriminator, trained from scratch")


class AdversarialMethod(Method):
    """A method trained against discriminator ``d``, which judges real images against the
    student's output and gives the base recipe its adversarial term (``base_terms``).

    ``d`` is built here, before the subclass's own ``__init__`` goes on, which may then use it
    (tap its layers). Its init is drawn from (run seed, "d") alone: every method that keeps its
    width starts from the same discriminator.
    """

    def __init__(self, cfg: AdversarialConfig, setup: Setup) -> None:
        super().__init__(cfg, setup)
        self.add_discriminator("d", self.discriminator_width(setup))
        if setup.recipe.cycle is not None:
            if setup.recipe.cfg.step_order != "g_then_d":
                raise ConfigError("CycleGAN's objective needs step_order g_then_d: D_A judges the "
                                  "G_BA(b) of the generator's pass")
            self.cycle = Cycle(setup.recipe.cycle, setup.student, setup.seed)
            self.add_discriminator(D_A, self.discriminator_width(setup))

    def discriminator_width(self, setup: Setup) -> float:
        """Width of ``d`` as a ratio of the teacher-size one; a method with a student-size ``d``
        returns the student's ratio, ``setup.ratio``."""
        return self.cfg.d_width
