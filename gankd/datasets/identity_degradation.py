"""No degradation: the image itself is the generator's input (translation) or only a real image
(unconditional generation's optional folder of real samples). Scale 1, no paired target.

Lets the unpaired and unconditional families reuse the crops, splits, data checks and cached
evaluation sets of the SR families: an evaluation sample's ``hr`` is then the input crop, which
``gankd.tasks.translation_task`` replaces by the teacher's output (the reference a student is judged
against).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gankd.datasets import DEGRADATIONS
from gankd.datasets.degradation import Degradation, Degraded


@dataclass
class IdentityConfig:
    pass


@DEGRADATIONS.register("identity")
class IdentityDegradation(Degradation):
    Config = IdentityConfig
    name = "identity"

    @property
    def crop_after(self) -> bool:
        return True

    def check_side(self, side: int, what: str) -> None:
        if side < 1:
            raise ValueError(f"{what}={side} must be >= 1")

    def _same(self, hr: torch.Tensor) -> Degraded:
        if hr.ndim != 4 or hr.size(1) != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(hr.shape)}")
        hr = hr.float()
        return Degraded(g_input=(hr,), real=hr, target=None, lr=list(hr.unbind(0)), scale=[1] * hr.size(0))

    def train(self, hr: torch.Tensor, seed: int, crop: int | None = None) -> Degraded:
        if crop is not None and crop != hr.shape[-1]:
            top = (hr.shape[-2] - crop) // 2  # the pool's random crop already placed it; centre the rest
            left = (hr.shape[-1] - crop) // 2
            hr = hr[..., top:top + crop, left:left + crop]
        return self._same(hr)

    def eval(self, hr: torch.Tensor, seed: int) -> Degraded:
        return self._same(hr)
