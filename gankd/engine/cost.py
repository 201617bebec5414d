"""What one training step computes: multiply-accumulates counted on real steps, per side.

Methods differ in what a step costs (AKDG trains two teacher-size discriminators, SDAKD one of the
student's width for part of the run, DCD adds discriminator passes per tap), and a leaderboard
that hides it compares unequal budgets. ``step_cost`` runs one step of every stage of the
method's schedule under ``torch.utils.flop_counter.FlopCounterMode`` -- forward *and* backward,
every network the step touches (student, discriminators, adapters, VGG, an online teacher) -- and
restores the trainer's complete state afterwards, so the run it measures is unchanged.

Conventions: MACs = counted FLOPs / 2 (matmuls and convolutions only, like fvcore); ``g`` is the
generator step, ``d`` the discriminator step (with the extra no-grad student forward of a
D-first recipe), ``teacher`` the teacher's forward when its outputs are not cached (a cached pool
costs nothing per step). The per-step average weights each stage by its number of steps; lazy R1
adds its extra cost once every ``r1_every`` discriminator steps.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    from gankd.engine.trainer import Trainer

SIDES = ("g", "d", "teacher")


class PhaseCounter:
    """Counts MACs per phase of a step; ``Trainer`` enters ``phase(name)`` around each."""

    def __init__(self) -> None:
        self.macs: dict[str, float] = dict.fromkeys(SIDES, 0.0)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with FlopCounterMode(display=False) as fc:
            yield
        self.macs[name] += fc.get_total_flops() / 2


def stage_lengths(trainer: Trainer) -> dict[str, tuple[int, int]]:
    """Each stage of the run: (its first step, how many steps it spans)."""
    out: dict[str, tuple[int, int]] = {}
    for t in range(trainer.cfg.steps):
        name = trainer.method.stage(t)
        first, n = out.get(name, (t, 0))
        out[name] = (first, n + 1)
    return out


def _count(trainer: Trainer, step: int, d_steps: int) -> dict[str, float]:
    counter = PhaseCounter()
    trainer.step, trainer.d_steps = step, d_steps
    trainer.cost_counter = counter
    try:
        trainer.train_step()
    finally:
        trainer.cost_counter = None
    return counter.macs


def step_cost(trainer: Trainer) -> dict[str, Any]:
    """GMACs per training step by side, per stage and averaged over the run (module doc)."""
    saved = copy.deepcopy(trainer.state_dict())
    recipe = trainer.method.recipe
    r1 = recipe.cfg.r1_weight > 0
    stages = stage_lengths(trainer)
    per_stage: dict[str, dict[str, float]] = {}
    try:
        for name, (first, _) in stages.items():
            plain = _count(trainer, first, 0)  # d step 0: never an R1 step
            if r1 and trainer.method.active_discriminators(first):
                with_r1 = _count(trainer, first, recipe.cfg.r1_every - 1)
                plain["d"] += (with_r1["d"] - plain["d"]) / recipe.cfg.r1_every
            per_stage[name] = {k: v / 1e9 for k, v in plain.items()}
    finally:
        trainer.load_state_dict(saved)
    total = trainer.cfg.steps
    mean = {side: sum(per_stage[n][side] * count for n, (_, count) in stages.items()) / total
            for side in SIDES}
    return {"gmacs_per_step": {**mean, "total": sum(mean.values())},
            "by_stage": per_stage,
            "stage_steps": {n: count for n, (_, count) in stages.items()},
            "counted_with": "torch.utils.flop_counter (forward + backward; MACs = FLOPs / 2)"}
