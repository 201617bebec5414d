"""Exponential moving average of the student (the network every student is evaluated from).

The decay warms up: update ``t`` (0-based) uses ``min(decay, (1 + t) / (warmup + t))``, the rule of
TensorFlow's ``ExponentialMovingAverage(num_updates=...)``. Without it a 0.999 EMA needs about 3000
updates before its initial weights fall below 5 % (0.999^3000 = 0.05), so a run of a few hundred
steps would be evaluated mostly at its random init (SPEC section 4). With ``warmup = 10`` the decay
reaches 0.999 after 8990 updates: a run of the papers' length (400k steps) averages exactly as
BasicSR's plain 0.999 EMA over all but its first 2.2 %. ``warmup = 0`` turns the warm-up off.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def decay_at(decay: float, warmup: int, t: int) -> float:
    """The decay of update ``t`` (0-based)."""
    return min(decay, (1 + t) / (warmup + t)) if warmup else decay


def init_share(decay: float, warmup: int, updates: int) -> float:
    """The weight the EMA's starting network keeps after ``updates`` updates: the product of
    the decays (each update moves ``1 - decay_t`` of the way to the live network)."""
    log_share = 0.0
    for t in range(updates):
        d = decay_at(decay, warmup, t)
        if d <= 0:
            return 0.0
        log_share += math.log(d)
        if d == decay:  # constant from here on: the rest in closed form
            return math.exp(log_share + (updates - t - 1) * math.log(decay))
    return math.exp(log_share)


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: int = 0) -> None:
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = decay_at(self.decay, self.warmup, self.updates)
        src = dict(model.named_parameters())
        for name, p in self.model.named_parameters():
            p.lerp_(src[name].detach(), 1 - d)
        src_b = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            b.copy_(src_b[name])
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = updates
