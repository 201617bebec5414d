"""What every degradation provides: HR batch + seed -> generator inputs, targets and an LR image.

Degradations register in ``DEGRADATIONS`` from ``*_degradation.py`` modules. Each class has a
``Config`` dataclass (its published defaults, validated by ``gankd.config.from_mapping``) and
works on batched float tensors in [0, 1] on any device. The same seed on the same device gives
the same output bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from gankd.config import from_mapping, to_dict
from gankd.datasets import DEGRADATIONS


@dataclass
class Degraded:
    """The output of a degradation for a batch of N HR images."""

    g_input: tuple[torch.Tensor, ...]  # positional generator inputs, batch-first
    real: torch.Tensor  # (N, 3, H, W) HR ground truth in [0, 1] (what a discriminator sees as real)
    target: torch.Tensor | None  # paired target of pixel/perceptual losses (may differ from real)
    lr: list[torch.Tensor]  # per sample (3, h, w) LR in [0, 1], 8-bit values (display, bicubic baseline)
    scale: list[int]  # per sample SR factor (HR side / LR side)
    params: dict[str, Any] = field(default_factory=dict)  # sampled parameters, for logs and tests


def quantize8(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels and clamp, exactly as BasicSR does for its LQ images."""
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


class Degradation(ABC):
    """Base class; subclasses set ``Config`` and implement the abstract methods."""

    Config: ClassVar[type]
    name: ClassVar[str]

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    @classmethod
    def from_args(cls, args: Mapping[str, Any] | None, where: str = "degradation_args") -> Degradation:
        return cls(from_mapping(cls.Config, args, where))

    def describe(self) -> dict[str, Any]:
        """Name and the fully resolved config (defaults included): part of every cache key."""
        return {"name": self.name, "config": to_dict(self.cfg)}

    @property
    @abstractmethod
    def crop_after(self) -> bool:
        """Whether a training pair may be cropped after degrading a larger HR region."""

    @abstractmethod
    def check_side(self, side: int, what: str) -> None:
        """Raise ValueError (naming ``what``) if square HR crops of ``side`` cannot be degraded."""

    def check_crop(self, side: int, what: str) -> None:
        """Raise ValueError if training pairs cannot be cropped to ``side`` after degrading."""
        self.check_side(side, what)

    @abstractmethod
    def train(self, hr: torch.Tensor, seed: int, crop: int | None = None) -> Degraded:
        """Random training degradation of ``hr`` (N, 3, S, S); optionally crop pairs to ``crop``."""

    @abstractmethod
    def eval(self, hr: torch.Tensor, seed: int) -> Degraded:
        """The evaluation degradation of ``hr`` (seeded per image by the caller)."""


def build_degradation(name: str, args: Mapping[str, Any] | None = None,
                      where: str = "degradation_args") -> Degradation:
    """Instantiate the registered degradation ``name`` with ``args`` (validated by its Config)."""
    cls = DEGRADATIONS.get(name)
    return cls.from_args(args, where)
